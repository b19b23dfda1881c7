// Structured pruning: the rewrite must equal masking, keep the graph interface, and hit targets.
#include <catch2/catch.hpp>

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <numeric>
#include <random>

#include "engine/npy.h"
#include "graph/channel_deps.h"
#include "graph/cost.h"
#include "graph/shape_inference.h"
#include "graph/normalize.h"
#include "graph/onnx_io.h"
#include "prune/allocate.h"
#include "prune/importance.h"
#include "prune/rewrite.h"
#include "prune_check.h"
#include "support.h"

using namespace oc;
using namespace oc::test;

TEST_CASE("prune equals masking on small_cnn", "[prune]") { prune_equals_mask(small_cnn(3), "small_cnn", 11); }

TEST_CASE("prune equals masking on ppocr2_cls", "[prune]") {
  prune_equals_mask(load_norm(corpus_model("ppocr2_cls.onnx")), "cls", 5, text_image(48, 192));
}
TEST_CASE("prune equals masking on ppocr4_det", "[prune]") {
  prune_equals_mask(load_norm(corpus_model("ppocr4_det.onnx")), "det", 6, text_image(64, 64), 0.05);
}
TEST_CASE("prune equals masking on blazeface_front", "[prune]") {
  prune_equals_mask(load_norm(corpus_model("blazeface_front.onnx")), "blaze", 7);
}
TEST_CASE("skipped groups carry reasons", "[prune]") {
  // wakeword's hidden layers all feed a decomposed LayerNorm (ReduceMean over the features):
  // removing a feature changes the mean, so nothing there may be pruned.
  Model ww = load_norm(corpus_model("wakeword_hello.onnx"));
  ChannelDeps d = build_channel_deps(ww);
  REQUIRE(d.groups.size() == 3);
  int reduce = 0, output = 0;
  for (const auto& g : d.groups) {
    CHECK_FALSE(g.prunable());
    REQUIRE_FALSE(g.reasons.empty());
    for (const auto& r : g.reasons) {
      reduce += r.find("reduction ReduceMean") != std::string::npos;
      output += r.find("graph output") != std::string::npos;
    }
  }
  CHECK(reduce == 2);  // layer1 and blocks.0 feed LayerNorms
  CHECK(output == 1);  // last_layer -> Sigmoid -> output
  // small_cnn: the classifier's outputs are the graph output; the conv groups stay prunable.
  Model m = small_cnn(2);
  ChannelDeps sd = build_channel_deps(m);
  int locked_out = 0, prunable = 0;
  for (const auto& g : sd.groups) {
    if (g.prunable()) { ++prunable; continue; }
    for (const auto& r : g.reasons) locked_out += r.find("graph output 'y'") != std::string::npos;
  }
  CHECK(locked_out == 1);
  CHECK(prunable == 1);  // c1/bn/c2/residual are one group through the residual Add
}


