// Int8 Conv weights of long reductions re-encoded with a weight zero point of ±1, so that ONNX
// Runtime runs their QLinearConv as im2col + QGEMM (Intel AMX tiles where the CPU has them) instead
// of its direct symmetric kernel:
//
//   DQ(W_q, s, 0) → Conv   becomes   DQ(W_q + z, s, z) → Conv,
//   so every weight ((W_q + z) − z)·s = W_q·s is unchanged (exact: an integer shift of the codes),
//   with z = −1 when every code is ≥ −127, else z = 1 when every code is ≤ 126 (neither: left as is),
//   and only when the shifted codes still keep ORT's AVX2 pair limit (layout.h pair_partner: every
//   same-sign pair |q₁| + |q₂| ≤ 128) where the codes kept it: the quantize step quantizes with a
//   limit of 126 for an AMX target, so the file stays exact on AVX2 CPUs too.
//
// Why: ORT 1.30's QLinearConv packs a weight with zero point 0 for MLAS's symmetric direct kernel
// (ConvSym, AVX-512 VNNI at best; qlinearconv.cc TryConvSymPrepack) and any other for its general
// QGEMM, which MLAS dispatches to AMX on CPUs that have it. Per layer in ORT's profile (torchvision
// ResNet-50, [1,3,224,224], 1 thread, Xeon with AMX-INT8): QGEMM halves the 3×3 convs of layers 3-4
// (334 → 165 µs) and wins from K = C_in·kh·kw ≈ 256 on, while ConvSym, which requantizes in its
// kernel, stays faster at K ≤ 128 (1×1 convs of 64 inputs at 56×56: 210 vs 462 µs) and on the
// 7×7 RGB stem (K = 196 after pad_conv_channels.h). Whole model, interleaved, 1 thread: float
// 47.5 ms, all direct 16.5 ms (2.88×), K ≥ 256 on QGEMM 14.5 ms (3.28×). On CPUs without AMX
// the QGEMM path is slower (AVX2 EPYC: a weight zero point on every conv 0.83× of direct), so this
// runs only for an AMX deployment target (the quantize step's --deploy-cpu).
//
// Few output channels lose on QGEMM too: PP-OCRv4 det's FPN 3×3 convs to 24 channels at 80×80
// (K = 864) took 1620 µs against 655 direct, the whole model 16.9 → 19.3 ms; ResNet's and the
// MobileNets' routed convs all have ≥ 64 (det's 360-384-channel convs at 10×10 gained 65 → 54 µs).
//
// Matched: a Conv of group 1 whose input is a DequantizeLinear (ORT fuses it to QLinearConv) and
// whose weight is DequantizeLinear(int8 initializer, scale[, zero point all 0]) read only by it,
// with C_in·kh·kw ≥ min_reduction and at least min_outputs output channels.
#pragma once
#include <string>
#include <vector>

#include "graph/ir.h"

namespace oc::quant {

constexpr int64_t kQgemmMinReduction = 256;
constexpr int64_t kQgemmMinOutputs = 64;

struct ConvGemmRoute {
  std::vector<std::string> routed;  // Convs now on QGEMM
  std::vector<std::string> kept;    // matched, but no shift keeps the codes in [−128, 127] and
                                    // within ORT's AVX2 pair limit (layout.h) where they were
};

ConvGemmRoute route_convs_to_qgemm(Model& m, int64_t min_reduction = kQgemmMinReduction,
                                   int64_t min_outputs = kQgemmMinOutputs);

}  // namespace oc::quant
