// Which units each pruning criterion removes, on models whose weights, BatchNorm scales and
// activations are chosen so the answer is known in advance (prune/importance.h gives the formulas):
// an inverted or swapped ranking removes another set and fails. Also the allocation's promises:
// targets reached, --scope global ranks across groups, --ignore, --aggregate, --damping.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>

#include "engine/calibrate.h"
#include "engine/npy.h"
#include "graph/cost.h"
#include "graph/normalize.h"
#include "graph/onnx_io.h"
#include "prune/prune.h"
#include "prune_check.h"
#include "support.h"

using namespace oc;
using namespace oc::test;

namespace {

using Channels = std::set<int>;

struct Chain {
  std::vector<float> wa;     // conv a [8, 8, 1, 1]: row c makes channel c of the pruned group
  std::vector<float> gamma;  // BatchNorm scale per channel; empty: no BatchNorm
  std::vector<float> wb;     // conv b [cb, 8, 1, 1]: the group's consumer
  int64_t cb = 8;
  bool residual = false;     // y = b + x (needs cb = 8): a residual block for cfsp
};

// x [N,8,4,4] -> conv a -> [BatchNorm] -> Relu -> conv b (-> + x) -> y. Conv b's outputs are the
// graph output (locked), so the one prunable group is conv a's 8 output channels.
Model chain_model(const Chain& c) {
  Model m = new_model(13);
  Graph& g = m.graph;
  g.inputs.push_back(tensor_value("x", {-1, 8, 4, 4}));
  g.add_initializer(Tensor::from_float("wa", {8, 8, 1, 1}, c.wa));
  g.add_initializer(Tensor::from_float("wb", {c.cb, 8, 1, 1}, c.wb));
  g.add_node(make_node("Conv", {"x", "wa"}, {"a"}, "conv_a"));
  std::string cur = "a";
  if (!c.gamma.empty()) {
    g.add_initializer(Tensor::from_float("bn.s", {8}, c.gamma));
    g.add_initializer(Tensor::from_float("bn.b", {8}, std::vector<float>(8, 0.f)));
    g.add_initializer(Tensor::from_float("bn.m", {8}, std::vector<float>(8, 0.f)));
    g.add_initializer(Tensor::from_float("bn.v", {8}, std::vector<float>(8, 1.f)));
    g.add_node(make_node("BatchNormalization", {"a", "bn.s", "bn.b", "bn.m", "bn.v"}, {"bn"}, "bn"));
    cur = "bn";
  }
  g.add_node(make_node("Relu", {cur}, {"r"}, "relu"));
  g.add_node(make_node("Conv", {"r", "wb"}, {c.residual ? "b" : "y"}, "conv_b"));
  if (c.residual) g.add_node(make_node("Add", {"b", "x"}, {"y"}, "residual"));
  g.outputs.push_back(tensor_value("y", {-1, c.cb, 4, 4}));
  return m;
}

std::vector<float> diagonal(const std::vector<float>& d) {
  std::vector<float> w(64, 0.f);
  for (int c = 0; c < 8; ++c) w[c * 8 + c] = d[c];
  return w;
}

// The channels of conv a that are gone: rows of the original weight with no equal row left.
Channels removed_channels(const Model& orig, const Model& pruned) {
  const Tensor* a = orig.graph.initializer("wa");
  const Tensor* b = pruned.graph.initializer("wa");
  REQUIRE(a);
  REQUIRE(b);
  REQUIRE(b->dims.size() == 4);
  REQUIRE(b->dims[1] == 8);  // the input channels (x) are not prunable
  auto va = a->to_float(), vb = b->to_float();
  Channels gone;
  for (int c = 0; c < 8; ++c) {
    bool kept = false;
    for (int64_t r = 0; r < b->dims[0] && !kept; ++r)
      kept = std::equal(va.begin() + c * 8, va.begin() + c * 8 + 8, vb.begin() + r * 8);
    if (!kept) gone.insert(c);
  }
  CHECK(static_cast<int64_t>(gone.size()) == 8 - b->dims[0]);
  return gone;
}

// Calibration samples: channel c of x is m[c]·(0.9 .. 1.1), so ‖X_c‖ after a diagonal conv a and
// BatchNorm is ∝ |wa_cc|·γ_c·m_c (positive: Relu passes everything).
fs::path chain_calib(const std::vector<float>& m, int64_t n = 16) {
  auto u = random_floats(static_cast<size_t>(n * 8 * 16), 5, 0.9f, 1.1f);
  for (int64_t s = 0; s < n; ++s)
    for (int c = 0; c < 8; ++c)
      for (int k = 0; k < 16; ++k) u[static_cast<size_t>((s * 8 + c) * 16 + k)] *= m[c];
  fs::path p = temp_dir("crit_calib") / "x.npy";
  write_npy(p, Tensor::from_float("x", {n, 8, 4, 4}, u));
  return p;
}

struct Pruned {
  Model model;
  PruneReport report;
  Channels removed;
};

// Prunes half of conv a's channels (round-to 1) with `o`, calibrating on `calib` when the criterion
// or compensation needs statistics.
Pruned prune_chain(const Model& orig, PruneOptions o, const fs::path& calib = {}) {
  Model m = orig;
  normalize(m);
  if (o.ratio < 0 && o.target_macs < 0 && o.target_params < 0) o.ratio = 0.5;
  o.round_to = 1;
  CalibrationStats stats;
  CalibrationPlan plan = prune_calibration_plan(m, o);
  const bool needs = !plan.channels.empty() || !plan.grams.empty() || !plan.blocks.empty();
  if (needs) {
    REQUIRE(!calib.empty());
    CalibrationDataOptions co;
    co.batch_size = 4;
    CalibrationSource src(calib.string(), m, co);
    stats = calibrate(m, src, plan);
  }
  Pruned p;
  p.model = m;
  p.report = prune_model(p.model, o, needs ? &stats : nullptr);
  p.removed = removed_channels(orig, p.model);
  return p;
}

// The report's notes about the group of conv a's outputs.
std::string group_notes(const Model& orig, const PruneReport& r) {
  Model m = orig;
  normalize(m);
  ChannelDeps d = build_channel_deps(m);
  const std::string tag = "group " + std::to_string(d.spaces.at("a").group) + ":";
  std::string out;
  for (const auto& n : r.notes)
    if (n.rfind(tag, 0) == 0) out += n + "\n";
  return out;
}

PruneOptions with(Criterion c) {
  PruneOptions o;
  o.criterion = c;
  return o;
}

// BatchNorm scales, conv a magnitudes and input scales each rank the channels differently:
//   bn (|γ|):                  lowest four {1, 3, 5, 7}
//   l1/l2 (conv a dominates):  lowest four {0, 2, 4, 6}   (d + γ: 13.9 17.2 10.7 15.4 11.8 16.3 12.6 14.5)
//   activation/obs/cfsp (‖X‖ ∝ d·γ·m = 1.17 .41 .98 .66 8.8 5.76 7.92 9.1): lowest four {0, 1, 2, 3}
const std::vector<float> kGamma = {0.9f, 0.2f, 0.7f, 0.4f, 0.8f, 0.3f, 0.6f, 0.5f};
const std::vector<float> kDiag = {13, 17, 10, 15, 11, 16, 12, 14};
const std::vector<float> kScale = {0.1f, 0.12f, 0.14f, 0.11f, 1.f, 1.2f, 1.1f, 1.3f};

Model ranked_model(bool residual = true) {
  Chain c;
  c.wa = diagonal(kDiag);
  c.gamma = kGamma;
  c.wb.assign(64, 0.1f);  // uniform consumer: adds the same to every channel's score
  c.residual = residual;
  return chain_model(c);
}

}  // namespace

