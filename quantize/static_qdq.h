// Static int8 activations placed where ONNX Runtime's CPU EP turns QDQ into integer kernels.
//
// ORT 1.30 (qdq_selector_action_transformer.cc) fuses a node group only when every float input
// is a DequantizeLinear and, for most ops, the output goes straight into a QuantizeLinear:
//
//   group                                              | ORT runs            | output Q needed
//   ---------------------------------------------------+---------------------+----------------
//   DQ x, DQ W int8, DQ b int32 → Conv [→ Relu|Clip]  | QLinearConv         | yes
//   DQ x, DQ W int8 → MatMul                           | QLinearMatMul       | optional: without
//                                                      |                     | it MatMulIntegerToFloat
//   DQ x, DQ W int8, DQ c int32 → Gemm                 | (QGemm: not formed  | – (Gemms are written
//                                                      |  by the CPU EP)     | as MatMul + Add first,
//                                                      |                     | gemm_as_matmul.h)
//   DQ a, DQ b → Add | Mul  (b may be a constant)      | QLinearAdd/Mul      | yes
//   DQ x_i → Concat                                    | QLinearConcat       | yes
//   DQ x → AveragePool | GlobalAveragePool | Sigmoid | LeakyRelu | QLinear* | yes
//   DQ x → MaxPool | Resize | Reshape | Transpose | …  | the op on uint8     | yes, same (s, z) as x
//   DQ x → HardSigmoid, written Add(x, β/α)            | QLinearAdd          | yes, over [0, 1/α]; its
//                                                      |                     | DQ scale ×α (see below)
//
// A Relu (or Clip from 0) right after such a node is removed by ORT when the output Q's zero point
// is the type minimum, so the Q goes after the activation, and its range starts at 0. On x86 MLAS
// runs u8·s8 (QDQIsInt8Allowed() is false there): activations are uint8 asymmetric
//   s = (hi − lo)/255, z = round(−lo/s), lo ≤ 0 ≤ hi,
// weights int8 symmetric per output channel (exported before this pass), bias int32 with scale
// s_x·s_w[c] and zero point 0.
//
// What becomes integer is decided forward through the graph: Conv/MatMul/Gemm whose weight is an
// int8 DequantizeLinear are integer; an elementwise op above is integer when every input is an
// integer op's output (so a CNN is integer from its first Conv on, while a transformer's LayerNorm,
// Softmax and GELU stay float and its MatMuls read quantized inputs and write float); pass-through
// ops follow their input. Outputs that nothing integer reads are not quantized (a Conv's or Gemm's
// always is: QLinearConv needs it), and graph outputs never are; a Conv writing one, and a Gemm left
// as such, stays float with float weights (a weight DequantizeLinear there would only cost time).
#pragma once
#include <map>
#include <set>
#include <string>
#include <vector>

#include "engine/statistics.h"
#include "graph/ir.h"
#include "quantize/activations.h"

