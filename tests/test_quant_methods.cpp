// Data-aware quantization methods (AWQ scales, GPTQ act-order, bias correction), stored widths and
// the documented defaults (docs/QUANTIZATION.md).
#include <Eigen/Dense>
#include <catch2/catch.hpp>
#include <cmath>
#include <fstream>
#include <random>
#include <set>
#include <nlohmann/json.hpp>

#include "graph/errors.h"
#include "engine/npy.h"
#include "graph/onnx_io.h"
#include "quantize/awq.h"
#include "quantize/quantize.h"
#include "support.h"

using namespace oc;
using namespace oc::test;
using namespace oc::quant;

namespace {

using MatR = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

// Inputs whose first `outliers` channels are `gain` times larger than the rest (the activation
// outliers of transformers), as a Gram matrix XᵀX over T rows.
std::vector<double> outlier_gram(int64_t K, int64_t T, int outliers, double gain, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> d(0, 1);
  MatR X(T, K);
  for (int64_t t = 0; t < T; ++t)
    for (int64_t k = 0; k < K; ++k) X(t, k) = d(rng) * (k < outliers ? gain : 1.0) + 0.3;
  MatR G = X.transpose() * X;
  return std::vector<double>(G.data(), G.data() + K * K);
}

std::vector<float> gaussian(int64_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> d(0.f, 1.f);
  std::vector<float> v(static_cast<size_t>(n));
  for (auto& x : v) x = d(rng);
  return v;
}

QuantLayout lay(int bits, Granularity g = Granularity::Block) {
  QuantLayout l;
  l.bits = bits;
  l.scheme = Scheme::Asym;
  l.granularity = g;
  l.block_size = 32;
  return l;
}

}  // namespace

TEST_CASE("AWQ scales lower the output error of RTN on a layer with outlier input channels", "[quant][awq]") {
  const int64_t K = 64, N = 32;
  const auto xtx = outlier_gram(K, 512, 4, 12.0, 3);
  const auto w = gaussian(N * K, 4);
  const DequantFn rtn = [](const std::vector<float>& x, int64_t r, int64_t c, const QuantLayout& l, const std::vector<double>&) {
    return quantize_rtn(x.data(), r, c, l).dequantize();
  };
  for (int bits : {2, 4}) {
    AwqResult a = awq_search({{&w, N, lay(bits)}}, K, 1, xtx, 512, rtn);
    INFO("bits " << bits << ": plain " << a.error_plain << " awq " << a.error_scaled << " alpha " << a.alpha);
    CHECK(a.alpha > 0);
    CHECK(a.error_scaled < 0.8 * a.error_plain);
    // The reported error is the one the scales give: Q(W·diag s)·diag(1/s) against W on the Gram.
    auto ws = scale_columns(w, N, K, 1, a.channel_scale);
    auto back = scale_columns(quantize_rtn(ws.data(), N, K, lay(bits)).dequantize(), N, K, 1, a.channel_scale, true);
    CHECK(gram_error(w, back, N, K, xtx) == Approx(a.error_scaled).epsilon(1e-6));
    // Scaling the input by 1/s and the Gram with it leaves the float layer's output unchanged.
    auto hs = scale_gram(xtx, K, 1, a.channel_scale);
    CHECK(gram_error(ws, std::vector<float>(ws.size(), 0.f), N, K, hs) ==
          Approx(gram_error(w, std::vector<float>(w.size(), 0.f), N, K, xtx)).epsilon(1e-6));
  }
  // Uniform inputs give no reason to scale: α = 0 (plain RTN) is kept unless something is better.
  AwqResult flat = awq_search({{&w, N, lay(4)}}, K, 1, outlier_gram(K, 512, 0, 1.0, 5), 512, rtn);
  CHECK(flat.error_scaled <= flat.error_plain);
}

