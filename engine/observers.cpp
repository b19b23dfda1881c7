// Streaming observers.
//
//   MinMax:          min/max over finite x
//   Histogram:       bins[floor((x − lo)/w)] += 1, range grown by exact k-to-1 re-binning
//   ChannelMoments:  Σx, Σ|x|, Σx² per channel
//   Gram:            H_g += X_gᵀ·X_g  (X_g: im2col / flattened rows of group g), Σ rows
//   ColumnSquares:   s_j += Σ_r X[r, j]²
//   BlockAngle:      Σ_tokens arccos(cos(x_in, x_out))/π,  Σ −cos
#include "engine/observers.h"

#include <dnnl.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include <Eigen/Dense>
#include <algorithm>
#include <cmath>
#include <set>

#include "engine/kernels/vecmath.h"
#include "graph/conv_geometry.h"
#include "graph/errors.h"

namespace oc {

namespace {

// Float view of an activation; other dtypes are converted into `scratch`.
const float* as_float(const Tensor& t, std::vector<float>& scratch) {
  if (t.dtype == DType::Float) return t.numel() ? t.data<float>() : nullptr;
  scratch = t.to_float();
  return scratch.data();
}

int64_t prod(const std::vector<int64_t>& d, size_t from, size_t to) {
  int64_t n = 1;
  for (size_t i = from; i < to && i < d.size(); ++i) n *= d[i];
  return n;
}

// Operators whose data tensors are channel-first (axis 1), producer or consumer side.
const std::set<std::string> kChannelFirstOps = {
    "Conv", "ConvTranspose", "BatchNormalization", "InstanceNormalization", "MaxPool", "AveragePool",
    "GlobalAveragePool", "GlobalMaxPool", "LpPool", "GlobalLpPool", "LRN", "DepthToSpace", "SpaceToDepth",
    "ConvInteger", "QLinearConv"};

}  // namespace

int resolve_axis(int axis, size_t rank) {
  if (axis == kAutoAxis) return rank >= 4 ? 1 : static_cast<int>(rank) - 1;
  const int r = static_cast<int>(rank);
  const int a = axis < 0 ? axis + r : axis;
  if (a < 0 || a >= r)
    throw InvalidArgument("channel axis " + std::to_string(axis) + " is out of range for rank " + std::to_string(rank));
  return a;
}

int channel_axis(const Graph& g, const std::string& value) {
  const int p = g.producer(value);
  if (p >= 0 && kChannelFirstOps.count(g.nodes[static_cast<size_t>(p)].op_type)) return 1;
  for (int c : g.consumers(value)) {
    const Node& n = g.nodes[static_cast<size_t>(c)];
    if (kChannelFirstOps.count(n.op_type) && n.input(0) == value) return 1;
  }
  const ValueInfo* vi = g.find_value_info(value);
  if (vi && vi->has_shape && !vi->shape.empty()) return resolve_axis(kAutoAxis, vi->shape.size());
  return -1;
}

// ---------------------------------------------------------------- MinMax

void MinMaxObserver::observe(const std::string&, const Tensor& t) {
  std::vector<float> scratch;
  const float* x = as_float(t, scratch);
  const int64_t n = t.numel();
  if (n == 0) return;
  // One vector pass: NaNs never enter mn/mx; they are counted.
  float mn, mx;
  int64_t nans;
  kern::min_max_array(x, n, &mn, &mx, &nans);
  if (std::isfinite(mn) && std::isfinite(mx)) {
    if (stat_.count == 0) stat_.min = mn, stat_.max = mx;
    stat_.min = std::min(stat_.min, mn);
    stat_.max = std::max(stat_.max, mx);
    stat_.count += n - nans;
    return;
  }
  // Some ±inf (or nothing finite): the finite values only.
  for (int64_t i = 0; i < n; ++i) {
    const float v = x[i];
    if (!std::isfinite(v)) continue;
    if (stat_.count == 0) stat_.min = stat_.max = v;
    stat_.min = std::min(stat_.min, v);
    stat_.max = std::max(stat_.max, v);
    ++stat_.count;
  }
}

// ---------------------------------------------------------------- Histogram

HistogramObserver::HistogramObserver(std::string value, int bins) : value_(std::move(value)) {
  if (bins < 2) throw InvalidArgument("a histogram needs at least 2 bins");
  bins_.assign(static_cast<size_t>(bins), 0);
}

void HistogramObserver::cover(double mn, double mx) {
  const double B = static_cast<double>(bins_.size());
  if (w_ == 0) {
    // First data: span exactly [mn, mx] (a constant gets a tiny non-zero width).
    lo_ = mn;
    w_ = (mx > mn ? mx - mn : std::max(std::fabs(mn), 1.0) * 1e-6) / B;
    // Keep mx inside the last bin rather than on its open upper edge.
    w_ *= 1.0 + 1e-9;
    return;
  }
  mn = std::min(mn, lo_);
  mx = std::max(mx, lo_ + B * w_);
  if (mn >= lo_ && mx <= lo_ + B * w_) return;
  // Smallest integer factor k with a whole-bin shift j that covers [mn, mx].
  int64_t k = std::max<int64_t>(1, static_cast<int64_t>((mx - mn) / (B * w_)));
  int64_t j = 0;
  for (;; ++k) {
    const double W = static_cast<double>(k) * w_;
    j = std::max<int64_t>(0, static_cast<int64_t>(std::ceil((lo_ - mn) / W)));
    if (j <= static_cast<int64_t>(B) && (B - static_cast<double>(j)) * W >= mx - lo_) break;
  }
  std::vector<uint64_t> merged(bins_.size(), 0);
  for (size_t i = 0; i < bins_.size(); ++i) {
    const size_t ni = static_cast<size_t>(j) + i / static_cast<size_t>(k);
    merged[std::min(ni, bins_.size() - 1)] += bins_[i];
  }
  bins_.swap(merged);
  lo_ -= static_cast<double>(j * k) * w_;
  w_ *= static_cast<double>(k);
}

void HistogramObserver::observe(const std::string&, const Tensor& t) {
  std::vector<float> scratch;
  const float* x = as_float(t, scratch);
  const int64_t n = t.numel();
  double mn = INFINITY, mx = -INFINITY;
  for (int64_t i = 0; i < n; ++i)
    if (std::isfinite(x[i])) { mn = std::min(mn, double(x[i])); mx = std::max(mx, double(x[i])); }
  if (mn > mx) return;  // nothing finite
  cover(mn, mx);
  const int64_t last = static_cast<int64_t>(bins_.size()) - 1;
  const double inv = 1.0 / w_;
  for (int64_t i = 0; i < n; ++i) {
    if (!std::isfinite(x[i])) continue;
    const int64_t b = std::clamp(static_cast<int64_t>((double(x[i]) - lo_) * inv), int64_t{0}, last);
    ++bins_[static_cast<size_t>(b)];
  }
}

HistogramStat HistogramObserver::stat() const {
  HistogramStat s;
  if (w_ == 0) return s;
  s.lo = static_cast<float>(lo_);
  s.hi = static_cast<float>(lo_ + w_ * static_cast<double>(bins_.size()));
  s.bins = bins_;
  return s;
}

// ---------------------------------------------------------------- ChannelMoments

void ChannelMomentsObserver::observe(const std::string&, const Tensor& t) {
  if (t.dims.empty()) throw InvalidArgument("channel moments of scalar '" + value_ + "'");
  const int a = resolve_axis(axis_, t.dims.size());
  const int64_t C = t.dims[static_cast<size_t>(a)];
  if (stat_.sum.empty()) {
    stat_.axis = a;
    stat_.sum.assign(static_cast<size_t>(C), 0.0);
    stat_.sum_abs.assign(static_cast<size_t>(C), 0.0);
    stat_.sum_sq.assign(static_cast<size_t>(C), 0.0);
  } else if (static_cast<int64_t>(stat_.sum.size()) != C || stat_.axis != a) {
    throw InvalidArgument("'" + value_ + "' has " + std::to_string(C) + " channels on axis " + std::to_string(a) +
                          " but earlier batches had " + std::to_string(stat_.sum.size()));
  }
  std::vector<float> scratch;
  const float* x = as_float(t, scratch);
  const int64_t outer = prod(t.dims, 0, static_cast<size_t>(a)), inner = prod(t.dims, static_cast<size_t>(a) + 1, t.dims.size());
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t c = 0; c < C; ++c) {
      const float* p = x + (o * C + c) * inner;
      double s = 0, sa = 0, sq = 0;
      for (int64_t i = 0; i < inner; ++i) {
        const double v = p[i];
        s += v; sa += std::fabs(v); sq += v * v;
      }
      stat_.sum[static_cast<size_t>(c)] += s;
      stat_.sum_abs[static_cast<size_t>(c)] += sa;
      stat_.sum_sq[static_cast<size_t>(c)] += sq;
    }
  stat_.count += outer * inner;
}

