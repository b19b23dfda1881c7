#include "engine/fusion.h"

#include <limits>
#include <optional>
#include <unordered_map>

namespace oc {

namespace {

// The activation node `n` applies, when it is one a Conv can apply itself.
std::optional<FusedActivation> activation(const Graph& g, const Node& n, int64_t opset) {
  if (!n.is_default_domain() || n.inputs.empty() || n.outputs.size() != 1) return std::nullopt;
  FusedActivation a;
  if (n.op_type == "Relu") {
    a.kind = FusedActivation::Kind::Relu;
  } else if (n.op_type == "LeakyRelu") {
    a.kind = FusedActivation::Kind::LeakyRelu;
    a.alpha = n.attr_float("alpha", 0.01f);
  } else if (n.op_type == "Clip") {
    a.kind = FusedActivation::Kind::Clip;
    a.lo = -std::numeric_limits<float>::max();
    a.hi = std::numeric_limits<float>::max();
    if (opset < 11) {
      a.lo = n.attr_float("min", a.lo);
      a.hi = n.attr_float("max", a.hi);
    } else {
      for (size_t i = 1; i < 3; ++i) {
        if (i >= n.inputs.size() || n.inputs[i].empty()) continue;
        const Tensor* t = g.initializer(n.inputs[i]);
        if (!t || t->dtype != DType::Float || t->numel() != 1) return std::nullopt;
        (i == 1 ? a.lo : a.hi) = t->to_float()[0];
      }
    }
  } else {
    return std::nullopt;
  }
  return a;
}

}  // namespace

void plan_fusions(const Graph& g, GraphPlan& plan) {
  plan.fused_into.assign(g.nodes.size(), -1);
  std::unordered_map<std::string, size_t> conv_of;  // Conv output -> node index
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    const Node& n = g.nodes[i];
    if (n.op_type == "Conv" && n.is_default_domain() && n.outputs.size() == 1) conv_of[n.outputs[0]] = i;
  }
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    const Node& n = g.nodes[i];
    if (n.inputs.empty()) continue;
    auto c = conv_of.find(n.inputs[0]);
    if (c == conv_of.end() || plan.outputs.count(n.inputs[0]) || plan.activation_of.count(c->second)) continue;
    auto u = plan.uses.find(n.inputs[0]);
    if (u == plan.uses.end() || u->second != 1) continue;
    if (auto a = activation(g, n, plan.opsets[i])) {
      plan.activation_of[c->second] = *a;
      plan.fused_into[i] = static_cast<int>(c->second);
    }
  }
}

}  // namespace oc
