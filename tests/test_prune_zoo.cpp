// Pruning on the torchvision exports in models/zoo/ (made by models/export_torchvision.py; CI makes
// them and sets OC_REQUIRE_ZOO=1): without its model a test is reported skipped (support.h zoo_model).
#include <catch2/catch.hpp>

#include "graph/channel_deps.h"
#include "graph/onnx_io.h"
#include "prune/rewrite.h"
#include "prune_check.h"
#include "support.h"

using namespace oc;
using namespace oc::test;

namespace {

// With random weights the MobileNets' and EfficientNet's logits collapse to ~0 (ReLU6/SiLU/SE
// saturation), so masking cannot be compared on them: there the pruned model must be smaller, keep
// its interface and run in ONNX Runtime with the original's output shape.
void zoo_prune(const std::string& name, uint64_t seed, bool outputs_carry_signal) {
  fs::path p = zoo_model(name);
  if (p.empty()) return;
  Model m = load_norm(p);
  ChannelDeps d = build_channel_deps(m, {true});
  int prunable = 0;
  for (const auto& g : d.groups) prunable += g.prunable();
  INFO(name << ": " << prunable << " prunable groups of " << d.groups.size());
  CHECK(prunable > 5);
  auto in = random_inputs(m, seed, 1, {{"input", {1, 3, 224, 224}}});
  if (outputs_carry_signal) {
    prune_equals_mask(m, "zoo_" + name, seed, in, 0.2, {true});
    return;
  }
  auto plan = random_plan(d, seed, 0.2);
  REQUIRE(removed_units(plan) > 0);
  Model pruned = m;
  apply_prune(pruned, d, plan);
  check_interface(m, pruned);
  CHECK(model_weight_bytes(pruned) < model_weight_bytes(m));
  fs::path dir = temp_dir("zoo_" + name);
  save_model(pruned, dir / "pruned.onnx");
  auto out = run_ort(dir / "pruned.onnx", in);
  CHECK(out.at("logits").dims == std::vector<int64_t>{1, 1000});
}

}  // namespace

TEST_CASE("prune equals masking on torchvision resnet18", "[prune][zoo]") { zoo_prune("resnet18", 1, true); }
TEST_CASE("prune equals masking on torchvision resnet50", "[prune][zoo]") { zoo_prune("resnet50", 2, true); }
TEST_CASE("prune runs on torchvision mobilenet_v2", "[prune][zoo]") { zoo_prune("mobilenet_v2", 3, false); }
TEST_CASE("prune runs on torchvision mobilenet_v3_large", "[prune][zoo]") {
  zoo_prune("mobilenet_v3_large", 4, false);
}
TEST_CASE("prune runs on torchvision efficientnet_b0", "[prune][zoo]") {
  zoo_prune("efficientnet_b0", 5, false);
}

TEST_CASE("vit_b_16 with heads: MLP groups and the 12 heads of every attention layer are prunable", "[prune][zoo][heads]") {
  // nn.MultiheadAttention's export slices the packed Q/K/V projection with bounds computed from
  // Shape at run time and folds heads into the batch axis: read as an equal split and heads on the
  // B·H axis (docs/PRUNING.md, *Heads folded into the batch axis*).
  fs::path p = zoo_model("vit_b_16");
  if (p.empty()) return;
  Model m = load_norm(p);
  ChannelDeps d = build_channel_deps(m, {true});
  int mlp = 0, attention = 0;
  for (const auto& g : d.groups) {
    if (g.prunable() && g.num_units == 3072) ++mlp;
    if (g.num_units == 12 && g.locked_units == 0) ++attention;  // 12 heads of 64
  }
  CHECK(mlp == 12);
  CHECK(attention == 12);
  CHECK(d.reshape_head_count.size() == 36);  // Q, K, V of 12 layers
  CHECK(d.reshape_head_width.size() == 12);
}