// ---------------------------------------------------------------- LayerInput

LayerInput LayerInput::of(const Graph& g, const Node& node) {
  LayerInput in;
  in.value = node.input(0);
  auto weight_dims = [&](size_t idx) -> std::vector<int64_t> {
    if (const Tensor* w = g.initializer(node.input(idx))) return w->dims;
    if (auto w = g.constant_value(node.input(idx))) return w->dims;
    return {};
  };
  if (node.op_type == "Conv") {
    const auto w = weight_dims(1);
    if (w.size() < 3) throw UnsupportedError("Conv '" + node.name + "': Gram needs a constant weight");
    const size_t sr = w.size() - 2;
    if (sr > 2) throw UnsupportedError("Conv '" + node.name + "': only 1-D and 2-D convolutions have a Gram");
    in.kind = Kind::Conv;
    in.groups = node.attr_int("group", 1);
    in.cin = w[1] * in.groups;
    const size_t off = 2 - sr;  // 1-D: the kernel's height slot stays 1
    const auto strides = node.attr_ints("strides", std::vector<int64_t>(sr, 1));
    const auto dil = node.attr_ints("dilations", std::vector<int64_t>(sr, 1));
    const auto pads = node.attr_ints("pads", std::vector<int64_t>(2 * sr, 0));
    for (size_t i = 0; i < sr; ++i) {
      in.kernel[off + i] = w[2 + i];
      in.stride[off + i] = strides.at(i);
      in.dilation[off + i] = dil.at(i);
      in.pad_begin[off + i] = pads.at(i);
      in.pad_end[off + i] = pads.at(sr + i);
    }
    in.auto_pad = node.attr_string("auto_pad", "NOTSET");
    in.features = w[1] * in.kernel[0] * in.kernel[1];
  } else if (node.op_type == "MatMul") {
    const auto w = weight_dims(1);
    if (w.empty() && !weight_dims(0).empty())
      throw UnsupportedError("MatMul '" + node.name + "' has its weight as the first input; Gram needs X·W");
    in.features = w.size() >= 2 ? w[w.size() - 2] : (w.size() == 1 ? w[0] : 0);
  } else if (node.op_type == "Gemm") {
    const bool ta = node.attr_int("transA", 0) != 0, tb = node.attr_int("transB", 0) != 0;
    const auto w = weight_dims(1);
    in.kind = ta ? Kind::TransposedRows : Kind::Rows;
    if (w.size() == 2) in.features = tb ? w[1] : w[0];
  } else {
    throw UnsupportedError("node '" + node.name + "' (" + node.op_type + ") is not a Conv, MatMul or Gemm layer");
  }
  return in;
}