TEST_CASE("l1 and l2 remove the channels of smallest weight norm, and differ where the norms do", "[prune][criteria]") {
  // Even rows spread v over all 8 inputs (l1 = 8v, l2 = 2.83v), odd rows put 5v.. on one input
  // (l1 = l2): l1 finds the odd rows smaller, l2 the even ones.
  Chain c;
  c.wa.assign(64, 0.f);
  for (int r = 0; r < 8; ++r) {
    float v = 1.0f + 0.05f * static_cast<float>(r);
    if (r % 2 == 0) std::fill(c.wa.begin() + r * 8, c.wa.begin() + r * 8 + 8, v);
    else c.wa[r * 8 + (r + 3) % 8] = 5 * v;
  }
  c.wb.assign(32, 0.5f);
  c.cb = 4;
  Model m = chain_model(c);
  CHECK(prune_chain(m, with(Criterion::L1)).removed == Channels{1, 3, 5, 7});
  CHECK(prune_chain(m, with(Criterion::L2)).removed == Channels{0, 2, 4, 6});
  // A quarter: the two lowest of each ranking (l1: odd rows 5, 5.25..; l2: even rows 2.83, 2.97..).
  PruneOptions q = with(Criterion::L1);
  q.ratio = 0.25;
  CHECK(prune_chain(m, q).removed == Channels{1, 3});
  q.criterion = Criterion::L2;
  CHECK(prune_chain(m, q).removed == Channels{0, 2});
  // Without a BatchNorm in the group, bn falls back to l2 and says so.
  Pruned bn = prune_chain(m, with(Criterion::BN));
  CHECK(bn.removed == Channels{0, 2, 4, 6});
  CHECK_THAT(group_notes(m, bn.report), Catch::Contains("no bn member, scored by l2"));
}

