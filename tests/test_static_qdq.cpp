// Static int8 for ONNX Runtime: BatchNorm folding, the QDQ placement ORT fuses, and the deployment
// check, each compared with what ONNX Runtime itself makes of the model (its optimized graph,
// written by tests/node/ort_optimize.js) and with the float model's outputs and accuracy.
#include <catch2/catch.hpp>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <fstream>

#include "compressor/report.h"
#include "engine/executor.h"
#include "engine/npy.h"
#include "graph/fold_batchnorm.h"
#include "graph/normalize.h"
#include "graph/onnx_io.h"
#include "quantize/deploy_check.h"
#include "quantize/gemm_as_matmul.h"
#include "quantize/layout.h"
#include "quantize/stem_space_to_depth.h"
#include "support.h"

using namespace oc;
using namespace oc::test;

namespace {

int count_ops(const Model& m, const std::string& op) {
  int c = 0;
  for (const auto& n : m.graph.nodes) c += n.op_type == op;
  return c;
}

}  // namespace

TEST_CASE("BatchNormalization folds into the Conv before it with the same outputs", "[static_qdq]") {
  Model m = small_cnn(5);
  // A second reader of c1's weight: folding must not change what that reader sees.
  Node extra = make_node("Conv", {"x", "c1.w"}, {"c1_again"});
  extra.set_attr_ints("pads", {1, 1, 1, 1});
  m.graph.add_node(extra);
  m.graph.outputs.push_back(tensor_value("c1_again", {1, 8, 16, 16}));
  // Non-trivial statistics: variance and mean differ per channel.
  m.graph.add_initializer(random_tensor("bn.v", {8}, 9, 0.5f, 2.0f));
  normalize(m);
  std::map<std::string, Tensor> in{{"x", random_tensor("x", {1, 3, 16, 16}, 3)}};
  auto ref = Executor(m).run(in);
  Model f = m;
  CHECK(fold_batchnorms(f) == 1);
  CHECK(count_ops(f, "BatchNormalization") == 0);
  auto got = Executor(f).run(in);
  for (const auto& [name, t] : ref) {
    INFO(name);
    CHECK(max_rel_error(got.at(name), t) < 1e-5);
  }
  // And ONNX Runtime runs the folded graph to the same values.
  agree_with_ort(f, in, 1e-4);
  // A BatchNorm whose input has two readers is not folded (the Conv's raw output is still needed).
  Model shared = small_cnn(5);
  shared.graph.outputs.push_back(tensor_value("c1", {1, 8, 16, 16}));
  normalize(shared);
  CHECK(fold_batchnorms(shared) == 0);
}

TEST_CASE("static int8 small CNN: every Conv, the residual Add and the pool become ORT integer kernels", "[static_qdq]") {
  fs::path dir = temp_dir("sqdq_cnn");
  Model f = small_cnn(61);
  save_model(f, dir / "cnn.onnx");
  auto r = run_cli({"quantize", (dir / "cnn.onnx").string(), "-o", (dir / "q.onnx").string(), "--bits", "8",
                    "--activations", "int8", "--calib", "random:16:3", "--report", (dir / "r.json").string()});
  INFO(r.out);
  REQUIRE(r.rc == 0);
  Model q = load_model(dir / "q.onnx");
  CHECK(count_ops(q, "BatchNormalization") == 0);
  // Every bias that reaches a fused layer is int32.
  for (const auto& n : q.graph.nodes)
    if (n.op_type == "Conv") {
      const int p = q.graph.producer(n.inputs.at(2));
      REQUIRE(p >= 0);
      CHECK(q.graph.initializer(q.graph.nodes[p].input(0))->dtype == DType::Int32);
    }
  // The default activation ranges are the percentile ones (docs/QUANTIZATION.md has the measurements).
  std::ifstream rf(dir / "r.json");
  const nlohmann::json rj = nlohmann::json::parse(rf);
  CHECK(rj["steps"][0]["details"]["activation_qdq"]["calib_method"] == "percentile");
  quant::DeployCheck d = quant::check_deployment(q);
  CHECK(d.compute_layers == 3);
  CHECK(d.integer_ops["QLinearConv"] == 2);
  CHECK(d.weight_only.empty());
  // What ONNX Runtime really did: no float Conv left, the Add and the pool are QLinear ops.
  auto ops = ort_optimized_ops(dir / "q.onnx");
  CHECK(ops["QLinearConv"] == 2);
  CHECK(ops["Conv"] == 0);
  CHECK(ops["QLinearAdd"] == 1);
  CHECK(ops["QLinearGlobalAveragePool"] == 1);
  CHECK(ops["Relu"] == 0);  // both Relus are absorbed by the Q after them
  // Numerically: our executor agrees with ORT on the QDQ model, and both stay near the float model.
  std::map<std::string, Tensor> in{{"x", random_tensor("x", {1, 3, 16, 16}, 77, 0.f, 1.f)}};
  Tensor ref = run_ort(dir / "cnn.onnx", in).at("y");
  auto ours = agree_with_ort(q, in, 2e-2);
  CHECK(max_rel_error(ours.at("y"), ref) < 0.08);
}

TEST_CASE("int8 recipe on fashion_cnn: ORT fuses what the deployment check predicts, accuracy within 0.3 pt", "[static_qdq]") {
  fs::path dir = temp_dir("sqdq_fashion");
  const fs::path model = source_path("models/fashion_cnn/model.onnx");
  // Half the calibration set: 1500 test images resolve 0.07 pt, and at 128 samples the ranges of
  // one draw cost 0.34 pt (64: 0.27, 256: 0.13, 512: 0.20 below float).
  auto r = run_cli({"compress", model.string(), "-o", (dir / "q.onnx").string(), "--recipe", "int8", "--calib",
                    source_path("models/fashion_cnn/calib.npy").string(), "--calib-samples", "256", "--report",
                    (dir / "r.json").string()});
  INFO(r.out);
  REQUIRE(r.rc == 0);
  CHECK_THAT(r.out, Catch::Contains("run as integer kernels"));
  Model q = load_model(dir / "q.onnx");
  quant::DeployCheck d = quant::check_deployment(q);
  auto ops = ort_optimized_ops(dir / "q.onnx");
  // The prediction is the runtime's own count, layer for layer.
  CHECK(d.integer_ops["QLinearConv"] == ops["QLinearConv"]);
  CHECK(ops["Conv"] == 0);
  CHECK(ops["QLinearConv"] == 14);
  CHECK(ops["BatchNormalization"] == 0);
  // The report carries the same check.
  Report rep = read_report(dir / "r.json");
  CHECK(rep.deployment.value("integer_layers", 0) == static_cast<int>(d.integer_layers.size()));
  // Accuracy in ONNX Runtime on the 1500 held-out images.
  Tensor x = read_npy(source_path("models/fashion_cnn/test_x.npy"));
  Tensor y = read_npy(source_path("models/fashion_cnn/test_y.npy"));
  const double a_float = top1_accuracy(run_ort(model, {{"x", x}}).at("logits"), y);
  const double a_int8 = top1_accuracy(run_ort(dir / "q.onnx", {{"x", x}}).at("logits"), y);
  INFO("float " << a_float << ", int8 " << a_int8);
  CHECK(a_float > 0.9);
  CHECK(a_int8 >= a_float - 0.003);
}