std::string LayerInput::signature() const {
  std::string s = value + "|" + std::to_string(static_cast<int>(kind)) + "|" + std::to_string(features) + "|" +
                  std::to_string(groups);
  if (kind == Kind::Conv) {
    for (int i = 0; i < 2; ++i)
      s += "|" + std::to_string(kernel[i]) + "," + std::to_string(stride[i]) + "," + std::to_string(dilation[i]) + "," +
           std::to_string(pad_begin[i]) + "," + std::to_string(pad_end[i]);
    s += "|" + auto_pad;
  }
  return s;
}

int64_t LayerInput::features_for(const Tensor& x) const {
  if (features > 0) return features;
  if (x.dims.empty()) throw InvalidArgument("layer input '" + value + "' is a scalar");
  return kind == Kind::TransposedRows ? x.dims.front() : x.dims.back();
}

LayerInput::ConvExtent LayerInput::conv_extent(const std::vector<int64_t>& dims) const {
  const size_t rank = dims.size();
  const bool one_d = kernel[0] == 1 && rank == 3;
  if (!(rank == 4 || one_d) || dims[1] != cin)
    throw InvalidArgument("Conv input '" + value + "' has shape " + shape_str(dims) + " but the weight reads " +
                          std::to_string(cin) + " channels");
  ConvExtent e;
  e.N = dims[0];
  e.H = one_d ? 1 : dims[2];
  e.W = dims[rank - 1];
  const int64_t in[2] = {e.H, e.W};
  int64_t out[2];
  const AutoPad ap = parse_auto_pad(auto_pad).value_or(AutoPad::NotSet);
  for (int d = 0; d < 2; ++d) {
    const WindowAxisGeometry g =
        window_axis({in[d], kernel[d], stride[d], dilation[d], pad_begin[d], pad_end[d]}, ap, false, false);
    e.pad_begin[d] = g.pad_begin;
    out[d] = g.out;
  }
  e.OH = out[0];
  e.OW = out[1];
  return e;
}

