// The fp32-GEMM Gram path (GramObserver for layers of ≥ GramOptions::fast_min_features features)
// against a double reference on data with a large mean, and Conv position subsampling.
#include <catch2/catch.hpp>
#include <algorithm>
#include <cmath>
#include <random>

#include "engine/observers.h"
#include "engine/statistics.h"
#include "support.h"

using namespace oc;

namespace {

// Rows × F floats: column j is mean_j + scale_j·N(0,1), mean_j around `mean`.
Tensor shifted_rows(const std::string& name, int64_t rows, int64_t F, double mean, uint64_t seed) {
  Tensor t;
  t.name = name;
  t.dtype = DType::Float;
  t.dims = {rows, F};
  t.bytes.resize(static_cast<size_t>(rows * F) * sizeof(float));
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> nd(0.0, 1.0);
  float* p = t.data<float>();
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t j = 0; j < F; ++j)
      p[r * F + j] = static_cast<float>(mean * (1.0 + 0.01 * static_cast<double>(j % 7)) + (0.5 + 0.1 * static_cast<double>(j % 5)) * nd(rng));
  return t;
}

struct Reference {
  std::vector<double> h, sum;
  int64_t rows = 0;
};

void add_reference(Reference& ref, const float* x, int64_t rows, int64_t F) {
  if (ref.h.empty()) {
    ref.h.assign(static_cast<size_t>(F * F), 0.0);
    ref.sum.assign(static_cast<size_t>(F), 0.0);
  }
  for (int64_t r = 0; r < rows; ++r) {
    const float* row = x + r * F;
    for (int64_t i = 0; i < F; ++i) {
      ref.sum[static_cast<size_t>(i)] += row[i];
      for (int64_t j = 0; j < F; ++j) ref.h[static_cast<size_t>(i * F + j)] += double(row[i]) * double(row[j]);
    }
  }
  ref.rows += rows;
}

// max |a − b| / max |b|
double rel_max(const std::vector<double>& a, const std::vector<double>& b) {
  REQUIRE(a.size() == b.size());
  double d = 0, m = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    d = std::max(d, std::fabs(a[i] - b[i]));
    m = std::max(m, std::fabs(b[i]));
  }
  return d / m;
}

// Covariance H/n − μμᵀ (what compensation's bias column effectively solves against).
std::vector<double> covariance(const std::vector<double>& h, const std::vector<double>& sum, int64_t rows, int64_t F) {
  std::vector<double> c(h.size());
  const double n = static_cast<double>(rows);
  for (int64_t i = 0; i < F; ++i)
    for (int64_t j = 0; j < F; ++j)
      c[static_cast<size_t>(i * F + j)] = h[static_cast<size_t>(i * F + j)] / n -
                                          sum[static_cast<size_t>(i)] / n * sum[static_cast<size_t>(j)] / n;
  return c;
}

}  // namespace

TEST_CASE("fp32-block Gram equals the double reference on data with a large mean", "[calib][gram]") {
  // Stated tolerance: XᵀX within 1e-7 of max|XᵀX| and the covariance XᵀX/n − μμᵀ within 1e-5 of
  // its largest entry, with mean 100 and unit spread (fp32 products of the raw values over one
  // block would put the covariance off by ~1e-2: the shift is what keeps it).
  const int64_t F = 300;  // two 256-column tiles: a full one and a ragged one
  Graph g;
  g.add_initializer(test::random_tensor("w", {F, 8}, 4));
  g.add_node(test::make_node("MatMul", {"x", "w"}, {"y"}, "mm"));
  const LayerInput in = LayerInput::of(g, g.nodes[0]);
  GramOptions opt;
  opt.flush_rows = 512;
  GramObserver fast("mm", in, opt);
  Reference ref;
  // Three batches, the last with its mean moved away from the first batch's shift.
  const std::vector<Tensor> parts = {shifted_rows("x", 1500, F, 100.0, 1), shifted_rows("x", 700, F, 100.0, 2),
                                     shifted_rows("x", 900, F, 130.0, 3)};
  for (const Tensor& p : parts) {
    fast.observe("x", p);
    add_reference(ref, p.data<float>(), p.dims[0], F);
  }
  const GramStat st = fast.stat();
  CHECK(st.rows == 3100);
  CHECK(st.features == F);
  CHECK(rel_max(st.xtx, ref.h) < 1e-7);
  CHECK(rel_max(st.col_sum, ref.sum) < 1e-12);
  CHECK(rel_max(covariance(st.xtx, st.col_sum, st.rows, F), covariance(ref.h, ref.sum, ref.rows, F)) < 1e-5);
  // Symmetric as stored.
  for (int64_t i = 0; i < F; i += 37)
    for (int64_t j = 0; j < F; j += 41) CHECK(st.at(0, i, j) == st.at(0, j, i));
}