TEST_CASE("int8 MatMuls of a transformer run as DynamicQuantizeMatMul, perplexity kept", "[static_qdq]") {
  fs::path dir = temp_dir("sqdq_gpt");
  const fs::path model = source_path("models/gpt_tiny/model.onnx");
  auto r = run_cli({"quantize", model.string(), "-o", (dir / "q.onnx").string(), "--bits", "8", "--activations", "int8",
                    "--calib", source_path("models/gpt_tiny/calib.npy").string(), "--calib-samples", "16"});
  INFO(r.out);
  REQUIRE(r.rc == 0);
  Model q = load_model(dir / "q.onnx");
  quant::DeployCheck d = quant::check_deployment(q);
  auto ops = ort_optimized_ops(dir / "q.onnx");
  // MatMuls reading float activations take ORT's dynamic W8A8 form (static_qdq.h, dynamic_int8_matmuls),
  // which ORT fuses: no MatMulInteger/Cast/Mul left. Q, K and V read one input: ORT merges their three
  // DynamicQuantizeLinear into one and runs them as MatMulIntegerToFloat on its output.
  CHECK(d.integer_ops["DynamicQuantizeMatMul"] == ops["DynamicQuantizeMatMul"] + ops["MatMulIntegerToFloat"]);
  CHECK(ops["DynamicQuantizeMatMul"] >= 12);  // O and two FFN MatMuls in each of 4 layers, and the head
  CHECK(ops["MatMulIntegerToFloat"] >= 12);   // Q, K, V of 4 layers
  CHECK(ops["MatMulInteger"] == 0);
  CHECK(ops["DequantizeLinear"] == 0);       // no weight dequantized at run time
  // Perplexity on held-out windows, float vs int8, in ONNX Runtime.
  Tensor held = read_npy(source_path("models/gpt_tiny/heldout.npy"));
  const int64_t n = 8, t = 128, w = held.dims[1];
  std::vector<int64_t> tokens(n * t), targets(n * t);
  const auto h = held.to_int64();
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < t; ++j) tokens[i * t + j] = h[i * w + j], targets[i * t + j] = h[i * w + j + 1];
  std::map<std::string, Tensor> in{{"tokens", Tensor::from_int64("tokens", {n, t}, tokens)}};
  auto ppl = [&](const fs::path& p) {
    auto logits = run_ort(p, in).at("logits").to_float();
    double nll = 0;
    for (int64_t k = 0; k < n * t; ++k) {
      const float* row = &logits[k * 256];
      double mx = row[0], s = 0;
      for (int c = 1; c < 256; ++c) mx = std::max(mx, static_cast<double>(row[c]));
      for (int c = 0; c < 256; ++c) s += std::exp(row[c] - mx);
      nll += mx + std::log(s) - row[targets[k]];
    }
    return std::exp(nll / static_cast<double>(n * t));
  };
  const double p_float = ppl(model), p_int8 = ppl(dir / "q.onnx");
  INFO("perplexity float " << p_float << ", int8 " << p_int8);
  CHECK(p_float < 8.0);
  CHECK(p_int8 <= p_float * 1.01);
}

TEST_CASE("deployment check flags weight-only QDQ, and int8 without data names w8", "[static_qdq][cli]") {
  fs::path dir = temp_dir("sqdq_w8");
  const fs::path model = source_path("models/fashion_cnn/model.onnx");
  auto r = run_cli({"compress", model.string(), "-o", (dir / "w8.onnx").string(), "--recipe", "w8"});
  INFO(r.out);
  REQUIRE(r.rc == 0);
  quant::DeployCheck d = quant::check_deployment(load_model(dir / "w8.onnx"));
  CHECK(d.integer_layers.empty());
  CHECK(static_cast<int>(d.weight_only.size()) == d.compute_layers);
  auto ins = run_cli({"inspect", (dir / "w8.onnx").string(), "--deploy"});
  CHECK(ins.rc == 0);
  CHECK_THAT(ins.out, Catch::Contains("0 of 15 Conv/MatMul/Gemm layers run as integer kernels"));
  CHECK_THAT(ins.out, Catch::Contains("weight-only DequantizeLinear"));
  auto nocal = run_cli({"compress", model.string(), "-o", (dir / "x.onnx").string(), "--recipe", "int8"});
  CHECK(nocal.rc == 2);
  CHECK_THAT(nocal.out, Catch::Contains("--calib"));
  CHECK_THAT(nocal.out, Catch::Contains("w8"));
  CHECK(!fs::exists(dir / "x.onnx"));
}

TEST_CASE("decomposed HardSwish between Convs runs on uint8: constant Add/Div operands quantized", "[static_qdq]") {
  // x -> Conv -> h = c · clip(c + 3, 0, 6) / 6 -> Conv -> y
  fs::path dir = temp_dir("sqdq_hswish");
  Model m = new_model(13);
  Graph& g = m.graph;
  // 16 and 32 input channels: 144 and 32 MACs per output element, wide enough for int8 to pay
  // (slow_int8_regions keeps thinner convs float).
  g.inputs.push_back(tensor_value("x", {1, 16, 8, 8}));
  g.add_initializer(random_tensor("w1", {32, 16, 3, 3}, 1, -0.2f, 0.2f));
  g.add_initializer(random_tensor("b1", {32}, 2));
  g.add_initializer(random_tensor("w2", {32, 32, 1, 1}, 3, -0.3f, 0.3f));
  g.add_initializer(Tensor::from_float("three", {}, {3.f}));
  g.add_initializer(Tensor::from_float("six", {}, {6.f}));
  g.add_initializer(Tensor::from_float("zero", {}, {0.f}));
  Node c1 = make_node("Conv", {"x", "w1", "b1"}, {"c"}, "conv1");
  c1.set_attr_ints("pads", {1, 1, 1, 1});
  g.add_node(c1);
  g.add_node(make_node("Add", {"c", "three"}, {"a"}));
  g.add_node(make_node("Clip", {"a", "zero", "six"}, {"k"}));
  g.add_node(make_node("Div", {"k", "six"}, {"d"}));
  g.add_node(make_node("Mul", {"c", "d"}, {"h"}));
  g.add_node(make_node("Conv", {"h", "w2"}, {"y"}, "conv2"));
  g.outputs.push_back(tensor_value("y", {1, 32, 8, 8}));
  save_model(m, dir / "hs.onnx");
  auto r = run_cli({"quantize", (dir / "hs.onnx").string(), "-o", (dir / "q.onnx").string(), "--bits", "8",
                    "--activations", "int8", "--calib", "random:16:5"});
  INFO(r.out);
  REQUIRE(r.rc == 0);
  Model q = load_model(dir / "q.onnx");
  CHECK(count_ops(q, "Div") == 0);  // rewritten as Mul by 1/6
  auto ops = ort_optimized_ops(dir / "q.onnx");
  CHECK(ops["QLinearAdd"] == 1);
  CHECK(ops["QLinearMul"] == 2);
  CHECK(ops["Clip"] <= 1);  // after an Add it stays a node (quantize/static_qdq.cpp says why)
  CHECK(ops["Mul"] == 0);
  CHECK(ops["Add"] == 0);
  std::map<std::string, Tensor> in{{"x", random_tensor("x", {1, 16, 8, 8}, 8, 0.f, 1.f)}};
  Tensor ref = run_ort(dir / "hs.onnx", in).at("y");
  auto ours = agree_with_ort(q, in, 2e-2);
  CHECK(max_rel_error(ours.at("y"), ref, 0.05) < 0.1);
}