void LayerInput::for_each_block(const Tensor& x, const std::function<void(int64_t, const float*, int64_t)>& fn,
                                int64_t block_rows) const {
  std::vector<float> scratch;
  const float* data = as_float(x, scratch);
  const int64_t F = features_for(x);
  if (block_rows <= 0) block_rows = std::clamp<int64_t>(65536 / std::max<int64_t>(F, 1), 256, 8192);
  if (kind == Kind::Rows) {
    if (x.dims.empty() || x.dims.back() != F)
      throw InvalidArgument("layer input '" + value + "' has shape " + shape_str(x.dims) + " but the layer reads " +
                            std::to_string(F) + " features on its last axis");
    const int64_t rows = x.numel() / F;
    for (int64_t r = 0; r < rows; r += block_rows) fn(0, data + r * F, std::min(block_rows, rows - r));
    return;
  }
  std::vector<float> block;
  if (kind == Kind::TransposedRows) {
    if (x.dims.size() != 2 || x.dims[0] != F)
      throw InvalidArgument("Gemm input '" + value + "' (transA) has shape " + shape_str(x.dims) + ", expected [" +
                            std::to_string(F) + ",M]");
    const int64_t M = x.dims[1];
    for (int64_t r0 = 0; r0 < M; r0 += block_rows) {
      const int64_t n = std::min(block_rows, M - r0);
      block.resize(static_cast<size_t>(n * F));
      for (int64_t r = 0; r < n; ++r)
        for (int64_t k = 0; k < F; ++k) block[static_cast<size_t>(r * F + k)] = data[k * M + r0 + r];
      fn(0, block.data(), n);
    }
    return;
  }
  // Conv: im2col, one group at a time.
  const ConvExtent e = conv_extent(x.dims);
  const int64_t H = e.H, W = e.W, OH = e.OH, OW = e.OW, cg = cin / groups, rows = e.N * OH * OW;
  const int64_t* pb = e.pad_begin;
  for (int64_t gi = 0; gi < groups; ++gi)
    for (int64_t r0 = 0; r0 < rows; r0 += block_rows) {
      const int64_t n = std::min(block_rows, rows - r0);
      block.assign(static_cast<size_t>(n * F), 0.f);
      for (int64_t r = 0; r < n; ++r) {
        const int64_t row = r0 + r, b = row / (OH * OW), oy = (row / OW) % OH, ox = row % OW;
        float* dst = block.data() + r * F;
        for (int64_t c = 0; c < cg; ++c) {
          const float* plane = data + ((b * cin) + gi * cg + c) * H * W;
          for (int64_t ky = 0; ky < kernel[0]; ++ky) {
            const int64_t iy = oy * stride[0] - pb[0] + ky * dilation[0];
            for (int64_t kx = 0; kx < kernel[1]; ++kx) {
              const int64_t ix = ox * stride[1] - pb[1] + kx * dilation[1];
              if (iy >= 0 && iy < H && ix >= 0 && ix < W) dst[(c * kernel[0] + ky) * kernel[1] + kx] = plane[iy * W + ix];
            }
          }
        }
      }
      fn(gi, block.data(), n);
    }
}

// ---------------------------------------------------------------- Gram

using RowBlock = Eigen::Map<const Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>>;

