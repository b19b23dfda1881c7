// Quantizer, packing, scorer and allocator units: error bounds on Gaussian weights, bit-stream
// layouts, GPTQ against RTN on correlated inputs, knapsack targets.
#include <Eigen/Dense>
#include <catch2/catch.hpp>
#include <random>

#include "graph/errors.h"
#include "quantize/allocate.h"
#include "quantize/quantizers.h"
#include "quantize/scorers.h"
#include "support.h"

using namespace oc;
using namespace oc::quant;

namespace {

std::vector<float> gaussian(size_t n, uint64_t seed, float sd = 1.f) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> d(0.f, sd);
  std::vector<float> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

// Rows with different spreads, as real output channels have.
std::vector<float> gaussian_rows(int64_t rows, int64_t cols, uint64_t seed) {
  std::vector<float> v = gaussian(static_cast<size_t>(rows * cols), seed);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) v[r * cols + c] *= 0.05f + 0.02f * static_cast<float>(r % 7);
  return v;
}

QuantLayout layout(int bits, Scheme s, Granularity g, int64_t bs = 32) {
  QuantLayout l;
  l.bits = bits;
  l.scheme = s;
  l.granularity = g;
  l.block_size = bs;
  return l;
}

}  // namespace

TEST_CASE("int8 per-channel RTN keeps SQNR above 35 dB on Gaussian weights", "[quant]") {
  const int64_t R = 64, C = 256;
  auto w = gaussian_rows(R, C, 1);
  for (Scheme s : {Scheme::Sym, Scheme::Asym}) {
    QuantizedMatrix q = quantize_rtn(w.data(), R, C, layout(8, s, Granularity::Channel));
    REQUIRE(q.scales.size() == static_cast<size_t>(R));
    CHECK(sqnr_db(w, q.dequantize()) >= 35.0);
  }
  // One scale for rows of very different spread loses precision on the narrow rows.
  QuantizedMatrix t = quantize_rtn(w.data(), R, C, layout(8, Scheme::Sym, Granularity::Tensor));
  QuantizedMatrix c = quantize_rtn(w.data(), R, C, layout(8, Scheme::Sym, Granularity::Channel));
  CHECK(sqnr_db(w, t.dequantize()) < sqnr_db(w, c.dequantize()));
}

TEST_CASE("4-bit blocked RTN error bound and blocks beat channels", "[quant]") {
  const int64_t R = 64, C = 256;
  auto w = gaussian_rows(R, C, 2);
  for (int64_t bs : {32, 64, 128}) {
    QuantizedMatrix q = quantize_rtn(w.data(), R, C, layout(4, Scheme::Sym, Granularity::Block, bs));
    REQUIRE(q.nblocks() == C / bs);
    // Uniform 15-level grid over ±max of a Gaussian block: step ≈ 2·2.3σ/14, noise step²/12.
    CHECK(sqnr_db(w, q.dequantize()) >= 17.0);
  }
  QuantizedMatrix b32 = quantize_rtn(w.data(), R, C, layout(4, Scheme::Sym, Granularity::Block, 32));
  QuantizedMatrix ch = quantize_rtn(w.data(), R, C, layout(4, Scheme::Sym, Granularity::Channel));
  CHECK(sqnr_db(w, b32.dequantize()) > sqnr_db(w, ch.dequantize()) + 1.0);
  // Each extra bit buys about 6 dB.
  QuantizedMatrix b5 = quantize_rtn(w.data(), R, C, layout(5, Scheme::Sym, Granularity::Block, 32));
  CHECK(sqnr_db(w, b5.dequantize()) - sqnr_db(w, b32.dequantize()) == Approx(6.0).margin(1.0));
}