TEST_CASE("ShuffleNet channel shuffle runs on uint8: QLinearConcat, Reshape/Transpose, Shape reads the codes", "[static_qdq]") {
  // x -> Conv+Relu -> {Conv+Relu, Conv+Relu} -> Concat -> Reshape [1,2,C/2,H,W] -> Transpose(0,2,1,3,4)
  //   -> Reshape to Shape(concat) -> Conv+Relu -> GlobalAveragePool -> y
  fs::path dir = temp_dir("sqdq_shuffle");
  Model m = new_model(13);
  Graph& g = m.graph;
  const int64_t C = 32;
  g.inputs.push_back(tensor_value("x", {1, 16, 8, 8}));
  g.add_initializer(random_tensor("w0", {C, 16, 3, 3}, 1, -0.2f, 0.2f));
  g.add_initializer(random_tensor("wa", {C / 2, C, 1, 1}, 2, -0.3f, 0.3f));
  g.add_initializer(random_tensor("wb", {C / 2, C, 1, 1}, 3, -0.3f, 0.3f));
  g.add_initializer(random_tensor("w3", {C, C, 1, 1}, 4, -0.3f, 0.3f));
  g.add_initializer(Tensor::from_int64("split_shape", {5}, {1, 2, C / 2, 8, 8}));
  auto conv_relu = [&](const std::string& in, const std::string& w, const std::string& out, bool pad) {
    Node c = make_node("Conv", {in, w}, {out + "_c"}, out + "_conv");
    if (pad) c.set_attr_ints("pads", {1, 1, 1, 1});
    g.add_node(c);
    g.add_node(make_node("Relu", {out + "_c"}, {out}));
  };
  conv_relu("x", "w0", "r0", true);
  conv_relu("r0", "wa", "ra", false);
  conv_relu("r0", "wb", "rb", false);
  Node cat = make_node("Concat", {"ra", "rb"}, {"cat"});
  cat.set_attr_int("axis", 1);
  g.add_node(cat);
  g.add_node(make_node("Shape", {"cat"}, {"cat_shape"}));
  g.add_node(make_node("Reshape", {"cat", "split_shape"}, {"r5"}));
  Node tr = make_node("Transpose", {"r5"}, {"t5"});
  tr.set_attr_ints("perm", {0, 2, 1, 3, 4});
  g.add_node(tr);
  g.add_node(make_node("Reshape", {"t5", "cat_shape"}, {"shuffled"}));
  conv_relu("shuffled", "w3", "r3", false);
  g.add_node(make_node("GlobalAveragePool", {"r3"}, {"y"}));
  g.outputs.push_back(tensor_value("y", {1, C, 1, 1}));
  save_model(m, dir / "shuffle.onnx");
  auto r = run_cli({"quantize", (dir / "shuffle.onnx").string(), "-o", (dir / "q.onnx").string(), "--bits", "8",
                    "--activations", "int8", "--calib", "random:16:5"});
  INFO(r.out);
  REQUIRE(r.rc == 0);
  Model q = load_model(dir / "q.onnx");
  // Shape reads the uint8 tensor, not a DequantizeLinear of it (which ORT would have to run).
  for (const auto& n : q.graph.nodes)
    if (n.op_type == "Shape") {
      const int p = q.graph.producer(n.input(0));
      REQUIRE(p >= 0);
      CHECK(q.graph.nodes[p].op_type == "QuantizeLinear");
    }
  quant::DeployCheck d = quant::check_deployment(q);
  CHECK(d.integer_ops["QLinearConv"] == 4);
  CHECK(d.unfused.empty());
  auto ops = ort_optimized_ops(dir / "q.onnx");
  CHECK(ops["QLinearConv"] == 4);
  CHECK(ops["QLinearConcat"] == 1);
  CHECK(ops["Conv"] == 0);
  CHECK(ops["DequantizeLinear"] <= 1);  // only before the float GlobalAveragePool that writes the graph output
  std::map<std::string, Tensor> in{{"x", random_tensor("x", {1, 16, 8, 8}, 8, 0.f, 1.f)}};
  Tensor ref = run_ort(dir / "shuffle.onnx", in).at("y");
  auto ours = agree_with_ort(q, in, 2e-2);
  CHECK(max_rel_error(ours.at("y"), ref, 0.05) < 0.1);
}

TEST_CASE("int8 leaves convs too thin to pay float, with float weights and a note", "[static_qdq]") {
  // 1x1 convs over 4 and 8 channels: 4 and 8 MACs per output element, where ORT's integer kernels and
  // the Q/DQ around them are slower than float (PP-OCRv2 cls, docs/BENCHMARKS.md).
  fs::path dir = temp_dir("sqdq_thin");
  Model m = new_model(13);
  Graph& g = m.graph;
  g.inputs.push_back(tensor_value("x", {1, 4, 8, 8}));
  g.add_initializer(random_tensor("w1", {8, 4, 1, 1}, 1, -0.5f, 0.5f));
  g.add_initializer(random_tensor("b1", {8}, 2));
  g.add_initializer(random_tensor("w2", {8, 8, 1, 1}, 3, -0.5f, 0.5f));
  g.add_node(make_node("Conv", {"x", "w1", "b1"}, {"c"}, "conv1"));
  g.add_node(make_node("Relu", {"c"}, {"r"}));
  g.add_node(make_node("Conv", {"r", "w2"}, {"c2"}, "conv2"));
  g.add_node(make_node("Relu", {"c2"}, {"r2"}));
  g.add_node(make_node("GlobalAveragePool", {"r2"}, {"y"}));
  g.outputs.push_back(tensor_value("y", {1, 8, 1, 1}));
  save_model(m, dir / "thin.onnx");
  auto r = run_cli({"quantize", (dir / "thin.onnx").string(), "-o", (dir / "q.onnx").string(), "--bits", "8",
                    "--activations", "int8", "--calib", "random:16:5", "--report", (dir / "r.json").string()});
  INFO(r.out);
  REQUIRE(r.rc == 0);
  CHECK_THAT(r.out, Catch::Contains("0 of 2 Conv/MatMul/Gemm layers run as integer kernels"));
  Model q = load_model(dir / "q.onnx");
  CHECK(count_ops(q, "QuantizeLinear") == 0);
  CHECK(count_ops(q, "DequantizeLinear") == 0);  // no weight left to dequantize on every run
  quant::DeployCheck d = quant::check_deployment(q);
  CHECK(d.integer_layers.empty());
  CHECK(d.weight_only.empty());
  std::ifstream rf(dir / "r.json");
  const nlohmann::json rj = nlohmann::json::parse(rf);
  CHECK_THAT(rj["steps"][0]["details"]["notes"].dump(), Catch::Contains("int8 kept float"));
  // The weights are the int8 layer's values (rounded to the int8 grid), so the output stays close.
  std::map<std::string, Tensor> in{{"x", random_tensor("x", {1, 4, 8, 8}, 8, 0.f, 1.f)}};
  Tensor ref = run_ort(dir / "thin.onnx", in).at("y");
  auto ours = agree_with_ort(q, in, 1e-4);
  CHECK(max_rel_error(ours.at("y"), ref, 0.05) < 0.05);
}