TEST_CASE("bn removes the smallest BatchNorm scales, l1 the smallest filters", "[prune][criteria]") {
  Model m = ranked_model();
  Pruned bn = prune_chain(m, with(Criterion::BN));
  CHECK(bn.removed == Channels{1, 3, 5, 7});
  CHECK(group_notes(m, bn.report).empty());
  CHECK(prune_chain(m, with(Criterion::L1)).removed == Channels{0, 2, 4, 6});
  CHECK(prune_chain(m, with(Criterion::L2)).removed == Channels{0, 2, 4, 6});
  // The pruned model is the original with those channels masked (here on the kept BN members too).
  Model norm = m;
  normalize(norm);
  ChannelDeps d = build_channel_deps(norm);
  std::vector<std::vector<char>> plan(d.groups.size());
  for (size_t g = 0; g < d.groups.size(); ++g) plan[g].assign(d.groups[g].num_units, 0);
  const ChannelSpace& s = d.spaces.at("a");
  for (int c : bn.removed) plan[s.group][d.unit_of("a", c)] = 1;
  auto in = random_inputs(norm, 3, 2);
  prune_equals_mask(norm, d, plan, "bn_chain", in);
}

TEST_CASE("activation, obs and cfsp remove the channels with the least calibration signal", "[prune][criteria][calib]") {
  Model m = ranked_model();
  const fs::path calib = chain_calib(kScale);
  CHECK(prune_chain(m, with(Criterion::Activation), calib).removed == Channels{0, 1, 2, 3});
  Pruned obs = prune_chain(m, with(Criterion::OBS), calib);
  CHECK(obs.removed == Channels{0, 1, 2, 3});
  CHECK(obs.report.layers_compensated == 1);
  Pruned cfsp = prune_chain(m, with(Criterion::CFSP), calib);
  CHECK(cfsp.removed == Channels{0, 1, 2, 3});
  CHECK(cfsp.report.blocks.size() == 1);  // the residual Add made a block; its one group lost half
  // The same weights with the input scales reversed: the signal moves, so do the removed channels.
  std::vector<float> rev(kScale.rbegin(), kScale.rend());
  // d·γ·m = 16.9 4.4 7.7 6.6 .97 .53 .86 .91: lowest four {4, 5, 6, 7}
  CHECK(prune_chain(m, with(Criterion::Activation), chain_calib(rev)).removed == Channels{4, 5, 6, 7});
  CHECK(prune_chain(m, with(Criterion::OBS), chain_calib(rev)).removed == Channels{4, 5, 6, 7});
}

TEST_CASE("random removes a seeded selection that changes with the seed", "[prune][criteria]") {
  Model m = ranked_model();
  std::set<Channels> seen;
  for (uint64_t seed : {1, 2, 3, 4}) {
    PruneOptions o = with(Criterion::Random);
    o.seed = seed;
    Channels a = prune_chain(m, o).removed, b = prune_chain(m, o).removed;
    CHECK(a == b);  // deterministic per seed
    CHECK(a.size() == 4);
    seen.insert(a);
  }
  CHECK(seen.size() >= 3);  // 70 possible halves: four seeds hitting one or two of them is not random
}

TEST_CASE("aggregate max ranks a unit by its strongest member, mean by the average", "[prune][criteria]") {
  // Unit c has producer magnitude a_c (conv a) and consumer magnitude b_c (conv b's input column).
  // Channels 0-3 are strong in one member only (mean 4.5-4.75, max 8.5-9), channels 4-7 in both
  // (mean 6-7.5, max 6-7.5): mean drops 0-3, max drops 4-7.
  const std::vector<float> a = {9, 0.5f, 0.6f, 8.5f, 6, 6.5f, 7, 7.5f}, b = {0.5f, 9, 8.5f, 0.6f, 6, 6.5f, 7, 7.5f};
  Chain c;
  c.wa = diagonal(a);
  c.cb = 4;
  c.wb.assign(32, 0.f);
  for (int ch = 0; ch < 8; ++ch) c.wb[(ch % 4) * 8 + ch] = b[ch];
  Model m = chain_model(c);
  PruneOptions o = with(Criterion::L1);
  CHECK(prune_chain(m, o).removed == Channels{0, 1, 2, 3});
  o.aggregate = Aggregate::Sum;  // the same order as the mean within a group
  CHECK(prune_chain(m, o).removed == Channels{0, 1, 2, 3});
  o.aggregate = Aggregate::Max;
  CHECK(prune_chain(m, o).removed == Channels{4, 5, 6, 7});
  // The CLI passes --aggregate through.
  fs::path dir = temp_dir("aggregate");
  save_model(m, dir / "m.onnx");
  auto r = run_cli({"prune", (dir / "m.onnx").string(), "-o", (dir / "p.onnx").string(), "--ratio", "0.5",
                    "--round-to", "1", "--aggregate", "max"});
  INFO(r.out);
  REQUIRE(r.rc == 0);
  CHECK(removed_channels(m, load_model(dir / "p.onnx")) == Channels{4, 5, 6, 7});
}

