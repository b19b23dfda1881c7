// Calibration: data sources (npy/npz/directory/random), streaming observers against direct
// computations, and calibrate() end to end.
#include <catch2/catch.hpp>
#include <algorithm>
#include <cmath>
#include <fstream>
#include <functional>
#include <random>
#include <set>
#include <tuple>

#include <malloc.h>
#include <zlib.h>

#include "engine/calib_data.h"
#include "engine/calibrate.h"
#include "engine/npy.h"
#include "engine/observers.h"
#include "engine/statistics.h"
#include "graph/errors.h"
#include "graph/normalize.h"
#include "graph/onnx_io.h"
#include "support.h"

using namespace oc;
using test::error_of;
using test::write_npz;
using fs_path = std::filesystem::path;

namespace {

Tensor rand_tensor(const std::string& name, std::vector<int64_t> dims, uint64_t seed, float lo = -1.f, float hi = 1.f) {
  return test::random_tensor(name, dims, seed, lo, hi);
}

// Concatenates tensors along axis 0.
Tensor concat0(const std::vector<Tensor>& parts) {
  Tensor out = parts.at(0);
  out.dims[0] = 0;
  out.bytes.clear();
  for (const auto& p : parts) {
    out.dims[0] += p.dims[0];
    out.bytes.insert(out.bytes.end(), p.bytes.begin(), p.bytes.end());
  }
  return out;
}

// Plain O(rows·F²) XᵀX of a row-major rows × F matrix.
std::vector<double> naive_xtx(const std::vector<float>& x, int64_t rows, int64_t F) {
  std::vector<double> h(static_cast<size_t>(F * F), 0.0);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t i = 0; i < F; ++i)
      for (int64_t j = 0; j < F; ++j)
        h[static_cast<size_t>(i * F + j)] += double(x[static_cast<size_t>(r * F + i)]) * x[static_cast<size_t>(r * F + j)];
  return h;
}

double max_abs_diff(const std::vector<double>& a, const std::vector<double>& b) {
  REQUIRE(a.size() == b.size());
  double d = 0;
  for (size_t i = 0; i < a.size(); ++i) d = std::max(d, std::fabs(a[i] - b[i]));
  return d;
}

Node conv_node(int64_t group, std::vector<int64_t> strides, std::vector<int64_t> pads, std::vector<int64_t> dil) {
  Node n = test::make_node("Conv", {"x", "w"}, {"y"}, "conv");
  n.set_attr_int("group", group);
  n.set_attr_ints("strides", strides);
  n.set_attr_ints("pads", pads);
  n.set_attr_ints("dilations", dil);
  return n;
}

// im2col built a different way from the observer: pad the image explicitly, then read windows.
std::vector<float> padded_im2col(const Tensor& x, int64_t c0, int64_t cg, int64_t kh, int64_t kw, int64_t s, int64_t d,
                                 int64_t pt, int64_t pl, int64_t pb, int64_t pr, int64_t& rows) {
  const int64_t N = x.dims[0], C = x.dims[1], H = x.dims[2], W = x.dims[3];
  const int64_t PH = H + pt + pb, PW = W + pl + pr;
  auto v = x.to_float();
  std::vector<float> P(static_cast<size_t>(N * C * PH * PW), 0.f);
  for (int64_t n = 0; n < N; ++n)
    for (int64_t c = 0; c < C; ++c)
      for (int64_t y = 0; y < H; ++y)
        for (int64_t xx = 0; xx < W; ++xx)
          P[static_cast<size_t>(((n * C + c) * PH + y + pt) * PW + xx + pl)] = v[static_cast<size_t>(((n * C + c) * H + y) * W + xx)];
  const int64_t OH = (PH - d * (kh - 1) - 1) / s + 1, OW = (PW - d * (kw - 1) - 1) / s + 1;
  std::vector<float> out;
  for (int64_t n = 0; n < N; ++n)
    for (int64_t oy = 0; oy < OH; ++oy)
      for (int64_t ox = 0; ox < OW; ++ox)
        for (int64_t c = c0; c < c0 + cg; ++c)
          for (int64_t i = 0; i < kh; ++i)
            for (int64_t j = 0; j < kw; ++j)
              out.push_back(P[static_cast<size_t>(((n * C + c) * PH + oy * s + i * d) * PW + ox * s + j * d)]);
  rows = N * OH * OW;
  return out;
}



// A model with the given runtime inputs (dims < 0 are symbolic "N") and no nodes.
Model inputs_model(const std::vector<std::tuple<std::string, DType, std::vector<int64_t>>>& ins) {
  Model m = test::new_model(13);
  for (const auto& [name, dt, dims] : ins) {
    ValueInfo v = test::tensor_value(name, {}, dt);
    v.has_shape = true;
    v.shape.clear();
    for (auto d : dims) v.shape.push_back(d < 0 ? Dim::sym("N") : Dim::of(d));
    m.graph.inputs.push_back(v);
  }
  return m;
}

