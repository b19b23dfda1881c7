// Writing quantized weights into an ONNX model.
//
//   format       | weights become                                             | runtime cost
//   -------------+------------------------------------------------------------+-------------------------
//   fake         | float32 s·(q − z) in place (same graph, same size)          | none: a simulation
//   qdq          | DequantizeLinear(int8/uint8 | int4/uint4, scale, zp) -> W    | opset 13 (per-axis 8-bit)
//                |   axis = N axis (channel) or K axis + block_size (block)     | opset 21 (4-bit, blocks)
//   matmulnbits  | MatMul/Gemm -> com.microsoft.MatMulNBits (packed bits);     | ONNX Runtime contrib op
//                |   Conv layers take the qdq path                             |
//
// Widths without their own ONNX type ride in the next container (2/3 -> 4-bit, 5/6/7 -> 8-bit):
// the values keep their planned range, so the accuracy is that of the planned width while the
// bytes are the container's. MatMulNBits containers are the widths ONNX Runtime's CPU kernel runs.
#pragma once
#include <string>
#include <vector>

#include "graph/ir.h"
#include "quantize/layers.h"
#include "quantize/layout.h"

namespace oc::quant {

enum class Format { QDQ, MatMulNBits, Fake };
std::string format_name(Format f);
Format parse_format(const std::string& s);  // "qdq" | "matmulnbits" | "fake"

struct QuantizedLayer {
  WeightLayer layer;
  QuantizedMatrix q;
};

// The layout a layer gets in `f`, given the requested one (what the format can express):
// QDQ blocks need K to be one tensor axis (Conv 1x1 yes, Conv kxk falls back to per-channel);
// MatMulNBits blocks must be a power of two >= 16.
QuantLayout effective_layout(const WeightLayer& l, Format f, const QuantLayout& requested);

// Bits of the storage type a width is written in.
int qdq_container_bits(int bits);
int matmulnbits_container_bits(int bits);
// Whether a MatMul/Gemm layer of `bits` in the MatMulNBits format is written as ORT's dynamic W8A8
// pattern (DynamicQuantizeLinear + MatMulInteger, fused to DynamicQuantizeMatMul) instead.
bool matmulnbits_dynamic_int8(int bits);

// MatMulNBits scales are stored as float16 (behind a Cast ONNX Runtime folds at load) when every
// value is 0 or in float16's normal range; quantize_model rounds them to float16 first, so the
// stored weights are exactly the ones it reports and corrects biases with.
bool scales_fit_half(const std::vector<float>& scales);

struct ExportInfo {
  int64_t opset = 0;            // default-domain opset of the result
  std::string dequantize_form;  // "DequantizeLinear", "Cast+Mul" or "" (fake / MatMulNBits only)
};

// Rewrites `m` (main graph) so that each layer's weight is its quantized form. Raises the opset as
// the format needs (convert_opset). When the model cannot be raised to 13 (e.g. an opset-9 Softmax
// whose input rank is unknown) 8-bit per-channel/per-tensor weights are written as
// Cast(int8/uint8 -> float) [− zero] · scale, which every opset runs; 4-bit or blocked weights
// then have no ONNX form and UnsupportedError names what blocks the raise.
ExportInfo export_quantized(Model& m, const std::vector<QuantizedLayer>& layers, Format f);

}  // namespace oc::quant
