// Attention-head pruning (--heads): a head is one unit of Q/K/V outputs, the O-projection input and
// the head axis between the Reshapes; pruning a head must equal masking its O-projection rows.
#include <catch2/catch.hpp>

#include <fstream>
#include <set>
#include <nlohmann/json.hpp>

#include "engine/npy.h"
#include "graph/channel_deps.h"
#include "graph/onnx_io.h"
#include "prune/allocate.h"
#include "prune/rewrite.h"
#include "prune_check.h"
#include "support.h"

using namespace oc;
using namespace oc::test;

namespace {

const ChannelDepsOptions kHeads{true};

// The group whose parameters include initializer `weight` (-1 when none).
int group_of_param(const Model& m, const ChannelDeps& d, const std::string& weight) {
  for (const auto& g : d.groups)
    for (const auto& p : g.params)
      if (m.graph.nodes[p.node].inputs[p.input] == weight) return g.id;
  return -1;
}

// The first `n` rows of a token file, as the model's "tokens" input.
std::map<std::string, Tensor> tokens(const std::string& file, int64_t n, int64_t cols = 128) {
  Tensor t = read_npy(source_path(file));
  std::vector<int64_t> v = t.to_int64();
  std::vector<int64_t> out;
  for (int64_t r = 0; r < n; ++r)
    for (int64_t c = 0; c < cols; ++c) out.push_back(v[static_cast<size_t>(r * t.dims[1] + c)]);
  return {{"tokens", Tensor::from_int64("tokens", {n, cols}, out)}};
}

// Head groups: units that each hold a Reshape head axis entry. Returns their ids.
std::vector<int> head_group_ids(const ChannelDeps& d, const Model& m) {
  std::vector<int> out;
  for (const auto& g : d.groups) {
    bool head = false;
    for (const auto& v : g.values) {
      int p = m.graph.producer(v);
      const ChannelSpace& s = d.spaces.at(v);
      head = head || (p >= 0 && m.graph.nodes[p].op_type == "Reshape" && s.rank >= 4 && s.neg_axis == -2 &&
                      d.spaces.count(m.graph.nodes[p].input(0)) &&
                      d.spaces.at(m.graph.nodes[p].input(0)).channels > s.channels);
    }
    if (head) out.push_back(g.id);
  }
  return out;
}

// Per head group its unit count.
std::vector<int> head_groups(const ChannelDeps& d, const Model& m) {
  std::vector<int> out;
  for (int g : head_group_ids(d, m)) out.push_back(d.groups[g].num_units);
  return out;
}

}  // namespace

TEST_CASE("heads couple Q K V and O per head on the attention block", "[prune][heads]") {
  Model m = attention_block(2);
  // Without --heads the head-splitting Reshape stops propagation, with the reason.
  ChannelDeps plain = build_channel_deps(m);
  int gq = group_of_param(m, plain, "wq");
  REQUIRE(gq >= 0);
  CHECK_FALSE(plain.groups[gq].prunable());
  std::string plain_why;
  for (const auto& r : plain.groups[gq].reasons) plain_why += r + "; ";
  INFO("reasons without --heads: " << plain_why);
  bool said = false;
  for (const auto& r : plain.groups[gq].reasons) said = said || r.find("into heads (prune them with --heads)") != std::string::npos;
  CHECK(said);
  // With --heads: one group holds wq, wk, wv (outputs) and wo (inputs), one unit per head.
  ChannelDeps d = build_channel_deps(m, kHeads);
  int g = group_of_param(m, d, "wq");
  REQUIRE(g >= 0);
  CHECK(group_of_param(m, d, "wk") == g);
  CHECK(group_of_param(m, d, "wv") == g);
  CHECK(group_of_param(m, d, "wo") == g);
  std::string why;
  for (const auto& r : d.groups[g].reasons) why += r + "; ";
  INFO("reasons: " << why);
  CHECK(d.groups[g].num_units == 2);
  CHECK(d.groups[g].prunable());
  // Channel c of q belongs to head c / 8, and so does channel c of the O-projection input.
  for (int64_t c = 0; c < 16; ++c) {
    CHECK(d.unit_of("q", c) == d.unit_of("q", (c / 8) * 8));
    CHECK(d.unit_of("ctx_m", c) == d.unit_of("q", c));
  }
  CHECK(d.unit_of("q", 0) != d.unit_of("q", 8));
}

