// Data-free pruning statistics (prune/moments.h) and the default method (docs/PRUNING.md,
// "Default method"): the moments are the closed form, folding a removed channel's predicted mean
// into the consumer's bias makes the pruned output's mean exact where the model's activations
// really are the BatchNorm Gaussians, and the step picks the documented method with and without
// calibration data.
#include <catch2/catch.hpp>

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>

#include "compressor/pipeline.h"
#include "engine/executor.h"
#include "engine/npy.h"
#include "graph/normalize.h"
#include "graph/onnx_io.h"
#include "prune/moments.h"
#include "prune/prune.h"
#include "support.h"

using namespace oc;
using namespace oc::test;

namespace {

// x [N,8,1,1] -> conv a (diagonal d_c) -> BatchNorm (γ, β; running mean 0, var 1) -> Relu -> conv b
// [4, 8] (+ bias) -> y. With x_c ~ N(0, 1/d_c²) the BatchNorm output is exactly N(β_c, γ_c²).
const std::vector<float> kD = {1.0f, 1.1f, 1.2f, 1.3f, 1.4f, 1.5f, 1.6f, 1.7f};
Model conv_bn_relu_conv() {
  Model m = new_model(13);
  Graph& g = m.graph;
  g.inputs.push_back(tensor_value("x", {-1, 8, 1, 1}));
  std::vector<float> wa(64, 0.f), gamma, beta, wb;
  for (int c = 0; c < 8; ++c) {
    wa[c * 8 + c] = kD[c];
    gamma.push_back(0.5f + 0.1f * c);
    beta.push_back(0.8f - 0.15f * c);  // channels with clearly nonzero post-ReLU means
  }
  for (int o = 0; o < 4; ++o)
    for (int c = 0; c < 8; ++c) wb.push_back(0.3f + 0.1f * static_cast<float>((o + c) % 5));
  g.add_initializer(Tensor::from_float("wa", {8, 8, 1, 1}, wa));
  g.add_initializer(Tensor::from_float("bn.s", {8}, gamma));
  g.add_initializer(Tensor::from_float("bn.b", {8}, beta));
  g.add_initializer(Tensor::from_float("bn.m", {8}, std::vector<float>(8, 0.f)));
  g.add_initializer(Tensor::from_float("bn.v", {8}, std::vector<float>(8, 1.f)));
  g.add_initializer(Tensor::from_float("wb", {4, 8, 1, 1}, wb));
  g.add_initializer(Tensor::from_float("bb", {4}, {0.1f, -0.2f, 0.f, 0.3f}));
  g.add_node(make_node("Conv", {"x", "wa"}, {"a"}, "conv_a"));
  g.add_node(make_node("BatchNormalization", {"a", "bn.s", "bn.b", "bn.m", "bn.v"}, {"bn"}, "bn"));
  g.add_node(make_node("Relu", {"bn"}, {"r"}, "relu"));
  g.add_node(make_node("Conv", {"r", "wb", "bb"}, {"y"}, "conv_b"));
  g.outputs.push_back(tensor_value("y", {-1, 4, 1, 1}));
  normalize(m);
  return m;
}

Tensor gaussian_inputs(int64_t n) {
  std::mt19937_64 rng(7);
  std::normal_distribution<float> z(0.f, 1.f);
  std::vector<float> v(static_cast<size_t>(n * 8));
  for (int64_t i = 0; i < n; ++i)
    for (int c = 0; c < 8; ++c) v[i * 8 + c] = z(rng) / kD[c];
  return Tensor::from_float("x", {n, 8, 1, 1}, v);
}

std::vector<float> run_y(const Model& m, const Tensor& x) {
  Executor ex(m);
  return ex.run({{"x", x}}).at("y").to_float();
}

}  // namespace

TEST_CASE("relu moments of a Gaussian are the closed form", "[prune][datafree]") {
  auto [e1, e2] = relu_moments(0.0, 1.0);
  CHECK(e1 == Approx(1.0 / std::sqrt(2 * 3.14159265358979)).epsilon(1e-9));
  CHECK(e2 == Approx(0.5).epsilon(1e-9));
  // Against sampling at an offset mean.
  std::mt19937_64 rng(3);
  std::normal_distribution<double> z(0.7, 1.5);
  double s1 = 0, s2 = 0;
  const int n = 400000;
  for (int i = 0; i < n; ++i) {
    double y = std::max(z(rng), 0.0);
    s1 += y;
    s2 += y * y;
  }
  auto [m1, m2] = relu_moments(0.7, 2.25);
  CHECK(m1 == Approx(s1 / n).epsilon(0.01));
  CHECK(m2 == Approx(s2 / n).epsilon(0.01));
}