TEST_CASE("int8 on a model whose opset cannot be raised to 13 is refused in one line naming the blocker", "[static_qdq][cli]") {
  // Upsample was removed at opset 10, so this opset-9 model cannot reach the opset-13 Q/DQ.
  fs::path dir = temp_dir("sqdq_opset9");
  Model f = small_cnn(12);
  f.set_opset("", 9);
  Graph& g = f.graph;
  g.nodes.back().outputs = {"pre"};
  g.add_initializer(Tensor::from_float("up.scales", {2}, {1.f, 1.f}));
  g.add_node(make_node("Upsample", {"pre", "up.scales"}, {"y"}, "up"));
  save_model(f, dir / "legacy.onnx");
  auto r = run_cli({"quantize", (dir / "legacy.onnx").string(), "-o", (dir / "q.onnx").string(), "--bits", "8",
                    "--activations", "int8", "--calib", "random:8:3"});
  INFO(r.out);
  CHECK(r.rc != 0);
  CHECK_THAT(r.out, Catch::Contains("opset 13"));
  CHECK_THAT(r.out, Catch::Contains("Upsample"));
  CHECK_THAT(r.out, Catch::Contains("w8"));
  std::string last = r.out;
  while (!last.empty() && last.back() == '\n') last.pop_back();
  CHECK(last.find('\n') == std::string::npos);  // one line
  CHECK(!fs::exists(dir / "q.onnx"));
  // The weight-only recipe it names works on the same model.
  auto w8 = run_cli({"compress", (dir / "legacy.onnx").string(), "-o", (dir / "w8.onnx").string(), "--recipe", "w8"});
  INFO(w8.out);
  CHECK(w8.rc == 0);
  CHECK(fs::exists(dir / "w8.onnx"));
}

TEST_CASE("an activation constant on the calibration data gets a note and a model that runs", "[static_qdq]") {
  // c1's weights are zero and its bias -1, so after the folded BatchNorm the Relu writes 0 everywhere.
  fs::path dir = temp_dir("sqdq_const");
  Model f = small_cnn(31);
  Graph& g = f.graph;
  auto set = [&](const std::string& name, float v) {
    Tensor* t = g.initializer(name);
    REQUIRE(t != nullptr);
    *t = Tensor::from_float(name, t->dims, std::vector<float>(static_cast<size_t>(t->numel()), v));
  };
  set("c1.w", 0.f), set("c1.b", -1.f), set("bn.s", 1.f), set("bn.b", 0.f), set("bn.m", 0.f);
  save_model(f, dir / "const.onnx");
  auto r = run_cli({"quantize", (dir / "const.onnx").string(), "-o", (dir / "q.onnx").string(), "--bits", "8",
                    "--activations", "int8", "--calib", "random:8:3", "--report", (dir / "r.json").string()});
  INFO(r.out);
  REQUIRE(r.rc == 0);
  std::ifstream rf(dir / "r.json");
  const nlohmann::json rj = nlohmann::json::parse(rf);
  // A constant's histogram spans rounding noise (1e-6): taken as a constant range (scale 1), not as a
  // scale so small that the next Conv's int32 bias overflows.
  CHECK_THAT(rj["steps"][0]["details"]["notes"].dump(), Catch::Contains("was constant on the calibration data"));
  Model q = load_model(dir / "q.onnx");
  std::map<std::string, Tensor> in{{"x", random_tensor("x", {1, 3, 16, 16}, 5, 0.f, 1.f)}};
  Tensor ref = run_ort(dir / "const.onnx", in).at("y");
  auto ours = agree_with_ort(q, in, 2e-2);
  CHECK(max_rel_error(ours.at("y"), ref, 0.05) < 0.08);
}

TEST_CASE("HardSwish and a HardSigmoid squeeze-excite gate run on uint8: QLinearAdd + QLinearMul", "[static_qdq]") {
  // x -> Conv -> h = c · HardSigmoid(c) -> GAP -> Conv -> g = HardSigmoid -> s = h · g -> Conv -> y
  // (MobileNetV3's HardSwish and squeeze-excite as torchvision exports them; ORT has no int8 HardSigmoid).
  fs::path dir = temp_dir("sqdq_hsig");
  Model m = new_model(13);
  Graph& g = m.graph;
  g.inputs.push_back(tensor_value("x", {1, 16, 8, 8}));
  g.add_initializer(random_tensor("w1", {32, 16, 3, 3}, 1, -0.2f, 0.2f));
  g.add_initializer(random_tensor("b1", {32}, 2));
  g.add_initializer(random_tensor("wse", {32, 32, 1, 1}, 4, -0.3f, 0.3f));
  g.add_initializer(random_tensor("bse", {32}, 5));
  g.add_initializer(random_tensor("w2", {32, 32, 1, 1}, 3, -0.3f, 0.3f));
  Node c1 = make_node("Conv", {"x", "w1", "b1"}, {"c"}, "conv1");
  c1.set_attr_ints("pads", {1, 1, 1, 1});
  g.add_node(c1);
  Node hs = make_node("HardSigmoid", {"c"}, {"hs"}, "hsig");
  hs.set_attr_float("alpha", 1.f / 6.f);
  g.add_node(hs);
  g.add_node(make_node("Mul", {"c", "hs"}, {"h"}));
  g.add_node(make_node("GlobalAveragePool", {"h"}, {"p"}));
  g.add_node(make_node("Conv", {"p", "wse", "bse"}, {"e"}, "se"));
  Node gate = make_node("HardSigmoid", {"e"}, {"gate"}, "gate");
  gate.set_attr_float("alpha", 1.f / 6.f);
  g.add_node(gate);
  g.add_node(make_node("Mul", {"h", "gate"}, {"s"}));
  g.add_node(make_node("Conv", {"s", "w2"}, {"y"}, "conv2"));
  g.outputs.push_back(tensor_value("y", {1, 32, 8, 8}));
  save_model(m, dir / "hs.onnx");
  auto r = run_cli({"quantize", (dir / "hs.onnx").string(), "-o", (dir / "q.onnx").string(), "--bits", "8",
                    "--activations", "int8", "--calib", "random:16:5"});
  INFO(r.out);
  REQUIRE(r.rc == 0);
  Model q = load_model(dir / "q.onnx");
  CHECK(count_ops(q, "HardSigmoid") == 0);
  auto ops = ort_optimized_ops(dir / "q.onnx");
  CHECK(ops["QLinearConv"] == 2);  // conv2 writes the graph output: float, with float weights
  CHECK(ops["QLinearAdd"] == 2);  // the two HardSigmoids' x + 3
  CHECK(ops["QLinearMul"] == 2);  // HardSwish's product and the gate
  CHECK(ops["QLinearGlobalAveragePool"] == 1);
  CHECK(ops["HardSigmoid"] == 0);
  CHECK(ops["Mul"] == 0);
  CHECK(ops["DequantizeLinear"] == 1);  // only conv2's input: nothing float inside
  quant::DeployCheck d = quant::check_deployment(q);
  CHECK(d.integer_ops["QLinearConv"] == 2);
  CHECK(d.weight_only.empty());
  CHECK(d.float_ops.count("HardSigmoid") == 0);
  CHECK(d.float_ops.count("Mul") == 0);
  std::map<std::string, Tensor> in{{"x", random_tensor("x", {1, 16, 8, 8}, 8, 0.f, 1.f)}};
  Tensor ref = run_ort(dir / "hs.onnx", in).at("y");
  auto ours = agree_with_ort(q, in, 2e-2);
  CHECK(max_rel_error(ours.at("y"), ref, 0.05) < 0.1);
}

