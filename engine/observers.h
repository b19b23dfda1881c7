// Streaming observers: fed the values the executor produces (through its ValueHook), they fold
// each batch into a fixed-size statistic (engine/statistics.h). Memory never depends on the
// number of samples: MinMax O(1), Histogram O(bins), ChannelMoments O(C), Gram O(features²),
// ColumnSquares O(features), BlockAngle O(1) plus one copy of a block input per batch.
//
// Use: ask each observer for watched() value names, call observe(name, tensor) for each one the
// executor produces, end_batch() after every run, and store() to copy the result into
// CalibrationStats. engine/calibrate.h does this wiring from a CalibrationPlan.
#pragma once
#include <Eigen/Core>
#include <climits>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "engine/calibration_plan.h"
#include "engine/device_view.h"
#include "engine/statistics.h"
#include "graph/ir.h"

namespace oc {

// Channel axis chosen from the value's rank: 1 for rank ≥ 4 (NCHW), the last axis otherwise
// ([B,T,C], [N,C]).
int resolve_axis(int axis, size_t rank);
// The channel axis of `value` in `g`: 1 when it is produced or read by a channel-first operator
// (Conv, pooling, BatchNormalization, ...; see the table in observers.cpp), else resolve_axis by
// rank. -1 when the rank is unknown and no operator decides.
int channel_axis(const Graph& g, const std::string& value);

class Observer {
 public:
  virtual ~Observer() = default;
  // Values this observer needs the executor to report.
  virtual std::vector<std::string> watched() const = 0;
  // One watched value of the current batch. `t` is valid only during the call.
  virtual void observe(const std::string& name, const Tensor& t) = 0;
  // After each executor run.
  virtual void end_batch() {}
  // True when the statistic does not depend on the order of the elements (min/max, histograms):
  // the executor may then hand over values in their storage order (Executor::run's any_order).
  virtual bool order_free() const { return false; }
  // Copies the accumulated statistic into `out` under the observer's key.
  virtual void store(CalibrationStats& out) const = 0;
  // Device observers (CUDA builds, engine/cuda/observers.cpp) take values the CUDA backend
  // holds on the GPU here, without a copy to the host; observe() still takes host values.
  virtual bool on_device() const { return false; }
  virtual void observe_device(const std::string& /*name*/, const DeviceTensorView& /*v*/) {}
};

class MinMaxObserver : public Observer {
 public:
  explicit MinMaxObserver(std::string value) : value_(std::move(value)) {}
  std::vector<std::string> watched() const override { return {value_}; }
  bool order_free() const override { return true; }
  void observe(const std::string& name, const Tensor& t) override;
  void store(CalibrationStats& out) const override { out.minmax[value_] = stat_; }
  const MinMaxStat& stat() const { return stat_; }

 private:
  std::string value_;
  MinMaxStat stat_;
};

// Histogram over [lo, lo + B·w). When a batch falls outside, the width grows by an integer factor
// k and the origin moves by whole new bins, so old bins merge exactly k-to-1 into new ones.
class HistogramObserver : public Observer {
 public:
  explicit HistogramObserver(std::string value, int bins = 2048);
  std::vector<std::string> watched() const override { return {value_}; }
  bool order_free() const override { return true; }
  void observe(const std::string& name, const Tensor& t) override;
  void store(CalibrationStats& out) const override { out.histograms[value_] = stat(); }
  HistogramStat stat() const;

 private:
  void cover(double mn, double mx);
  std::string value_;
  std::vector<uint64_t> bins_;
  double lo_ = 0, w_ = 0;  // w_ == 0: nothing seen yet
};

// Σx, Σ|x|, Σx² per channel along `axis` (kAutoAxis: by rank at the first batch).
class ChannelMomentsObserver : public Observer {
 public:
  explicit ChannelMomentsObserver(std::string value, int axis = kAutoAxis) : value_(std::move(value)), axis_(axis) {}
  std::vector<std::string> watched() const override { return {value_}; }
  void observe(const std::string& name, const Tensor& t) override;
  void store(CalibrationStats& out) const override { out.channels[value_] = stat_; }
  const ChannelStat& stat() const { return stat_; }

 private:
  std::string value_;
  int axis_;
  ChannelStat stat_;
};

// How a weight layer reads its input X as a matrix of rows × features:
//   MatMul X·W / Gemm A·B: rows = all leading dims of X flattened, features = K (last dim);
//   Gemm transA=1: A is [K, M], so rows are A's columns;
//   Conv: im2col rows, one per (n, output position), features (c, ky, kx) with c over the
//   group's Cin/g channels — the order of W reshaped to [Cout, Cin/g·kh·kw]. One row set per group.
struct LayerInput {
  enum class Kind { Rows, TransposedRows, Conv };
  Kind kind = Kind::Rows;
  std::string value;        // the layer's input X
  int64_t features = 0;     // per group; 0 = taken from X's last dim at the first batch
  int64_t groups = 1;
  // Conv geometry (spatial rank 1 or 2; 1-D convs use kernel[0] = 1)
  int64_t cin = 0;
  int64_t kernel[2] = {1, 1}, stride[2] = {1, 1}, dilation[2] = {1, 1}, pad_begin[2] = {0, 0}, pad_end[2] = {0, 0};
  std::string auto_pad = "NOTSET";

