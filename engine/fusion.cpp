#include "engine/fusion.h"

#include <cmath>
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
  } else if (n.op_type == "Sigmoid") {
    a.kind = FusedActivation::Kind::Sigmoid;
  } else if (n.op_type == "HardSigmoid") {
    a.kind = FusedActivation::Kind::HardSigmoid;
    a.alpha = n.attr_float("alpha", 0.2f);
    a.beta = n.attr_float("beta", 0.5f);
  } else if (n.op_type == "HardSwish") {
    a.kind = FusedActivation::Kind::HardSwish;
    a.alpha = 1.f / 6, a.beta = 0.5f;
  } else {
    return std::nullopt;
  }
  return a;
}

// v · act(v) as the activation the Conv applies (act = the gate node's activation), when oneDNN
// has that product as one eltwise: Sigmoid → Swish, HardSigmoid(1/6, 1/2) → HardSwish.
std::optional<FusedActivation> gated(const FusedActivation& gate) {
  FusedActivation a = gate;
  if (gate.kind == FusedActivation::Kind::Sigmoid) {
    a.kind = FusedActivation::Kind::Swish;
    return a;
  }
  if (gate.kind == FusedActivation::Kind::HardSigmoid && std::abs(gate.alpha - 1.f / 6) < 1e-6f &&
      gate.beta == 0.5f) {
    a.kind = FusedActivation::Kind::HardSwish;
    return a;
  }
  return std::nullopt;
}

}  // namespace

void plan_fusions(const Graph& g, GraphPlan& plan) {
  plan.fused_into.assign(g.nodes.size(), -1);
  plan.fused_input.assign(g.nodes.size(), 0);
  plan.fused_away.assign(g.nodes.size(), 0);
  std::unordered_map<std::string, size_t> conv_of;  // Conv output -> node index
  std::unordered_map<std::string, std::vector<size_t>> readers;
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    const Node& n = g.nodes[i];
    if (n.op_type == "Conv" && n.is_default_domain() && n.outputs.size() == 1) conv_of[n.outputs[0]] = i;
    for (const auto& v : n.inputs) readers[v].push_back(i);
  }
  auto uses = [&](const std::string& v) {
    auto u = plan.uses.find(v);
    return u == plan.uses.end() ? 0 : u->second;
  };
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    const Node& n = g.nodes[i];
    if (n.inputs.empty()) continue;
    const std::string& v = n.inputs[0];
    auto c = conv_of.find(v);
    if (c == conv_of.end() || plan.outputs.count(v) || plan.activation_of.count(c->second)) continue;
    auto a = activation(g, n, plan.opsets[i]);
    if (!a) continue;
    if (uses(v) == 1) {  // act(Conv(x))
      plan.activation_of[c->second] = *a;
      plan.fused_into[i] = static_cast<int>(c->second);
      continue;
    }
    // v · act(v): v read by this gate and one Mul of (v, gate), the gate by that Mul alone.
    const std::string& s = n.outputs[0];
    auto r = readers.find(s);
    if (uses(v) != 2 || uses(s) != 1 || plan.outputs.count(s) || r == readers.end() || r->second.size() != 1) continue;
    const size_t m = r->second[0];
    const Node& mul = g.nodes[m];
    if (mul.op_type != "Mul" || !mul.is_default_domain() || mul.inputs.size() != 2 || mul.outputs.size() != 1) continue;
    const int vi = mul.inputs[0] == v && mul.inputs[1] == s ? 0 : mul.inputs[1] == v && mul.inputs[0] == s ? 1 : -1;
    auto product = gated(*a);
    if (vi < 0 || !product) continue;
    plan.activation_of[c->second] = *product;
    plan.fused_away[i] = 1;
    plan.fused_into[m] = static_cast<int>(c->second);
    plan.fused_input[m] = static_cast<uint8_t>(vi);
  }
}

}  // namespace oc