// All batches of a source, concatenated per input along axis 0; also the batch sample counts.
std::map<std::string, Tensor> drain(CalibrationSource& src, std::vector<int64_t>& sizes) {
  std::map<std::string, std::vector<Tensor>> parts;
  std::map<std::string, Tensor> b;
  sizes.clear();
  while (src.next(b)) {
    sizes.push_back(src.last_batch_samples());
    for (auto& [k, t] : b) parts[k].push_back(t);
  }
  std::map<std::string, Tensor> out;
  for (auto& [k, v] : parts) out[k] = concat0(v);
  return out;
}

}  // namespace

TEST_CASE("MinMax and channel moments stream over batches like one pass", "[calib]") {
  std::vector<Tensor> parts = {rand_tensor("a", {2, 3, 4, 5}, 1), rand_tensor("a", {1, 3, 4, 5}, 2, -3.f, 0.5f),
                               rand_tensor("a", {3, 3, 4, 5}, 3, 0.f, 2.f)};
  const Tensor all = concat0(parts);
  MinMaxObserver mm("a"), mm1("a");
  ChannelMomentsObserver ch("a"), ch1("a");
  for (const auto& p : parts) { mm.observe("a", p); ch.observe("a", p); }
  mm1.observe("a", all);
  ch1.observe("a", all);
  auto v = all.to_float();
  CHECK(mm.stat().min == *std::min_element(v.begin(), v.end()));
  CHECK(mm.stat().max == *std::max_element(v.begin(), v.end()));
  CHECK(mm.stat().count == all.numel());
  CHECK(mm1.stat().min == mm.stat().min);
  // Direct per-channel sums on axis 1 of [N,C,H,W].
  const ChannelStat& s = ch.stat();
  REQUIRE(s.sum.size() == 3);
  CHECK(s.axis == 1);
  CHECK(s.count == 6 * 4 * 5);
  for (int64_t c = 0; c < 3; ++c) {
    double sum = 0, sa = 0, sq = 0;
    for (int64_t n = 0; n < 6; ++n)
      for (int64_t i = 0; i < 20; ++i) {
        const double x = v[static_cast<size_t>((n * 3 + c) * 20 + i)];
        sum += x; sa += std::fabs(x); sq += x * x;
      }
    CHECK(s.sum[static_cast<size_t>(c)] == Approx(sum).epsilon(1e-9));
    CHECK(s.sum_abs[static_cast<size_t>(c)] == Approx(sa).epsilon(1e-9));
    CHECK(s.l2(static_cast<size_t>(c)) == Approx(std::sqrt(sq)).epsilon(1e-9));
    CHECK(ch1.stat().sum_sq[static_cast<size_t>(c)] == Approx(s.sum_sq[static_cast<size_t>(c)]).epsilon(1e-12));
  }
  // Last-axis channels of a [B,T,C] activation.
  ChannelMomentsObserver last("t", -1);
  Tensor t = rand_tensor("t", {2, 3, 4}, 9);
  last.observe("t", t);
  auto tv = t.to_float();
  double c2 = 0;
  for (int64_t r = 0; r < 6; ++r) c2 += tv[static_cast<size_t>(r * 4 + 2)];
  CHECK(last.stat().axis == 2);
  CHECK(last.stat().mean(2) == Approx(c2 / 6).epsilon(1e-9));
}

TEST_CASE("Gram of MatMul input equals naive XtX and streams over 3 batches", "[calib]") {
  Graph g;
  g.add_initializer(rand_tensor("w", {7, 5}, 4));
  g.add_node(test::make_node("MatMul", {"x", "w"}, {"y"}, "mm"));
  LayerInput in = LayerInput::of(g, g.nodes[0]);
  CHECK(in.features == 7);
  std::vector<Tensor> parts = {rand_tensor("x", {2, 300, 7}, 5), rand_tensor("x", {1, 300, 7}, 6, 0.f, 3.f),
                               rand_tensor("x", {3, 300, 7}, 7)};
  const Tensor all = concat0(parts);
  GramObserver gs("mm", in), g1("mm", in);
  ColumnSquaresObserver cs("mm", in);
  for (const auto& p : parts) { gs.observe("x", p); cs.observe("x", p); }
  g1.observe("x", all);
  const GramStat a = gs.stat(), b = g1.stat();
  CHECK(a.rows == 1800);
  CHECK(a.features == 7);
  const auto naive = naive_xtx(all.to_float(), 1800, 7);
  CHECK(max_abs_diff(a.xtx, naive) < 1e-9 * 1800);
  CHECK(max_abs_diff(a.xtx, b.xtx) < 1e-9 * 1800);
  auto v = all.to_float();
  for (int64_t j = 0; j < 7; ++j) {
    double s = 0;
    for (int64_t r = 0; r < 1800; ++r) s += v[static_cast<size_t>(r * 7 + j)];
    CHECK(a.col_sum[static_cast<size_t>(j)] == Approx(s).margin(1e-9));
    // ColumnSquares is the Gram's diagonal.
    CHECK(cs.stat().sum_sq[static_cast<size_t>(j)] == Approx(a.at(0, j, j)).epsilon(1e-12));
  }
  CHECK(cs.stat().rows == 1800);
  CHECK(cs.stat().mean_sq(3) == Approx(a.at(0, 3, 3) / 1800).epsilon(1e-12));
}

