// Weights inside If/Loop/Scan bodies: found as layers, quantized in place (the branch keeps its
// weights), calibrated by observing the branch that runs, and run by ONNX Runtime on both branches.
#include <catch2/catch.hpp>
#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>

#include "engine/calib_data.h"
#include "engine/calibrate.h"
#include "engine/npy.h"
#include "graph/normalize.h"
#include "graph/onnx_io.h"
#include "graph/subgraphs.h"
#include "quantize/quantize.h"
#include "support.h"

using namespace oc;
using namespace oc::test;

namespace {

// y = If(cond, then: MatMul(Relu(MatMul(x, W1)), W2), else: MatMul(x, W3)), x [N, 8] -> y [N, 4].
// W1 lives in the main graph (read from the outer scope, as torch exports it), W2 and W3 in their
// branches.
Model if_model(uint64_t seed = 3) {
  Model m = new_model(13);
  Graph& g = m.graph;
  g.inputs = {tensor_value("x", {-1, 8}), tensor_value("cond", {}, DType::Bool)};
  g.outputs = {tensor_value("y", {-1, 4})};
  g.initializers.push_back(random_tensor("W1", {8, 16}, seed));
  Graph then_g;
  then_g.name = "then";
  then_g.initializers.push_back(random_tensor("W2", {16, 4}, seed + 1));
  then_g.nodes.push_back(make_node("MatMul", {"x", "W1"}, {"t1"}, "then_mm1"));
  then_g.nodes.push_back(make_node("Relu", {"t1"}, {"t2"}, "then_relu"));
  then_g.nodes.push_back(make_node("MatMul", {"t2", "W2"}, {"yt"}, "then_mm2"));
  then_g.outputs = {tensor_value("yt", {-1, 4})};
  Graph else_g;
  else_g.name = "else";
  else_g.initializers.push_back(random_tensor("W3", {8, 4}, seed + 2));
  else_g.nodes.push_back(make_node("MatMul", {"x", "W3"}, {"ye"}, "else_mm"));
  else_g.outputs = {tensor_value("ye", {-1, 4})};
  Node n = make_node("If", {"cond"}, {"y"}, "branch");
  n.attributes.push_back(graph_attr("then_branch", std::move(then_g)));
  n.attributes.push_back(graph_attr("else_branch", std::move(else_g)));
  g.nodes.push_back(std::move(n));
  normalize(m);
  return m;
}

Tensor bool_scalar(const std::string& name, bool v) {
  Tensor t;
  t.name = name;
  t.dtype = DType::Bool;
  t.bytes = {static_cast<uint8_t>(v)};
  return t;
}

// Initializers of `dt` in the nested graphs (not the main graph).
int nested_tensors_of(const Model& m, DType dt) {
  int n = 0;
  for (const auto& s : all_graphs(m.graph))
    if (!s.path.empty())
      for (const auto& t : s.graph->initializers) n += t.dtype == dt;
  return n;
}

int nested_nodes_of(const Model& m, const std::string& op) {
  int n = 0;
  for (const auto& s : all_graphs(m.graph))
    if (!s.path.empty())
      for (const auto& node : s.graph->nodes) n += node.op_type == op;
  return n;
}

double rel_l2(const Tensor& a, const Tensor& b) {
  auto x = a.to_float(), y = b.to_float();
  double num = 0, den = 0;
  for (size_t i = 0; i < x.size(); ++i) num += (x[i] - y[i]) * (x[i] - y[i]), den += y[i] * y[i];
  return std::sqrt(num / std::max(den, 1e-30));
}

}  // namespace