namespace {

uint64_t splitmix64(uint64_t z) {
  z += 0x9e3779b97f4a7c15ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

// Work below this many values (rows × features) runs on the calling thread.
constexpr int64_t kGramParallelGrain = 1 << 15;

int gram_threads(int64_t work) {
#ifdef _OPENMP
  return work < kGramParallelGrain ? 1 : omp_get_max_threads();
#else
  (void)work;
  return 1;
#endif
}

// Columns of the lower block triangle per fp32 GEMM: H[j0:F, j0:j0+T] += Xc[:, j0:F]ᵀ·Xc[:, j0:j0+T].
constexpr int64_t kGramTile = 256;

}  // namespace

void GramObserver::observe(const std::string&, const Tensor& t) {
  const int64_t F = in_.features_for(t);
  if (h_.empty()) {
    features_ = F;
    fast_ = F >= opt_.fast_min_features;
    // Each group's zeros written once in place (assign(n, prototype) would copy a zeroed
    // prototype: the pages of an F × F array faulted in twice).
    h_.resize(static_cast<size_t>(in_.groups));
    for (auto& h : h_) h.assign(static_cast<size_t>(F * F), 0.0);
    sum_.assign(static_cast<size_t>(in_.groups), Eigen::VectorXd::Zero(F));
    shift_.assign(static_cast<size_t>(in_.groups), {});
  } else if (F != features_) {
    throw InvalidArgument("layer input '" + in_.value + "' changed from " + std::to_string(features_) + " to " +
                          std::to_string(F) + " features between batches");
  }
  const bool subsample = in_.kind == LayerInput::Kind::Conv && opt_.max_positions > 0;
  if (fast_ || subsample) {
    observe_fast(t);
    return;
  }
  if (in_.kind == LayerInput::Kind::Conv && in_.groups > 1 && in_.cin == in_.groups) {
    observe_depthwise(t);
    return;
  }
  int64_t rows = 0;
  // One widening buffer per thread, reused across blocks and layers (blocks are ~64K values).
  thread_local Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor> buf;
  in_.for_each_block(t, [&](int64_t gi, const float* p, int64_t n) {
    if (buf.rows() < n || buf.cols() != F) buf.resize(std::max<Eigen::Index>(n, buf.cols() == F ? buf.rows() : 0), F);
    auto xb = buf.topRows(n);
    xb = RowBlock(p, n, F).cast<double>();
    Eigen::Map<Eigen::MatrixXd>(h_[static_cast<size_t>(gi)].data(), F, F).selfadjointView<Eigen::Lower>().rankUpdate(xb.transpose());
    sum_[static_cast<size_t>(gi)] += xb.colwise().sum().transpose();
    if (gi == 0) rows += n;
  });
  rows_ += rows;
  seen_rows_ += rows;
}

// Depthwise Conv (one input channel per group, F = kh·kw taps): per channel and output row, the
// F tap rows (zero outside the input) in double, then the F(F+1)/2 dot products along the row and
// the F row sums into that channel's accumulator. The same sums as the generic path (im2col blocks
// and a double rank update per group), without its per-group block copies and tiny GEMMs: that
// path was 60% of mobilenet_v2's calibration pass in perf.
void GramObserver::observe_depthwise(const Tensor& t) {
  const LayerInput::ConvExtent e = in_.conv_extent(t.dims);
  std::vector<float> scratch;
  const float* data = as_float(t, scratch);
  const int64_t N = e.N, H = e.H, W = e.W, OH = e.OH, OW = e.OW, kh = in_.kernel[0], kw = in_.kernel[1], F = features_;
  const int64_t* pb = e.pad_begin;
  const int64_t C = in_.cin;
  const int nt = gram_threads(N * OH * OW * F * C);
#pragma omp parallel for num_threads(nt) schedule(dynamic, 1)
  for (int64_t c = 0; c < C; ++c) {
    std::vector<double> taps(static_cast<size_t>(F * OW));
    double* h = h_[static_cast<size_t>(c)].data();
    Eigen::VectorXd& sum = sum_[static_cast<size_t>(c)];
    for (int64_t b = 0; b < N; ++b) {
      const float* plane = data + (b * C + c) * H * W;
      for (int64_t oy = 0; oy < OH; ++oy) {
        for (int64_t ky = 0; ky < kh; ++ky) {
          const int64_t iy = oy * in_.stride[0] - pb[0] + ky * in_.dilation[0];
          for (int64_t kx = 0; kx < kw; ++kx) {
            double* row = taps.data() + (ky * kw + kx) * OW;
            if (iy < 0 || iy >= H) {
              std::fill(row, row + OW, 0.0);
              continue;
            }
            const float* src = plane + iy * W;
            for (int64_t ox = 0; ox < OW; ++ox) {
              const int64_t ix = ox * in_.stride[1] - pb[1] + kx * in_.dilation[1];
              row[ox] = ix >= 0 && ix < W ? static_cast<double>(src[ix]) : 0.0;
            }
          }
        }
        kern::gram_rows_add(taps.data(), F, OW, h, sum.data());
      }
    }
  }
  rows_ += N * OH * OW;
  seen_rows_ += N * OH * OW;
}

// Gathers X (im2col for Conv, optionally a subset of positions) feature-major, block by block:
// xt[f·n + r] = X[r, f] − s[f], then add_block.
void GramObserver::observe_fast(const Tensor& t) {
  std::vector<float> scratch;
  const float* data = as_float(t, scratch);
  const int64_t F = features_;
  const int64_t R = std::clamp<int64_t>(std::min<int64_t>(opt_.flush_rows, (int64_t{8} << 20) / F), 64, 1 << 16);
  thread_local std::vector<float> xt;
  if (static_cast<int64_t>(xt.size()) < R * F) xt.resize(static_cast<size_t>(R * F));

  // Row table: Conv rows are (sample, output position); others are rows of the matrix view.
  int64_t total_rows = 0;
  std::vector<int64_t> row_base, row_iy, row_ix;  // Conv: sample offset, first input row/col
  int64_t H = 1, W = 1, pb[2] = {0, 0}, cg = 0;
  if (in_.kind == LayerInput::Kind::Conv) {
    const LayerInput::ConvExtent e = in_.conv_extent(t.dims);
    const int64_t N = e.N;
    H = e.H;
    W = e.W;
    pb[0] = e.pad_begin[0];
    pb[1] = e.pad_begin[1];
    const int64_t OH = e.OH, OW = e.OW, P = OH * OW;
    cg = in_.cin / in_.groups;
    const bool sub = opt_.max_positions > 0 && P > opt_.max_positions;
    // Keep a position with probability max_positions / P, decided by a hash of (sample, position).
    const uint64_t keep_below =
        sub ? static_cast<uint64_t>(static_cast<double>(opt_.max_positions) / static_cast<double>(P) * 18446744073709551615.0)
            : 0;
    row_base.reserve(static_cast<size_t>(sub ? N * opt_.max_positions * 5 / 4 + 16 : N * P));
    for (int64_t b = 0; b < N; ++b)
      for (int64_t p = 0; p < P; ++p) {
        if (sub && splitmix64(static_cast<uint64_t>((samples_ + b) * P + p)) >= keep_below) continue;
        row_base.push_back(b * in_.cin * H * W);
        row_iy.push_back((p / OW) * in_.stride[0] - pb[0]);
        row_ix.push_back((p % OW) * in_.stride[1] - pb[1]);
      }
    total_rows = static_cast<int64_t>(row_base.size());
    samples_ += N;
    seen_rows_ += N * P;
  } else if (in_.kind == LayerInput::Kind::Rows) {
    if (t.dims.empty() || t.dims.back() != F)
      throw InvalidArgument("layer input '" + in_.value + "' has shape " + shape_str(t.dims) + " but the layer reads " +
                            std::to_string(F) + " features on its last axis");
    total_rows = t.numel() / F;
    seen_rows_ += total_rows;
  } else {
    if (t.dims.size() != 2 || t.dims[0] != F)
      throw InvalidArgument("Gemm input '" + in_.value + "' (transA) has shape " + shape_str(t.dims) + ", expected [" +
                            std::to_string(F) + ",M]");
    total_rows = t.dims[1];
    seen_rows_ += total_rows;
  }

  for (int64_t gi = 0; gi < in_.groups; ++gi)
    for (int64_t r0 = 0; r0 < total_rows; r0 += R) {
      const int64_t n = std::min(R, total_rows - r0);
      float* dst = xt.data();
      const int nt = gram_threads(n * F);
      if (in_.kind == LayerInput::Kind::Conv) {
        const int64_t kh = in_.kernel[0], kw = in_.kernel[1], per = kh * kw;
        const int64_t* base = row_base.data() + r0;
        const int64_t* iy0 = row_iy.data() + r0;
        const int64_t* ix0 = row_ix.data() + r0;
#pragma omp parallel for num_threads(nt) schedule(dynamic, 1)
        for (int64_t f = 0; f < F; ++f) {
          const int64_t c = f / per, ky = (f / kw) % kh, kx = f % kw;
          const int64_t dy = ky * in_.dilation[0], dx = kx * in_.dilation[1];
          const float* plane = data + (gi * cg + c) * H * W;
          float* out = dst + f * n;
          for (int64_t r = 0; r < n; ++r) {
            const int64_t iy = iy0[r] + dy, ix = ix0[r] + dx;
            out[r] = (static_cast<uint64_t>(iy) < static_cast<uint64_t>(H) && static_cast<uint64_t>(ix) < static_cast<uint64_t>(W))
                         ? plane[base[r] + iy * W + ix]
                         : 0.f;
          }
        }
      } else if (in_.kind == LayerInput::Kind::Rows) {
        const float* src = data + r0 * F;
        // Transpose in tiles of 64 rows so both sides stay in cache.
#pragma omp parallel for num_threads(nt) schedule(dynamic, 1)
        for (int64_t rb = 0; rb < n; rb += 64) {
          const int64_t re = std::min(n, rb + 64);
          for (int64_t f = 0; f < F; ++f)
            for (int64_t r = rb; r < re; ++r) dst[f * n + r] = src[r * F + f];
        }
      } else {
        const int64_t M = t.dims[1];
#pragma omp parallel for num_threads(nt) schedule(dynamic, 1)
        for (int64_t f = 0; f < F; ++f) std::copy(data + f * M + r0, data + f * M + r0 + n, dst + f * n);
      }
      add_block(gi, dst, n);
      if (gi == 0) rows_ += n;
    }
}

// Centres the feature-major block xt (F × n) by the group's shift (set from this block's means on
// the first call), adds its column sums in double and XcᵀXc into the lower triangle of h_[gi].
void GramObserver::add_block(int64_t gi, const float* xt_in, int64_t n) {
  const int64_t F = features_;
  float* xt = const_cast<float*>(xt_in);  // our own scratch (observe_fast)
  auto& s = shift_[static_cast<size_t>(gi)];
  const int nt = gram_threads(n * F);
  if (s.empty()) {
    s.resize(static_cast<size_t>(F));
    for (int64_t f = 0; f < F; ++f) {
      double acc = 0;
      for (int64_t r = 0; r < n; ++r) acc += xt[f * n + r];
      s[static_cast<size_t>(f)] = static_cast<float>(acc / static_cast<double>(n));
    }
  }
  Eigen::VectorXd& d = sum_[static_cast<size_t>(gi)];
#pragma omp parallel for num_threads(nt) schedule(dynamic, 8)
  for (int64_t f = 0; f < F; ++f) {
    const float sf = s[static_cast<size_t>(f)];
    float* row = xt + f * n;
    double acc = 0;
    for (int64_t r = 0; r < n; ++r) {
      row[r] -= sf;
      acc += row[r];
    }
    d[f] += acc;
  }
  Eigen::Map<Eigen::MatrixXd> h(h_[static_cast<size_t>(gi)].data(), F, F);
  if (!fast_) {
    // Narrow layer (reached here only when subsampling): widen and add in double.
    Eigen::MatrixXd xd = RowBlock(xt, F, n).cast<double>();
    h.selfadjointView<Eigen::Lower>().rankUpdate(xd);
    return;
  }
  // The calling thread's scratch; taken as a plain pointer (thread_local names inside the
  // parallel loop below would be each worker's own).
  thread_local std::vector<float> c_buf;
  const int64_t T = std::min(kGramTile, F);
  if (static_cast<int64_t>(c_buf.size()) < T * F) c_buf.resize(static_cast<size_t>(T * F));
  float* c = c_buf.data();
  for (int64_t j0 = 0; j0 < F; j0 += T) {
    const int64_t tw = std::min(T, F - j0), m = F - j0;
    // C (tw × m, row-major) = Xc[j0:j0+tw] · Xc[j0:F]ᵀ: row k is column j0+k of H from row j0 down.
    const dnnl_status_t st = dnnl_sgemm('N', 'T', tw, m, n, 1.f, xt + j0 * n, n, xt + j0 * n, n, 0.f, c, m);
    if (st != dnnl_success) throw UnsupportedError("Gram of '" + in_.value + "': oneDNN sgemm failed");
    const int ft = gram_threads(tw * m);
#pragma omp parallel for num_threads(ft) schedule(dynamic, 8)
    for (int64_t k = 0; k < tw; ++k) {
      double* col = h.data() + (j0 + k) * F + j0;
      const float* src = c + k * m;
      for (int64_t i = k; i < m; ++i) col[i] += src[i];
    }
  }
}

// Group gi's accumulator (column-major, lower triangle valid) made into the full symmetric XᵀX
// in `out` (F × F; may be the accumulator itself), with the shift terms of the fp32 path added:
// XᵀX = XcᵀXc + s·dᵀ + d·sᵀ + n·s·sᵀ. Symmetric, so column-major is row-major. In tiles, so
// the transposed writes stay in cache.
void GramObserver::finish(size_t gi, const double* h, double* out) const {
  const int64_t F = features_;
  const float* sh = shift_[gi].empty() ? nullptr : shift_[gi].data();
  const double* d = sum_[gi].data();
  const double n = static_cast<double>(rows_), scale = subsample_scale();
  constexpr int64_t B = 64;
  const int nt = gram_threads(F * F);
#pragma omp parallel for num_threads(nt) schedule(dynamic, 1)
  for (int64_t J = 0; J < F; J += B) {
    const int64_t je = std::min(F, J + B);
    for (int64_t I = J; I < F; I += B) {
      const int64_t ie = std::min(F, I + B);
      for (int64_t j = J; j < je; ++j) {
        const double sj = sh ? sh[j] : 0.0, dj = d[j];
        for (int64_t i = std::max(I, j); i < ie; ++i) {
          double v = h[j * F + i];  // (i, j), i ≥ j
          if (sh) v += sh[i] * dj + d[i] * sj + n * sh[i] * sj;
          v *= scale;
          out[j * F + i] = v;
          out[i * F + j] = v;
        }
      }
    }
  }
}

GramStat GramObserver::stat() const {
  GramStat s;
  s.features = features_;
  s.groups = in_.groups;
  s.rows = seen_rows_;
  s.sampled_rows = rows_;
  const size_t F = static_cast<size_t>(features_);
  s.xtx.resize(h_.size() * F * F);
  s.col_sum.resize(h_.size() * F);
  for (size_t gi = 0; gi < h_.size(); ++gi) {
    finish(gi, h_[gi].data(), s.xtx.data() + gi * F * F);
    col_sum(gi, s.col_sum.data() + gi * F);
  }
  return s;
}

// Σx = d + n·s (d: the sums of the rows as accumulated, s: the fp32 path's shift).
void GramObserver::col_sum(size_t gi, double* out) const {
  Eigen::Map<Eigen::VectorXd> sum(out, features_);
  sum = sum_[gi];
  if (!shift_[gi].empty())
    sum += static_cast<double>(rows_) * Eigen::Map<const Eigen::VectorXf>(shift_[gi].data(), features_).cast<double>();
  sum *= subsample_scale();
}

void GramObserver::store(CalibrationStats& out) const {
  if (h_.size() != 1) {
    out.grams[key_] = stat();
    return;
  }
  // One group: the accumulator becomes the statistic in place (no second F × F array, no copy).
  GramStat s;
  s.features = features_;
  s.groups = 1;
  s.rows = seen_rows_;
  s.sampled_rows = rows_;
  s.col_sum.resize(static_cast<size_t>(features_));
  col_sum(0, s.col_sum.data());
  finish(0, h_[0].data(), h_[0].data());
  s.xtx = std::move(h_[0]);
  h_.clear();
  out.grams[key_] = std::move(s);
}

// ---------------------------------------------------------------- ColumnSquares

void ColumnSquaresObserver::observe(const std::string&, const Tensor& t) {
  const int64_t F = in_.features_for(t);
  if (stat_.sum_sq.empty()) {
    stat_.features = F;
    stat_.groups = in_.groups;
    stat_.sum_sq.assign(static_cast<size_t>(F * in_.groups), 0.0);
  } else if (F != stat_.features) {
    throw InvalidArgument("layer input '" + in_.value + "' changed from " + std::to_string(stat_.features) + " to " +
                          std::to_string(F) + " features between batches");
  }
  in_.for_each_block(t, [&](int64_t gi, const float* p, int64_t n) {
    Eigen::Map<Eigen::VectorXd> acc(stat_.sum_sq.data() + gi * F, F);
    acc += RowBlock(p, n, F).cast<double>().colwise().squaredNorm().transpose();
    if (gi == 0) stat_.rows += n;
  });
}

// ---------------------------------------------------------------- BlockAngle

void BlockAngleObserver::observe(const std::string& name, const Tensor& t) {
  const bool is_in = name == in_;
  if (pending_ && pending_is_input_ != is_in) {
    if (is_in) accumulate(t, *pending_);
    else accumulate(*pending_, t);
    pending_.reset();
    return;
  }
  pending_ = std::make_unique<Tensor>(t);
  pending_is_input_ = is_in;
}

void BlockAngleObserver::accumulate(const Tensor& a, const Tensor& b) {
  if (a.dims != b.dims)
    throw InvalidArgument("block '" + block_ + "': input '" + in_ + "' " + shape_str(a.dims) + " and output '" + out_ +
                          "' " + shape_str(b.dims) + " differ in shape");
  if (a.dims.empty()) throw InvalidArgument("block '" + block_ + "': scalar values have no channel axis");
  const int ax = resolve_axis(axis_, a.dims.size());
  std::vector<float> sa, sb;
  const float* x = as_float(a, sa);
  const float* y = as_float(b, sb);
  const int64_t outer = prod(a.dims, 0, static_cast<size_t>(ax)), C = a.dims[static_cast<size_t>(ax)],
                inner = prod(a.dims, static_cast<size_t>(ax) + 1, a.dims.size());
  // Accumulate dot products and norms per token across channels (inner is the contiguous stride).
  std::vector<double> dot(static_cast<size_t>(inner)), nx(static_cast<size_t>(inner)), ny(static_cast<size_t>(inner));
  for (int64_t o = 0; o < outer; ++o) {
    std::fill(dot.begin(), dot.end(), 0.0);
    std::fill(nx.begin(), nx.end(), 0.0);
    std::fill(ny.begin(), ny.end(), 0.0);
    for (int64_t c = 0; c < C; ++c) {
      const float* px = x + (o * C + c) * inner;
      const float* py = y + (o * C + c) * inner;
      for (int64_t i = 0; i < inner; ++i) {
        const double u = px[i], v = py[i];
        dot[static_cast<size_t>(i)] += u * v;
        nx[static_cast<size_t>(i)] += u * u;
        ny[static_cast<size_t>(i)] += v * v;
      }
    }
    for (size_t i = 0; i < dot.size(); ++i) {
      double cos;
      if (nx[i] == 0 && ny[i] == 0) cos = 1;
      else if (nx[i] == 0 || ny[i] == 0) cos = 0;
      else cos = std::clamp(dot[i] / std::sqrt(nx[i] * ny[i]), -1.0, 1.0);
      stat_.sum_angle += std::acos(cos) / M_PI;
      stat_.sum_neg_cos -= cos;
    }
  }
  stat_.count += outer * inner;
}

}  // namespace oc