TEST_CASE("GPTQ act-order is no worse than column order when a few inputs dominate", "[quant][gptq]") {
  const int64_t K = 128, N = 32;
  // Outlier channels placed last, where column order quantizes them after the error was spread.
  auto g0 = outlier_gram(K, 1024, 8, 10.0, 8);
  std::vector<double> xtx(g0.size());
  for (int64_t i = 0; i < K; ++i)
    for (int64_t j = 0; j < K; ++j) xtx[i * K + j] = g0[(K - 1 - i) * K + (K - 1 - j)];
  const auto w = gaussian(N * K, 9);
  for (auto g : {Granularity::Channel, Granularity::Block}) {
    GptqOptions ao;
    ao.act_order = true;
    const double plain = gram_error(w, quantize_gptq(w.data(), N, K, lay(3, g), xtx).dequantize(), N, K, xtx);
    QuantizedMatrix q = quantize_gptq(w.data(), N, K, lay(3, g), xtx, ao);
    for (uint8_t c : q.codes) REQUIRE(c <= 7);
    const double act = gram_error(w, q.dequantize(), N, K, xtx);
    INFO(granularity_name(g) << ": column order " << plain << ", act-order " << act);
    CHECK(act < plain);
  }
}

TEST_CASE("8-bit pairs that ORT's AVX2 kernels add in int16 stay within 128, at a finer step than 7-bit codes", "[quant][gptq]") {
  // ORT reorders a Conv filter's reduction axis tap-major (k = tap·C + c) and its AVX2 kernels add
  // k = 2m and 2m + 1 into a saturating int16: our columns c·taps + tap pair channels within a tap.
  for (int64_t C : {6, 3})
    for (int64_t col = 0; col < C * 9; ++col) {
      const int64_t o = pair_partner(col, C * 9, 9);
      const int64_t k = (col % 9) * C + col / 9;
      if (k == C * 9 - 1 && C % 2 == 1) {
        CHECK(o == -1);  // odd K: the last one meets padding
        continue;
      }
      REQUIRE(o >= 0);
      CHECK(pair_partner(o, C * 9, 9) == col);
      CHECK(((o % 9) * C + o / 9) == (k ^ 1));
      if (C % 2 == 0) CHECK(o % 9 == col % 9);  // the same tap, the neighbouring channel
    }
  CHECK(pair_partner(6, 8, 1) == 7);  // MatMul: neighbouring rows of K
  const int64_t N = 24, C = 8, taps = 9, K = C * taps;
  auto w = gaussian(N * K, 21);
  // Some rows whose two largest weights share a pair (the step must widen there) and some with one outlier.
  for (int64_t r = 0; r < N; r += 3) w[r * K + 0] = 4.f, w[r * K + pair_partner(0, K, taps)] = 3.5f;
  for (int64_t r = 1; r < N; r += 3) w[r * K + 5] = 5.f;
  const auto xtx = outlier_gram(K, 512, 4, 3.0, 22);
  QuantLayout pairs;  // sym, channel
  pairs.bits = 8;
  pairs.pair_limit = 128;
  pairs.pair_taps = taps;
  QuantLayout reduced = pairs;
  reduced.bits = 7, reduced.pair_limit = 0;
  auto worst_pair = [&](const QuantizedMatrix& q) {
    int worst = 0, amax = 0;
    for (int64_t r = 0; r < N; ++r)
      for (int64_t c = 0; c < K; ++c) {
        const int a = q.codes[r * K + c] - q.zero_points[r];
        amax = std::max(amax, std::abs(a));
        const int64_t o = pair_partner(c, K, taps);
        const int b = o >= 0 ? q.codes[r * K + o] - q.zero_points[r] : 0;
        if (a * b > 0) worst = std::max(worst, std::abs(a) + std::abs(b));  // only one sign can saturate
      }
    return std::pair<int, int>{worst, amax};
  };
  GptqOptions ao;
  ao.act_order = true;
  for (int method = 0; method < 2; ++method) {
    auto quant = [&](const QuantLayout& l) {
      return method == 0 ? quantize_rtn(w.data(), N, K, l) : quantize_gptq(w.data(), N, K, l, xtx, ao);
    };
    const QuantizedMatrix qp = quant(pairs), qr = quant(reduced);
    const auto [worst, amax] = worst_pair(qp);
    const double ep = gram_error(w, qp.dequantize(), N, K, xtx), er = gram_error(w, qr.dequantize(), N, K, xtx);
    INFO((method ? "gptq" : "rtn") << ": worst pair " << worst << ", max code " << amax << ", error " << ep << " vs 7-bit " << er);
    CHECK(worst <= 128);
    CHECK(amax >= 120);       // the full int8 range is used where the pairs allow it
    CHECK(ep < 0.6 * er);     // a quarter on rows at amax/127, about the same on the third forced to share a pair
    // Without the limit the shared-pair rows exceed it (what saturates in ORT's AVX2 kernel).
    QuantLayout full = pairs;
    full.pair_limit = 0;
    CHECK(worst_pair(quant(full)).first > 128);
  }
}

