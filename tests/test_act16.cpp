// --act16 N: static W8A8 with the N activations that cost the most measured output fidelity stored as
// uint16 QuantizeLinear/DequantizeLinear at opset 21 (quantize/act16.h).
#include <catch2/catch.hpp>

#include <algorithm>
#include <array>
#include <fstream>

#include <nlohmann/json.hpp>

#include "engine/executor.h"
#include "engine/npy.h"
#include "graph/onnx_io.h"
#include "quantize/deploy_check.h"
#include "support.h"

using namespace oc;
using namespace oc::test;

namespace {

// ‖a − b‖² / ‖b‖².
double relative_sq_error(const Tensor& a, const Tensor& b) {
  const auto x = a.to_float(), y = b.to_float();
  double num = 0, den = 0;
  for (size_t i = 0; i < y.size(); ++i) num += double(x[i] - y[i]) * (x[i] - y[i]), den += double(y[i]) * y[i];
  return num / den;
}

// Activations the file stores as uint16: the inputs of QuantizeLinear nodes with a uint16 zero point.
std::vector<std::string> uint16_activations(const Model& m) {
  std::vector<std::string> out;
  for (const auto& n : m.graph.nodes)
    if (n.op_type == "QuantizeLinear" && n.inputs.size() > 2)
      if (const Tensor* z = m.graph.initializer(n.inputs[2]); z && z->dtype == DType::UInt16) out.push_back(n.input(0));
  return out;
}

// Three Convs; the first writes one channel 300 times larger than the other seven, which the second
// does not read (its weights there are 0: an outlier channel that carries little). At 8 bits per
// tensor the seven small channels of the first Conv's output get a few codes each; at 16 bits 256
// times more.
Model outlier_cnn() {
  Model m = new_model(13);
  Graph& g = m.graph;
  std::mt19937_64 rng(5);
  g.inputs.push_back(tensor_value("x", {1, 4, 8, 8}));
  add_gaussian_initializer(g, rng, "w1", {8, 4, 3, 3}, 0.2f);
  add_gaussian_initializer(g, rng, "w2", {8, 8, 3, 3}, 0.12f);
  add_gaussian_initializer(g, rng, "w3", {4, 8, 3, 3}, 0.12f);
  for (const char* b : {"b1", "b2"}) add_gaussian_initializer(g, rng, b, {8}, 0.1f);
  add_gaussian_initializer(g, rng, "b3", {4}, 0.1f);
  auto scale = [&](const std::string& name, int64_t inner, int64_t block, int64_t channel, float by) {
    const Tensor* t = g.initializer(name);
    std::vector<float> v = t->to_float();
    const std::vector<int64_t> dims = t->dims;
    for (size_t i = 0; i < v.size(); ++i)
      if (static_cast<int64_t>(i) / inner % block == channel) v[i] *= by;
    g.add_initializer(Tensor::from_float(name, dims, v));
  };
  scale("w1", 4 * 9, 8, 0, 300.f);   // output channel 0 of the first Conv
  scale("w2", 9, 8, 0, 0.f);         // input channel 0 of the second
  // 3x3 kernels: 36-72 MACs per output element, above the thin-region rule's 32 (static_qdq.h).
  const std::vector<std::array<std::string, 4>> convs = {
      {"x", "w1", "b1", "y1"}, {"y1", "w2", "b2", "y2"}, {"y2", "w3", "b3", "y"}};
  for (size_t i = 0; i < convs.size(); ++i) {
    const auto& [in, w, b, out] = convs[i];
    Node c = make_node("Conv", {in, w, b}, {out}, "conv" + std::to_string(i + 1));
    c.set_attr_ints("pads", {1, 1, 1, 1});
    g.nodes.push_back(c);
  }
  g.outputs.push_back(tensor_value("y", {1, 4, 8, 8}));
  return m;
}

}  // namespace

TEST_CASE("act16 picks the activation whose 8 bits hurt: uint16 in the file, ORT runs it, output error drops",
          "[act16][static_qdq]") {
  const fs::path dir = temp_dir("act16_outlier");
  save_model(outlier_cnn(), dir / "f.onnx");
  auto quantize = [&](const std::string& out, const std::string& act16) {
    auto r = run_cli({"quantize", (dir / "f.onnx").string(), "-o", (dir / out).string(), "--bits", "8", "--activations",
                      "int8", "--calib", "random:32:7", "--act16", act16, "--report", (dir / (out + ".json")).string()});
    INFO(r.out);
    REQUIRE(r.rc == 0);
    return r.out;
  };
  quantize("q8.onnx", "none");
  const std::string out = quantize("q16.onnx", "1");
  CHECK_THAT(out, Catch::Contains("activations at 16 bits"));
  const Model q16 = load_model(dir / "q16.onnx"), q8 = load_model(dir / "q8.onnx");
  // The measured choice is the outlier tensor, stored as uint16 (opset 21); nothing else is.
  CHECK(uint16_activations(q16) == std::vector<std::string>{"y1"});
  CHECK(uint16_activations(q8).empty());
  CHECK(q16.opset() >= 21);
  std::ifstream f(dir / "q16.onnx.json");
  const nlohmann::json act16 = nlohmann::json::parse(f)["steps"][0]["details"]["act16"];
  CHECK(act16["tensors"] == nlohmann::json::array({"y1"}));
  CHECK(act16["output_error_chosen"].get<double>() < 0.1 * act16["output_error_all_8bit"].get<double>());
  // The deployment check: conv1 (writes it) and conv2 (reads it) run in float in ORT (conv3 writes
  // the graph output and is float either way).
  const quant::DeployCheck d16 = quant::check_deployment(q16), d8 = quant::check_deployment(q8);
  CHECK(d16.wide_activations == std::vector<std::string>{"y1"});
  CHECK(d16.unfused.size() == 2);
  for (const auto& u : d16.unfused) CHECK_THAT(u.why, Catch::Contains("16-bit"));
  CHECK(d16.integer_layers.size() + 2 == d8.integer_layers.size());
  // In ONNX Runtime, against the float model on new inputs.
  const std::map<std::string, Tensor> in{{"x", random_tensor("x", {1, 4, 8, 8}, 91, 0.f, 1.f)}};
  const Tensor ref = run_ort(dir / "f.onnx", in).at("y");
  const double e8 = relative_sq_error(run_ort(dir / "q8.onnx", in).at("y"), ref);
  const double e16 = relative_sq_error(run_ort(dir / "q16.onnx", in).at("y"), ref);
  INFO("ORT output error vs float: all-8-bit " << e8 << ", y1 at 16 bits " << e16);
  CHECK(e16 < 0.1 * e8);
  // Our executor runs the uint16 Q/DQ as ORT does.
  agree_with_ort(q16, in, 1e-2);
}