TEST_CASE("prune equals masking on the attention block with heads", "[prune][heads]") {
  for (uint64_t seed : {1, 2}) prune_equals_mask(attention_block(seed + 4), "attn_heads", seed, {}, 0.5, kHeads);
}

TEST_CASE("prune equals masking on gpt_tiny with heads", "[prune][heads]") {
  Model m = load_norm(source_path("models/gpt_tiny/model.onnx"));
  ChannelDeps d = build_channel_deps(m, kHeads);
  // 4 layers of 4 heads; each head group and each FFN group prunable.
  CHECK(head_groups(d, m) == std::vector<int>{4, 4, 4, 4});
  int ffn = 0;
  for (const auto& g : d.groups) ffn += g.prunable() && g.num_units == 512;
  CHECK(ffn == 4);
  prune_equals_mask(m, "gpt_heads", 3, tokens("models/gpt_tiny/calib.npy", 2), 0.3, kHeads);
}

TEST_CASE("prune equals masking on bert_tiny with heads", "[prune][heads]") {
  Model m = load_norm(source_path("models/bert_tiny/model.onnx"));
  ChannelDeps d = build_channel_deps(m, kHeads);
  CHECK(head_groups(d, m) == std::vector<int>{4, 4});
  prune_equals_mask(m, "bert_heads", 4, tokens("models/bert_tiny/test_x.npy", 2), 0.3, kHeads);
}

TEST_CASE("prune --heads on gpt_tiny rewrites the head reshapes and runs in ONNX Runtime", "[prune][heads]") {
  fs::path dir = temp_dir("prune_heads_cli");
  fs::path out = dir / "gpt.onnx", rep = dir / "r.json";
  auto r = run_cli({"prune", source_path("models/gpt_tiny/model.onnx").string(), "-o", out.string(), "--heads",
                    "--ratio", "0.25", "--criterion", "l2", "--report", rep.string()});
  INFO(r.out);
  REQUIRE(r.rc == 0);
  Model p = load_model(out);
  // Every Reshape to [-1, 128, H, 32] now says 3 heads; every merge says 3·32 = 96 features.
  int split = 0, merge = 0;
  for (const auto& n : p.graph.nodes) {
    if (n.op_type != "Reshape") continue;
    const Tensor* s = p.graph.initializer(n.input(1));
    REQUIRE(s);
    std::vector<int64_t> v = s->to_int64();
    if (v.size() == 4) { CHECK(v == std::vector<int64_t>{-1, 128, 3, 32}); ++split; }
    if (v.size() == 3) { CHECK(v == std::vector<int64_t>{-1, 128, 96}); ++merge; }
  }
  CHECK(split == 12);
  CHECK(merge == 4);
  std::ifstream f(rep);
  nlohmann::json j = nlohmann::json::parse(f)["steps"][0]["details"];
  CHECK(j["totals"]["params_after"].get<int64_t>() < j["totals"]["params_before"].get<int64_t>());
  auto in = tokens("models/gpt_tiny/heldout.npy", 1);
  auto o = run_ort(out, in);
  CHECK(o.at("logits").dims == std::vector<int64_t>{1, 128, 256});
}

TEST_CASE("prune equals masking on ppocr4_rec with heads whose reshape targets are built at run time", "[prune][heads]") {
  // Its head Reshape targets are Concat(Cast(0), Cast(Slice(Shape(x))), Cast(3), Cast(8), Cast(15)) and the
  // merge Concat(Cast(0), Cast(Slice(Shape(x))), Cast(120)): the run-time element copies the sequence
  // dim of the same length, the head count and the merged width are constants behind Casts.
  Model m = load_norm(corpus_model("ppocr4_rec.onnx"));
  ChannelDeps d = build_channel_deps(m, kHeads);
  std::vector<int> ids = head_group_ids(d, m);
  REQUIRE(head_groups(d, m) == std::vector<int>{8, 8});
  auto plan = random_plan(d, 8, 0.05);
  for (int g : ids) {
    REQUIRE(d.groups[g].prunable());
    CHECK(d.reshape_channel_elem.size() >= 4);
    plan[g] = remove_in_order(d, g, {1, 4, 6}, 3);
  }
  prune_equals_mask(m, d, plan, "rec_heads", text_image(48, 320));
  // The pruned model says 5 heads and 5 x 15 = 75 features where it said 8 and 120.
  Model p = m;
  apply_prune(p, d, plan);
  std::multiset<int64_t> before, after;
  for (const auto& [node, at] : d.reshape_channel_elem) {
    before.insert(m.graph.initializer(m.graph.nodes[at.node].inputs[at.input])->to_int64()[at.elem]);
    after.insert(p.graph.initializer(p.graph.nodes[at.node].inputs[at.input])->to_int64()[at.elem]);
  }
  CHECK(before.count(8) == 2);
  CHECK(before.count(120) == 2);
  CHECK(after.count(5) == 2);
  CHECK(after.count(75) == 2);
}