namespace {

// x[1,8,12,12] -> conv a -> {depthwise -> relu -> SE gate (GAP, conv, relu, conv, HardSigmoid, Mul)}
// concat with conv b -> conv c -> + residual (conv d of x) -> relu -> GAP -> Flatten -> Gemm -> y
Model block_model(uint64_t seed, bool dynamic_batch = false) {
  Model m = new_model(13);
  Graph& g = m.graph;
  auto w = [&](const std::string& name, std::vector<int64_t> dims) {
    g.add_initializer(random_tensor(name, dims, seed++, -0.4f, 0.4f));
  };
  auto conv = [&](const std::string& in, const std::string& out, const std::string& wn, int64_t group, int64_t k) {
    Node c = make_node("Conv", {in, wn, wn + ".b"}, {out});
    c.set_attr_int("group", group);
    c.set_attr_ints("pads", {k / 2, k / 2, k / 2, k / 2});
    g.add_node(c);
  };
  g.inputs.push_back(tensor_value("x", {dynamic_batch ? -1 : 1, 8, 12, 12}));
  w("a", {16, 8, 1, 1}); w("a.b", {16});
  w("dw", {16, 1, 3, 3}); w("dw.b", {16});
  w("se1", {4, 16, 1, 1}); w("se1.b", {4});
  w("se2", {16, 4, 1, 1}); w("se2.b", {16});
  w("bb", {8, 8, 3, 3}); w("bb.b", {8});
  w("cc", {24, 24, 1, 1}); w("cc.b", {24});
  w("dd", {24, 8, 1, 1}); w("dd.b", {24});
  w("fc", {5, 24}); w("fc.b", {5});
  g.add_initializer(Tensor::from_float("ch", {16, 1, 1}, random_floats(16, seed++, 0.5f, 1.5f)));
  conv("x", "a1", "a", 1, 1);
  g.add_node(make_node("Mul", {"a1", "ch"}, {"a2"}));  // per-channel constant scale
  conv("a2", "d1", "dw", 16, 3);
  g.add_node(make_node("Relu", {"d1"}, {"d2"}));
  g.add_node(make_node("GlobalAveragePool", {"d2"}, {"s0"}));
  conv("s0", "s1", "se1", 1, 1);
  g.add_node(make_node("Relu", {"s1"}, {"s2"}));
  conv("s2", "s3", "se2", 1, 1);
  g.add_node(make_node("HardSigmoid", {"s3"}, {"s4"}));
  g.add_node(make_node("Mul", {"d2", "s4"}, {"se"}));
  conv("x", "b1", "bb", 1, 3);
  Node cat = make_node("Concat", {"se", "b1"}, {"cat"});
  cat.set_attr_int("axis", 1);
  g.add_node(cat);
  conv("cat", "c1", "cc", 1, 1);
  conv("x", "r1", "dd", 1, 1);
  g.add_node(make_node("Add", {"c1", "r1"}, {"res"}));
  g.add_node(make_node("Relu", {"res"}, {"r2"}));
  g.add_node(make_node("GlobalAveragePool", {"r2"}, {"gap"}));
  Node fl = make_node("Flatten", {"gap"}, {"flat"});
  fl.set_attr_int("axis", 1);
  g.add_node(fl);
  Node fc = make_node("Gemm", {"flat", "fc", "fc.b"}, {"y"});
  fc.set_attr_int("transB", 1);
  g.add_node(fc);
  g.outputs.push_back(tensor_value("y", {dynamic_batch ? -1 : 1, 5}));
  return m;
}

}  // namespace

TEST_CASE("prune equals masking with concat depthwise SE and residual", "[prune]") {
  Model m = block_model(21);
  ChannelDeps d = build_channel_deps(m);
  // The concat makes one group of a / per-channel Mul / depthwise / SE gate (se2) and bb: channel
  // i of cat is a's i for i < 16 and bb's i-16 after. SE's squeeze (se1) and the cc + dd residual
  // are groups of their own; fc's outputs are the graph output.
  std::vector<int> units;
  for (const auto& g : d.groups)
    if (g.prunable()) units.push_back(g.num_units);
  std::sort(units.begin(), units.end());
  CHECK(units == std::vector<int>{4, 24, 24});
  for (uint64_t seed : {1, 2, 3}) prune_equals_mask(m, "block", seed);
}

TEST_CASE("prune ratio 0 changes nothing: refused in one line, no file written", "[prune]") {
  fs::path dir = temp_dir("prune_r0");
  Model m = block_model(4);
  save_model(m, dir / "m.onnx");
  auto r = run_cli({"prune", (dir / "m.onnx").string(), "-o", (dir / "p.onnx").string(), "--ratio", "0"});
  CHECK(r.rc == 1);
  CHECK_THAT(r.out, Catch::Contains("prune: nothing to change: no channel group loses a channel at this target"));
  CHECK_FALSE(fs::exists(dir / "p.onnx"));
}

TEST_CASE("prune target-macs lands near the target on ppocr2_cls", "[prune]") {
  fs::path dir = temp_dir("prune_macs");
  fs::path out = dir / "cls.onnx", rep = dir / "r.json";
  auto r = run_cli({"prune", corpus_model("ppocr2_cls.onnx").string(), "-o", out.string(), "--target-macs", "0.5",
                    "--input-shape", "x=1,3,48,192", "--report", rep.string()});
  INFO(r.out);
  REQUIRE(r.rc == 0);
  std::ifstream f(rep);
  nlohmann::json j = nlohmann::json::parse(f)["steps"][0]["details"];
  double frac = j["totals"]["macs_after"].get<double>() / j["totals"]["macs_before"].get<double>();
  CHECK(std::fabs(frac - 0.5) <= 0.05);
  CHECK(j["totals"]["params_after"].get<int64_t>() < j["totals"]["params_before"].get<int64_t>());
  // Hardware-friendly rounding: every pruned group keeps a multiple of 8 channels.
  int pruned = 0;
  for (const auto& g : j["groups"]) {
    if (g["channels_after"] == g["channels_before"]) {
      continue;
    }
    ++pruned;
    CHECK(g["channels_after"].get<int64_t>() % 8 == 0);
  }
  CHECK(pruned > 5);
  // The pruned model keeps its interface and runs in ONNX Runtime.
  Model orig = load_norm(corpus_model("ppocr2_cls.onnx")), p = load_model(out);
  check_interface(orig, p);
  auto o = run_ort(out, text_image(48, 192));
  CHECK(o.begin()->second.dims == std::vector<int64_t>{1, 2});
}