TEST_CASE("Gram of Gemm respects transA and transB", "[calib]") {
  Graph g;
  g.add_initializer(rand_tensor("w", {4, 6}, 4));  // transB: [N=4, K=6]
  Node n = test::make_node("Gemm", {"a", "w"}, {"y"}, "fc");
  n.set_attr_int("transA", 1);
  n.set_attr_int("transB", 1);
  g.add_node(n);
  LayerInput in = LayerInput::of(g, g.nodes[0]);
  CHECK(in.features == 6);
  Tensor a = rand_tensor("a", {6, 9}, 11);  // A is [K, M]
  GramObserver gs("fc", in);
  gs.observe("a", a);
  auto v = a.to_float();
  std::vector<float> rows;  // Aᵀ
  for (int64_t m = 0; m < 9; ++m)
    for (int64_t k = 0; k < 6; ++k) rows.push_back(v[static_cast<size_t>(k * 9 + m)]);
  CHECK(gs.stat().rows == 9);
  CHECK(max_abs_diff(gs.stat().xtx, naive_xtx(rows, 9, 6)) < 1e-9);
  CHECK_THROWS_AS(gs.observe("a", rand_tensor("a", {5, 9}, 1)), InvalidArgument);
}

TEST_CASE("Conv Gram equals the naive im2col Gram for strided dilated padded grouped convs", "[calib]") {
  struct Case { int64_t cin, cout, group, k, s, d; std::vector<int64_t> pads; };
  const Case cases[] = {{3, 4, 1, 3, 1, 1, {1, 1, 1, 1}}, {4, 6, 2, 3, 2, 1, {1, 0, 2, 1}},
                        {4, 4, 4, 3, 1, 2, {2, 2, 2, 2}}, {2, 2, 1, 2, 2, 1, {0, 0, 0, 0}}};
  for (const auto& c : cases) {
    Graph g;
    g.add_initializer(rand_tensor("w", {c.cout, c.cin / c.group, c.k, c.k}, 3));
    g.add_node(conv_node(c.group, {c.s, c.s}, c.pads, {c.d, c.d}));
    LayerInput in = LayerInput::of(g, g.nodes[0]);
    const int64_t cg = c.cin / c.group, F = cg * c.k * c.k;
    CHECK(in.features == F);
    CHECK(in.groups == c.group);
    Tensor x = rand_tensor("x", {2, c.cin, 7, 6}, 21);
    GramObserver gs("conv", in);
    ColumnSquaresObserver cs("conv", in);
    gs.observe("x", x);
    cs.observe("x", x);
    const GramStat st = gs.stat();
    REQUIRE(st.xtx.size() == static_cast<size_t>(c.group * F * F));
    for (int64_t gi = 0; gi < c.group; ++gi) {
      int64_t rows = 0;
      auto cols = padded_im2col(x, gi * cg, cg, c.k, c.k, c.s, c.d, c.pads[0], c.pads[1], c.pads[2], c.pads[3], rows);
      CHECK(st.rows == rows);
      auto naive = naive_xtx(cols, rows, F);
      std::vector<double> got(st.xtx.begin() + gi * F * F, st.xtx.begin() + (gi + 1) * F * F);
      CHECK(max_abs_diff(got, naive) < 1e-9);
      for (int64_t j = 0; j < F; ++j)
        CHECK(cs.stat().sum_sq[static_cast<size_t>(gi * F + j)] == Approx(naive[static_cast<size_t>(j * F + j)]).epsilon(1e-12));
    }
  }
}

TEST_CASE("Histogram percentile is within one bin of the sorted data after re-binning", "[calib]") {
  HistogramObserver h("a", 2048);
  std::vector<float> all;
  // Three batches whose ranges grow on both sides force two re-binnings.
  const float ranges[3][2] = {{-0.5f, 0.5f}, {-0.2f, 3.f}, {-7.f, 1.f}};
  for (int b = 0; b < 3; ++b) {
    Tensor t = rand_tensor("a", {4000}, 100 + static_cast<uint64_t>(b), ranges[b][0], ranges[b][1]);
    auto v = t.to_float();
    all.insert(all.end(), v.begin(), v.end());
    h.observe("a", t);
  }
  const HistogramStat s = h.stat();
  CHECK(s.total() == all.size());
  CHECK(s.bins.size() == 2048);
  std::sort(all.begin(), all.end());
  CHECK(s.lo <= all.front());
  CHECK(s.hi >= all.back());
  const double w = s.bin_width();
  for (double q : {0.001, 0.01, 0.25, 0.5, 0.9, 0.99, 0.9999}) {
    const float want = all[static_cast<size_t>(q * double(all.size() - 1))];
    CHECK(std::fabs(histogram_percentile(s, q) - want) <= w * 1.01);
  }
  // |x| folding keeps the count and the upper percentiles of |x|.
  HistogramStat a = histogram_fold_abs(s);
  CHECK(a.total() == all.size());
  std::vector<float> absv;
  for (float v : all) absv.push_back(std::fabs(v));
  std::sort(absv.begin(), absv.end());
  CHECK(std::fabs(histogram_percentile(a, 0.99) - absv[static_cast<size_t>(0.99 * double(absv.size() - 1))]) <=
        a.bin_width() + w);
}

