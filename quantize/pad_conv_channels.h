// Input channels of a Conv reading a graph input padded to a multiple of 4 before static int8:
//
//   x [N, C, H, W] → Conv(W [M, C, kh, kw])
//     becomes  Pad(x, channels C → C′ = ⌈C/4⌉·4, value 0) → Conv(W′ [M, C′, kh, kw]),  W′[:, C:] = 0,
//   so y is unchanged (the padded channels meet zero weights; quantized, the zero codes stay zero).
//
// Why: MLAS's symmetric int8 convolution (ConvSym: indirect buffer, requantization fused, the kernel
// ORT runs for the other QLinearConvs) takes input channels in blocks of 4 only; a Conv with
// C % 4 ≠ 0 falls back to im2col + QGEMM. torchvision ResNet-50's RGB stem (C = 3, 7×7) took 3.3 ms
// of 20.3 there in ORT 1.30 (VNNI Xeon, 1 thread), 1.8 ms padded.
//
// Run on the float model, before calibration and weight quantization: the Pad's output is then the
// value calibrated and quantized (Q → DQ → Conv after it, ORT's QLinearConv), and the int8 weights'
// pairing (QuantLayout::pair_taps) is the padded layout's. Only Convs reading a runtime graph input
// (the image stem): inside the graph a float Pad between a quantized op and the Conv's
// QuantizeLinear would keep ORT from fusing that op.
// Matched: group 1, a 4-D float weight initializer read only by this Conv, C % 4 ≠ 0.
#pragma once
#include "graph/ir.h"

namespace oc::quant {

// Returns the Convs padded.
int pad_conv_input_channels(Model& m);

}  // namespace oc::quant