// torch's x.view(x.size(0), -1): the flatten's target is Concat(Unsqueeze(Gather(Shape(x), 0)), [-1]).
// Shape only reads the batch dim and the Reshape keeps it, so the channels before it stay prunable.
TEST_CASE("prune equals masking through a run-time view flatten", "[prune]") {
  Model m = small_cnn(5);
  Graph& g = m.graph;
  int fl = -1;
  for (int i = 0; i < static_cast<int>(g.nodes.size()); ++i)
    if (g.nodes[i].op_type == "Flatten") fl = i;
  REQUIRE(fl >= 0);
  g.remove_node(static_cast<size_t>(fl));
  g.add_initializer(Tensor::from_int64("dim0", {}, {0}));
  g.add_initializer(Tensor::from_int64("axes0", {1}, {0}));
  g.add_initializer(Tensor::from_int64("minus1", {1}, {-1}));
  g.insert_node(static_cast<size_t>(fl), make_node("Shape", {"gap"}, {"gap_shape"}));
  g.insert_node(static_cast<size_t>(fl) + 1, make_node("Gather", {"gap_shape", "dim0"}, {"batch"}));
  g.insert_node(static_cast<size_t>(fl) + 2, make_node("Unsqueeze", {"batch", "axes0"}, {"batch1"}));
  Node cat = make_node("Concat", {"batch1", "minus1"}, {"view_shape"});
  cat.set_attr_int("axis", 0);
  g.insert_node(static_cast<size_t>(fl) + 3, cat);
  g.insert_node(static_cast<size_t>(fl) + 4, make_node("Reshape", {"gap", "view_shape"}, {"flat"}));
  ChannelDeps d = build_channel_deps(m);
  REQUIRE(d.spaces.count("gap"));
  std::string why;
  for (const auto& r : d.groups[d.spaces.at("gap").group].reasons) why += r + "; ";
  INFO(why);
  CHECK(d.groups[d.spaces.at("gap").group].prunable());
  prune_equals_mask(m, "cnn_view", 5);

  // The same Shape feeding the channel count onward (Gather of dim 1) locks the group, with the reason.
  Model leak = m;
  leak.graph.initializer("dim0")->bytes = Tensor::from_int64("dim0", {}, {1}).bytes;
  ChannelDeps dl = build_channel_deps(leak);
  const ChannelGroup& gl = dl.groups[dl.spaces.at("gap").group];
  CHECK_FALSE(gl.prunable());
  bool said = false;
  for (const auto& r : gl.reasons) said = said || r.find("reads the channel count") != std::string::npos;
  CHECK(said);
}

// Target searches rewrite a copy without weight values (copy_without_weight_data) to measure each
// try: that copy must end with the same shapes, dims and costs as the real rewrite.
TEST_CASE("a copy without weight data prunes to the same shapes and costs", "[prune]") {
  Model m = load_norm(corpus_model("ppocr4_det.onnx"));
  ChannelDeps d = build_channel_deps(m);
  auto plan = random_plan(d, 4, 0.3);
  REQUIRE(removed_units(plan) > 0);
  Model full = m, light = copy_without_weight_data(m);
  int dataless = 0;
  for (const auto& t : light.graph.initializers) dataless += is_dataless(t);
  REQUIRE(dataless > 10);
  CHECK(model_weight_bytes(light) * 4 < model_weight_bytes(m));
  apply_prune(full, d, plan);
  apply_prune(light, d, plan);
  std::map<std::string, std::vector<int64_t>> in = {{"x", {1, 3, 96, 128}}};
  infer_shapes(full, in);
  infer_shapes(light, in);
  CostReport a = count_costs(full), b = count_costs(light);
  REQUIRE(a.macs_complete);
  REQUIRE(b.macs_complete);
  CHECK(a.params == b.params);
  CHECK(a.macs == b.macs);
  CHECK(a.params < count_costs(m).params);
  REQUIRE(full.graph.initializers.size() == light.graph.initializers.size());
  for (const auto& t : full.graph.initializers) {
    const Tensor* u = light.graph.initializer(t.name);
    REQUIRE(u);
    CHECK(u->dims == t.dims);
    // Small tensors (shape constants, norms) keep their values through the rewrite; weights stay empty.
    if (is_dataless(*u)) CHECK(dtype_is_float(t.dtype));
    else CHECK(u->bytes == t.bytes);
  }
  REQUIRE(full.graph.value_info.size() == light.graph.value_info.size());
  for (size_t i = 0; i < full.graph.value_info.size(); ++i) {
    CHECK(full.graph.value_info[i].name == light.graph.value_info[i].name);
    CHECK(full.graph.value_info[i].shape == light.graph.value_info[i].shape);
  }
}