TEST_CASE("Entropy threshold clips rare outliers of a Gaussian", "[calib]") {
  std::mt19937_64 rng(5);
  std::normal_distribution<float> nd(0.f, 1.f);
  std::vector<float> v(60000);
  for (auto& x : v) x = nd(rng);
  v[0] = 40.f;  // a single outlier sets the abs max
  v[1] = -35.f;
  HistogramObserver h("a");
  h.observe("a", Tensor::from_float("a", {static_cast<int64_t>(v.size())}, v));
  const float t = histogram_entropy_threshold(h.stat(), 128);
  // The threshold sits in the body of the distribution, far below the abs max.
  CHECK(t > 2.0f);
  CHECK(t < 20.0f);
  // Without outliers the range is kept nearly whole.
  std::vector<float> u(20000);
  for (size_t i = 0; i < u.size(); ++i) u[i] = static_cast<float>(i % 1000) / 1000.f;
  HistogramObserver hu("u");
  hu.observe("u", Tensor::from_float("u", {20000}, u));
  CHECK(histogram_entropy_threshold(hu.stat(), 128) > 0.9f);
}

TEST_CASE("Block angle per token along the channel axis", "[calib]") {
  auto direct = [](const Tensor& a, const Tensor& b, int axis, double& angle, double& negcos, int64_t& count) {
    auto x = a.to_float(), y = b.to_float();
    const auto& d = a.dims;
    int64_t outer = 1, inner = 1;
    for (int i = 0; i < axis; ++i) outer *= d[static_cast<size_t>(i)];
    for (size_t i = static_cast<size_t>(axis) + 1; i < d.size(); ++i) inner *= d[i];
    const int64_t C = d[static_cast<size_t>(axis)];
    angle = negcos = 0;
    count = 0;
    for (int64_t o = 0; o < outer; ++o)
      for (int64_t i = 0; i < inner; ++i) {
        double dot = 0, nx = 0, ny = 0;
        for (int64_t c = 0; c < C; ++c) {
          const size_t k = static_cast<size_t>((o * C + c) * inner + i);
          dot += double(x[k]) * y[k]; nx += double(x[k]) * x[k]; ny += double(y[k]) * y[k];
        }
        const double cs = dot / std::sqrt(nx * ny);
        angle += std::acos(cs) / M_PI;
        negcos -= cs;
        ++count;
      }
  };
  // NCHW: tokens are (n,h,w); output = input + a perturbation so angles are spread.
  Tensor in = rand_tensor("in", {2, 5, 3, 4}, 31);
  Tensor out = rand_tensor("out", {2, 5, 3, 4}, 32);
  BlockAngleObserver ob("blk", "in", "out");
  ob.observe("in", in);
  ob.observe("out", out);
  ob.end_batch();
  double ang, nc;
  int64_t cnt;
  direct(in, out, 1, ang, nc, cnt);
  CHECK(ob.stat().count == 2 * 3 * 4);
  CHECK(ob.stat().sum_angle == Approx(ang).epsilon(1e-9));
  CHECK(ob.stat().sum_neg_cos == Approx(nc).epsilon(1e-9));
  // [B,T,C], output seen before input: tokens are (b,t), channels last.
  Tensor a = rand_tensor("a", {2, 7, 6}, 41), b = rand_tensor("b", {2, 7, 6}, 42);
  BlockAngleObserver ob2("blk", "a", "b");
  ob2.observe("b", b);
  ob2.observe("a", a);
  direct(a, b, 2, ang, nc, cnt);
  CHECK(ob2.stat().count == 14);
  CHECK(ob2.stat().mean_angle() == Approx(ang / 14).epsilon(1e-9));
  CHECK(ob2.stat().mean_neg_cos() == Approx(nc / 14).epsilon(1e-9));
  // Identical vectors have angle 0; shape mismatch is an error.
  BlockAngleObserver same("s", "a", "b");
  same.observe("a", a);
  same.observe("b", a);
  CHECK(same.stat().mean_angle() == Approx(0).margin(1e-6));
  BlockAngleObserver bad("s", "a", "b");
  bad.observe("a", a);
  CHECK_THROWS_AS(bad.observe("b", in), InvalidArgument);
}

