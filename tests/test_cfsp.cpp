// CFSP: block detection on the committed transformers, the per-block allocation's properties, and
// an end-to-end run whose output ONNX Runtime executes.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <set>

#include "engine/calibrate.h"
#include "engine/npy.h"
#include "graph/channel_deps.h"
#include "graph/normalize.h"
#include "graph/onnx_io.h"
#include "graph/shape_inference.h"
#include "prune/allocate.h"
#include "prune/blocks.h"
#include "prune/cfsp.h"
#include "prune/prune.h"
#include "prune/rewrite.h"
#include "prune_check.h"
#include "support.h"

using namespace oc;
using namespace oc::test;

namespace {

Model load_shaped(const std::string& rel) {
  Model m = load_model(source_path(rel));
  normalize(m);
  infer_shapes(m);
  return m;
}

int count_op(const Graph& g, const std::vector<int>& nodes, const std::string& op) {
  int n = 0;
  for (int i : nodes) n += g.nodes[i].op_type == op;
  return n;
}

// Every transformer layer has one Softmax (attention) and two residual Adds: attention and FFN
// blocks alternate, each attention block holds exactly one Softmax, each FFN block none, and the
// FFN hidden group (fc1's output channels) belongs to an FFN block.
void check_transformer_blocks(const std::string& rel) {
  Model m = load_shaped(rel);
  const Graph& g = m.graph;
  std::vector<int> all(g.nodes.size());
  for (size_t i = 0; i < all.size(); ++i) all[i] = static_cast<int>(i);
  const int layers = count_op(g, all, "Softmax");
  REQUIRE(layers >= 2);
  auto blocks = find_blocks(m);
  REQUIRE(blocks.size() == static_cast<size_t>(2 * layers));
  for (size_t b = 0; b < blocks.size(); ++b) {
    INFO("block " << blocks[b].name);
    CHECK(count_op(g, blocks[b].nodes, "Softmax") == (b % 2 == 0 ? 1 : 0));
    CHECK(count_op(g, blocks[b].nodes, "LayerNormalization") == 1);  // pre-LN: one norm per block
    CHECK(g.nodes[blocks[b].nodes.back()].outputs[0] == blocks[b].output);
    if (b > 0) CHECK(blocks[b].input == blocks[b - 1].output);  // consecutive on the residual stream
  }
  ChannelDeps d = build_channel_deps(m);
  auto gb = group_blocks(d, blocks, g.nodes.size());
  int ffn_groups = 0;
  for (size_t gi = 0; gi < d.groups.size(); ++gi)
    for (const auto& p : d.groups[gi].params)
      if (p.role == ParamSlice::Role::Producer && g.nodes[p.node].name.find("fc1") != std::string::npos) {
        REQUIRE(gb[gi] >= 0);
        CHECK(gb[gi] % 2 == 1);
        ++ffn_groups;
        break;
      }
  CHECK(ffn_groups == layers);
}

CalibrationStats calibrate_for(const Model& m, const PruneOptions& o, const std::string& calib, int64_t samples) {
  CalibrationPlan plan = prune_calibration_plan(m, o);
  CalibrationDataOptions co;
  co.batch_size = 4;
  co.max_samples = samples;
  CalibrationSource src(source_path(calib).string(), m, co);
  return calibrate(m, src, plan);
}

}  // namespace

TEST_CASE("cfsp finds attention and FFN blocks on gpt_tiny", "[cfsp]") { check_transformer_blocks("models/gpt_tiny/model.onnx"); }
TEST_CASE("cfsp finds attention and FFN blocks on bert_tiny", "[cfsp]") { check_transformer_blocks("models/bert_tiny/model.onnx"); }

TEST_CASE("cfsp finds the residual unit of small_cnn and user blocks by regex", "[cfsp]") {
  Model m = small_cnn(2);
  normalize(m);
  infer_shapes(m);
  auto blocks = find_blocks(m);
  REQUIRE(blocks.size() >= 1);
  for (const auto& b : blocks) {
    CHECK(m.graph.nodes[b.nodes.back()].op_type == "Add");
    CHECK(count_op(m.graph, b.nodes, "Conv") >= 1);
  }
  // One user block per transformer layer: input = the stream entering, output = the layer's last Add.
  Model gpt = load_shaped("models/gpt_tiny/model.onnx");
  auto layers = find_blocks(gpt, "blocks\\.[0-9]+");
  auto halves = find_blocks(gpt);
  REQUIRE(layers.size() * 2 == halves.size());
  for (size_t l = 0; l < layers.size(); ++l) {
    CHECK(layers[l].input == halves[2 * l].input);
    CHECK(layers[l].output == halves[2 * l + 1].output);
  }
  CHECK_THROWS_WITH(find_blocks(gpt, "("), Catch::Contains("bad --blocks regex"));
  CHECK_THROWS_WITH(find_blocks(gpt, "no_such_node"), Catch::Contains("matches no node"));
}