TEST_CASE("Gemm as MatMul + Add computes the same, and leaves Gemms it cannot rewrite", "[static_qdq]") {
  Model m = new_model(13);
  Graph& g = m.graph;
  g.inputs.push_back(tensor_value("x", {2, 6}));
  g.add_initializer(Tensor::from_float("w1", {5, 6}, random_floats(30, 3)));  // transB: [N, K]
  g.add_initializer(Tensor::from_float("b1", {5}, random_floats(5, 4)));
  g.add_initializer(Tensor::from_float("w2", {5, 4}, random_floats(20, 5)));  // [K, N], no bias
  g.add_initializer(Tensor::from_float("w3", {4, 3}, random_floats(12, 6)));
  g.add_initializer(Tensor::from_float("b3", {1, 3}, random_floats(3, 7)));
  Node g1 = make_node("Gemm", {"x", "w1", "b1"}, {"h1"}, "fc1");
  g1.set_attr_int("transB", 1);
  Node g3 = make_node("Gemm", {"h2", "w3", "b3"}, {"y"}, "fc3");
  g3.set_attr_float("alpha", 0.5f);  // a scaled product stays a Gemm
  g.add_node(g1);
  g.add_node(make_node("Gemm", {"h1", "w2"}, {"h2"}, "fc2"));
  g.add_node(g3);
  g.outputs.push_back(tensor_value("y", {2, 3}));
  std::map<std::string, Tensor> in{{"x", random_tensor("x", {2, 6}, 8)}};
  const Tensor before = Executor(m).run(in).at("y");
  Model r = m;
  const std::vector<std::string> done = quant::gemm_as_matmul(r);
  CHECK(done == std::vector<std::string>{"fc1", "fc2"});
  CHECK(count_ops(r, "Gemm") == 1);
  CHECK(count_ops(r, "MatMul") == 2);
  CHECK(count_ops(r, "Add") == 1);  // fc2 has no bias
  CHECK(r.graph.initializer("w1")->dims == std::vector<int64_t>{6, 5});
  CHECK(max_rel_error(Executor(r).run(in).at("y"), before) < 1e-6);
}

TEST_CASE("int8 runs a CNN's Gemm head as an integer MatMul with 8-bit weights in ORT", "[static_qdq]") {
  fs::path dir = temp_dir("sqdq_gemm");
  Model f = small_cnn(62);
  save_model(f, dir / "cnn.onnx");
  auto r = run_cli({"quantize", (dir / "cnn.onnx").string(), "-o", (dir / "q.onnx").string(), "--bits", "8",
                    "--activations", "int8", "--calib", "random:16:3"});
  INFO(r.out);
  REQUIRE(r.rc == 0);
  Model q = load_model(dir / "q.onnx");
  CHECK(count_ops(q, "Gemm") == 0);
  // The head's weight is stored int8 and read by MatMulInteger (the dynamic W8A8 form: a static QDQ
  // MatMul + bias Add would be turned back into a float Gemm by ORT's MatMulAddFusion).
  int int8_matmuls = 0;
  for (const auto& n : q.graph.nodes)
    if (n.op_type == "MatMulInteger") {
      const Tensor* w = q.graph.initializer(n.input(1));
      int8_matmuls += w && w->dtype == DType::Int8;
    }
  CHECK(int8_matmuls == 1);
  quant::DeployCheck d = quant::check_deployment(q);
  CHECK(d.integer_layers.size() == 3);  // both Convs and the head
  auto ops = ort_optimized_ops(dir / "q.onnx");
  CHECK(ops["Gemm"] == 0);
  CHECK(ops["DynamicQuantizeMatMul"] == 1);
  CHECK(ops["QLinearConv"] == 2);
  CHECK(ops["DequantizeLinear"] <= 1);  // the pooled features, once, for the dynamic quantization
  std::map<std::string, Tensor> in{{"x", random_tensor("x", {1, 3, 16, 16}, 78, 0.f, 1.f)}};
  Tensor ref = run_ort(dir / "cnn.onnx", in).at("y");
  auto ours = agree_with_ort(q, in, 2e-2);
  CHECK(max_rel_error(ours.at("y"), ref) < 0.08);
}

TEST_CASE("activations whose every value is tiny are quantized over their range, not taken for constants", "[static_qdq]") {
  // BatchNorm scale/shift and the later biases scaled by 1e-7: every activation after c1 is ~1e-7
  // (torchvision's random-weight MobileNets reach 1e-8 at their logits). Judged against 1 instead of
  // their own size, these ranges were taken for constants and the int8 output was exactly 0.
  fs::path dir = temp_dir("sqdq_tiny");
  Model f = small_cnn(32);
  Graph& g = f.graph;
  for (const char* name : {"bn.s", "bn.b", "c2.b", "fc.b"}) {
    Tensor* t = g.initializer(name);
    REQUIRE(t != nullptr);
    std::vector<float> v = t->to_float();
    for (float& x : v) x *= 1e-7f;
    *t = Tensor::from_float(name, t->dims, v);
  }
  save_model(f, dir / "tiny.onnx");
  auto r = run_cli({"quantize", (dir / "tiny.onnx").string(), "-o", (dir / "q.onnx").string(), "--bits", "8",
                    "--activations", "int8", "--calib", "random:16:3", "--report", (dir / "r.json").string()});
  INFO(r.out);
  REQUIRE(r.rc == 0);
  std::ifstream rf(dir / "r.json");
  const nlohmann::json rj = nlohmann::json::parse(rf);
  const nlohmann::json& details = rj["steps"][0]["details"];
  CHECK_THAT(details.value("notes", nlohmann::json::array()).dump(), !Catch::Contains("was constant on the calibration data"));
  Model q = load_model(dir / "q.onnx");
  auto ops = ort_optimized_ops(dir / "q.onnx");
  CHECK(ops["QLinearConv"] == 2);
  std::map<std::string, Tensor> in{{"x", random_tensor("x", {1, 3, 16, 16}, 6, 0.f, 1.f)}};
  const auto ref = run_ort(dir / "tiny.onnx", in).at("y").to_float();
  const auto got = run_ort(dir / "q.onnx", in).at("y").to_float();
  double dot = 0, nr = 0, ng = 0;
  for (size_t i = 0; i < ref.size(); ++i) dot += double(ref[i]) * got[i], nr += double(ref[i]) * ref[i], ng += double(got[i]) * got[i];
  INFO("float norm " << std::sqrt(nr) << ", int8 norm " << std::sqrt(ng));
  REQUIRE(nr > 0);
  REQUIRE(ng > 0);
  CHECK(dot / std::sqrt(nr * ng) > 0.99);
  // Our executor computes the same int8 model.
  Tensor ours = Executor(q).run(in).at("y");
  const auto o = ours.to_float();
  double diff = 0;
  for (size_t i = 0; i < o.size(); ++i) diff = std::max(diff, std::fabs(double(o[i]) - got[i]));
  CHECK(diff <= 0.02 * std::sqrt(ng));
}