namespace {

// x [N,8,4,4] -> conv a (8) -> relu -> conv b (8) -> relu -> conv c (4) -> y: group A (conv a's
// outputs) scores the same for every unit, group B (conv b's outputs) spreads its scores by conv
// c's input columns.
Model two_groups() {
  Model m = new_model(13);
  Graph& g = m.graph;
  g.inputs.push_back(tensor_value("x", {-1, 8, 4, 4}));
  g.add_initializer(Tensor::from_float("wa", {8, 8, 1, 1}, diagonal(std::vector<float>(8, 1.f))));
  g.add_initializer(Tensor::from_float("wb", {8, 8, 1, 1}, std::vector<float>(64, 0.5f)));
  std::vector<float> wc(32, 0.f);
  for (int ch = 0; ch < 8; ++ch) wc[(ch % 4) * 8 + ch] = 1.f + static_cast<float>(ch);
  g.add_initializer(Tensor::from_float("wc", {4, 8, 1, 1}, wc));
  g.add_node(make_node("Conv", {"x", "wa"}, {"a"}, "conv_a"));
  g.add_node(make_node("Relu", {"a"}, {"ra"}));
  g.add_node(make_node("Conv", {"ra", "wb"}, {"b"}, "conv_b"));
  g.add_node(make_node("Relu", {"b"}, {"rb"}));
  g.add_node(make_node("Conv", {"rb", "wc"}, {"y"}, "conv_c"));
  g.outputs.push_back(tensor_value("y", {-1, 4, 4, 4}));
  return m;
}

int64_t out_channels(const Model& m, const std::string& w) {
  const Tensor* t = m.graph.initializer(w);
  REQUIRE(t);
  return t->dims[0];
}

}  // namespace

TEST_CASE("scope global ranks all units together, local takes the same share of every group", "[prune][criteria]") {
  Model m = two_groups();
  normalize(m);
  PruneOptions o = with(Criterion::L1);
  o.ratio = 0.25;
  o.round_to = 1;
  Model local = m;
  prune_model(local, o);
  CHECK(out_channels(local, "wa") == 6);
  CHECK(out_channels(local, "wb") == 6);
  // Global: 4 of the 16 units go, all from group B (its normalized scores spread below 1; group
  // A's are all exactly 1) and by conv c's columns: channels 0-3 of b.
  o.global = true;
  Model global = m;
  prune_model(global, o);
  CHECK(out_channels(global, "wa") == 8);
  REQUIRE(out_channels(global, "wb") == 4);
  auto wc = global.graph.initializer("wc")->to_float();
  std::set<float> kept;
  for (float v : wc) if (v != 0.f) kept.insert(v);
  CHECK(kept == std::set<float>{5, 6, 7, 8});
}

TEST_CASE("prune --ignore leaves the groups of matching nodes alone", "[prune][criteria][cli]") {
  fs::path dir = temp_dir("ignore");
  Model m = two_groups();
  save_model(m, dir / "m.onnx");
  for (const std::string& pattern : {std::string("conv_a"), std::string("^conv_c$")}) {
    INFO("--ignore " << pattern);
    auto r = run_cli({"prune", (dir / "m.onnx").string(), "-o", (dir / "p.onnx").string(), "--ratio", "0.5",
                      "--round-to", "1", "--ignore", pattern, "--report", (dir / "r.json").string()});
    INFO(r.out);
    REQUIRE(r.rc == 0);
    Model p = load_model(dir / "p.onnx");
    // conv_a touches group A only; conv_c consumes group B only.
    CHECK(out_channels(p, "wa") == (pattern == "conv_a" ? 8 : 4));
    CHECK(out_channels(p, "wb") == (pattern == "conv_a" ? 4 : 8));
    nlohmann::json j;
    std::ifstream(dir / "r.json") >> j;
    int ignored = 0;
    for (const auto& g : j["steps"][0]["details"]["groups"])
      ignored += g.value("skip_reason", std::string()).find("ignored by --ignore") != std::string::npos;
    CHECK(ignored == (pattern == "conv_a" ? 1 : 2));  // conv_c also touches its own (output) group
  }
  // Op types match too: ignoring Conv leaves nothing to prune, which is refused in one line (a
  // copy of the input is not written).
  auto r = run_cli({"prune", (dir / "m.onnx").string(), "-o", (dir / "none.onnx").string(), "--ratio", "0.5",
                    "--ignore", "Conv"});
  CHECK(r.rc == 1);
  CHECK(r.out.find("prune: nothing to change") != std::string::npos);
  CHECK(r.out.find("ignored by --ignore") != std::string::npos);
  CHECK_FALSE(fs::exists(dir / "none.onnx"));
}