TEST_CASE("a head reshape whose computed target another node shares is refused with the reason", "[prune][heads]") {
  // Two Reshapes reading one Concat-built target: rewriting it for one would change the other.
  Model m = load_norm(corpus_model("ppocr4_rec.onnx"));
  Graph& g = m.graph;
  int split = -1;
  for (int i = 0; i < static_cast<int>(g.nodes.size()) && split < 0; ++i)
    if (g.nodes[i].op_type == "Reshape" && g.producer(g.nodes[i].input(1)) >= 0 &&
        g.nodes[g.producer(g.nodes[i].input(1))].inputs.size() == 5)
      split = i;
  REQUIRE(split >= 0);
  Node extra;
  extra.op_type = "Identity";
  extra.name = "shares_the_target";
  extra.inputs = {g.nodes[split].input(1)};
  extra.outputs = {"shared_target_copy"};
  g.add_node(extra);
  g.outputs.push_back(ValueInfo{"shared_target_copy", DType::Int64, true, {Dim::of(5)}, "", ""});
  ChannelDeps d = build_channel_deps(m, kHeads);
  bool said = false;
  for (const auto& gr : d.groups)
    for (const auto& r : gr.reasons) said = said || r.find("computed shape is shared") != std::string::npos;
  CHECK(said);
  CHECK(head_groups(d, m).size() == 1);  // the other attention layer still prunes
}

TEST_CASE("the data-aware default with a MACs target prunes heads: gpt_tiny reaches 40% of MACs only with them", "[prune][heads]") {
  fs::path dir = temp_dir("prune_heads_default");
  const std::string model = source_path("models/gpt_tiny/model.onnx").string(), calib = source_path("models/gpt_tiny/calib.npy").string();
  auto r = run_cli({"prune", model, "-o", (dir / "p.onnx").string(), "--target-macs", "0.4", "--calib", calib, "--calib-samples", "32",
                    "--report", (dir / "r.json").string()});
  INFO(r.out);
  REQUIRE(r.rc == 0);
  CHECK_THAT(r.out, Catch::Contains("attention heads are units too (--no-heads keeps them)"));
  Model p = load_model(dir / "p.onnx");
  int fewer_heads = 0;  // head-splitting Reshapes [-1, 128, H, 32] with H < 4
  for (const auto& n : p.graph.nodes) {
    if (n.op_type != "Reshape") continue;
    const Tensor* s = p.graph.initializer(n.input(1));
    REQUIRE(s);
    std::vector<int64_t> v = s->to_int64();
    if (v.size() == 4 && v[2] < 4) ++fewer_heads;
  }
  CHECK(fewer_heads > 0);
  std::ifstream f(dir / "r.json");
  const nlohmann::json totals = nlohmann::json::parse(f)["totals"];
  CHECK(totals["after"]["macs"].get<double>() <= 0.43 * totals["before"]["macs"].get<double>());
  // --no-heads keeps the attention whole: 40% is out of reach, said in one line.
  auto whole = run_cli({"prune", model, "-o", (dir / "w.onnx").string(), "--target-macs", "0.4", "--no-heads", "--calib", calib,
                        "--calib-samples", "32"});
  CHECK(whole.rc == 1);
  CHECK_THAT(whole.out, Catch::Contains("reachable 0.5"));
  CHECK(!fs::exists(dir / "w.onnx"));
  CHECK(run_cli({"prune", model, "-o", (dir / "c.onnx").string(), "--ratio", "0.2", "--heads", "--no-heads"}).rc == 2);
}