TEST_CASE("int8 keeps grouped convs that are not depthwise float, depthwise and dense convs stay integer",
          "[static_qdq]") {
  // MLAS's symmetric int8 conv kernel takes group 1 or depthwise only, so ORT runs a grouped conv as one
  // small QGEMM per group, slower than its float conv (regnet_y_400mf, docs/BENCHMARKS.md).
  fs::path dir = temp_dir("sqdq_grouped");
  Model m = new_model(13);
  Graph& g = m.graph;
  std::mt19937_64 rng(17);
  g.inputs.push_back(tensor_value("x", {1, 32, 8, 8}));
  add_gaussian_initializer(g, rng, "w1", {32, 32, 1, 1}, 0.18f);
  add_gaussian_initializer(g, rng, "wg", {32, 8, 3, 3}, 0.12f);  // 4 groups of 8 channels
  add_gaussian_initializer(g, rng, "w3", {32, 32, 1, 1}, 0.18f);
  add_gaussian_initializer(g, rng, "wd", {32, 1, 3, 3}, 0.33f);  // depthwise
  auto conv = [&](const std::string& in, const std::string& w, const std::string& out, int64_t group, int64_t k) {
    Node n = make_node("Conv", {in, w}, {out + "_c"}, out);
    n.set_attr_int("group", group);
    if (k == 3) n.set_attr_ints("pads", {1, 1, 1, 1});
    g.add_node(n);
    g.add_node(make_node("Relu", {out + "_c"}, {out}));
  };
  conv("x", "w1", "a", 1, 1);
  conv("a", "wg", "b", 4, 3);
  // A squeeze-excite gate reads the grouped conv, as in RegNetY: float ops after it, so no QuantizeLinear
  // follows it (with one, ORT's WeightBiasQuantization would quantize its float weights itself).
  g.add_node(make_node("GlobalAveragePool", {"b"}, {"s"}));
  g.add_node(make_node("Sigmoid", {"s"}, {"sg"}));
  g.add_node(make_node("Mul", {"b", "sg"}, {"bm"}));
  conv("bm", "w3", "c", 1, 1);
  conv("c", "wd", "d", 32, 3);
  g.add_node(make_node("GlobalAveragePool", {"d"}, {"y"}));
  g.outputs.push_back(tensor_value("y", {1, 32, 1, 1}));
  save_model(m, dir / "grouped.onnx");
  auto r = run_cli({"quantize", (dir / "grouped.onnx").string(), "-o", (dir / "q.onnx").string(), "--bits", "8",
                    "--activations", "int8", "--calib", "random:16:5", "--report", (dir / "r.json").string()});
  INFO(r.out);
  REQUIRE(r.rc == 0);
  Model q = load_model(dir / "q.onnx");
  for (const auto& n : q.graph.nodes) {
    if (n.op_type != "Conv") continue;
    INFO(n.name);
    const Tensor* w = q.graph.initializer(n.input(1));
    if (n.name == "b") {
      REQUIRE(w != nullptr);  // float weights: no DequantizeLinear to run on every inference
      CHECK(w->dtype == DType::Float);
    } else {
      CHECK(w == nullptr);  // read through an int8 DequantizeLinear
    }
  }
  std::ifstream rf(dir / "r.json");
  const nlohmann::json rj = nlohmann::json::parse(rf);
  CHECK_THAT(rj["steps"][0]["details"]["notes"].dump(), Catch::Contains("1 grouped conv(s) float"));
  quant::DeployCheck d = quant::check_deployment(q);
  CHECK(d.compute_layers == 4);
  CHECK(d.integer_layers.size() == 3);
  CHECK(d.weight_only.empty());
  auto ops = ort_optimized_ops(dir / "q.onnx");
  CHECK(ops["QLinearConv"] == 3);
  CHECK(ops["Conv"] + ops["FusedConv"] == 1);
  std::map<std::string, Tensor> in{{"x", random_tensor("x", {1, 32, 8, 8}, 8, 0.f, 1.f)}};
  Tensor ref = run_ort(dir / "grouped.onnx", in).at("y");
  auto ours = agree_with_ort(q, in, 3e-2);  // one uint8 step of the gate's product
  CHECK(max_rel_error(ours.at("y"), ref) < 0.08);
}

TEST_CASE("8-bit weights multiplied with uint8 activations keep ORT's AVX2 pair limit unless --weight-range full", "[static_qdq][cli]") {
  // ONNX Runtime's x86 AVX2 integer kernels add two uint8 x int8 products into a saturating int16
  // (vpmaddubsw): 255·(|w1| + |w2|) fits only for |w1| + |w2| <= 128 when both have one sign.
  // Full-range weights gave
  // fashion_cnn W8A8 a 1e-2 logit error energy in ORT on an AVX2 machine against 2e-4 for the exact
  // arithmetic; 7-bit codes ([-64, 63]) were exact but one bit coarser.
  fs::path dir = temp_dir("sqdq_range");
  save_model(small_cnn(61), dir / "cnn.onnx");
  struct Codes {
    int lo = 0, hi = 0, n = 0, worst_pair = 0;
  };
  auto weight_codes = [](const Model& q) {
    Codes c;
    for (const auto& t : q.graph.initializers)
      if (t.dtype == DType::Int8 && t.dims.size() == 4) {  // Conv [M, C/g, kh, kw]: pairs per output channel
        const auto v = t.to_int64();
        const int64_t K = t.dims[1] * t.dims[2] * t.dims[3], taps = t.dims[2] * t.dims[3];
        for (int64_t m = 0; m < t.dims[0]; ++m)
          for (int64_t k = 0; k < K; ++k) {
            const int x = static_cast<int>(v[m * K + k]);
            c.lo = std::min(c.lo, x), c.hi = std::max(c.hi, x), ++c.n;
            const int64_t o = quant::pair_partner(k, K, taps);  // no depthwise Conv here
            const int y = o >= 0 ? static_cast<int>(v[m * K + o]) : 0;
            if (x * y > 0) c.worst_pair = std::max(c.worst_pair, std::abs(x) + std::abs(y));  // one sign: what can saturate
          }
      }
    return c;
  };
  auto quantize = [&](const std::string& out, std::vector<std::string> extra) {
    std::vector<std::string> a{"quantize", (dir / "cnn.onnx").string(), "-o", (dir / out).string(), "--bits", "8"};
    a.insert(a.end(), extra.begin(), extra.end());
    auto r = run_cli(a);
    INFO(r.out);
    REQUIRE(r.rc == 0);
    return r.out;
  };
  quantize("pairs.onnx", {"--activations", "int8", "--calib", "random:16:3", "--report", (dir / "r.json").string()});
  CHECK_THAT(read_all(dir / "r.json"), Catch::Contains("same-sign pair"));  // the report's notes say so
  const Codes pairs = weight_codes(load_model(dir / "pairs.onnx"));
  CHECK(pairs.n > 0);
  CHECK(pairs.worst_pair <= 128);
  CHECK(std::max(-pairs.lo, pairs.hi) >= 100);  // the int8 range is used, not 7 bits
  quantize("reduced.onnx", {"--activations", "int8", "--calib", "random:16:3", "--weight-range", "reduced"});
  const Codes reduced = weight_codes(load_model(dir / "reduced.onnx"));
  CHECK(reduced.lo >= -64);
  CHECK(reduced.hi <= 63);
  CHECK(std::max(-reduced.lo, reduced.hi) >= 63);  // the range is used, not a coarser grid
  quantize("full.onnx", {"--activations", "int8", "--calib", "random:16:3", "--weight-range", "full"});
  const Codes full = weight_codes(load_model(dir / "full.onnx"));
  CHECK(std::max(-full.lo, full.hi) == 127);
  CHECK(full.worst_pair > 128);  // what the limit prevents
  // Weight-only 8 bits: dequantized to float in ORT, nothing saturates, so the full range is the default.
  quantize("w8.onnx", {});
  const Codes w8 = weight_codes(load_model(dir / "w8.onnx"));
  CHECK(std::max(-w8.lo, w8.hi) == 127);
  auto bad = run_cli({"quantize", (dir / "cnn.onnx").string(), "-o", (dir / "x.onnx").string(), "--weight-range", "7bit"});
  CHECK(bad.rc != 0);
  CHECK_THAT(bad.out, Catch::Contains("--weight-range must be pairs, reduced or full"));
  CHECK(!fs::exists(dir / "x.onnx"));
}

