// --heads on torchvision's ViT export (nn.MultiheadAttention): the packed Q/K/V projection is sliced
// with bounds computed from Shape at run time, heads are folded into the batch axis ([T, B·H, Dh])
// and merged back with a width read from Shape of the residual stream. models/vit_tiny is that
// export at tiny width (1 block, 4 heads of 8).
#include <catch2/catch.hpp>

#include "graph/channel_deps.h"
#include "graph/onnx_io.h"
#include "prune/rewrite.h"
#include "prune_check.h"
#include "support.h"

using namespace oc;
using namespace oc::test;

namespace {

const Node* node_reading(const Model& m, const std::string& op, const std::string& weight_part) {
  for (const auto& n : m.graph.nodes)
    if (n.op_type == op)
      for (const auto& i : n.inputs)
        if (i.find(weight_part) != std::string::npos) return &n;
  return nullptr;
}

}  // namespace

TEST_CASE("torchvision ViT heads (folded into the batch axis, run-time Q/K/V slices) are units with --heads", "[prune][heads]") {
  Model m = load_norm(source_path("models/vit_tiny/model.onnx"));
  const Node* out_proj = node_reading(m, "Gemm", "out_proj.weight");
  REQUIRE(out_proj);
  const std::string attn = out_proj->input(0);  // [T·B, H·Dh], the merged heads
  {
    ChannelDeps plain = build_channel_deps(m);  // without --heads the attention stays whole
    auto it = plain.spaces.find(attn);
    CHECK((it == plain.spaces.end() || plain.groups[it->second.group].locked_units == plain.groups[it->second.group].num_units));
  }
  ChannelDepsOptions opt;
  opt.heads = true;
  ChannelDeps d = build_channel_deps(m, opt);
  REQUIRE(d.spaces.count(attn));
  const int gi = d.spaces.at(attn).group;
  const ChannelGroup& gr = d.groups[gi];
  INFO("group reasons: " << (gr.reasons.empty() ? "" : gr.reasons[0]));
  CHECK(gr.num_units == 4);
  CHECK(gr.locked_units == 0);
  CHECK(d.reshape_head_count.size() == 3);  // the Q, K and V splits
  CHECK(d.reshape_head_width.size() == 1);  // the merge
  // Remove heads 1 and 3: in_proj keeps 3·16 columns, out_proj 16 input columns; batch 2 runs.
  std::vector<std::vector<char>> plan(d.groups.size());
  for (size_t g = 0; g < d.groups.size(); ++g) plan[g].assign(d.groups[g].num_units, 0);
  plan[gi][d.unit_of(attn, 8)] = 1;
  plan[gi][d.unit_of(attn, 24)] = 1;
  Model p = m;
  apply_prune(p, d, plan);
  const Node* op = node_reading(p, "Gemm", "out_proj.weight");
  REQUIRE(op);
  CHECK(p.graph.initializer(op->input(1))->dims == std::vector<int64_t>{32, 16});
  std::map<std::string, Tensor> in = {{"input", random_tensor("input", {2, 3, 32, 32}, 4)}};
  agree_with_ort(p, in);  // our executor and ONNX Runtime agree on the pruned model
  prune_equals_mask(m, d, plan, "vit_heads", in);
  // Random plans over every group (heads and MLP neurons).
  prune_equals_mask(m, "vit_heads_random", 5, in, 0.5, opt);
}