  // From a Conv, MatMul or Gemm node of `g` (weights must be constants for Conv).
  // Throws UnsupportedError for other operators or layouts.
  static LayerInput of(const Graph& g, const Node& node);
  // A key equal for layers that read the same X the same way (Q/K/V projections share a Gram).
  std::string signature() const;
  // Calls fn(group, rows, n) with row-major blocks of n ≤ block_rows rows × features
  // (0: about 64K values per block, so narrow layers such as depthwise convs get tall blocks).
  void for_each_block(const Tensor& x, const std::function<void(int64_t, const float*, int64_t)>& fn,
                      int64_t block_rows = 0) const;
  // Features per group once X's shape is known.
  int64_t features_for(const Tensor& x) const;
  // Conv: the extent of an input of shape `dims` (checked against the weight's channels; 1-D convs have H = 1), the
  // begin pads actually applied (auto_pad resolved) and the output size.
  struct ConvExtent {
    int64_t N = 0, H = 1, W = 1;
    int64_t pad_begin[2] = {0, 0};
    int64_t OH = 1, OW = 1;
  };
  ConvExtent conv_extent(const std::vector<int64_t>& dims) const;
};

// How a GramObserver accumulates.
struct GramOptions {
  // Conv layers with more output positions per sample than this use a deterministic pseudo-random
  // subset of about this many positions per sample (every row the same chance); the sums are then
  // scaled by read rows / kept rows, so XᵀX, Σx and rows estimate those over every position and
  // layers compare on one scale whatever their subsampling; 0 = every position.
  int64_t max_positions = 0;
  // Layers with fewer features are accumulated in double directly (exact to double rounding and
  // as fast at that size); wider ones take the fp32 GEMM path below.
  int64_t fast_min_features = 64;
  // fp32 path: rows per fp32 GEMM block before it is added into the double accumulator.
  int64_t flush_rows = 2048;
};

// H = XᵀX, accumulated in double.
//   Narrow layers (features < fast_min_features): each block widened to double and added with a
//   rank-k update of the lower triangle.
//   Wider layers: X is shifted by a fixed per-feature vector s (the first block's column means,
//   kept in float), and each block of at most flush_rows rows Xc = X − s goes through an fp32
//   GEMM (oneDNN sgemm, the executor's threads) over the lower block triangle only; the fp32
//   block product is added into double at once, so fp32 rounding covers one block of centred
//   values. H = Σ XcᵀXc + s·dᵀ + d·sᵀ + n·s·sᵀ with d = Σ Xc (double) is assembled in stat().
class GramObserver : public Observer {
 public:
  GramObserver(std::string key, LayerInput in, GramOptions opt = {})
      : key_(std::move(key)), in_(std::move(in)), opt_(opt) {}
  std::vector<std::string> watched() const override { return {in_.value}; }
  void observe(const std::string& name, const Tensor& t) override;
  // Hands the accumulator over (a one-group Gram becomes the statistic in place, without a second
  // F × F array): call it once, last; stat() copies and may be called any time before.
  void store(CalibrationStats& out) const override;
  GramStat stat() const;

 private:
  void observe_fast(const Tensor& t);
  void observe_depthwise(const Tensor& t);
  void add_block(int64_t gi, const float* xt, int64_t n);
  void finish(size_t gi, const double* h, double* out) const;
  void col_sum(size_t gi, double* out) const;
  std::string key_;
  LayerInput in_;
  GramOptions opt_;
  bool fast_ = false;
  // Rows accumulated, and rows the layer read (more when positions were subsampled).
  int64_t features_ = 0, rows_ = 0, seen_rows_ = 0, samples_ = 0;
  // Subsampled sums scaled to estimates of the sums over every row (ratio estimator).
  double subsample_scale() const {
    return rows_ > 0 && seen_rows_ != rows_ ? static_cast<double>(seen_rows_) / static_cast<double>(rows_) : 1.0;
  }
  // Per group, F × F column-major, lower triangle valid (fast: of the centred rows); mutable:
  // store() moves it out.
  mutable std::vector<std::vector<double>> h_;
  std::vector<Eigen::VectorXd> sum_;   // per group (fast: Σ of the centred rows)
  std::vector<std::vector<float>> shift_;  // fast path: per group, empty until the first block
};

// Σ X[:, j]² per input column (the Gram's diagonal) in O(features).
class ColumnSquaresObserver : public Observer {
 public:
  ColumnSquaresObserver(std::string key, LayerInput in) : key_(std::move(key)), in_(std::move(in)) {}
  std::vector<std::string> watched() const override { return {in_.value}; }
  void observe(const std::string& name, const Tensor& t) override;
  void store(CalibrationStats& out) const override { out.columns[key_] = stat_; }
  const ColumnStat& stat() const { return stat_; }

 private:
  std::string key_;
  LayerInput in_;
  ColumnStat stat_;
};

// Per token (every position except the channel axis: (n,h,w) of [N,C,H,W], (b,t) of [B,T,C]):
// cos = ⟨x_in, x_out⟩ / (‖x_in‖·‖x_out‖) along the channel axis; accumulates arccos(cos)/π and
// −cos. Two zero vectors count as cos = 1, one zero vector as cos = 0. The first of the two
// values seen in a batch is copied until the second arrives.
class BlockAngleObserver : public Observer {
 public:
  BlockAngleObserver(std::string block, std::string input, std::string output, int axis = kAutoAxis)
      : block_(std::move(block)), in_(std::move(input)), out_(std::move(output)), axis_(axis) {}
  std::vector<std::string> watched() const override { return {in_, out_}; }
  void observe(const std::string& name, const Tensor& t) override;
  void end_batch() override { pending_.reset(); }
  void store(CalibrationStats& out) const override { out.blocks[block_] = stat_; }
  const BlockAngleStat& stat() const { return stat_; }

 private:
  void accumulate(const Tensor& a, const Tensor& b);
  std::string block_, in_, out_;
  int axis_;
  std::unique_ptr<Tensor> pending_;
  bool pending_is_input_ = false;
  BlockAngleStat stat_;
};

}  // namespace oc