TEST_CASE("act16 on fashion_cnn: the chosen tensors are uint16 in the file, ORT runs it, accuracy kept",
          "[act16][static_qdq]") {
  const fs::path dir = temp_dir("act16_fashion");
  const fs::path model = source_path("models/fashion_cnn/model.onnx");
  auto r = run_cli({"quantize", model.string(), "-o", (dir / "q16.onnx").string(), "--bits", "8", "--activations", "int8",
                    "--calib", source_path("models/fashion_cnn/calib.npy").string(), "--calib-samples", "128",
                    "--act16", "2", "--report", (dir / "r.json").string()});
  INFO(r.out);
  REQUIRE(r.rc == 0);
  std::ifstream f(dir / "r.json");
  const nlohmann::json act16 = nlohmann::json::parse(f)["steps"][0]["details"]["act16"];
  auto chosen = act16.at("tensors").get<std::vector<std::string>>();
  REQUIRE(!chosen.empty());
  CHECK(chosen.size() <= 2);
  CHECK(act16.at("output_error_chosen").get<double>() < act16.at("output_error_all_8bit").get<double>());
  const Model q16 = load_model(dir / "q16.onnx");
  // Each chosen tensor is uint16 in the file; so may be the pass-through outputs tied to it (a
  // Flatten after a pool shares its input's parameters), and nothing else.
  const auto wide = uint16_activations(q16);
  for (const auto& c : chosen) CHECK(std::count(wide.begin(), wide.end(), c) == 1);
  for (const auto& v : wide) {
    const int p = q16.graph.producer(v);
    const bool tied = p >= 0 && q16.graph.nodes[p].op_type != "Conv" && q16.graph.nodes[p].op_type != "MatMul" &&
                      !q16.graph.nodes[p].inputs.empty() && q16.graph.producer(q16.graph.nodes[p].input(0)) >= 0 &&
                      q16.graph.nodes[q16.graph.producer(q16.graph.nodes[p].input(0))].op_type == "DequantizeLinear";
    CHECK((std::count(chosen.begin(), chosen.end(), v) == 1 || tied));
  }
  const quant::DeployCheck d = quant::check_deployment(q16);
  CHECK(d.wide_activations == wide);
  CHECK(d.integer_layers.size() < static_cast<size_t>(d.compute_layers));
  const Tensor x = read_npy(source_path("models/fashion_cnn/test_x.npy"));
  const Tensor y = read_npy(source_path("models/fashion_cnn/test_y.npy"));
  const double a16 = top1_accuracy(run_ort(dir / "q16.onnx", {{"x", x}}).at("logits"), y);
  INFO("ORT accuracy with " << chosen.size() << " tensors at 16 bits: " << a16);
  CHECK(a16 > 0.9);
}

TEST_CASE("bad --act16 values are refused in one line without an output file", "[act16][cli]") {
  const fs::path dir = temp_dir("act16_bad");
  const fs::path model = source_path("models/fashion_cnn/model.onnx");
  const std::string calib = source_path("models/fashion_cnn/calib.npy").string();
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases = {
      {{"--activations", "int8", "--calib", calib, "--act16", "-1"}, "--act16 expects"},
      {{"--activations", "int8", "--calib", calib, "--act16", "two"}, "--act16 expects"},
      {{"--activations", "int8", "--calib", calib, "--act16", "2x"}, "--act16 expects"},
      {{"--act16", "2"}, "--act16 needs --activations int8"},
  };
  for (const auto& [extra, message] : cases) {
    const fs::path out = dir / "q.onnx";
    std::vector<std::string> args = {"quantize", model.string(), "-o", out.string(), "--bits", "8"};
    args.insert(args.end(), extra.begin(), extra.end());
    auto r = run_cli(args);
    INFO(r.out);
    CHECK(r.rc != 0);
    CHECK_THAT(r.out, Catch::Contains(message));
    std::string trimmed = r.out;
    while (!trimmed.empty() && trimmed.back() == '\n') trimmed.pop_back();
    CHECK(trimmed.find('\n') == std::string::npos);
    CHECK(!fs::exists(out));
  }
}