// One observer of each kind on input "x" (and "x2" for the block angle) and on conv node 0 of `g`.
static std::vector<std::unique_ptr<Observer>> every_observer_kind(const Graph& g) {
  std::vector<std::unique_ptr<Observer>> obs;
  obs.push_back(std::make_unique<MinMaxObserver>("x"));
  obs.push_back(std::make_unique<HistogramObserver>("x"));
  obs.push_back(std::make_unique<ChannelMomentsObserver>("x"));
  obs.push_back(std::make_unique<GramObserver>("conv", LayerInput::of(g, g.nodes[0])));
  obs.push_back(std::make_unique<ColumnSquaresObserver>("conv", LayerInput::of(g, g.nodes[0])));
  obs.push_back(std::make_unique<BlockAngleObserver>("b", "x", "x2"));
  return obs;
}

TEST_CASE("Observer memory does not grow with the number of batches", "[calib]") {
  Graph g;
  g.add_initializer(rand_tensor("w", {4, 3, 3, 3}, 3));
  Node n = conv_node(1, {1, 1}, {1, 1, 1, 1}, {1, 1});
  g.add_node(n);
  auto run = [&](int batches) {
    std::vector<std::unique_ptr<Observer>> obs = every_observer_kind(g);
    for (int i = 0; i < batches; ++i) {
      Tensor x = rand_tensor("x", {2, 3, 8, 8}, static_cast<uint64_t>(i), -float(i + 1), float(i + 1));
      for (auto& o : obs) {
        o->observe("x", x);
        o->observe("x2", x);
        o->end_batch();
      }
    }
    CalibrationStats s;
    for (auto& o : obs) o->store(s);
    return s;
  };
  const CalibrationStats one = run(1), many = run(12);
  CHECK(many.grams.at("conv").rows == 12 * one.grams.at("conv").rows);
  CHECK(many.blocks.at("b").count == 12 * one.blocks.at("b").count);
  CHECK(stats_bytes(many) == stats_bytes(one));
}

TEST_CASE("Observers' own heap stays flat while they observe more batches", "[calib]") {
  // Measured from outside (glibc's in-use heap, mallinfo2), so an observer that kept a copy of
  // every batch would show, whatever it reports of itself. Under ASan the allocator is ASan's and
  // glibc's count stays flat by construction; the Release suite is the one that can fail.
  Graph g;
  g.add_initializer(rand_tensor("w", {16, 8, 3, 3}, 3));
  Node n = conv_node(1, {1, 1}, {1, 1, 1, 1}, {1, 1});
  g.add_node(n);
  std::vector<std::unique_ptr<Observer>> obs = every_observer_kind(g);
  auto observe = [&](int first, int count) {
    for (int i = first; i < first + count; ++i) {
      // 8x8x32x32 floats = 256 KiB a batch; the range widens every batch (histograms must re-bin in place).
      Tensor x = rand_tensor("x", {8, 8, 32, 32}, static_cast<uint64_t>(i), -float(i + 1), float(i + 1));
      for (auto& o : obs) {
        o->observe("x", x);
        o->observe("x2", x);
        o->end_batch();
      }
    }
  };
  observe(0, 2);   // first batches size every accumulator
  malloc_trim(0);
  const size_t after_two = mallinfo2().uordblks;
  observe(2, 14);
  malloc_trim(0);
  const size_t after_sixteen = mallinfo2().uordblks;
  INFO("in-use heap after 2 batches " << after_two << " B, after 16 " << after_sixteen << " B");
  // Fourteen more batches of 256 KiB each: growth must stay far below even one batch.
  CHECK(after_sixteen <= after_two + 64 * 1024);
  CalibrationStats s;
  for (auto& o : obs) o->store(s);
  CHECK(s.grams.at("conv").rows > 0);
}

TEST_CASE("Calibration source from one npy streams samples in batches", "[calib]") {
  auto dir = test::temp_dir("calib_npy");
  Model m = inputs_model({{"x", DType::Float, {-1, 1, 4, 4}}});
  Tensor data = rand_tensor("x", {10, 1, 4, 4}, 3);
  write_npy(dir / "x.npy", data);
  CalibrationSource src((dir / "x.npy").string(), m, {4, 0, {}});
  CHECK(src.num_samples() == 10);
  CHECK(src.num_batches() == 3);
  CHECK(src.batch_size() == 4);
  std::vector<int64_t> sizes;
  auto all = drain(src, sizes);
  CHECK(sizes == std::vector<int64_t>{4, 4, 2});
  CHECK(test::bitwise_equal(all.at("x"), data));
  src.rewind();
  std::map<std::string, Tensor> b;
  REQUIRE(src.next(b));
  CHECK(b.at("x").dims == std::vector<int64_t>{4, 1, 4, 4});
  // max_samples stops early; float64 data is converted to the model's float32.
  Tensor d64 = Tensor::from_float_as("x", DType::Double, data.dims, data.to_float());
  write_npy(dir / "x64.npy", d64);
  CalibrationSource lim((dir / "x64.npy").string(), m, {3, 5, {}});
  CHECK(lim.num_samples() == 5);
  auto first5 = drain(lim, sizes);
  CHECK(sizes == std::vector<int64_t>{3, 2});
  CHECK(first5.at("x").dtype == DType::Float);
  const auto dv = data.to_float();
  CHECK(first5.at("x").to_float() == std::vector<float>(dv.begin(), dv.begin() + 80));
  // A model with a fixed batch dim of 1 takes one sample per run whatever the batch size option.
  Model fixed = test::small_cnn();
  write_npy(dir / "cnn.npy", rand_tensor("x", {3, 3, 16, 16}, 4));
  CalibrationSource one((dir / "cnn.npy").string(), fixed, {8, 0, {}});
  CHECK(one.batch_size() == 1);
  CHECK(one.num_batches() == 3);
  REQUIRE(one.next(b));
  CHECK(b.at("x").dims == std::vector<int64_t>{1, 3, 16, 16});
}