TEST_CASE("bias correction makes each layer's calibration output mean exact", "[quant]") {
  fs::path dir = temp_dir("quant_bias");
  save_model(quant_mlp(71), dir / "mlp.onnx");
  // Calibration inputs with a non-zero mean, written out so the test knows their exact mean.
  Tensor x = random_tensor("x", {64, 32}, 2, 0.f, 1.f);
  write_npy(dir / "calib.npy", x);
  auto r = run_cli({"quantize", (dir / "mlp.onnx").string(), "-o", (dir / "q.onnx").string(), "--bits", "4",
                    "--no-protect", "--method", "rtn", "--bias-correction", "--format", "fake", "--calib",
                    (dir / "calib.npy").string(), "--report", (dir / "r.json").string()});
  INFO(r.out);
  REQUIRE(r.rc == 0);
  const nlohmann::json d = first_step_details(dir / "r.json");
  std::set<std::string> corrected;
  for (const auto& l : d["layers"])
    if (l.value("bias_corrected", false)) corrected.insert(l["node"].get<std::string>());
  // fc1/fc2: MatMul + Add(bias); fc3: Gemm with C; fc5: MatMul into the graph output (no bias).
  CHECK(corrected.count("fc1"));
  CHECK(corrected.count("fc2"));
  CHECK(corrected.count("fc3"));
  CHECK(!corrected.count("fc5"));
  // fc1 reads the model input: E[Ŵᵀx + b'] must equal E[Wᵀx + b] over the calibration samples.
  Model f = load_model(dir / "mlp.onnx"), q = load_model(dir / "q.onnx");
  auto vec = [](const Model& m, const std::string& n) { return m.graph.initializer(n)->to_float(); };
  const auto w = vec(f, "w1"), wq = vec(q, "w1"), b = vec(f, "b1"), bq = vec(q, "b1");
  const auto xs = x.to_float();
  std::vector<double> mu(32, 0.0);
  for (int64_t s = 0; s < 64; ++s)
    for (int64_t k = 0; k < 32; ++k) mu[k] += xs[s * 32 + k] / 64.0;
  double shift = 0, residual = 0;
  for (int64_t n = 0; n < 256; ++n) {
    double y = b[n], yq = bq[n], yq0 = b[n];
    for (int64_t k = 0; k < 32; ++k) y += mu[k] * w[k * 256 + n], yq += mu[k] * wq[k * 256 + n], yq0 += mu[k] * wq[k * 256 + n];
    shift = std::max(shift, std::abs(yq0 - y));
    residual = std::max(residual, std::abs(yq - y));
  }
  INFO("max |E[ŷ] − E[y]| without correction " << shift << ", with " << residual);
  CHECK(shift > 1e-3);
  CHECK(residual < 1e-5);
}