TEST_CASE("codes stay in range and the zero point dequantizes to exactly zero", "[quant]") {
  auto w = gaussian(40 * 70, 3);
  for (int j = 0; j < 70; ++j) w[j] = 0.f;  // a zero row: scale must stay finite, values exact
  for (int bits : {2, 3, 4, 5, 6, 8})
    for (Scheme s : {Scheme::Sym, Scheme::Asym}) {
      QuantizedMatrix q = quantize_rtn(w.data(), 40, 70, layout(bits, s, Granularity::Block, 32));
      REQUIRE(q.nblocks() == 3);  // 70 = 32 + 32 + 6
      for (uint8_t c : q.codes) REQUIRE(c <= q.layout.code_max());
      auto d = q.dequantize();
      for (int j = 0; j < 70; ++j) REQUIRE(d[j] == 0.f);
      for (size_t g = 0; g < q.scales.size(); ++g) REQUIRE(std::isfinite(q.scales[g]));
    }
}

TEST_CASE("MSE clipping search is never worse than RTN and wins at low widths", "[quant]") {
  const int64_t R = 32, C = 128;
  auto w = gaussian_rows(R, C, 4);
  for (int bits : {2, 3, 4, 6, 8})
    for (Scheme s : {Scheme::Sym, Scheme::Asym})
      for (Granularity g : {Granularity::Tensor, Granularity::Channel, Granularity::Block}) {
        QuantLayout l = layout(bits, s, g, 32);
        double rtn = relative_error(w, quantize_rtn(w.data(), R, C, l).dequantize());
        double mse = relative_error(w, quantize_mse(w.data(), R, C, l).dequantize());
        INFO("bits " << bits << " " << scheme_name(s) << " " << granularity_name(g));
        CHECK(mse <= rtn * (1 + 1e-9));
        if (bits <= 3 && g == Granularity::Channel) CHECK(mse < 0.9 * rtn);
      }
}

TEST_CASE("bit packing round-trips every width with a little-endian bit stream", "[quant]") {
  std::mt19937 rng(5);
  for (int bits = 1; bits <= 8; ++bits)
    for (size_t n : {1u, 7u, 32u, 129u}) {
      std::vector<uint8_t> v(n);
      for (auto& x : v) x = static_cast<uint8_t>(rng() & ((1u << bits) - 1));
      auto p = pack_bits(v.data(), n, bits);
      REQUIRE(p.size() == (n * bits + 7) / 8);
      REQUIRE(unpack_bits(p.data(), n, bits) == v);
    }
  // Layout: value i at bits [i·b, (i+1)·b), low bits first.
  const uint8_t four[] = {1, 2};
  CHECK(pack_bits(four, 2, 4) == std::vector<uint8_t>{0x21});
  const uint8_t three[] = {7, 0, 5};  // 111 000 101 -> 0b01000111, 0b00000001
  CHECK(pack_bits(three, 3, 3) == std::vector<uint8_t>{0x47, 0x01});
  const uint8_t two[] = {3, 0, 1, 2};
  CHECK(pack_bits(two, 4, 2) == std::vector<uint8_t>{0x93});
  const uint8_t bad[] = {16};
  CHECK_THROWS_AS(pack_bits(bad, 1, 4), InvalidArgument);
}