TEST_CASE("cfsp keep fractions are monotone in importance and keep the mean inside the bounds", "[cfsp]") {
  std::mt19937_64 rng(7);
  std::uniform_real_distribution<double> u(0.0, 0.5);
  for (int trial = 0; trial < 200; ++trial) {
    std::vector<double> imp(2 + trial % 9);
    for (auto& x : imp) x = u(rng);
    const double P = 0.05 + 0.8 * (trial % 17) / 17.0, a = 0.5 + (trial % 5), mlr = 0.9;
    auto keep = cfsp_keep_fractions(imp, P, a, mlr);
    REQUIRE(keep.size() == imp.size());
    double mean = 0;
    for (size_t i = 0; i < keep.size(); ++i) {
      mean += keep[i] / static_cast<double>(keep.size());
      CHECK(keep[i] <= 1.0 + 1e-12);
      CHECK(keep[i] >= 1.0 - mlr - 1e-12);
      for (size_t j = 0; j < keep.size(); ++j)
        if (imp[i] > imp[j]) CHECK(keep[i] >= keep[j] - 1e-12);
    }
    CHECK(mean == Approx(1.0 - P).margin(1e-9));
  }
  // A spread that would overflow is shrunk until the most important block keeps everything.
  auto k = cfsp_keep_fractions({0.0, 0.0, 0.0, 1.0}, 0.1, 10.0, 0.9);
  CHECK(*std::max_element(k.begin(), k.end()) == Approx(1.0));
  // A tight --max-layer-ratio bounds the least important block.
  k = cfsp_keep_fractions({0.0, 1.0, 1.0, 1.0}, 0.3, 10.0, 0.35);
  CHECK(*std::min_element(k.begin(), k.end()) == Approx(0.65));
  // Blocks with nothing to prune keep everything and leave the statistics to the others.
  k = cfsp_keep_fractions({0.9, 0.1, 0.2, 0.3}, 0.5, 1.0, 0.9, {0, 1, 1, 1});
  CHECK(k[0] == 1.0);
  CHECK((k[1] + k[2] + k[3]) / 3 == Approx(0.5));
  CHECK(k[1] < k[2]);
  CHECK(k[2] < k[3]);
  // Equal importances, or sharpness 0: every block keeps 1 − P.
  for (double x : cfsp_keep_fractions({0.2, 0.2, 0.2}, 0.4, 3.0, 0.9)) CHECK(x == Approx(0.6));
  for (double x : cfsp_keep_fractions({0.1, 0.2, 0.3}, 0.4, 0.0, 0.9)) CHECK(x == Approx(0.6));
}

TEST_CASE("cfsp per-block ratios reach the allocator rounded", "[cfsp]") {
  Model m = load_shaped("models/gpt_tiny/model.onnx");
  ChannelDeps d = build_channel_deps(m);
  auto blocks = find_blocks(m);
  auto gb = group_blocks(d, blocks, m.graph.nodes.size());
  std::vector<double> imp(blocks.size());
  for (size_t b = 0; b < imp.size(); ++b) imp[b] = static_cast<double>(b);  // later blocks more important
  auto keep = cfsp_keep_fractions(imp, 0.4, 2.0, 0.9);
  auto ratios = cfsp_group_ratios(gb, keep, 0.4);
  std::vector<std::vector<double>> scores(d.groups.size());
  for (size_t g = 0; g < d.groups.size(); ++g) scores[g].assign(d.groups[g].num_units, 1.0);
  AllocationRules rules;
  rules.round_to = 16;
  auto plan = allocate_per_group(d, scores, ratios, rules);
  int checked = 0;
  std::vector<int64_t> kept_by_block(blocks.size(), -1);
  for (size_t g = 0; g < d.groups.size(); ++g) {
    if (gb[g] < 0 || !d.groups[g].prunable() || d.groups[g].locked_units > 0) continue;
    int64_t n = d.groups[g].num_units, kept = n - std::count(plan[g].begin(), plan[g].end(), 1);
    INFO("group " << g << " of block " << gb[g] << ": " << kept << " of " << n);
    CHECK((kept % 16 == 0 || kept == n));
    CHECK(std::fabs(static_cast<double>(kept) - keep[gb[g]] * static_cast<double>(n)) <= 8.0 + 1e-9);
    kept_by_block[gb[g]] = kept;
    ++checked;
  }
  REQUIRE(checked >= 2);
  // Among FFN blocks (same width), the later (more important) keeps at least as much.
  for (size_t b = 3; b < blocks.size(); b += 2)
    if (kept_by_block[b] >= 0 && kept_by_block[b - 2] >= 0) CHECK(kept_by_block[b] >= kept_by_block[b - 2]);
}

