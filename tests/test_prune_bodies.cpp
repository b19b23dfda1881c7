// Pruning inside If bodies (prune/bodies.h): channel groups that start and end inside a branch
// are pruned like main-graph groups; the If's outputs and the outer graph are unchanged.
#include <catch2/catch.hpp>

#include <cmath>

#include "engine/calib_data.h"
#include "engine/calibrate.h"
#include "engine/executor.h"
#include "graph/channel_deps.h"
#include "graph/normalize.h"
#include "graph/onnx_io.h"
#include "graph/subgraphs.h"
#include "prune/bodies.h"
#include "prune/prune.h"
#include "prune/rewrite.h"
#include "prune_check.h"
#include "support.h"

using namespace oc;
using namespace oc::test;

namespace {

// y = If(cond, then: MatMul(Relu(MatMul(x, W1) + b1), W2), else: MatMul(Relu(MatMul(x, W3)), W4)),
// x [N, 8] -> y [N, 4]. W1 is in the main graph (torch reads weights from the outer scope).
Model if_mlp(uint64_t seed = 7) {
  Model m = new_model(13);
  Graph& g = m.graph;
  g.inputs = {tensor_value("x", {-1, 8}), tensor_value("cond", {}, DType::Bool)};
  g.outputs = {tensor_value("y", {-1, 4})};
  g.initializers.push_back(random_tensor("W1", {8, 16}, seed));
  Graph t;
  t.name = "then";
  t.initializers.push_back(random_tensor("b1", {16}, seed + 1));
  t.initializers.push_back(random_tensor("W2", {16, 4}, seed + 2));
  t.nodes.push_back(make_node("MatMul", {"x", "W1"}, {"t0"}, "then_mm1"));
  t.nodes.push_back(make_node("Add", {"t0", "b1"}, {"t1"}, "then_add"));
  t.nodes.push_back(make_node("Relu", {"t1"}, {"t2"}, "then_relu"));
  t.nodes.push_back(make_node("MatMul", {"t2", "W2"}, {"yt"}, "then_mm2"));
  t.outputs = {tensor_value("yt", {-1, 4})};
  Graph e;
  e.name = "else";
  e.initializers.push_back(random_tensor("W3", {8, 24}, seed + 3));
  e.initializers.push_back(random_tensor("W4", {24, 4}, seed + 4));
  e.nodes.push_back(make_node("MatMul", {"x", "W3"}, {"e1"}, "else_mm1"));
  e.nodes.push_back(make_node("Relu", {"e1"}, {"e2"}, "else_relu"));
  e.nodes.push_back(make_node("MatMul", {"e2", "W4"}, {"ye"}, "else_mm2"));
  e.outputs = {tensor_value("ye", {-1, 4})};
  Node n = make_node("If", {"cond"}, {"y"}, "branch");
  n.attributes.push_back(graph_attr("then_branch", std::move(t)));
  n.attributes.push_back(graph_attr("else_branch", std::move(e)));
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

const Tensor* find_weight(const Model& m, const std::string& name) {
  for (const auto& s : all_graphs(m.graph))
    if (const Tensor* t = s.graph->initializer(name)) return t;
  return nullptr;
}
Tensor* find_weight_mut(Model& m, const std::string& name) {
  for (const auto& s : all_graphs(m.graph))
    for (auto& t : s.graph->initializers)
      if (t.name == name) return &t;
  return nullptr;
}

// Columns of `orig` [K, N] that `pruned` [K, N'] kept (each pruned column is an exact copy).
std::vector<int64_t> kept_columns(const Tensor& orig, const Tensor& pruned) {
  auto a = orig.to_float(), b = pruned.to_float();
  int64_t k = orig.dims[0], n = orig.dims[1], np = pruned.dims[1];
  std::vector<int64_t> kept;
  for (int64_t j = 0; j < np; ++j)
    for (int64_t c = 0; c < n; ++c) {
      bool same = true;
      for (int64_t r = 0; r < k && same; ++r) same = a[r * n + c] == b[r * np + j];
      if (same) { kept.push_back(c); break; }
    }
  return kept;
}

// The original with hidden units not in `kept` zeroed where the second MatMul reads them.
void mask_rows(Model& m, const std::string& w, const std::vector<int64_t>& kept) {
  Tensor* t = find_weight_mut(m, w);
  REQUIRE(t);
  auto v = t->to_float();
  int64_t rows = t->dims[0], cols = t->dims[1];
  for (int64_t r = 0; r < rows; ++r)
    if (std::find(kept.begin(), kept.end(), r) == kept.end())
      for (int64_t c = 0; c < cols; ++c) v[r * cols + c] = 0.f;
  *t = Tensor::from_float(t->name, t->dims, v);
}

// Calibration data for if_mlp: one file per branch (cond is a scalar: each file takes one branch).
fs::path if_calib(const fs::path& dir, int64_t n, bool both = true) {
  fs::create_directories(dir);
  write_npz(dir / "a_then.npz", {random_tensor("x", {n, 8}, 21), bool_scalar("cond", true)}, false);
  if (both) write_npz(dir / "b_else.npz", {random_tensor("x", {n, 8}, 22), bool_scalar("cond", false)}, false);
  return dir;
}

CalibrationStats if_stats(const Model& m, const PruneOptions& o, const fs::path& calib) {
  CalibrationSource src(calib.string(), m);
  return calibrate(m, src, prune_calibration_plan(m, o));
}

double rel_l2(const Tensor& a, const Tensor& b) {
  auto x = a.to_float(), y = b.to_float();
  double num = 0, den = 0;
  for (size_t i = 0; i < x.size(); ++i) num += (x[i] - y[i]) * (x[i] - y[i]), den += y[i] * y[i];
  return std::sqrt(num / den);
}

bool noted(const PruneReport& r, const std::string& what) {
  for (const auto& n : r.notes)
    if (n.find(what) != std::string::npos) return true;
  return false;
}

}  // namespace

TEST_CASE("If branches: groups inside each branch are pruned, both branches agree with masking and ORT", "[prune][subgraph]") {
  Model m = if_mlp();
  PruneOptions o;
  o.ratio = 0.5;
  o.round_to = 4;
  Model p = m;
  PruneReport rep = prune_model(p, o);
  // then: 16 hidden units -> 8, else: 24 -> 12; W1 moved into the then branch first.
  const Tensor* w1 = find_weight(p, "W1");
  const Tensor* w3 = find_weight(p, "W3");
  REQUIRE(w1);
  REQUIRE(w3);
  CHECK(w1->dims == std::vector<int64_t>{8, 8});
  CHECK(find_weight(p, "b1")->dims == std::vector<int64_t>{8});
  CHECK(find_weight(p, "W2")->dims == std::vector<int64_t>{8, 4});
  CHECK(w3->dims == std::vector<int64_t>{8, 12});
  CHECK(find_weight(p, "W4")->dims == std::vector<int64_t>{12, 4});
  CHECK(p.graph.initializer("W1") == nullptr);
  CHECK(rep.params_after < rep.params_before);
  int cut = 0;
  for (const auto& g : rep.groups) cut += g.units_after < g.units_before;
  CHECK(cut == 2);
  bool noted = false;
  for (const auto& n : rep.notes) noted = noted || n.find("pruned inside 2 of 2 If/Loop/Scan bodies") != std::string::npos;
  CHECK(noted);
  // Masking: the original with the removed hidden units zeroed before the second MatMul.
  Model ref = m;
  localize_subgraph_weights(ref.graph);
  auto k1 = kept_columns(*find_weight(m, "W1"), *w1);
  auto k3 = kept_columns(*find_weight(m, "W3"), *w3);
  REQUIRE(k1.size() == 8);
  REQUIRE(k3.size() == 12);
  mask_rows(ref, "W2", k1);
  mask_rows(ref, "W4", k3);
  fs::path dir = temp_dir("prune_bodies");
  save_model(p, dir / "pruned.onnx");
  save_model(ref, dir / "masked.onnx");
  for (bool c : {true, false}) {
    INFO("cond " << c);
    std::map<std::string, Tensor> in = {{"x", random_tensor("x", {3, 8}, 11)}, {"cond", bool_scalar("cond", c)}};
    auto ours = agree_with_ort(p, in);  // our executor and ONNX Runtime agree on the pruned model
    auto a = run_ort(dir / "pruned.onnx", in);
    auto b = run_ort(dir / "masked.onnx", in);
    CHECK(a.at("y").dims == std::vector<int64_t>{3, 4});
    CHECK(max_rel_error(a.at("y"), b.at("y")) <= 1e-5);
    CHECK(max_rel_error(ours.at("y"), b.at("y")) <= 1e-4);
  }
}

TEST_CASE("If branches: --ignore applies inside bodies, a branch output keeps its width", "[prune][subgraph]") {
  Model m = if_mlp();
  PruneOptions o;
  o.ratio = 0.5;
  o.round_to = 4;
  o.ignore = {"else_"};
  Model p = m;
  prune_model(p, o);
  CHECK(find_weight(p, "W3")->dims == std::vector<int64_t>{8, 24});  // ignored branch untouched
  CHECK(find_weight(p, "W4")->dims == std::vector<int64_t>{24, 4});
  CHECK(find_weight(p, "W2")->dims[1] == 4);  // the branch output keeps its width
}

TEST_CASE("If branches: calibration observes the branch that runs and data-aware scores differ from magnitude", "[prune][subgraph]") {
  Model m = if_mlp();
  fs::path dir = temp_dir("prune_bodies_calib");
  PruneOptions o;
  o.ratio = 0.5;
  o.round_to = 4;
  o.criterion = Criterion::Activation;
  // The plan asks for the branches' consumers by scoped name; each branch sees the file that takes it.
  CalibrationPlan plan = prune_calibration_plan(m, o);
  CHECK(plan.channels.count("branch.then_branch::t2"));
  CHECK(plan.channels.count("branch.else_branch::e2"));
  CalibrationStats st = if_stats(m, o, if_calib(dir / "both", 12));
  REQUIRE(st.channels.count("branch.then_branch::t2"));
  REQUIRE(st.channels.count("branch.else_branch::e2"));
  CHECK(st.channels.at("branch.then_branch::t2").count == 12);  // rows per channel: one per sample
  CHECK(st.channels.at("branch.else_branch::e2").count == 12);

  Model a = m, b = m;
  PruneReport ra = prune_model(a, o, &st);
  PruneOptions l1 = o;
  l1.criterion = Criterion::L1;
  PruneReport rb = prune_model(b, l1);
  INFO((ra.notes.empty() ? std::string() : ra.notes.back()));
  CHECK(noted(ra, "pruned inside 2 of 2 If/Loop/Scan bodies"));
  CHECK(noted(ra, "2 scored from the calibration data that reached them"));
  REQUIRE(ra.groups.size() == rb.groups.size());
  int differ = 0;
  for (size_t g = 0; g < ra.groups.size(); ++g)
    differ += std::fabs(ra.groups[g].score_max - rb.groups[g].score_max) > 1e-6 ||
              std::fabs(ra.groups[g].score_min - rb.groups[g].score_min) > 1e-6;
  CHECK(differ == 2);

  // Data for one branch only: the other is scored by magnitude, and the report names it.
  CalibrationStats one = if_stats(m, o, if_calib(dir / "then_only", 12, false));
  CHECK(one.channels.count("branch.then_branch::t2"));
  CHECK((one.channels.count("branch.else_branch::e2") == 0 || one.channels.at("branch.else_branch::e2").count == 0));
  Model c = m;
  PruneReport rc = prune_model(c, o, &one);
  CHECK(noted(rc, "1 scored from the calibration data"));
  CHECK(noted(rc, "magnitude-scored (no calibration sample reached them): branch.else_branch"));
}

TEST_CASE("If branches: compensation from the branch's own Grams lowers its output error", "[prune][subgraph]") {
  Model m = if_mlp();
  fs::path dir = temp_dir("prune_bodies_comp");
  PruneOptions o;
  o.ratio = 0.5;
  o.round_to = 4;
  o.criterion = Criterion::Activation;
  o.compensate = true;
  CalibrationStats st = if_stats(m, o, if_calib(dir / "calib", 64));
  REQUIRE(st.grams.count("then_mm2"));
  REQUIRE(st.grams.count("else_mm2"));
  Model with = m, without = m;
  PruneReport rw = prune_model(with, o, &st);
  PruneOptions plain = o;
  plain.compensate = false;
  prune_model(without, plain, &st);
  CHECK(rw.layers_compensated == 2);
  CHECK(noted(rw, "2 layers compensated one-shot"));
  for (bool cond : {true, false}) {
    INFO("cond " << cond);
    std::map<std::string, Tensor> in = {{"x", random_tensor("x", {32, 8}, 99)}, {"cond", bool_scalar("cond", cond)}};
    const auto ref = agree_with_ort(m, in).at("y");
    const double ew = rel_l2(agree_with_ort(with, in).at("y"), ref);
    const double eo = rel_l2(agree_with_ort(without, in).at("y"), ref);
    CAPTURE(ew, eo);
    CHECK(ew < 0.8 * eo);  // held-out rows, not the calibration ones
  }
}

TEST_CASE("If branches: --target-macs counts and prunes the branches' MACs", "[prune][subgraph]") {
  Model m = if_mlp();
  fs::path dir = temp_dir("prune_bodies_target");
  PruneOptions o;
  o.target_macs = 0.5;
  o.round_to = 4;
  o.input_shapes = {{"x", {4, 8}}};
  o.criterion = Criterion::Activation;
  o.compensate = true;
  CalibrationStats st = if_stats(m, o, if_calib(dir / "calib", 16));
  Model p = m;
  PruneReport r = prune_model(p, o, &st);
  REQUIRE(r.target.is_object());
  CHECK(r.target["status"] == "met");
  // An If costs its larger branch: else, 4·(8·24 + 24·4) MACs, halved.
  CHECK(r.macs_before == 4 * (8 * 24 + 24 * 4));
  CHECK(std::fabs(r.target["reached"].get<double>() - 0.5) <= 0.03);
  CHECK(static_cast<double>(r.macs_after) / static_cast<double>(r.macs_before) == Approx(r.target["reached"].get<double>()));
  for (bool cond : {true, false}) {
    std::map<std::string, Tensor> in = {{"x", random_tensor("x", {4, 8}, 5)}, {"cond", bool_scalar("cond", cond)}};
    CHECK(agree_with_ort(p, in).at("y").dims == std::vector<int64_t>{4, 4});
  }
  // Out of reach (--max-layer-ratio 0.5 keeps half of each branch): refused with the bound.
  PruneOptions far = o;
  far.target_macs = 0.2;
  far.max_layer_ratio = 0.5;
  Model q = m;
  CHECK_THROWS_WITH(prune_model(q, far, &st), Catch::Contains("reachable 0.500 of MACs (target 0.200)") &&
                                                   Catch::Contains("2 of 4 channel groups locked"));
}

TEST_CASE("silero_vad: random plans inside its If branches and in the main graph equal masking, in ORT and on our executor",
          "[prune][subgraph][mask]") {
  // The corpus' body model (trained weights): every group inside each branch (prune/bodies.h) and
  // in the main graph loses a random third of its units; the original with those units zeroed where
  // they are read must give the same outputs at both sample rates (one If branch each).
  Model m = load_model(corpus_model("silero_vad.onnx"));
  normalize(m);
  localize_subgraph_weights(m.graph);
  PruneOptions o;
  const BodyPlanner bp = plan_bodies(m, o, nullptr, false);
  std::vector<std::vector<std::vector<char>>> plans;
  int64_t removed = 0, body_groups = 0;
  for (size_t i = 0; i < bp.bodies.size(); ++i) {
    plans.push_back(random_plan(bp.bodies[i].deps, 11 + i, 0.3));
    removed += removed_units(plans.back());
    for (const auto& g : bp.bodies[i].deps.groups) body_groups += g.prunable();
  }
  INFO(bp.bodies.size() << " bodies, " << body_groups << " prunable groups, removing " << removed << " units");
  REQUIRE(body_groups >= 4);
  REQUIRE(removed > 0);
  const ChannelDeps d = build_channel_deps(m);
  const auto main_plan = random_plan(d, 3, 0.3);
  Model pruned = m;
  apply_prune(pruned, d, main_plan);
  REQUIRE(bp.apply(pruned, plans) >= 2);  // both branches of the If
  Model ref = masked(m, d, main_plan);
  for (size_t i = 0; i < bp.bodies.size(); ++i) {
    Graph* body = graph_at(ref.graph, bp.bodies[i].path);
    REQUIRE(body);
    mask_graph(*body, bp.bodies[i].deps, plans[i]);
  }
  CHECK(model_weight_bytes(pruned) < model_weight_bytes(m));
  check_interface(m, pruned);
  const fs::path dir = temp_dir("silero_mask");
  save_model(pruned, dir / "pruned.onnx");
  save_model(ref, dir / "masked.onnx");
  Executor on_pruned(pruned), on_masked(ref);
  for (int64_t sr : {16000, 8000}) {
    std::map<std::string, Tensor> in = {{"input", random_tensor("input", {2, 512}, 5, -0.3f, 0.3f)},
                                        {"sr", Tensor::from_int64("sr", {}, {sr})},
                                        {"h", random_tensor("h", {2, 2, 64}, 6, -0.5f, 0.5f)},
                                        {"c", random_tensor("c", {2, 2, 64}, 7, -0.5f, 0.5f)}};
    const auto a = run_ort(dir / "pruned.onnx", in), b = run_ort(dir / "masked.onnx", in);
    const auto ours = on_pruned.run(in), ours_masked = on_masked.run(in);
    for (const char* out : {"output", "hn", "cn"}) {
      INFO("sr " << sr << ", output " << out);
      REQUIRE(a.count(out));
      double scale = 0;
      for (float v : b.at(out).to_float()) scale = std::max(scale, static_cast<double>(std::fabs(v)));
      REQUIRE(scale > 0.05);
      CHECK(max_rel_error(a.at(out), b.at(out)) <= 1e-5);
      CHECK(max_rel_error(ours.at(out), ours_masked.at(out)) <= 1e-5);
      CHECK(max_rel_error(ours.at(out), b.at(out)) <= 1e-4);
    }
  }
}