TEST_CASE("an integer Conv on a float input gets its channels padded to 4: the same numbers, MLAS's direct int8 kernel", "[static_qdq][cli]") {
  // MLAS's symmetric int8 convolution takes input channels in blocks of 4; ResNet-50's RGB stem
  // (C = 3) fell back to im2col + QGEMM, 3.3 of 20.3 ms in ORT 1.30 (1.8 padded).
  fs::path dir = temp_dir("sqdq_pad4");
  save_model(small_cnn(61), dir / "cnn.onnx");  // input [1, 3, 16, 16]
  auto r = run_cli({"quantize", (dir / "cnn.onnx").string(), "-o", (dir / "q.onnx").string(), "--bits", "8", "--activations",
                    "int8", "--calib", "random:16:3", "--report", (dir / "r.json").string()});
  INFO(r.out);
  REQUIRE(r.rc == 0);
  CHECK(nlohmann::json::parse(read_all(dir / "r.json"))["steps"][0]["details"]["activation_qdq"]["conv_inputs_padded"] == 1);
  Model q = load_model(dir / "q.onnx");
  int pads = 0;
  std::string conv_weight;
  for (const auto& n : q.graph.nodes)
    if (n.op_type == "Pad") {
      ++pads;
      const int qn = q.graph.consumers(n.outputs[0]).front();
      CHECK(q.graph.nodes[qn].op_type == "QuantizeLinear");
      CHECK(n.input(0) == "x");
    }
  CHECK(pads == 1);
  for (const auto& t : q.graph.initializers)
    if (t.dtype == DType::Int8 && t.dims.size() == 4 && t.dims[0] == 8 && t.dims[2] == 3) {
      if (t.dims[1] != 4) continue;  // c2 keeps its 8 channels
      conv_weight = t.name;
      const auto v = t.to_int64();
      for (int64_t o = 0; o < 8; ++o)
        for (int64_t k = 0; k < 9; ++k) CHECK(v[(o * 4 + 3) * 9 + k] == 0);  // the padded channel's weights
    }
  REQUIRE(!conv_weight.empty());
  auto ops = ort_optimized_ops(dir / "q.onnx");
  CHECK(ops["QLinearConv"] == 2);  // still fused
  // The same file without the pad (weights sliced back to 3 channels) gives ORT's identical output.
  Model plain = q;
  for (size_t i = 0; i < plain.graph.nodes.size(); ++i)
    if (plain.graph.nodes[i].op_type == "Pad") {
      plain.graph.replace_all_uses(plain.graph.nodes[i].outputs[0], "x");
      plain.graph.remove_node(i);
      break;
    }
  Tensor* w = plain.graph.initializer(conv_weight);
  std::vector<int64_t> v = w->to_int64(), v3;
  for (int64_t o = 0; o < 8; ++o)
    for (int64_t c = 0; c < 3; ++c)
      for (int64_t k = 0; k < 9; ++k) v3.push_back(v[(o * 4 + c) * 9 + k]);
  Tensor w3 = *w;
  w3.dims = {8, 3, 3, 3};
  w3.bytes = Bytes(v3.size(), 0);
  for (size_t i = 0; i < v3.size(); ++i) w3.bytes[i] = static_cast<uint8_t>(static_cast<int8_t>(v3[i]));
  plain.graph.add_initializer(std::move(w3));
  plain.graph.invalidate();
  save_model(plain, dir / "plain.onnx");
  std::map<std::string, Tensor> in{{"x", random_tensor("x", {1, 3, 16, 16}, 9, -1.f, 1.f)}};
  const Tensor a = run_ort(dir / "q.onnx", in).at("y"), b = run_ort(dir / "plain.onnx", in).at("y");
  CHECK(max_rel_error(a, b) == 0.0);
  agree_with_ort(q, in, 3e-2);  // our executor runs the padded file too
}

