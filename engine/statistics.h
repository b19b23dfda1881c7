// Calibration statistics: plain data produced by observers (engine/observers.h) while the
// executor runs, consumed by planning code in prune/ and quantize/. Planning never calls the
// executor; it reads these structs. Every accumulator is O(channels) or O(features^2), never
// O(samples).
#pragma once
#include <cstddef>
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
// bins[i] counts values in [lo + i·w, lo + (i+1)·w), w = (hi − lo) / bins.size(); the last bin
// also holds hi. Empty (no bins) until the first finite value.
struct HistogramStat {
  float lo = 0, hi = 0;
  std::vector<uint64_t> bins;
  uint64_t total() const;
  double bin_width() const { return bins.empty() ? 0.0 : (double(hi) - double(lo)) / double(bins.size()); }
};

// Value below which a fraction q (0..1) of the histogram's values lie, interpolated linearly
// inside the bin where the cumulative count crosses q (so exact to within one bin width).
float histogram_percentile(const HistogramStat& h, double q);
// The histogram of |x| over [0, max(|lo|,|hi|)] with the same bin count; a signed bin's count goes
// to the |x| bin holding its centre (exact to within one bin width).
HistogramStat histogram_fold_abs(const HistogramStat& h);
// KL-divergence (entropy) calibration threshold for symmetric quantization with `levels`
// positive levels (128 for int8): over |x|, pick the clip T = i·w (i ≥ levels) minimizing
// KL(P‖Q), P = histogram clipped at T (outliers added to the last kept bin), Q = P merged into
// `levels` buckets and spread back uniformly over each bucket's non-empty bins.
float histogram_entropy_threshold(const HistogramStat& h, int levels = 128);

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
//
// Grouped / depthwise Conv (group g > 1): output channel o only sees input channels of its group
// o / (Cout/g), so there is one Gram per group, each over features = Cin/g·kh·kw (depthwise:
// kh·kw). `xtx` holds the groups' matrices one after another (groups·features² values) and
// `col_sum` groups·features values; `rows` counts rows per group (the same for every group).
struct GramStat {
  int64_t features = 0;
  int64_t groups = 1;
  int64_t rows = 0;             // number of X rows the layer read
  // Rows actually accumulated: fewer than `rows` when Conv positions were subsampled
  // (GramOptions::max_positions), xtx and col_sum then being scaled by rows / sampled_rows.
  int64_t sampled_rows = 0;
  std::vector<double> xtx;      // groups x features x features, row-major, symmetric
  std::vector<double> col_sum;  // Σ_rows X[:, j] (bias correction needs the mean input)
  // H[i][j] of group gi.
  double at(int64_t gi, int64_t i, int64_t j) const {
    return xtx[static_cast<size_t>((gi * features + i) * features + j)];
  }
};

// diag(XᵀX)/rows without the O(features²): the mean square of each input column of a weight
// layer (same columns and group layout as GramStat). ‖X_j‖₂ = sqrt(sum_sq[j]) for Wanda scores.
struct ColumnStat {
  int64_t features = 0;
  int64_t groups = 1;
  int64_t rows = 0;
  std::vector<double> sum_sq;  // groups x features
  double mean_sq(size_t j) const { return rows ? sum_sq[j] / static_cast<double>(rows) : 0.0; }
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
  std::map<std::string, ColumnStat> columns;     // by node name (the weight layer)
  std::map<std::string, BlockAngleStat> blocks;  // by block name
  // Output of the model for fidelity comparisons (optional; only when requested).
};

// Bytes held by the statistics' arrays and maps (to check memory does not grow with samples).
size_t stats_bytes(const CalibrationStats& s);

}  // namespace oc