TEST_CASE("fp32-block Conv Gram equals the double im2col reference (groups, stride, padding)", "[calib][gram]") {
  // 2 groups of 8 channels, 3×3, stride 2, asymmetric pads: 72 features per group (fast path).
  const int64_t N = 2, C = 16, Hh = 13, Ww = 11, G = 2, cg = C / G, k = 3, s = 2;
  Graph g;
  g.add_initializer(test::random_tensor("w", {6, cg, k, k}, 3));
  Node n = test::make_node("Conv", {"x", "w"}, {"y"}, "conv");
  n.set_attr_int("group", G);
  n.set_attr_ints("strides", {s, s});
  n.set_attr_ints("pads", {1, 0, 2, 1});
  g.add_node(n);
  const LayerInput in = LayerInput::of(g, g.nodes[0]);
  const int64_t F = cg * k * k;
  REQUIRE(F >= GramOptions{}.fast_min_features);
  Tensor x = test::random_tensor("x", {N, C, Hh, Ww}, 9, 40.f, 42.f);
  GramObserver fast("conv", in);
  fast.observe("x", x);
  const GramStat st = fast.stat();
  // Reference: padded image, windows read directly, sums in double.
  const int64_t pt = 1, pl = 0, pb = 2, pr = 1, PH = Hh + pt + pb, PW = Ww + pl + pr;
  const int64_t OH = (PH - k) / s + 1, OW = (PW - k) / s + 1;
  const float* v = x.data<float>();
  CHECK(st.rows == N * OH * OW);
  for (int64_t gi = 0; gi < G; ++gi) {
    std::vector<float> cols;
    for (int64_t b = 0; b < N; ++b)
      for (int64_t oy = 0; oy < OH; ++oy)
        for (int64_t ox = 0; ox < OW; ++ox)
          for (int64_t c = gi * cg; c < (gi + 1) * cg; ++c)
            for (int64_t i = 0; i < k; ++i)
              for (int64_t j = 0; j < k; ++j) {
                const int64_t y = oy * s + i - pt, xx = ox * s + j - pl;
                cols.push_back(y >= 0 && y < Hh && xx >= 0 && xx < Ww ? v[((b * C + c) * Hh + y) * Ww + xx] : 0.f);
              }
    Reference ref;
    add_reference(ref, cols.data(), N * OH * OW, F);
    std::vector<double> got(st.xtx.begin() + gi * F * F, st.xtx.begin() + (gi + 1) * F * F);
    std::vector<double> sum(st.col_sum.begin() + gi * F, st.col_sum.begin() + (gi + 1) * F);
    CHECK(rel_max(got, ref.h) < 1e-7);  // padding is 0 − shift ≈ −41: larger centred values
    CHECK(rel_max(sum, ref.sum) < 1e-12);
    CHECK(rel_max(covariance(got, sum, st.rows, F), covariance(ref.h, ref.sum, ref.rows, F)) < 1e-5);
  }
}

