// Activation ranges and uint8 parameters for static activation quantization (placed by
// quantize/static_qdq.h):
//   s = (hi − lo) / 255,  z = round(−lo / s),  lo ≤ 0 ≤ hi
//   minmax:     [lo, hi] = observed min/max
//   percentile: [P(1 − p), P(p)] of the histogram (p = 0.9999)
//   entropy:    ±T, T the KL-divergence threshold of |x| (clipped to the observed range)
//   mse:        the [lo', hi'] inside the observed range with the least squared uint8 error over the
//               histogram (clipping and rounding both counted)
#pragma once
#include <cstdint>
#include <string>
#include <utility>

#include "engine/statistics.h"
#include "graph/ir.h"

namespace oc::quant {

enum class CalibMethod { MinMax, Percentile, Entropy, MSE };
CalibMethod parse_calib_method(const std::string& s);  // "minmax" | "percentile" | "entropy" | "mse"

// The calibrated range [lo, hi] of activation `v` by `method` (before widening to include 0).
// Throws InvalidArgument naming a value without statistics.
std::pair<float, float> activation_range(const std::string& v, const CalibrationStats& stats, CalibMethod method,
                                         double percentile = 0.9999);

// Unsigned asymmetric parameters for [lo, hi] widened to include 0 at `bits` 8 (uint8, the default)
// or 16 (uint16, the activations --act16 keeps wide, quantize/act16.h):
//   s = (hi − lo)/(2^bits − 1), z = round(−lo/s);
// a range of one point gets s = 1 (every value then quantizes exactly to z).
struct UintParams {
  float scale = 1;
  uint16_t zero_point = 0;
  bool constant = false;  // the range had no width
  int bits = 8;
};
using Uint8Params = UintParams;
UintParams uint_params(float lo, float hi, int bits);
inline Uint8Params uint8_params(float lo, float hi) { return uint_params(lo, hi, 8); }

// Adds `p` as two scalar initializers, `base`_scale (float) and `base`_zero_point (uint8, or uint16
// at 16 bits), under unique names; returns {scale name, zero point name}.
std::pair<std::string, std::string> add_uint_params(Graph& g, const std::string& base, const UintParams& p);
inline std::pair<std::string, std::string> add_uint8_params(Graph& g, const std::string& base, const Uint8Params& p) {
  return add_uint_params(g, base, p);
}

}  // namespace oc::quant
