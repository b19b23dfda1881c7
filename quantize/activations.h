// Static activation quantization: a QuantizeLinear -> DequantizeLinear pair on the input of each
// quantized Conv/MatMul/Gemm, with uint8 asymmetric parameters from calibrated ranges, so that with
// int8 per-channel QDQ weights ONNX Runtime runs integer kernels (QLinearConv, QLinearMatMul, ...).
//   s = (hi − lo) / 255,  z = round(−lo / s),  lo ≤ 0 ≤ hi
//   minmax:     [lo, hi] = observed min/max
//   percentile: [P(1 − p), P(p)] of the histogram (p = 0.9999)
//   entropy:    ±T, T the KL-divergence threshold of |x| (clipped to the observed range)
//   mse:        the [lo', hi'] inside the observed range with the least squared uint8 error over the
//               histogram (clipping and rounding both counted)
#pragma once
#include <cstdint>
#include <set>
#include <utility>
#include <string>

#include "engine/statistics.h"
#include "graph/ir.h"

namespace oc::quant {

enum class CalibMethod { MinMax, Percentile, Entropy, MSE };
CalibMethod parse_calib_method(const std::string& s);  // "minmax" | "percentile" | "entropy" | "mse"

// The calibrated range [lo, hi] of activation `v` by `method` (before widening to include 0).
// Throws InvalidArgument naming a value without statistics.
std::pair<float, float> activation_range(const std::string& v, const CalibrationStats& stats, CalibMethod method,
                                         double percentile = 0.9999);

// uint8 asymmetric parameters for [lo, hi] widened to include 0: s = (hi − lo)/255, z = round(−lo/s);
// a range of one point gets s = 1 (every value then quantizes exactly to z).
struct Uint8Params {
  float scale = 1;
  uint8_t zero_point = 0;
  bool constant = false;  // the range had no width
};
Uint8Params uint8_params(float lo, float hi);

// Inserts the pairs for the input 0 of every node named in `layers`; returns how many pairs were
// added (one per distinct activation). Throws InvalidArgument naming a value without statistics.
int add_activation_qdq(Model& m, const std::set<std::string>& layers, const CalibrationStats& stats,
                       CalibMethod method, double percentile = 0.9999);

}  // namespace oc::quant