TEST_CASE("bits are what the file stores: unsupported widths are refused, reports count containers", "[quant][cli]") {
  fs::path dir = temp_dir("quant_widths");
  save_model(quant_mlp(72), dir / "mlp.onnx");
  const std::string mlp = (dir / "mlp.onnx").string(), out = (dir / "x.onnx").string();
  for (auto args : std::vector<std::vector<std::string>>{{"--bits", "7"},
                                                         {"--bits", "3", "--format", "matmulnbits"},
                                                         {"--bits", "2", "--format", "qdq"},
                                                         {"--avg-bits", "4", "--widths", "8,6,4"}}) {
    std::vector<std::string> a = {"quantize", mlp, "-o", out};
    a.insert(a.end(), args.begin(), args.end());
    auto r = run_cli(a);
    INFO(r.out);
    CHECK(r.rc == 2);
    CHECK(r.out.find("stores") != std::string::npos);
    CHECK(std::count(r.out.begin(), r.out.end(), '\n') <= 1);
    CHECK(!fs::exists(out));
  }
  // A 3-bit average over MatMulNBits: every layer's reported bits is its node's `bits`
  // attribute, and the average is computed from those.
  auto r = run_cli({"quantize", mlp, "-o", out, "--avg-bits", "3", "--format", "matmulnbits", "--no-protect", "--report",
                    (dir / "r.json").string()});
  INFO(r.out);
  REQUIRE(r.rc == 0);
  const nlohmann::json d = first_step_details(dir / "r.json");
  Model q = load_model(out);
  std::map<std::string, int64_t> file_bits;
  for (const auto& n : q.graph.nodes)
    if (n.op_type == "MatMulNBits") file_bits[n.name] = n.attr_int("bits", 0);
    else if (n.op_type == "MatMulInteger") file_bits[n.name] = 8;  // 8-bit layers: dynamic W8A8, int8 weights
  double sum = 0, params = 0;
  std::set<int> seen;
  for (const auto& l : d["layers"]) {
    const int b = l["bits"].get<int>();
    CHECK(b == file_bits.at(l["node"].get<std::string>()));
    CHECK(b == l["storage_bits"].get<int>());
    seen.insert(b);
    const double p = l["shape"][0].get<double>() * l["shape"][1].get<double>();
    sum += b * p, params += p;
  }
  CHECK(seen.size() >= 2);  // 3 on average is a mix of stored widths
  CHECK(d["avg_bits"].get<double>() == Approx(sum / params));
  CHECK(d["avg_bits"].get<double>() <= 3.0);
}

TEST_CASE("with --calib and no method flags quantize uses the documented data-aware default", "[quant][cli]") {
  fs::path dir = temp_dir("quant_default");
  save_model(quant_mlp(73), dir / "mlp.onnx");
  const std::string mlp = (dir / "mlp.onnx").string();
  auto run = [&](std::vector<std::string> extra) {
    std::vector<std::string> a = {"quantize", mlp, "-o", (dir / "x.onnx").string(), "--bits", "4", "--format", "matmulnbits",
                                  "--report", (dir / "r.json").string()};
    a.insert(a.end(), extra.begin(), extra.end());
    auto r = run_cli(a);
    INFO(r.out);
    REQUIRE(r.rc == 0);
    return std::make_pair(r.out, first_step_details(dir / "r.json"));
  };
  auto [out, d] = run({"--calib", "random:32:4"});
  CHECK(out.find("method: gptq, bias correction on ") != std::string::npos);
  CHECK(out.find("(default with --calib)") != std::string::npos);
  CHECK(d["method"].get<std::string>().find("(default with --calib)") != std::string::npos);
  for (const auto& l : d["layers"])
    CHECK(l["method"] == "gptq");
  auto [out2, d2] = run({});
  CHECK(out2.find("method: rtn") != std::string::npos);
  auto [out3, d3] = run({"--calib", "random:32:4", "--method", "mse"});
  CHECK(d3["method"] == "mse");
}