TEST_CASE("Conv Gram position subsampling keeps about max_positions rows per sample", "[calib][gram]") {
  const int64_t N = 4, C = 8, S = 32;  // 1024 positions per sample, 72 features
  Graph g;
  g.add_initializer(test::random_tensor("w", {4, C, 3, 3}, 3));
  g.add_node(test::make_node("Conv", {"x", "w"}, {"y"}, "conv"));
  g.nodes[0].set_attr_ints("pads", {1, 1, 1, 1});
  const LayerInput in = LayerInput::of(g, g.nodes[0]);
  Tensor x = test::random_tensor("x", {N, C, S, S}, 5, 0.f, 2.f);
  GramObserver full("conv", in);
  GramOptions opt;
  opt.max_positions = 256;
  GramObserver sub("conv", in, opt), again("conv", in, opt);
  full.observe("x", x);
  sub.observe("x", x);
  again.observe("x", x);
  const GramStat a = full.stat(), b = sub.stat();
  CHECK(a.rows == N * S * S);
  CHECK(a.sampled_rows == a.rows);
  // The subset's sums are scaled to every position: rows as read, Binomial(4096, 1/4) rows kept
  // (mean 1024, sd ~28).
  CHECK(b.rows == a.rows);
  CHECK(b.sampled_rows > 900);
  CHECK(b.sampled_rows < 1150);
  CHECK(again.stat().xtx == b.xtx);  // deterministic
  // XᵀX and Σx (not only XᵀX/rows) agree with the full ones to sampling error, so layers
  // subsampled differently compare on one scale.
  double num = 0, den = 0;
  for (size_t i = 0; i < a.xtx.size(); ++i) {
    num += (a.xtx[i] - b.xtx[i]) * (a.xtx[i] - b.xtx[i]);
    den += a.xtx[i] * a.xtx[i];
  }
  CHECK(std::sqrt(num / den) < 0.05);
  CHECK(std::sqrt(num / den) > 0);  // it did subsample
  double snum = 0, sden = 0;
  for (size_t j = 0; j < a.col_sum.size(); ++j) {
    snum += (a.col_sum[j] - b.col_sum[j]) * (a.col_sum[j] - b.col_sum[j]);
    sden += a.col_sum[j] * a.col_sum[j];
  }
  CHECK(std::sqrt(snum / sden) < 0.05);
  // store() (the accumulator handed over in place) gives the same statistic as stat().
  CalibrationStats stored;
  sub.store(stored);
  CHECK(stored.grams.at("conv").xtx == b.xtx);
  CHECK(stored.grams.at("conv").col_sum == b.col_sum);
  CHECK(stored.grams.at("conv").sampled_rows == b.sampled_rows);
  // A feature map at or under the limit is read whole.
  GramOptions big;
  big.max_positions = S * S;
  GramObserver whole("conv", in, big);
  whole.observe("x", x);
  CHECK(whole.stat().rows == a.rows);
}

TEST_CASE("MinMax skips NaN and ±inf and counts only finite values", "[calib][gram]") {
  const float inf = INFINITY, nan = NAN;
  Tensor a = Tensor::from_float("a", {6}, {1.f, nan, -2.f, 3.f, nan, 0.5f});
  Tensor b = Tensor::from_float("a", {5}, {inf, 4.f, -inf, -7.f, nan});
  MinMaxObserver mm("a");
  mm.observe("a", a);
  CHECK(mm.stat().count == 4);
  CHECK(mm.stat().min == -2.f);
  CHECK(mm.stat().max == 3.f);
  mm.observe("a", b);
  CHECK(mm.stat().count == 6);
  CHECK(mm.stat().min == -7.f);
  CHECK(mm.stat().max == 4.f);
}

TEST_CASE("MinMax over long arrays matches a scalar pass at every lane and tail position", "[calib][gram]") {
  // Lengths around the 16-lane blocks; the extremes and NaNs placed in lanes and in the tail.
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> u(-3.f, 3.f);
  for (int64_t n : {int64_t{15}, int64_t{16}, int64_t{17}, int64_t{1000}, int64_t{4099}}) {
    for (int64_t where : {int64_t{0}, n / 2, n - 1}) {
      std::vector<float> v(static_cast<size_t>(n));
      for (float& x : v) x = u(rng);
      v[static_cast<size_t>(where)] = -50.f;
      v[static_cast<size_t>((where + 5) % n)] = 60.f;
      v[static_cast<size_t>((where + 3) % n)] = NAN;
      float mn = INFINITY, mx = -INFINITY;
      int64_t finite = 0;
      for (float x : v)
        if (!std::isnan(x)) mn = std::min(mn, x), mx = std::max(mx, x), ++finite;
      MinMaxObserver mm("a");
      mm.observe("a", Tensor::from_float("a", {n}, v));
      CHECK(mm.stat().min == mn);
      CHECK(mm.stat().max == mx);
      CHECK(mm.stat().count == finite);
    }
  }
}