TEST_CASE("Calibration source from npz (stored and deflated) and from a directory", "[calib]") {
  auto dir = test::temp_dir("calib_npz");
  Model m = inputs_model({{"x", DType::Float, {-1, 3}}, {"ids", DType::Int64, {-1, 2}}});
  Tensor x = rand_tensor("x", {5, 3}, 8);
  Tensor ids = Tensor::from_int64("ids", {5, 2}, {0, 1, 2, 3, 4, 5, 6, 7, 8, 9});
  std::vector<int64_t> sizes;
  for (bool deflate : {false, true}) {
    const auto path = dir / (deflate ? "c.npz" : "s.npz");
    write_npz(path, {x, ids}, deflate);
    CalibrationSource src(path.string(), m, {2, 0, {}});
    CHECK(src.num_samples() == 5);
    auto all = drain(src, sizes);
    CHECK(sizes == std::vector<int64_t>{2, 2, 1});
    CHECK(test::bitwise_equal(all.at("x"), x));
    CHECK(all.at("ids").to_int64() == ids.to_int64());
  }
  // A directory: sorted by name, files of one sample (with or without the batch axis) or several.
  auto d = dir / "samples";
  std::filesystem::create_directories(d);
  Model img = inputs_model({{"x", DType::Float, {-1, 1, 4, 4}}});
  Tensor a = rand_tensor("x", {1, 1, 4, 4}, 1), b = rand_tensor("x", {1, 4, 4}, 2), c = rand_tensor("x", {3, 1, 4, 4}, 3);
  write_npy(d / "b.npy", b);
  write_npy(d / "a.npy", a);
  write_npz(d / "c.npz", {c}, true);
  std::ofstream(d / "notes.txt") << "ignored";
  CalibrationSource src(d.string(), img, {4, 0, {}});
  CHECK(src.num_samples() == 5);
  auto all = drain(src, sizes);
  CHECK(sizes == std::vector<int64_t>{4, 1});
  b.dims = {1, 1, 4, 4};
  CHECK(test::bitwise_equal(all.at("x"), concat0({a, b, c})));
}

TEST_CASE("Calibration source random is seeded and independent of the batch size", "[calib]") {
  Model m = inputs_model({{"x", DType::Float, {-1, 3, -1, -1}}, {"n", DType::Int64, {-1}}});
  std::vector<int64_t> sizes;
  CalibrationSource a("random:6:7", m, {2, 0, {}}), b("random:6:7", m, {6, 0, {}}), c("random:6:8", m, {6, 0, {}});
  auto da = drain(a, sizes);
  CHECK(sizes == std::vector<int64_t>{2, 2, 2});
  auto db = drain(b, sizes);
  auto dc = drain(c, sizes);
  CHECK(da.at("x").dims == std::vector<int64_t>{6, 3, 1, 1});  // symbolic dims become 1
  CHECK(test::bitwise_equal(da.at("x"), db.at("x")));
  CHECK_FALSE(test::bitwise_equal(da.at("x"), dc.at("x")));
  auto v = da.at("x").to_float();
  CHECK(*std::min_element(v.begin(), v.end()) >= 0.f);
  CHECK(*std::max_element(v.begin(), v.end()) < 1.f);
  CHECK(std::set<float>(v.begin(), v.end()).size() == v.size());
  CHECK(da.at("n").to_int64() == std::vector<int64_t>(6, 0));
  CalibrationSource shaped("random:2", m, {2, 0, {{"x", {1, 3, 8, 5}}}});
  std::map<std::string, Tensor> batch;
  REQUIRE(shaped.next(batch));
  CHECK(batch.at("x").dims == std::vector<int64_t>{2, 3, 8, 5});
}