TEST_CASE("data-free compensation from BatchNorm statistics keeps the output mean exact", "[prune][datafree]") {
  Model orig = conv_bn_relu_conv();
  auto mo = predict_channel_moments(orig);
  REQUIRE(mo.count("r"));
  REQUIRE(mo.at("r").mean.size() == 8);
  PruneOptions o;
  o.criterion = Criterion::L2;
  o.ratio = 0.5;
  o.round_to = 1;
  Model plain = orig, comp = orig;
  prune_model(plain, o);
  o.compensate = true;
  CalibrationStats st = moment_statistics(comp, prune_calibration_plan(comp, o));
  REQUIRE(st.grams.count("conv_b"));
  PruneReport rep = prune_model(comp, o, &st);
  CHECK(rep.layers_compensated == 1);
  REQUIRE(comp.graph.initializer("wb")->dims[1] == 4);

  const int64_t n = 20000;
  Tensor x = gaussian_inputs(n);
  auto y0 = run_y(orig, x), ya = run_y(plain, x), yb = run_y(comp, x);
  double mse_a = 0, mse_b = 0;
  for (int o2 = 0; o2 < 4; ++o2) {
    double m0 = 0, ma = 0, mb = 0;
    for (int64_t i = 0; i < n; ++i) {
      m0 += y0[i * 4 + o2] / n;
      ma += ya[i * 4 + o2] / n;
      mb += yb[i * 4 + o2] / n;
    }
    INFO("output " << o2 << ": original mean " << m0 << ", pruned " << ma << ", compensated " << mb);
    CHECK(std::fabs(ma - m0) > 0.3);   // the removed channels carried a real mean
    CHECK(std::fabs(mb - m0) < 0.02);  // folded into the bias (sampling error ~0.005)
  }
  for (int64_t i = 0; i < n * 4; ++i) {
    mse_a += (ya[i] - y0[i]) * (ya[i] - y0[i]);
    mse_b += (yb[i] - y0[i]) * (yb[i] - y0[i]);
  }
  CHECK(mse_b < 0.5 * mse_a);
}

TEST_CASE("prune defaults: measured data-aware method with --calib, BatchNorm statistics without", "[prune][datafree][pipeline]") {
  Recipe recipe = parse_recipe(nlohmann::json::parse(R"({"name": "p", "steps": [{"prune": {"ratio": 0.5, "round-to": 1}}]})"));
  auto method = [&](const Model& m, const std::string& calib) {
    PipelineOptions opt;
    opt.calib_spec = calib;
    opt.eval_on_calib = false;
    PipelineResult r = run_pipeline(m, recipe, opt);
    return r.report.steps.at(0)["details"].value("method", "");
  };
  std::string with = method(small_cnn(), "random:8:2");
  INFO(with);
  CHECK_THAT(with, Catch::StartsWith("obs (with sequential compensation): data-aware default"));
  std::string without = method(small_cnn(), "");
  INFO(without);
  CHECK_THAT(without, Catch::StartsWith("obs-diag (with compensation) + BatchNorm statistics corrected: data-free default"));
  CHECK_THAT(without, Catch::Contains("BatchNorm"));
  std::string no_bn_calib = method(attention_block(), "random:8:2");
  INFO(no_bn_calib);
  CHECK_THAT(no_bn_calib, Catch::StartsWith("cfsp + sequential compensation (structured OBS inside blocks): data-aware default"));
  std::string no_bn = method(attention_block(), "");
  INFO(no_bn);
  CHECK_THAT(no_bn, Catch::StartsWith("l1: data-free default"));
}

TEST_CASE("fashion_cnn at half the MACs without calibration data keeps most of its accuracy", "[prune][datafree][cli]") {
  const fs::path src = source_path("models/fashion_cnn/model.onnx");
  fs::path dir = temp_dir("prune_datafree");
  auto r = run_cli({"prune", src.string(), "-o", (dir / "p.onnx").string(), "--target-macs", "0.5"});
  INFO(r.out);
  REQUIRE(r.rc == 0);
  CHECK_THAT(r.out, Catch::Contains("method: obs-diag (with compensation) + BatchNorm statistics corrected: data-free default"));
  auto l1 = run_cli({"prune", src.string(), "-o", (dir / "l1.onnx").string(), "--target-macs", "0.5", "--criterion", "l1"});
  REQUIRE(l1.rc == 0);
  const int64_t n = 300;
  Tensor x = first_rows(read_npy(source_path("models/fashion_cnn/test_x.npy")), n);
  auto y = read_npy(source_path("models/fashion_cnn/test_y.npy")).to_int64();
  auto acc = [&](const fs::path& p) {
    auto logits = run_ort(p, {{"x", x}}).at("logits").to_float();
    int ok = 0;
    for (int64_t i = 0; i < n; ++i) {
      int best = 0;
      for (int k = 1; k < 10; ++k)
        if (logits[i * 10 + k] > logits[i * 10 + best]) best = k;
      ok += best == y[i];
    }
    return static_cast<double>(ok) / static_cast<double>(n);
  };
  double a = acc(dir / "p.onnx"), b = acc(dir / "l1.onnx");
  INFO("data-free default " << a << ", l1 " << b);
  CHECK(a >= 0.6);
  CHECK(a > b + 0.2);
  agree_with_ort(load_model(dir / "p.onnx"), {{"x", first_rows(x, 8)}});
}