namespace {

// Prunes gpt_tiny's block groups by the CFSP allocation and compares with zeroing the same
// channels' weights (producer columns, consumer rows, per-channel constants): for FFN neurons and
// whole heads the two are the same function.
void cfsp_equals_masking(bool heads) {
  Model m = load_model(source_path("models/gpt_tiny/model.onnx"));
  normalize(m);
  PruneOptions o;
  o.criterion = Criterion::CFSP;
  o.heads = heads;
  CalibrationStats stats = calibrate_for(m, o, "models/gpt_tiny/calib.npy", 8);
  Model shaped = m;
  infer_shapes(shaped);
  auto blocks = find_blocks(shaped);
  REQUIRE(!blocks.empty());
  std::vector<double> imp;
  for (const auto& b : blocks) {
    REQUIRE(stats.blocks.count(b.name));
    REQUIRE(stats.blocks.at(b.name).count == 8 * 128);  // one angle per token
    imp.push_back(stats.blocks.at(b.name).mean_angle());
  }
  ChannelDeps d = build_channel_deps(m, {heads});
  auto gb = group_blocks(d, blocks, m.graph.nodes.size());
  if (heads) {  // some block holds a head group (4 units of 32 channels)
    bool head_group = false;
    for (size_t g = 0; g < d.groups.size(); ++g)
      head_group = head_group || (gb[g] >= 0 && d.groups[g].num_units == 4 && d.groups[g].prunable());
    REQUIRE(head_group);
  }
  // Only the groups inside blocks (the residual stream feeds LayerNorms: not a masking equivalence).
  auto ratios = cfsp_group_ratios(gb, cfsp_keep_fractions(imp, 0.4, 1.0, 0.9), 0.0);
  UnitScores us = score_units(m, d, Criterion::CFSP, Aggregate::Mean, 0, &stats);
  auto plan = allocate_per_group(d, us.score, ratios, AllocationRules{});
  int64_t removed = 0;
  for (const auto& p : plan) removed += std::count(p.begin(), p.end(), 1);
  REQUIRE(removed > 0);
  int64_t heads_removed = 0;
  for (size_t g = 0; g < d.groups.size(); ++g)
    if (gb[g] >= 0 && d.groups[g].num_units == 4) heads_removed += std::count(plan[g].begin(), plan[g].end(), 1);
  if (heads) REQUIRE(heads_removed > 0);
  Model pruned = m;
  apply_prune(pruned, d, plan);
  const Model ref = masked(m, d, plan);
  fs::path dir = temp_dir(heads ? "cfsp_mask_heads" : "cfsp_mask");
  save_model(pruned, dir / "pruned.onnx");
  save_model(ref, dir / "masked.onnx");
  std::vector<int64_t> tok(2 * 128);
  for (size_t i = 0; i < tok.size(); ++i) tok[i] = static_cast<int64_t>((i * 37 + 11) % 256);
  std::map<std::string, Tensor> in = {{"tokens", Tensor::from_int64("tokens", {2, 128}, tok)}};
  auto a = run_ort(dir / "pruned.onnx", in);
  auto b = run_ort(dir / "masked.onnx", in);
  CHECK(max_rel_error(a.at("logits"), b.at("logits")) <= 1e-4);
}

}  // namespace

TEST_CASE("cfsp pruning equals masking on gpt_tiny", "[cfsp]") { cfsp_equals_masking(false); }
TEST_CASE("cfsp pruning of heads and FFN neurons equals masking on gpt_tiny", "[cfsp]") { cfsp_equals_masking(true); }