TEST_CASE("Calibration source errors say what the model expects", "[calib]") {
  auto dir = test::temp_dir("calib_err");
  Model m = inputs_model({{"x", DType::Float, {-1, 1, 32, 32}}});
  write_npy(dir / "small.npy", rand_tensor("x", {10, 1, 28, 28}, 1));
  CHECK(error_of([&] { CalibrationSource s((dir / "small.npy").string(), m); }) ==
        "calibration input 'x' has shape [10,1,28,28] but the model expects [N,1,32,32] (" + (dir / "small.npy").string() + ")");
  write_npy(dir / "int.npy", Tensor::from_int64("x", {1, 1, 32, 32}, std::vector<int64_t>(1024, 1)));
  CHECK_THAT(error_of([&] { CalibrationSource s((dir / "int.npy").string(), m); }),
             Catch::Contains("calibration input 'x' is int64 but the model expects float32"));
  Model two = inputs_model({{"x", DType::Float, {-1, 3}}, {"y", DType::Float, {-1, 2}}});
  write_npz(dir / "unknown.npz", {rand_tensor("x", {2, 3}, 1), rand_tensor("y", {2, 2}, 2), rand_tensor("z", {2}, 3)}, false);
  CHECK_THAT(error_of([&] { CalibrationSource s((dir / "unknown.npz").string(), two); }),
             Catch::Contains("has 'z', which is not a model input (inputs: x, y)"));
  write_npz(dir / "missing.npz", {rand_tensor("x", {2, 3}, 1)}, true);
  CHECK_THAT(error_of([&] { CalibrationSource s((dir / "missing.npz").string(), two); }),
             Catch::Contains("lacks input 'y' (the model expects y: float32[N,2])"));
  write_npz(dir / "counts.npz", {rand_tensor("x", {4, 3}, 1), rand_tensor("y", {3, 2}, 2)}, false);
  CHECK_THAT(error_of([&] { CalibrationSource s((dir / "counts.npz").string(), two); }),
             Catch::Contains("different sample counts per input (x: 4, y: 3)"));
  write_npy(dir / "x3.npy", rand_tensor("x", {2, 3}, 1));
  CHECK_THAT(error_of([&] { CalibrationSource s((dir / "x3.npy").string(), two); }),
             Catch::Contains("single .npy but the model has 2 inputs (x, y)"));
  CHECK_THAT(error_of([&] { CalibrationSource s((dir / "nope.npy").string(), m); }), Catch::Contains("does not exist"));
  CHECK_THAT(error_of([&] { CalibrationSource s("random:0", m); }), Catch::Contains("random:N[:SEED]"));
  CHECK_THAT(error_of([&] { CalibrationSource s("random:4", m, {1, 0, {{"q", {1}}}}); }), Catch::Contains("'q'"));
  std::filesystem::create_directories(dir / "empty");
  CHECK_THAT(error_of([&] { CalibrationSource s((dir / "empty").string(), m); }), Catch::Contains("no .npy or .npz"));
  std::ofstream(dir / "bad.npz") << "not a zip";
  CHECK_THAT(error_of([&] { CalibrationSource s((dir / "bad.npz").string(), m); }), Catch::Contains("not an .npz"));
}

TEST_CASE("Calibration source validates against a corpus model", "[calib]") {
  Model m = load_model(test::corpus_model("ppocr2_cls.onnx"));
  normalize(m);
  // x is [N,3,H,W] with symbolic H and W: random data takes the given sample shape.
  CalibrationSource src("random:3:1", m, {2, 0, {{"x", {1, 3, 48, 192}}}});
  std::map<std::string, Tensor> b;
  REQUIRE(src.next(b));
  CHECK(b.at("x").dims == std::vector<int64_t>{2, 3, 48, 192});
  CHECK_THAT(error_of([&] { CalibrationSource s("random:1", m, {1, 0, {{"x", {1, 1, 48, 192}}}}); }),
             Catch::Contains("has shape [1,1,48,192] but the model expects [p2o.DynamicDimension.0,3,"));
}