TEST_CASE("GPTQ beats RTN on output reconstruction with correlated inputs", "[quant]") {
  const int64_t K = 96, N = 48, T = 1024;
  // X = Z·A: a mixing matrix with a decaying spectrum makes input features strongly correlated.
  std::mt19937_64 rng(6);
  std::normal_distribution<double> d(0, 1);
  Eigen::MatrixXd Z(T, K), A(K, K);
  for (int64_t i = 0; i < T * K; ++i) Z.data()[i] = d(rng);
  for (int64_t i = 0; i < K * K; ++i) A.data()[i] = d(rng);
  for (int64_t r = 0; r < K; ++r) A.row(r) *= std::pow(0.93, static_cast<double>(r));
  Eigen::MatrixXd X = Z * A;
  Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor> G = X.transpose() * X;
  std::vector<double> xtx(G.data(), G.data() + K * K);
  auto w = gaussian_rows(N, K, 7);
  for (auto [bits, g] : {std::pair{4, Granularity::Channel}, std::pair{3, Granularity::Block}, std::pair{8, Granularity::Channel}}) {
    QuantLayout l = layout(bits, Scheme::Sym, g, 32);
    double e_rtn = gram_error(w, quantize_rtn(w.data(), N, K, l).dequantize(), N, K, xtx);
    QuantizedMatrix q = quantize_gptq(w.data(), N, K, l, xtx);
    for (uint8_t c : q.codes) REQUIRE(c <= l.code_max());
    double e_gptq = gram_error(w, q.dequantize(), N, K, xtx);
    INFO("bits " << bits << " " << granularity_name(g) << ": rtn " << e_rtn << " gptq " << e_gptq);
    CHECK(e_gptq < 0.7 * e_rtn);
  }
  // The lazy batch size is an implementation detail: the result must not depend on it.
  GptqOptions small;
  small.lazy_block = 16;
  QuantLayout l = layout(4, Scheme::Asym, Granularity::Block, 32);
  QuantizedMatrix a = quantize_gptq(w.data(), N, K, l, xtx);
  QuantizedMatrix b = quantize_gptq(w.data(), N, K, l, xtx, small);
  size_t diff = 0;
  for (size_t i = 0; i < a.codes.size(); ++i) diff += a.codes[i] != b.codes[i];
  CHECK(diff <= a.codes.size() / 1000);  // float rounding may flip a tie
  CHECK_THROWS_AS(quantize_gptq(w.data(), N, K, l, std::vector<double>(10)), InvalidArgument);
}

TEST_CASE("ZD score is minus the fraction of weights beyond one sigma", "[quant]") {
  auto g = gaussian(100000, 8);
  CHECK(zd_score(g) == Approx(-0.3173).margin(0.006));  // P(|z| > 1) of a Gaussian
  // Laplace: P(|z| > 1) = exp(-sqrt 2) ≈ 0.243: heavier tails but fewer points past one sigma.
  std::mt19937_64 rng(9);
  std::exponential_distribution<float> e(1.f);
  std::vector<float> lap(100000);
  for (size_t i = 0; i < lap.size(); ++i) lap[i] = (i % 2 ? 1.f : -1.f) * e(rng);
  CHECK(zd_score(lap) == Approx(-0.2431).margin(0.006));
}

TEST_CASE("allocator meets the average width and gives important layers more bits", "[quant]") {
  const std::vector<int> widths = {8, 6, 4, 3, 2};
  const int L = 12;
  std::vector<AllocItem> items(L);
  double params = 0;
  for (int i = 0; i < L; ++i) {
    items[i].name = "l" + std::to_string(i);
    items[i].score = static_cast<double>((i * 7) % L);  // importance in a shuffled order
    const double p = 1000;
    params += p;
    for (int b : widths) {
      items[i].error[b] = std::pow(4.0, -b);
      items[i].cost[b] = p * b;
    }
  }
  for (double target : {3.0, 4.5, 5.0, 6.5}) {
    auto bits = allocate_bits(items, widths, target * params);
    double avg = 0;
    for (int b : bits) avg += b;
    avg /= L;
    INFO("target " << target << " got " << avg);
    CHECK(avg <= target + 1e-9);
    CHECK(avg >= target - 2.0 / L);  // within one layer's narrowest step
    for (int i = 0; i < L; ++i)
      for (int j = 0; j < L; ++j)
        if (items[i].score > items[j].score) CHECK(bits[i] >= bits[j]);
  }
  // Fixed layers keep their width and count against the budget.
  items[0].fixed_bits = 8;
  auto bits = allocate_bits(items, widths, 4.0 * params);
  CHECK(bits[0] == 8);
  CHECK_THROWS_AS(allocate_bits(items, widths, 2.0 * params), InvalidArgument);
}