namespace oc::quant {

struct StaticQdqPlan {
  // Activations that get a QuantizeLinear → DequantizeLinear pair, each with its own range.
  std::vector<std::string> values;
  // Outputs of pass-through ops: quantized with the parameters of the value they map to.
  std::map<std::string, std::string> tied;
  // Nodes that ONNX Runtime will run as integer kernels.
  std::vector<std::string> integer_nodes;
  // Conv/Gemm biases to store as int32 (node -> bias input).
  std::map<std::string, std::string> biases;
  // Integer Add/Mul/Div with one constant operand (node -> its input index): the constant is stored
  // uint8 behind a DequantizeLinear; a Div becomes a Mul by the reciprocal.
  std::map<std::string, int> constants;
  // HardSigmoid nodes run as QLinearAdd (node -> its output): clip(αx + β, 0, 1) = α·clip(x + β/α, 0, 1/α),
  // so the node becomes Add(x, β/α) whose output Q spans [0, 1/α] (saturation is the clip) and whose
  // DequantizeLinear scale is α times the Q's: readers get the HardSigmoid values, and the x·HardSigmoid(x)
  // of HardSwish / the squeeze-excite gate's Mul become QLinearMul (ORT has no int8 HardSigmoid).
  std::map<std::string, std::string> hardsigmoids;
};

// `layers`: Conv/MatMul/Gemm nodes whose weight is (or will be) int8 symmetric. The weight input
// may be an initializer (before export) or a DequantizeLinear of one (after).
// `hardsigmoid` false leaves HardSigmoid nodes float (how the thin-region rule sees the graph).
StaticQdqPlan plan_static_qdq(const Model& m, const std::set<std::string>& layers, bool hardsigmoid = true);

struct StaticQdqResult {
  int pairs = 0;          // Q→DQ pairs inserted
  int integer_nodes = 0;  // nodes ORT runs as integer kernels
  int int32_biases = 0;
  std::vector<std::string> float_layers;  // layers of regions left float (slow_int8_regions)
  std::vector<std::string> notes;  // constant-range activations and other things a user should know
};

// Where int8 does not pay: an integer region (integer nodes joined through the values they quantize)
// whose Convs average fewer than `min_macs_per_element` MACs per output element (Cin/group·kh·kw,
// weighted by the output elements calibration saw). Such convs are as fast in float, and the
// QuantizeLinear/DequantizeLinear and QLinear elementwise ops around them cost more than they save
// (PP-OCRv2 cls: 27 MACs per element, 0.70× of float; the slowest that gained, MobileNetV2, has 45;
// docs/BENCHMARKS.md). Regions without a Conv (transformers' MatMuls) are not judged. Returns each
// slow region's Conv/MatMul/Gemm nodes.
constexpr double kMinInt8MacsPerElement = 32;
std::vector<std::vector<std::string>> slow_int8_regions(const Model& m, const StaticQdqPlan& plan,
                                                        const CalibrationStats& stats,
                                                        double min_macs_per_element = kMinInt8MacsPerElement);

// Inserts the pairs and the int32 biases of `plan` into `m` (weights already exported as QDQ).
// Regions slow_int8_regions finds stay float: their weights are stored float (dequantized from the
// int8 codes, so the numbers are the int8 layer's) and the plan is made again without them;
// Grouped convs that are not depthwise stay float the same way (ORT's integer kernel for them is slower
// than its float conv: one small QGEMM per group).
// min_macs_per_element 0 keeps every region. `wide`: plan values (and so the pass-through outputs tied
// to them) quantized as uint16 instead (s = (hi − lo)/65535; quantize/act16.h chooses them): ONNX
// needs opset 21 for them (the caller raises it), ORT's CPU EP runs the nodes reading or writing them
// in float (no 16-bit QLinear kernels), so a Conv/MatMul reading one keeps a float bias.
// Throws InvalidArgument naming a value without statistics.
StaticQdqResult apply_static_qdq(Model& m, const StaticQdqPlan& plan, const CalibrationStats& stats,
                                 CalibMethod method, double percentile = 0.9999,
                                 double min_macs_per_element = kMinInt8MacsPerElement,
                                 const std::set<std::string>& wide = {});

// Integer MatMuls that read a float activation (ORT would run them as MatMulIntegerToFloat on a
// static uint8 QuantizeLinear of it: transformers' Q/K/V/O/FFN layers) rewritten to ORT's dynamic
// W8A8 pattern, DynamicQuantizeLinear(x) → MatMulInteger(x_q, W int8, x_zp) → Cast → Mul(x_s·w_s),
// which ORT fuses to DynamicQuantizeMatMul: the activation range is taken per run, and the separate
// QuantizeLinear/DequantizeLinear ops go away. Measured in ORT 1.30 (1 thread, process CPU time,
// interleaved): bert_tiny 1.39× → 1.55× of float, gpt_tiny 1.51× → 1.60×, accuracy/perplexity kept.
// Only MatMuls whose weight DequantizeLinear reads int8 [K, N] per-column (or per-tensor) symmetric
// codes, and whose activation pair only MatMuls read, are rewritten (the pair goes with the last);
// models with integer Convs are left as they are (ppocr4_rec lost 0.1 pt char accuracy), except the
// `always` layers: Gemms written as MatMul (quantize/gemm_as_matmul.h), whose static QDQ form ORT
// would turn back into a float Gemm (its level-1 MatMulAddFusion runs before the QDQ fusions), while
// MatMulInteger is left alone and fused with the bias Add into DynamicQuantizeMatMul. Returns the count.
int dynamic_int8_matmuls(Model& m, const std::set<std::string>& always = {});

}  // namespace oc::quant
