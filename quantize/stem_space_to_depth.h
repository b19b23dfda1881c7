// A strided Conv on the image input rewritten as a stride-1 Conv over its space-to-depth blocks,
// before static int8:
//
//   y = Conv(x; W [M, C, k, k], stride s, pads p)        (x [N, C, H, W])
//     = Conv(SpaceToDepth_s(Pad(x, p + extra)); W′ [M, s²C, k′, k′], stride 1, no pads),
//   k′ = ⌈k/s⌉,  W′[o, (b₁s + b₂)C + c, a₁, a₂] = W[o, c, s·a₁ + b₁, s·a₂ + b₂] (0 past k),
//   since y[i] = Σ_k W[k]·x_p[s·i + k] and k = s·a + b reads block i + a, phase b of the padded input.
//   `extra` pads the bottom/right edge to a multiple of s (the zero weights past k never read it);
//   the output size is unchanged (checked).
//
// Why: the stem of ResNet-style nets (7×7, stride 2, 3 channels) is the slowest conv of the int8
// model in ONNX Runtime: MLAS's direct int8 kernel takes input channels in blocks of 4 and runs
// 49 taps of one block each (ResNet-50, Xeon with AMX, 1 thread: 1.10 ms of 10.9, ~107 GMAC/s
// against 250-350 for the other convs). As 4×4 taps over 12 channels it reads 3 blocks per tap.
// The Pad and SpaceToDepth run in float on the image (they precede the Conv's QuantizeLinear),
// which is small next to the conv.
//
// Matched: a Conv reading a runtime graph input with known C, H, W, group 1, dilations 1, equal
// strides s ≥ 2 with kernel > s, a 4-D float weight initializer read only by it, explicit pads
// (auto_pad NOTSET), and s²C·k′² no more than ⌈C/4⌉·4·k² (no more work than the channel-padded conv:
// 7×7/2 on RGB yes, 3×3/2 no). Run on the float model before calibration, like pad_conv_channels.h.
#pragma once
#include "graph/ir.h"

namespace oc::quant {

// Returns the Convs rewritten.
int stem_space_to_depth(Model& m);

}  // namespace oc::quant