TEST_CASE("branch weights are layers: localized, quantized to int8 and 4-bit, both branches run in ORT", "[subgraph]") {
  Model base = if_model();
  const Tensor x = random_tensor("x", {3, 8}, 11);
  std::map<std::string, Tensor> on = {{"x", x}, {"cond", bool_scalar("cond", true)}},
                                    off = {{"x", x}, {"cond", bool_scalar("cond", false)}};
  const auto ref_on = agree_with_ort(base, on), ref_off = agree_with_ort(base, off);

  // The outer-scope weight moves into the only branch that reads it.
  Model loc = base;
  CHECK(localize_subgraph_weights(loc.graph) == 1);
  CHECK(loc.graph.initializer("W1") == nullptr);
  CHECK(graph_at(loc.graph, "branch.then_branch")->initializer("W1") != nullptr);
  const auto layers = quant::find_weight_layers(loc.graph);
  REQUIRE(layers.size() == 3);
  CHECK(layers[0].graph == "branch.then_branch");
  CHECK(layers[2].node == "else_mm");
  CHECK(layers[2].graph == "branch.else_branch");

  SECTION("QDQ int8") {
    Model m = base;
    quant::QuantizeOptions o;
    o.bits = 8;
    const auto rep = quant::quantize_model(m, o);
    CHECK(rep.layers.size() == 3);
    CHECK(nested_tensors_of(m, DType::Int8) == 3);
    CHECK(nested_tensors_of(m, DType::Float) == 3);  // only the scales stay float
    CHECK(nested_nodes_of(m, "DequantizeLinear") == 3);
    CHECK(rel_l2(agree_with_ort(m, on, 1e-2).at("y"), ref_on.at("y")) < 0.02);
    CHECK(rel_l2(agree_with_ort(m, off, 1e-2).at("y"), ref_off.at("y")) < 0.02);
  }
  SECTION("MatMulNBits 4-bit") {
    Model m = base;
    quant::QuantizeOptions o;
    o.bits = 4;
    o.protect_ends = false;
    o.format = quant::Format::MatMulNBits;
    o.layout.granularity = quant::Granularity::Block;
    o.layout.block_size = 16;
    quant::quantize_model(m, o);
    CHECK(nested_nodes_of(m, "MatMulNBits") == 3);
    // float16 scales (a Cast widens them); the weights are packed uint8
    CHECK(nested_tensors_of(m, DType::Float16) == 3);
    CHECK(nested_tensors_of(m, DType::Float) == 0);
    CHECK(rel_l2(agree_with_ort(m, on, 1e-4).at("y"), ref_on.at("y")) < 0.2);
    CHECK(rel_l2(agree_with_ort(m, off, 1e-4).at("y"), ref_off.at("y")) < 0.2);
  }
}

TEST_CASE("calibration observes the branch that runs and GPTQ uses the branch Grams", "[subgraph][calib]") {
  Model m = if_model();
  localize_subgraph_weights(m.graph);
  // 4 samples take the then branch, 6 the else branch.
  const auto dir = temp_dir("subgraph_calib");
  const Tensor xa = random_tensor("x", {4, 8}, 21), xb = random_tensor("x", {6, 8}, 22);
  write_npz(dir / "a.npz", {xa, bool_scalar("cond", true)}, false);
  write_npz(dir / "b.npz", {xb, bool_scalar("cond", false)}, false);
  CalibrationSource src(dir.string(), m);
  REQUIRE(src.num_samples() == 10);
  CalibrationPlan plan;
  plan.grams = {"then_mm1", "then_mm2", "else_mm"};
  plan.minmax = {"branch.else_branch::ye"};
  CalibrationStats stats = calibrate(m, src, plan);
  REQUIRE(stats.grams.count("then_mm1"));
  REQUIRE(stats.grams.count("else_mm"));
  CHECK(stats.grams.at("then_mm1").rows == 4);
  CHECK(stats.grams.at("then_mm2").rows == 4);
  CHECK(stats.grams.at("else_mm").rows == 6);
  // The else layer's Gram is XᵀX over exactly the rows that took the else branch.
  const auto xv = xb.to_float();
  const GramStat& ge = stats.grams.at("else_mm");
  double worst = 0;
  for (int64_t i = 0; i < 8; ++i)
    for (int64_t j = 0; j < 8; ++j) {
      double h = 0;
      for (int64_t r = 0; r < 6; ++r) h += static_cast<double>(xv[r * 8 + i]) * xv[r * 8 + j];
      worst = std::max(worst, std::fabs(ge.at(0, i, j) - h));
    }
  CHECK(worst < 1e-4);
  CHECK(stats.minmax.count("branch.else_branch::ye"));

  quant::QuantizeOptions o;
  o.bits = 4;
  o.protect_ends = false;
  o.method = quant::Method::GPTQ;
  o.score_inputs.stats = &stats;
  Model q = m;
  const auto rep = quant::quantize_model(q, o);
  REQUIRE(rep.layers.size() == 3);
  for (const auto& l : rep.layers) {
    CAPTURE(l.node);
    CHECK(l.method == "gptq");
    CHECK(l.output_rel_error >= 0);
  }
  CHECK(nested_tensors_of(q, DType::Int4) == 3);
}