TEST_CASE("prune refuses an impossible target", "[prune]") {
  fs::path dir = temp_dir("prune_imp");
  auto r = run_cli({"prune", corpus_model("wakeword_hello.onnx").string(), "-o", (dir / "w.onnx").string(),
                    "--target-params", "0.5"});
  CHECK(r.rc == 1);
  CHECK(r.out.find("reachable ") != std::string::npos);
  CHECK(r.out.find("of parameters (target 0.500)") != std::string::npos);
  CHECK_FALSE(fs::exists(dir / "w.onnx"));
}

TEST_CASE("prune compensation reduces the output error", "[prune]") {
  // Same channels removed (l2), with and without the least-squares re-solve on calibration data;
  // both measured against the unpruned model in ONNX Runtime on held-out inputs (not the samples
  // the re-solve was fitted on).
  fs::path dir = temp_dir("prune_comp");
  Model m = block_model(31, true);
  save_model(m, dir / "m.onnx");
  auto calib = random_inputs(m, 17, 64);
  write_npy(dir / "calib.npy", calib.at("x"));
  auto plain = run_cli({"prune", (dir / "m.onnx").string(), "-o", (dir / "plain.onnx").string(), "--ratio", "0.5",
                        "--round-to", "1", "--criterion", "l2"});
  REQUIRE(plain.rc == 0);
  auto comp = run_cli({"prune", (dir / "m.onnx").string(), "-o", (dir / "comp.onnx").string(), "--ratio", "0.5",
                       "--round-to", "1", "--criterion", "l2", "--compensate", "--calib", (dir / "calib.npy").string()});
  INFO(comp.out);
  REQUIRE(comp.rc == 0);
  CHECK(comp.out.find("layers compensated") != std::string::npos);
  auto held_out = random_inputs(m, 1017, 64);
  auto ref = run_ort(dir / "m.onnx", held_out), a = run_ort(dir / "plain.onnx", held_out),
       b = run_ort(dir / "comp.onnx", held_out);
  auto mse = [&](const Tensor& x) {
    auto fx = x.to_float(), fr = ref.at("y").to_float();
    double s = 0;
    for (size_t i = 0; i < fx.size(); ++i) s += (fx[i] - fr[i]) * (fx[i] - fr[i]);
    return s / static_cast<double>(fx.size());
  };
  double e_plain = mse(a.at("y")), e_comp = mse(b.at("y"));
  INFO("mse plain " << e_plain << " compensated " << e_comp);
  CHECK(e_comp < 0.5 * e_plain);
}

TEST_CASE("a CLI-pruned fashion_cnn equals masking the channels its criterion ranks lowest, on test images", "[prune][cli]") {
  // The plan the CLI must have followed, computed here from the library's scores and allocation on
  // the same normalized model; the written file must equal the original with those channels
  // zeroed where consumed, on held-out test images in ONNX Runtime.
  const fs::path src = source_path("models/fashion_cnn/model.onnx");
  fs::path dir = temp_dir("prune_cli_mask");
  auto r = run_cli({"prune", src.string(), "-o", (dir / "p.onnx").string(), "--ratio", "0.3", "--criterion", "l2",
                    "--round-to", "1"});
  INFO(r.out);
  REQUIRE(r.rc == 0);
  Model m = load_norm(src);
  ChannelDeps d = build_channel_deps(m);
  UnitScores us = score_units(m, d, Criterion::L2, Aggregate::Mean, 0, nullptr);
  AllocationRules rules;
  rules.round_to = 1;
  rules.skip.assign(d.groups.size(), 0);
  auto plan = allocate_local(d, us.score, 0.3, rules);
  REQUIRE(removed_units(plan) > 10);
  save_model(masked(m, d, plan), dir / "masked.onnx");
  Tensor x = first_rows(read_npy(source_path("models/fashion_cnn/test_x.npy")), 64);
  auto a = run_ort(dir / "p.onnx", {{"x", x}}).at("logits");
  auto b = run_ort(dir / "masked.onnx", {{"x", x}}).at("logits");
  CHECK(max_rel_error(a, b) <= 1e-4);
  check_interface(m, load_model(dir / "p.onnx"));
}