TEST_CASE("target-params and target-macs land within 0.02 of the target", "[prune][criteria]") {
  Model m = load_norm(source_path("models/fashion_cnn/model.onnx"));
  for (double target : {0.5, 0.75}) {
    for (bool macs : {false, true}) {
      for (bool global : {false, true}) {
        INFO((macs ? "target-macs " : "target-params ") << target << (global ? " global" : " local"));
        PruneOptions o = with(Criterion::L2);
        (macs ? o.target_macs : o.target_params) = target;
        o.global = global;
        o.round_to = 1;
        o.input_shapes = {{"x", {1, 1, 28, 28}}};
        Model p = m;
        PruneReport r = prune_model(p, o);
        double frac = macs ? static_cast<double>(r.macs_after) / static_cast<double>(r.macs_before)
                           : static_cast<double>(r.params_after) / static_cast<double>(r.params_before);
        CHECK(std::fabs(frac - target) <= 0.02);
        // The report's totals are the written model's own.
        CHECK(count_costs(p).params == r.params_after);
      }
    }
  }
}

TEST_CASE("compensation damping: more damping, less of the least-squares fit", "[prune][criteria][calib]") {
  // The removed channels carry signal ({0..3} of the l1 ranking have large activations), so the
  // fit matters; damping λ·mean(diag XᵀX) pulls the solution to zero as it grows.
  Model m = ranked_model(false);
  normalize(m);
  const fs::path calib = chain_calib(kScale, 64), held_out = chain_calib(kScale, 32);
  Tensor hx = read_npy(held_out);
  std::map<std::string, Tensor> in = {{"x", hx}};
  fs::path dir = temp_dir("damping");
  save_model(m, dir / "m.onnx");
  const auto ref = run_ort(dir / "m.onnx", in).at("y").to_float();
  auto error = [&](double damping, bool compensate) {
    PruneOptions o = with(Criterion::L1);
    o.compensate = compensate;
    o.damping = damping;
    Pruned p = prune_chain(m, o, calib);
    CHECK(p.removed == Channels{0, 2, 4, 6});
    save_model(p.model, dir / "p.onnx");
    auto y = run_ort(dir / "p.onnx", in).at("y").to_float();
    double e = 0;
    for (size_t i = 0; i < y.size(); ++i) e += (y[i] - ref[i]) * (y[i] - ref[i]);
    return e / static_cast<double>(y.size());
  };
  double plain = error(0, false), tight = error(1e-4, true), loose = error(1.0, true), huge = error(1e3, true);
  INFO("mse plain " << plain << ", damping 1e-4 " << tight << ", 1 " << loose << ", 1e3 " << huge);
  CHECK(tight < 0.5 * plain);  // scored on held-out inputs, not the fitted ones
  CHECK(tight < loose);
  CHECK(loose < huge);
  // The CLI passes --damping through: a huge damping changes the written weights.
  save_model(m, dir / "m.onnx");
  std::vector<std::vector<float>> wb;
  for (const char* d : {"0.0001", "1000"}) {
    auto r = run_cli({"prune", (dir / "m.onnx").string(), "-o", (dir / "c.onnx").string(), "--ratio", "0.5",
                      "--round-to", "1", "--compensate", "--calib", calib.string(), "--damping", d});
    INFO(r.out);
    REQUIRE(r.rc == 0);
    wb.push_back(load_model(dir / "c.onnx").graph.initializer("wb")->to_float());
  }
  double n0 = 0, n1 = 0;
  for (float v : wb[0]) n0 += v * v;
  for (float v : wb[1]) n1 += v * v;
  CHECK(n1 < 0.5 * n0);
}
