// evaluate: fidelity metrics between a reference and a candidate model on data.
#include <catch2/catch.hpp>

#include <nlohmann/json.hpp>

#include "compressor/evaluate.h"
#include "engine/npy.h"
#include "graph/onnx_io.h"
#include "support.h"

using namespace oc;
using namespace oc::test;

TEST_CASE("evaluate: identical models agree fully, perturbed ones measurably less", "[evaluate]") {
  Model ref = small_cnn();
  Model noisy = small_cnn();
  Tensor* w = noisy.graph.initializer("fc.w");
  REQUIRE(w);
  auto v = w->to_float();
  auto noise = random_floats(v.size(), 99, -0.05f, 0.05f);
  for (size_t i = 0; i < v.size(); ++i) v[i] += noise[i];
  *w = Tensor::from_float("fc.w", w->dims, v);
  EvaluateOptions eo;
  eo.data_spec = "random:24:3";
  eo.batch_size = 8;
  EvaluateResult same = evaluate_models(ref, ref, eo);
  CHECK(same.samples == 24);
  CHECK(same.outputs.at("y").cosine == Approx(1.0));
  CHECK(same.outputs.at("y").top1_agreement == 1.0);
  CHECK(same.outputs.at("y").max_abs == 0.0);
  EvaluateResult diff = evaluate_models(ref, noisy, eo);
  const auto& f = diff.outputs.at("y");
  CHECK(f.cosine < 0.99999);
  CHECK(f.cosine > 0.5);
  CHECK(f.sqnr_db < 100);
  CHECK(f.max_abs > 0);
  CHECK(f.rows == 24);
}

TEST_CASE("evaluate CLI reports accuracy against labels", "[evaluate][cli]") {
  fs::path dir = temp_dir("eval");
  Model ref = small_cnn();
  save_model(ref, dir / "ref.onnx");
  // Labels = the reference's own predictions, so its accuracy is 100% by construction.
  auto x = random_floats(6 * 3 * 16 * 16, 5);
  Tensor xt = Tensor::from_float("x", {6, 3, 16, 16}, x);
  write_npy(dir / "x.npy", xt);
  std::vector<int64_t> labels;
  for (int i = 0; i < 6; ++i) {
    Tensor one = Tensor::from_float("x", {1, 3, 16, 16}, std::vector<float>(x.begin() + i * 768, x.begin() + (i + 1) * 768));
    auto out = run_ort(dir / "ref.onnx", {{"x", one}}).at("y").to_float();
    labels.push_back(std::max_element(out.begin(), out.end()) - out.begin());
  }
  write_npy(dir / "y.npy", Tensor::from_int64("y", {6}, labels));
  auto r = run_cli({"evaluate", (dir / "ref.onnx").string(), (dir / "ref.onnx").string(), "--data",
                    (dir / "x.npy").string(), "--labels", (dir / "y.npy").string(), "--batch-size", "4", "--json"});
  REQUIRE(r.rc == 0);
  auto j = nlohmann::json::parse(r.out);
  CHECK(j["accuracy"]["reference"].get<double>() == 1.0);
  CHECK(j["samples"] == 6);
  auto bad = run_cli({"evaluate", (dir / "ref.onnx").string(), (dir / "ref.onnx").string(), "--data", "random:2",
                      "--labels", (dir / "missing.npy").string()});
  CHECK(bad.rc != 0);
}