TEST_CASE("cfsp prune CLI on gpt_tiny allocates per block and runs in ONNX Runtime", "[cfsp]") {
  fs::path dir = temp_dir("cfsp_cli");
  const std::string model = source_path("models/gpt_tiny/model.onnx").string();
  const std::string calib = source_path("models/gpt_tiny/calib.npy").string();
  auto r = run_cli({"prune", model, "-o", (dir / "p.onnx").string(), "--criterion", "cfsp", "--calib", calib,
                    "--calib-samples", "8", "--target-macs", "0.7", "--compensate", "--cfsp-sharpness", "2",
                    "--report", (dir / "r.json").string(), "--html", (dir / "r.html").string()});
  INFO(r.out);
  REQUIRE(r.rc == 0);
  nlohmann::json rep;
  std::ifstream(dir / "r.json") >> rep;
  const auto& blocks = rep["extra"]["blocks"];
  REQUIRE(blocks.size() == 8);  // 4 layers x (attention, FFN)
  std::set<double> ratios;
  int pruned_blocks = 0;
  for (const auto& b : blocks) {
    CHECK(b["importance"].get<double>() > 0);
    CHECK(b["importance"].get<double>() < 1);
    ratios.insert(b["ratio"].get<double>());
    pruned_blocks += b["units_after"].get<int64_t>() < b["units_before"].get<int64_t>();
  }
  CHECK(ratios.size() > 1);  // not uniform
  CHECK(pruned_blocks >= 1);
  const auto& t = rep["totals"];
  double macs = t["after"]["macs"].get<double>() / t["before"]["macs"].get<double>();
  CHECK(macs == Approx(0.7).margin(0.03));
  std::ifstream html(dir / "r.html");
  std::string page((std::istreambuf_iterator<char>(html)), std::istreambuf_iterator<char>());
  CHECK(page.find("Block importance (CFSP)") != std::string::npos);
  std::vector<int64_t> tok(128);
  for (size_t i = 0; i < tok.size(); ++i) tok[i] = static_cast<int64_t>("def main():\n    return 0\n"[i % 25]);
  auto out = run_ort(dir / "p.onnx", {{"tokens", Tensor::from_int64("tokens", {1, 128}, tok)}});
  const Tensor& logits = out.at("logits");
  REQUIRE(logits.dims == std::vector<int64_t>{1, 128, 256});
  for (float v : logits.to_float()) REQUIRE(std::isfinite(v));
}

TEST_CASE("cfsp refuses what it cannot do", "[cfsp]") {
  fs::path dir = temp_dir("cfsp_bad");
  const std::string model = source_path("models/gpt_tiny/model.onnx").string();
  auto r = run_cli({"prune", model, "-o", (dir / "p.onnx").string(), "--criterion", "cfsp", "--ratio", "0.3"});
  CHECK(r.rc != 0);
  CHECK_THAT(r.out, Catch::Contains("calibration data"));
  r = run_cli({"prune", model, "-o", (dir / "p.onnx").string(), "--criterion", "l1", "--ratio", "0.3", "--blocks", "x"});
  CHECK(r.rc != 0);
  CHECK_THAT(r.out, Catch::Contains("--blocks applies to --criterion cfsp"));
  CHECK_FALSE(fs::exists(dir / "p.onnx"));
}

TEST_CASE("cfsp finds one block per ResNet unit on the resnet18 zoo export", "[cfsp]") {
  const fs::path path = zoo_model("resnet18");
  if (path.empty()) return;
  Model m = load_model(path);
  normalize(m);
  infer_shapes(m);
  // Every BasicBlock has one conv2; the blocks with a downsample take the angle from its output.
  int units = 0, downsample = 0;
  for (const auto& n : m.graph.nodes) {
    units += n.op_type == "Conv" && n.name.find("/conv2/") != std::string::npos;
    downsample += n.op_type == "Conv" && n.name.find("/downsample/") != std::string::npos;
  }
  auto blocks = find_blocks(m);
  REQUIRE(blocks.size() == static_cast<size_t>(units));
  int from_downsample = 0;
  for (const auto& b : blocks) {
    INFO(b.name);
    CHECK(count_op(m.graph, b.nodes, "Conv") >= 2);
    int p = m.graph.producer(b.input);
    from_downsample += p >= 0 && m.graph.nodes[p].name.find("/downsample/") != std::string::npos;
  }
  CHECK(from_downsample == downsample);
  // The group of each unit's inner width (conv1's filters) lies inside its block.
  ChannelDeps d = build_channel_deps(m);
  auto gb = group_blocks(d, blocks, m.graph.nodes.size());
  int inner = 0;
  for (size_t gi = 0; gi < d.groups.size(); ++gi)
    for (const auto& p : d.groups[gi].params)
      if (p.role == ParamSlice::Role::Producer && m.graph.nodes[p.node].name.find("/conv1/") != std::string::npos &&
          m.graph.nodes[p.node].name.find("layer") != std::string::npos) {
        CHECK(gb[gi] >= 0);
        ++inner;
        break;
      }
  CHECK(inner == units);
}