TEST_CASE("calibrate small_cnn with random data matches statistics from ONNX Runtime activations", "[calib]") {
  Model m = test::small_cnn(3);
  normalize(m);
  std::string gemm, conv2;
  for (const Node& n : m.graph.nodes) {
    if (n.op_type == "Gemm") gemm = n.name;
    if (n.op_type == "Conv" && n.input(0) == "r1") conv2 = n.name;
  }
  CalibrationPlan plan;
  plan.grams = {gemm, conv2};
  plan.columns = {gemm};
  plan.minmax = {"x", "gap"};
  plan.channels = {{"r2", kAutoAxis}};
  plan.blocks = {{"res_block", "r1", "r2", kAutoAxis}};
  CalibrationSource src("random:16", m, {4, 0, {}});
  std::vector<std::pair<int64_t, int64_t>> calls;
  const CalibrationStats st = calibrate(m, src, plan, [&](int64_t d, int64_t t) { calls.emplace_back(d, t); });
  CHECK(st.samples == 16);
  REQUIRE(calls.size() == 17);  // small_cnn has a fixed batch of 1: 16 runs
  CHECK(calls.front() == std::make_pair(int64_t{0}, int64_t{16}));
  CHECK(calls.back() == std::make_pair(int64_t{16}, int64_t{16}));

  // Reference activations: the same 16 samples through ONNX Runtime in one batch, with the
  // intermediate values exposed as outputs.
  std::vector<int64_t> sizes;
  CalibrationSource again("random:16", m, {1, 0, {}});
  Tensor x = drain(again, sizes).at("x");
  REQUIRE(x.dims == std::vector<int64_t>{16, 3, 16, 16});
  Model ref = m;
  ref.graph.inputs[0] = test::tensor_value("x", {16, 3, 16, 16});
  ref.graph.outputs = {test::tensor_value("y", {16, 10}), test::tensor_value("r1", {16, 8, 16, 16}),
                       test::tensor_value("r2", {16, 8, 16, 16}), test::tensor_value("flat", {16, 8})};
  const auto dir = test::temp_dir("calib_e2e");
  save_model(ref, dir / "ref.onnx");
  auto ort = test::run_ort(dir / "ref.onnx", {{"x", x}});

  // Gemm: X = flattened GAP output, 16 rows x 8 features.
  const GramStat& g = st.grams.at(gemm);
  CHECK(g.rows == 16);
  CHECK(g.features == 8);
  const auto flat = ort.at("flat").to_float();
  const auto want = naive_xtx(flat, 16, 8);
  double scale = 0;
  for (double v : want) scale = std::max(scale, std::fabs(v));
  CHECK(max_abs_diff(g.xtx, want) < 1e-4 * scale);
  for (int64_t j = 0; j < 8; ++j) CHECK(st.columns.at(gemm).sum_sq[static_cast<size_t>(j)] == Approx(g.at(0, j, j)).epsilon(1e-9));

  // Second conv: 3x3 pad 1 im2col of r1, 16·16·16 rows x 72 features.
  const GramStat& gc = st.grams.at(conv2);
  int64_t rows = 0;
  const auto cols = padded_im2col(ort.at("r1"), 0, 8, 3, 3, 1, 1, 1, 1, 1, 1, rows);
  CHECK(gc.rows == rows);
  const auto wantc = naive_xtx(cols, rows, 72);
  scale = 0;
  for (double v : wantc) scale = std::max(scale, std::fabs(v));
  CHECK(max_abs_diff(gc.xtx, wantc) < 1e-4 * scale);

  // MinMax of the input is exact; block angle and channel moments agree with ORT's activations.
  const auto xv = x.to_float();
  CHECK(st.minmax.at("x").min == *std::min_element(xv.begin(), xv.end()));
  CHECK(st.minmax.at("x").count == 16 * 3 * 16 * 16);
  double ang = 0;
  const auto r1 = ort.at("r1").to_float(), r2 = ort.at("r2").to_float();
  for (int64_t n = 0; n < 16; ++n)
    for (int64_t p = 0; p < 256; ++p) {
      double dot = 0, na = 0, nb = 0;
      for (int64_t c = 0; c < 8; ++c) {
        const size_t k = static_cast<size_t>((n * 8 + c) * 256 + p);
        dot += double(r1[k]) * r2[k]; na += double(r1[k]) * r1[k]; nb += double(r2[k]) * r2[k];
      }
      const double cs = (na == 0 && nb == 0) ? 1.0 : (na == 0 || nb == 0) ? 0.0 : std::clamp(dot / std::sqrt(na * nb), -1.0, 1.0);
      ang += std::acos(cs) / M_PI;
    }
  CHECK(st.blocks.at("res_block").count == 16 * 256);
  CHECK(st.blocks.at("res_block").mean_angle() == Approx(ang / (16 * 256)).margin(1e-4));
  CHECK(st.channels.at("r2").axis == 1);
  double c0 = 0;
  for (int64_t n = 0; n < 16; ++n)
    for (int64_t p = 0; p < 256; ++p) c0 += r2[static_cast<size_t>(n * 8 * 256 + p)];
  CHECK(st.channels.at("r2").sum[0] == Approx(c0).epsilon(1e-4));

  // Memory does not depend on the number of samples.
  CalibrationSource few("random:2", m, {});
  CHECK(stats_bytes(calibrate(m, few, plan)) == stats_bytes(st));
  // Plans naming unknown values or nodes fail before running.
  CalibrationPlan bad;
  bad.minmax = {"nope"};
  CHECK_THAT(error_of([&] { calibrate(m, few, bad); }), Catch::Contains("'nope'"));
  bad.minmax.clear();
  bad.grams = {"nonode"};
  CHECK_THAT(error_of([&] { calibrate(m, few, bad); }), Catch::Contains("no node 'nonode'"));
  bad.grams = {"Relu_r1"};
  CHECK_THROWS_AS(calibrate(m, few, bad), UnsupportedError);
}