TEST_CASE("prune defaults with a MAC target: structured OBS, sequential compensation, sensitivity allocation", "[prune][datafree][pipeline]") {
  // docs/PRUNING.md "Default method": with --calib and a MAC/param target every model gets
  // structured OBS selection, sequential reconstruction and allocation by measured sensitivity,
  // probed at kDefaultSensitivityRatios.
  // Targets on the models' own steps: small_cnn's one group of 8 keeps 5 channels at 0.45 of the
  // MACs, attention_block one of its 2 heads at 0.5.
  auto details = [&](const Model& m, double target) {
    Recipe recipe = parse_recipe({{"name", "p"}, {"steps", {{{"prune", {{"target-macs", target}, {"round-to", 1}, {"heads", true}}}}}}});
    PipelineOptions opt;
    opt.calib_spec = "random:8:2";
    opt.eval_on_calib = false;
    PipelineResult r = run_pipeline(m, recipe, opt);
    return r.report.steps.at(0)["details"];
  };
  for (bool bn : {false, true}) {
    const nlohmann::json d = bn ? details(small_cnn(), 0.45) : details(attention_block(), 0.5);
    const std::string method = d.value("method", "");
    INFO(method);
    CHECK_THAT(method, Catch::StartsWith("obs (with sequential compensation), allocation by measured sensitivity: data-aware default"));
    CHECK_THAT(method, Catch::Contains(bn ? "a BatchNorm model" : "no BatchNorm"));
    CHECK(d.value("allocation", "") == "sensitivity");
    CHECK(d.value("reconstruction_passes", 0) >= 1);
    // Every prunable group probed at each default ratio.
    REQUIRE(d.contains("sensitivity"));
    int probed = 0;
    for (const auto& g : d["sensitivity"]) {
      if (g.size() != kDefaultSensitivityRatios.size()) continue;
      bool any = false;
      for (const auto& s : g) any |= s.get<double>() > 0;
      probed += any;
    }
    CHECK(probed >= 1);
    CHECK(d["target"].value("status", "") == "met");
    // Where the time went: every phase this default runs, each non-negative, together no more
    // than the step's own seconds (calibration is timed by the step, the rest inside prune_model).
    REQUIRE(d.contains("phase_seconds"));
    double sum = 0;
    for (const char* phase : {"calibration", "scoring", "sensitivity", "allocation", "rewrite", "reconstruction"}) {
      INFO(phase);
      REQUIRE(d["phase_seconds"].contains(phase));
      CHECK(d["phase_seconds"][phase].get<double>() >= 0);
      sum += d["phase_seconds"][phase].get<double>();
    }
    CHECK(d["phase_seconds"].size() == 6);
    CHECK(sum <= d.value("seconds", 0.0) + d["phase_seconds"]["calibration"].get<double>() + 0.05);
  }
}

TEST_CASE("prune --sensitivity-ratios: the probed ratios are the ones given, bad lists refused in one line", "[prune][datafree][cli]") {
  fs::path dir = temp_dir("sens_ratios");
  save_model(small_cnn(5), dir / "m.onnx");
  auto run = [&](const std::string& ratios) {
    return run_cli({"prune", (dir / "m.onnx").string(), "-o", (dir / "p.onnx").string(), "--target-macs", "0.45", "--round-to", "1",
                    "--calib", "random:8:3", "--sensitivity-ratios", ratios, "--report", (dir / "r.json").string()});
  };
  auto ok = run("0.2,0.6");
  INFO(ok.out);
  REQUIRE(ok.rc == 0);
  std::ifstream report(dir / "r.json");
  const auto j = nlohmann::json::parse(report);
  for (const auto& g : j["steps"][0]["details"]["sensitivity"]) CHECK(g.size() == 2);
  fs::remove(dir / "p.onnx");
  for (const char* bad : {"0.5,0.25", "0.5,1.5", "0,0.5", "x"}) {
    auto r = run(bad);
    INFO(bad << ": " << r.out);
    CHECK(r.rc == 2);
    CHECK_THAT(r.out, Catch::Contains("--sensitivity-ratios takes increasing fractions in (0, 1)"));
    CHECK(std::count(r.out.begin(), r.out.end(), '\n') == 1);
    CHECK_FALSE(fs::exists(dir / "p.onnx"));
  }
}