TEST_CASE("silero VAD: weights in its If branches quantize and ORT runs both sample rates close to float", "[subgraph][corpus]") {
  const auto model = corpus_model("silero_vad.onnx");
  const auto dir = temp_dir("subgraph_silero");
  std::map<std::string, Tensor> in16 = {{"input", random_tensor("input", {1, 512}, 5, -0.3f, 0.3f)},
                                        {"sr", Tensor::from_int64("sr", {}, {16000})},
                                        {"h", Tensor::from_float("h", {2, 1, 64}, std::vector<float>(128, 0.f))},
                                        {"c", Tensor::from_float("c", {2, 1, 64}, std::vector<float>(128, 0.f))}};
  auto in8 = in16;
  in8["sr"] = Tensor::from_int64("sr", {}, {8000});
  const auto f16 = run_ort(model, in16), f8 = run_ort(model, in8);

  // int8 QDQ without data, and the --calib default (GPTQ + bias correction) on data at both rates.
  const auto out = dir / "q8.onnx";
  auto r = run_cli({"quantize", model.string(), "-o", out.string(), "--bits", "8"});
  INFO(r.out);
  REQUIRE(r.rc == 0);
  Model q = load_model(out);
  CHECK(nested_tensors_of(q, DType::Int8) >= 30);
  CHECK(nested_nodes_of(q, "DequantizeLinear") >= 30);
  for (const auto* in : {&in16, &in8}) {
    const auto ref = in == &in16 ? f16 : f8;
    const auto got = run_ort(out, *in);
    for (const char* o : {"output", "hn", "cn"}) {
      CAPTURE(o, in->at("sr").to_float()[0]);
      CHECK(rel_l2(got.at(o), ref.at(o)) < 0.05);
    }
    CHECK(std::fabs(got.at("output").to_float()[0] - ref.at("output").to_float()[0]) < 0.02);
  }

  // Pruning reaches the branches (prune/bodies.h): groups inside each branch lose channels, the
  // outer graph and the If outputs keep their shapes, ORT runs both sample rates.
  auto p = run_cli({"prune", model.string(), "-o", (dir / "p.onnx").string(), "--ratio", "0.3", "--report",
                    (dir / "p.json").string()});
  INFO(p.out);
  REQUIRE(p.rc == 0);
  std::ifstream rf(dir / "p.json");
  const auto details = nlohmann::json::parse(rf)["steps"][0]["details"];
  CHECK_THAT(details["notes"].dump(), Catch::Contains("pruned inside") && Catch::Contains("If/Loop/Scan bodies"));
  int cut = 0;
  for (const auto& g : details["groups"]) cut += g["channels_after"].get<int64_t>() < g["channels_before"].get<int64_t>();
  CHECK(cut >= 10);  // 12 of 22 measured
  CHECK(std::filesystem::file_size(dir / "p.onnx") < std::filesystem::file_size(model));
  for (const auto* in : {&in16, &in8}) {
    const auto ref = in == &in16 ? f16 : f8;
    const auto got = run_ort(dir / "p.onnx", *in);
    for (const char* o : {"output", "hn", "cn"}) CHECK(got.at(o).dims == ref.at(o).dims);
  }

  const auto cal = dir / "calib";
  std::filesystem::create_directories(cal);
  write_npz(cal / "a16k.npz", {random_tensor("input", {3, 512}, 7, -0.3f, 0.3f), Tensor::from_int64("sr", {}, {16000}),
                               in16.at("h"), in16.at("c")}, false);
  write_npz(cal / "b8k.npz", {random_tensor("input", {3, 512}, 8, -0.3f, 0.3f), Tensor::from_int64("sr", {}, {8000}),
                              in16.at("h"), in16.at("c")}, false);
  const auto outc = dir / "q8c.onnx", rep = dir / "q8c.json";
  r = run_cli({"quantize", model.string(), "-o", outc.string(), "--bits", "8", "--calib", cal.string(), "--report", rep.string()});
  INFO(r.out);
  REQUIRE(r.rc == 0);
  CHECK(r.out.find("gptq") != std::string::npos);
  for (const auto* in : {&in16, &in8}) {
    const auto ref = in == &in16 ? f16 : f8;
    const auto got = run_ort(outc, *in);
    CAPTURE(in->at("sr").to_float()[0]);
    CHECK(std::fabs(got.at("output").to_float()[0] - ref.at("output").to_float()[0]) < 0.02);
    CHECK(rel_l2(got.at("hn"), ref.at("hn")) < 0.05);
  }
}
