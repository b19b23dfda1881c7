// Calibration statistics: plain data produced by observers (compressor/observers.h) while the
// executor runs, consumed by planning code in prune/ and quantize/. Planning never calls the
// executor; it reads these structs. Every accumulator is O(channels) or O(features^2), never
// O(samples).
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace oc {

struct MinMaxStat {
  float min = 0, max = 0;
  int64_t count = 0;  // elements seen
};

// Fixed-range histogram for percentile / entropy calibration (range grows by re-binning).
struct HistogramStat {
  float lo = 0, hi = 0;
  std::vector<uint64_t> bins;
};

// Per-channel moments of an activation along its channel axis (axis 1 for NCHW, last for [.., C]).
struct ChannelStat {
  int axis = 1;
  int64_t count = 0;            // elements per channel seen
  std::vector<double> sum;      // Σx
  std::vector<double> sum_abs;  // Σ|x|
  std::vector<double> sum_sq;   // Σx²  (‖X_j‖₂ = sqrt(sum_sq[j]))
  double mean(size_t c) const { return count ? sum[c] / static_cast<double>(count) : 0.0; }
  double mean_abs(size_t c) const { return count ? sum_abs[c] / static_cast<double>(count) : 0.0; }
  double l2(size_t c) const;
};

// H = XᵀX of a weight layer's input (double accumulation), X rows = tokens/positions, columns =
// the layer's input features: K for MatMul/Gemm, Cin·kh·kw (im2col order, matching W reshaped to
// [Cout, Cin·kh·kw]) for Conv. Used by GPTQ (H = 2XᵀX) and pruning compensation.
struct GramStat {
  int64_t features = 0;
  int64_t rows = 0;             // number of X rows accumulated
  std::vector<double> xtx;      // features x features, row-major
  std::vector<double> col_sum;  // Σ_rows X[:, j] (bias correction needs the mean input)
};

// Mean angular distance arccos(cos(x_in, x_out))/π between a block's input and output, per
// token/position (vectors along the channel axis), and mean -cos (LIM importance).
struct BlockAngleStat {
  double sum_angle = 0;  // Σ arccos(cos)/π
  double sum_neg_cos = 0;
  int64_t count = 0;     // tokens/positions
  double mean_angle() const { return count ? sum_angle / static_cast<double>(count) : 0.0; }
  double mean_neg_cos() const { return count ? sum_neg_cos / static_cast<double>(count) : 0.0; }
};

struct CalibrationStats {
  int64_t samples = 0;
  std::map<std::string, MinMaxStat> minmax;      // by value name
  std::map<std::string, HistogramStat> histograms;
  std::map<std::string, ChannelStat> channels;   // by value name
  std::map<std::string, GramStat> grams;         // by node name (the weight layer)
  std::map<std::string, BlockAngleStat> blocks;  // by block name
  // Output of the model for fidelity comparisons (optional; only when requested).
};

}  // namespace oc
