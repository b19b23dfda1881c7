// evaluate: fidelity metrics between a reference and a candidate model on data.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <fstream>
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

namespace {

std::vector<int64_t> argmax_rows(const std::vector<float>& v, int64_t classes) {
  std::vector<int64_t> out;
  for (size_t r = 0; r * classes < v.size(); ++r)
    out.push_back(std::max_element(v.begin() + r * classes, v.begin() + (r + 1) * classes) - (v.begin() + r * classes));
  return out;
}

}  // namespace

TEST_CASE("evaluate: metrics equal a direct computation from both models' ONNX Runtime outputs", "[evaluate][ort]") {
  // fashion_cnn against a copy with noise on its classifier, on 40 test images in batches of 16
  // (the last one partial): every number evaluate reports is recomputed here from the two
  // models' outputs in ONNX Runtime.
  fs::path dir = temp_dir("eval_direct");
  const fs::path ref_path = source_path("models/fashion_cnn/model.onnx");
  Model cand = load_model(ref_path);
  Tensor* w = nullptr;
  for (auto& t : cand.graph.initializers)
    if (t.dtype == DType::Float && t.dims.size() == 2 && (!w || t.numel() > w->numel())) w = &t;
  REQUIRE(w);
  auto v = w->to_float();
  float scale = 0;
  for (float x : v) scale = std::max(scale, std::fabs(x));
  auto noise = random_floats(v.size(), 7, -scale, scale);
  for (size_t i = 0; i < v.size(); ++i) v[i] += 0.8f * noise[i];
  *w = Tensor::from_float(w->name, w->dims, v);
  save_model(cand, dir / "cand.onnx");
  const int64_t n = 40;
  Tensor x = first_rows(read_npy(source_path("models/fashion_cnn/test_x.npy")), n);
  x.name = "x";
  write_npy(dir / "x.npy", x);
  auto ra = run_ort(ref_path, {{"x", x}}).at("logits").to_float();
  auto rb = run_ort(dir / "cand.onnx", {{"x", x}}).at("logits").to_float();
  REQUIRE(ra.size() == static_cast<size_t>(n * 10));
  double dot = 0, aa = 0, bb = 0, err = 0, max_abs = 0;
  for (size_t i = 0; i < ra.size(); ++i) {
    dot += double(ra[i]) * rb[i];
    aa += double(ra[i]) * ra[i];
    bb += double(rb[i]) * rb[i];
    err += (double(ra[i]) - rb[i]) * (double(ra[i]) - rb[i]);
    max_abs = std::max(max_abs, std::fabs(double(ra[i]) - rb[i]));
  }
  const double cosine = dot / std::sqrt(aa * bb), sqnr = 10 * std::log10(aa / err);
  auto pa = argmax_rows(ra, 10), pb = argmax_rows(rb, 10);
  int64_t agree = 0;
  for (int64_t i = 0; i < n; ++i) agree += pa[i] == pb[i];
  INFO("direct: cosine " << cosine << ", SQNR " << sqnr << " dB, max abs " << max_abs << ", agree " << agree);
  REQUIRE(cosine < 0.999);  // the noise is visible
  REQUIRE(agree < n);
  REQUIRE(agree > n / 2);
  // Labels: the reference's predictions with exactly 7 changed, of which the candidate gets
  // some right: accuracy counts are exact, not "close to the reference's own".
  std::vector<int64_t> labels = pa;
  for (int64_t i = 0; i < 7; ++i) labels[i * 5] = (pa[i * 5] + 1 + i % 3) % 10;
  int64_t cand_correct = 0;
  for (int64_t i = 0; i < n; ++i) cand_correct += pb[i] == labels[i];
  write_npy(dir / "y.npy", Tensor::from_int64("y", {n}, labels));

  EvaluateOptions eo;
  eo.data_spec = (dir / "x.npy").string();
  eo.labels_path = (dir / "y.npy").string();
  eo.batch_size = 16;
  EvaluateResult r = evaluate_models(load_model(ref_path), cand, eo);
  CHECK(r.samples == n);
  const auto& f = r.outputs.at("logits");
  CHECK(f.cosine == Approx(cosine).margin(1e-5));
  CHECK(f.sqnr_db == Approx(sqnr).margin(0.01));
  CHECK(f.max_abs == Approx(max_abs).epsilon(1e-3));
  CHECK(f.rows == n);
  CHECK(f.top1_agreement == Approx(static_cast<double>(agree) / n));
  REQUIRE(r.accuracy_reference);
  CHECK(*r.accuracy_reference == Approx(33.0 / 40));
  CHECK(*r.accuracy_candidate == Approx(static_cast<double>(cand_correct) / n));

  // The CLI prints the same numbers.
  auto cli = run_cli({"evaluate", ref_path.string(), (dir / "cand.onnx").string(), "--data", (dir / "x.npy").string(),
                      "--labels", (dir / "y.npy").string(), "--batch-size", "16", "--json"});
  INFO(cli.out);
  REQUIRE(cli.rc == 0);
  auto j = nlohmann::json::parse(cli.out);
  CHECK(j["accuracy"]["reference"].get<double>() == Approx(33.0 / 40));
  CHECK(j["accuracy"]["candidate"].get<double>() == Approx(static_cast<double>(cand_correct) / n));
  CHECK(j["fidelity"]["logits"]["cosine"].get<double>() == Approx(cosine).margin(1e-5));
  CHECK(j["fidelity"]["logits"]["sqnr_db"].get<double>() == Approx(sqnr).margin(0.01));
  CHECK(j["fidelity"]["logits"]["top1_agreement"].get<double>() == Approx(static_cast<double>(agree) / n));
}

TEST_CASE("evaluate: accuracy on the fashion_cnn test set equals the trained model's measured accuracy", "[evaluate]") {
  // models/fashion_cnn/metrics.json: 0.92667 on these 1500 images, measured in PyTorch and ONNX
  // Runtime when the model was made.
  nlohmann::json metrics;
  std::ifstream(source_path("models/fashion_cnn/metrics.json")) >> metrics;
  const double want = metrics["test_accuracy_1500"]["ort"].get<double>();
  Model m = load_model(source_path("models/fashion_cnn/model.onnx"));
  EvaluateOptions eo;
  eo.data_spec = source_path("models/fashion_cnn/test_x.npy").string();
  eo.labels_path = source_path("models/fashion_cnn/test_y.npy").string();
  eo.batch_size = 100;
  EvaluateResult r = evaluate_models(m, m, eo);
  CHECK(r.samples == 1500);
  REQUIRE(r.accuracy_reference);
  CHECK(*r.accuracy_reference == Approx(want).margin(0.5 / 1500));
  CHECK(*r.accuracy_candidate == *r.accuracy_reference);
}