TEST_CASE("int8 for an AMX CPU puts long-reduction int8 convs on ORT's QGEMM with the same numbers, avx2 keeps them direct",
          "[static_qdq][cli]") {
  // ORT packs a zero-point-0 int8 weight for its direct symmetric conv kernel and any other for
  // im2col + QGEMM (AMX tiles where the CPU has them): quantize/conv_gemm_route.h.
  fs::path dir = temp_dir("sqdq_qgemm");
  Model m = new_model(13);
  Graph& g = m.graph;
  g.inputs.push_back(tensor_value("x", {1, 4, 10, 10}));
  const std::vector<std::pair<std::string, std::vector<int64_t>>> convs = {
      {"c1", {64, 4, 3, 3}}, {"c2", {64, 64, 3, 3}}, {"c3", {16, 64, 3, 3}}};  // K = 36, 576, 576; c3: 16 outputs
  std::string x = "x";
  uint64_t seed = 71;
  for (const auto& [name, dims] : convs) {
    g.add_initializer(random_tensor(name + ".w", dims, seed++, -0.2f, 0.2f));
    g.add_initializer(random_tensor(name + ".b", {dims[0]}, seed++, -0.1f, 0.1f));
    Node c = make_node("Conv", {x, name + ".w", name + ".b"}, {name}, name);
    if (dims[2] == 3) c.set_attr_ints("pads", {1, 1, 1, 1});
    g.add_node(c);
    add_node(g, "Relu", {name}, {name + ".r"});
    x = name + ".r";
  }
  add_node(g, "GlobalAveragePool", {x}, {"y"});
  g.outputs.push_back(tensor_value("y", {1, 16, 1, 1}));
  save_model(m, dir / "cnn.onnx");
  auto quantize = [&](const std::string& cpu) {
    const fs::path out = dir / ("q_" + cpu + ".onnx"), rep = dir / ("r_" + cpu + ".json");
    auto r = run_cli({"quantize", (dir / "cnn.onnx").string(), "-o", out.string(), "--bits", "8", "--activations", "int8",
                      "--calib", "random:16:5", "--deploy-cpu", cpu, "--report", rep.string()});
    INFO(r.out);
    REQUIRE(r.rc == 0);
    return std::make_pair(load_model(out), first_step_details(rep));
  };
  const auto [amx, amx_details] = quantize("amx");
  const auto [avx2, avx2_details] = quantize("avx2");
  CHECK(amx_details["activation_qdq"]["convs_on_qgemm"] == 1);
  CHECK(amx_details["activation_qdq"]["deploy_cpu"] == "amx");
  CHECK(avx2_details["activation_qdq"]["convs_on_qgemm"] == 0);
  // Each conv weight's DequantizeLinear: only c2's (K = 576, 64 outputs) has a zero point, -1 or +1
  // on every channel; `direct` is the amx file with c2's codes shifted back and no zero point.
  Model direct = amx;
  auto weight_dq = [](Model& q, const std::string& conv) -> Node& {
    const Node& c = q.graph.nodes[q.graph.node_index(conv)];
    return q.graph.nodes[q.graph.producer(c.input(1))];
  };
  for (const auto& [name, dims] : convs) {
    Model avx2_copy = avx2;
    const Node& db = weight_dq(avx2_copy, name);
    const Tensor* zb = db.input(2).empty() ? nullptr : avx2_copy.graph.initializer(db.input(2));
    CHECK((!zb || zb->to_int64() == std::vector<int64_t>(static_cast<size_t>(zb->numel()), 0)));  // avx2: all direct
    Node& da = weight_dq(direct, name);
    const Tensor* zp = da.input(2).empty() ? nullptr : direct.graph.initializer(da.input(2));
    if (name != "c2") {
      CHECK((!zp || zp->to_int64() == std::vector<int64_t>(static_cast<size_t>(zp->numel()), 0)));
      continue;
    }
    REQUIRE(zp);
    const std::vector<int64_t> z = zp->to_int64();
    CHECK(zp->dtype == DType::Int8);
    CHECK(z.size() == 64);
    CHECK((z.front() == -1 || z.front() == 1));
    CHECK(std::all_of(z.begin(), z.end(), [&](int64_t v) { return v == z.front(); }));
    Tensor* w = direct.graph.initializer(da.input(0));
    const std::vector<int64_t> codes = w->to_int64();
    // The shifted codes still keep ORT's AVX2 pair limit (the step leaves 2 codes of headroom), so
    // the file is exact on AVX2 too: every same-sign pair of nonzero codes within 128.
    const int64_t cols = dims[1] * dims[2] * dims[3], taps = dims[2] * dims[3];
    const std::vector<int64_t> partner = quant::pair_partners(cols, taps);
    int64_t worst = 0;
    for (int64_t r = 0; r < dims[0]; ++r)
      for (int64_t c = 0; c < cols; ++c) {
        const int64_t p = partner[static_cast<size_t>(c)];
        if (p <= c) continue;
        const int64_t a = codes[static_cast<size_t>(r * cols + c)], b = codes[static_cast<size_t>(r * cols + p)];
        if (a != 0 && b != 0 && (a > 0) == (b > 0)) worst = std::max(worst, std::abs(a) + std::abs(b));
      }
    CHECK(worst <= 128);
    CHECK(worst >= 100);  // the limit binds somewhere (random weights use the whole range)
    int8_t* q = w->data<int8_t>();
    for (int64_t i = 0; i < w->numel(); ++i) q[i] = static_cast<int8_t>(q[i] - z.front());
    da.inputs.resize(2);
    direct.graph.invalidate();
  }
  save_model(amx, dir / "amx.onnx");
  save_model(direct, dir / "direct.onnx");
  // ORT still fuses every conv, and the file gives the output of its unshifted form: the zero point
  // only moves the kernel ORT picks.
  CHECK(ort_optimized_ops(dir / "amx.onnx")["QLinearConv"] == 3);
  std::map<std::string, Tensor> in{{"x", random_tensor("x", {1, 4, 10, 10}, 9, -1.f, 1.f)}};
  CHECK(max_rel_error(run_ort(dir / "amx.onnx", in).at("y"), run_ort(dir / "direct.onnx", in).at("y")) == 0.0);
  agree_with_ort(amx, in, 3e-2);
  auto bad = run_cli({"quantize", (dir / "cnn.onnx").string(), "-o", (dir / "bad.onnx").string(), "--bits", "8", "--activations",
                      "int8", "--calib", "random:4", "--deploy-cpu", "arm"});
  CHECK(bad.rc != 0);
  CHECK(bad.out.find("--deploy-cpu must be host, amx, vnni or avx2, not 'arm'") != std::string::npos);
  CHECK(!fs::exists(dir / "bad.onnx"));
}

TEST_CASE("a strided stem conv becomes a stride-1 conv over space-to-depth blocks with the same outputs", "[static_qdq][cli]") {
  // quantize/stem_space_to_depth.h: ResNet's 7x7 stride-2 stem on RGB ran 49 taps of one 4-channel
  // block in MLAS's direct int8 kernel; as 4x4 taps over 12 channels it took 1.10 -> 0.68 ms.
  fs::path dir = temp_dir("sqdq_s2d");
  for (const int64_t size : {32, 33}) {  // an odd size pads one more row and column
    INFO("input " << size);
    Model m = new_model(13);
    Graph& g = m.graph;
    g.inputs.push_back(tensor_value("x", {1, 3, size, size}));
    g.add_initializer(random_tensor("stem.w", {16, 3, 7, 7}, 81, -0.2f, 0.2f));
    g.add_initializer(random_tensor("stem.b", {16}, 82, -0.1f, 0.1f));
    Node stem = make_node("Conv", {"x", "stem.w", "stem.b"}, {"s"}, "stem");
    stem.set_attr_ints("strides", {2, 2});
    stem.set_attr_ints("pads", {3, 3, 3, 3});
    stem.set_attr_ints("kernel_shape", {7, 7});
    g.add_node(stem);
    add_node(g, "Relu", {"s"}, {"r"});
    g.add_initializer(random_tensor("c2.w", {8, 16, 3, 3}, 83, -0.2f, 0.2f));
    Node c2 = make_node("Conv", {"r", "c2.w"}, {"c2"}, "c2");  // stride 1: not matched
    c2.set_attr_ints("pads", {1, 1, 1, 1});
    g.add_node(c2);
    add_node(g, "GlobalAveragePool", {"c2"}, {"y"});
    g.outputs.push_back(tensor_value("y", {1, 8, 1, 1}));
    const std::string tag = std::to_string(size);
    save_model(m, dir / ("cnn" + tag + ".onnx"));
    Model f = m;
    REQUIRE(quant::stem_space_to_depth(f) == 1);
    CHECK(count_ops(f, "SpaceToDepth") == 1);
    CHECK(f.graph.initializer("stem.w")->dims == std::vector<int64_t>{16, 12, 4, 4});
    CHECK(f.graph.initializer("c2.w")->dims == std::vector<int64_t>{8, 16, 3, 3});
    save_model(f, dir / ("s2d" + tag + ".onnx"));
    std::map<std::string, Tensor> in{{"x", random_tensor("x", {1, 3, size, size}, 9, 0.f, 1.f)}};
    CHECK(max_rel_error(run_ort(dir / ("s2d" + tag + ".onnx"), in).at("y"), run_ort(dir / ("cnn" + tag + ".onnx"), in).at("y")) < 1e-5);
    agree_with_ort(f, in, 1e-4);
    // Through int8: the stem is still one QLinearConv, reading the blocks.
    auto r = run_cli({"quantize", (dir / ("cnn" + tag + ".onnx")).string(), "-o", (dir / ("q" + tag + ".onnx")).string(), "--bits",
                      "8", "--activations", "int8", "--calib", "random:16:3", "--report", (dir / ("r" + tag + ".json")).string()});
    INFO(r.out);
    REQUIRE(r.rc == 0);
    const auto details = first_step_details(dir / ("r" + tag + ".json"));
    CHECK(details["activation_qdq"]["stems_space_to_depth"] == 1);
    CHECK(details["activation_qdq"]["conv_inputs_padded"] == 0);  // 12 channels need no padding
    auto ops = ort_optimized_ops(dir / ("q" + tag + ".onnx"));
    CHECK(ops["QLinearConv"] == 2);
    CHECK(ops["SpaceToDepth"] == 1);
  }
  // Not matched: stride 1.
  Model plain = small_cnn(3);
  CHECK(quant::stem_space_to_depth(plain) == 0);
}
