#include "engine/fusion.h"

#include <cmath>
#include <limits>
#include <optional>
#include <unordered_map>

namespace oc {

namespace {

// A float initializer of one element, or nullopt.
std::optional<float> scalar_constant(const Graph& g, const std::string& name) {
  const Tensor* t = g.initializer(name);
  if (!t || t->dtype != DType::Float || t->numel() != 1) return std::nullopt;
  return t->to_float()[0];
}

bool near(std::optional<float> v, float want) { return v && std::abs(*v - want) <= 1e-4f * std::max(1.f, std::abs(want)); }

// The other input of a two-input node, given the index of one of them.
const std::string& other(const Node& n, int k) { return n.inputs[k == 0 ? 1 : 0]; }

// Index of `v` among a two-input node's inputs, or -1.
int input_index(const Node& n, const std::string& v) {
  if (n.inputs.size() != 2) return -1;
  return n.inputs[0] == v ? 0 : n.inputs[1] == v ? 1 : -1;
}

bool is_op(const Node& n, const char* op) { return n.op_type == op && n.is_default_domain() && n.outputs.size() == 1; }

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
        const auto bound = scalar_constant(g, n.inputs[i]);
        if (!bound) return std::nullopt;
        (i == 1 ? a.lo : a.hi) = *bound;
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
  } else if (n.op_type == "Gelu") {  // opset 20
    const std::string approx = n.attr_string("approximate", "none");
    if (approx != "none" && approx != "tanh") return std::nullopt;
    a.kind = approx == "tanh" ? FusedActivation::Kind::GeluTanh : FusedActivation::Kind::GeluErf;
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
  plan.fused_away.assign(g.nodes.size(), -1);
  std::unordered_map<std::string, std::vector<size_t>> readers;
  for (size_t i = 0; i < g.nodes.size(); ++i)
    for (const auto& v : g.nodes[i].inputs) readers[v].push_back(i);
  auto uses = [&](const std::string& v) {
    auto u = plan.uses.find(v);
    return u == plan.uses.end() ? 0 : u->second;
  };
  // The one node reading v (once), when v is not a graph output; else -1.
  auto sole_reader = [&](const std::string& v) -> int {
    auto r = readers.find(v);
    if (plan.outputs.count(v) || uses(v) != 1 || r == readers.end() || r->second.size() != 1) return -1;
    return static_cast<int>(r->second[0]);
  };
  // Position of each node in the run, and of each node output's producer: a residual can be added
  // inside a Conv only when it exists before that Conv runs.
  std::vector<size_t> position(g.nodes.size(), 0);
  for (size_t k = 0; k < plan.order.size(); ++k) position[plan.order[k]] = k;
  std::unordered_map<std::string, size_t> produced_by;
  for (size_t i = 0; i < g.nodes.size(); ++i)
    for (const auto& o : g.nodes[i].outputs) produced_by[o] = i;
  auto exists_before = [&](const std::string& r, size_t node) {
    if (auto it = produced_by.find(r); it != produced_by.end()) return position[it->second] < position[node];
    return g.is_graph_input(r) && !g.initializer(r);
  };
  for (size_t p = 0; p < g.nodes.size(); ++p) {
    const Node& prod = g.nodes[p];
    const bool conv = is_op(prod, "Conv");
    // MatMul by a constant 2-D float weight (a Linear layer): oneDNN adds a bias and post-ops.
    const Tensor* w = is_op(prod, "MatMul") && prod.inputs.size() == 2 ? g.initializer(prod.inputs[1]) : nullptr;
    const bool linear = w && w->dtype == DType::Float && w->dims.size() == 2 && !g.is_graph_input(prod.inputs[1]);
    if (!conv && !linear) continue;
    FusedActivation f;
    auto pass_on = [&](int node, int input) {
      plan.fused_into[node] = static_cast<int>(p);
      plan.fused_input[node] = static_cast<uint8_t>(input);
    };
    std::string v = prod.outputs[0];
    // Conv → Add(v, r): r (a residual branch) computed before the Conv runs; the Conv adds it as
    // oneDNN's sum post-op, before any activation below (the Relu after ResNet's shortcut Add).
    if (int a = conv ? sole_reader(v) : -1; a >= 0 && is_op(g.nodes[a], "Add") && plan.fused_into[a] < 0) {
      const Node& add = g.nodes[a];
      const int k = input_index(add, v);
      if (k >= 0 && other(add, k) != v && exists_before(other(add, k), p)) {
        f.residual = true;
        plan.residual_of[p] = other(add, k);
        plan.activation_of[p] = f;
        pass_on(a, k);
        v = add.outputs[0];
      }
    }
    // MatMul → Add(v, b): b a constant [N].
    if (int a = linear ? sole_reader(v) : -1; a >= 0 && is_op(g.nodes[a], "Add")) {
      const Node& add = g.nodes[a];
      const int k = input_index(add, v);
      const Tensor* b = k >= 0 ? g.initializer(other(add, k)) : nullptr;
      if (b && b->dtype == DType::Float && b->dims.size() == 1 && b->dims[0] == w->dims[1] &&
          !g.is_graph_input(other(add, k))) {
        f.bias = b;
        plan.activation_of[p] = f;  // bias only, unless an activation is recorded below
        pass_on(a, k);
        v = add.outputs[0];
      }
    }
    if (plan.outputs.count(v)) continue;
    auto record = [&](FusedActivation a) {
      a.bias = f.bias;
      a.residual = f.residual;
      plan.activation_of[p] = a;
    };
    // act(v)
    if (int r = sole_reader(v); r >= 0) {
      const Node& n = g.nodes[r];
      if (auto a = activation(g, n, plan.opsets[r]); a && n.inputs[0] == v) {
        record(*a);
        pass_on(r, 0);
        continue;
      }
      // MatMul → Mul/Div by a scalar constant (attention's 1/√d scale on some exports)
      if (linear && (is_op(n, "Mul") || is_op(n, "Div"))) {
        const int k = input_index(n, v);
        auto c = k >= 0 ? scalar_constant(g, other(n, k)) : std::nullopt;
        if (c && (n.op_type == "Mul" || (k == 0 && *c != 0.f))) {
          FusedActivation a;
          a.kind = FusedActivation::Kind::Linear;
          a.alpha = n.op_type == "Mul" ? *c : 1.f / *c;
          record(a);
          pass_on(r, k);
          continue;
        }
      }
      continue;
    }
    auto rd = readers.find(v);
    if (uses(v) != 2 || rd == readers.end() || rd->second.size() != 2) continue;
    // v · act(v): v read by a gate and by one Mul of (v, gate), the gate by that Mul alone.
    bool done = false;
    for (int side = 0; side < 2 && !done; ++side) {
      const size_t gi = rd->second[side], mi = rd->second[1 - side];
      const Node& gate = g.nodes[gi];
      auto a = gate.inputs.empty() || gate.inputs[0] != v ? std::nullopt : activation(g, gate, plan.opsets[gi]);
      auto product = a ? gated(*a) : std::nullopt;
      if (!product || sole_reader(gate.outputs[0]) != static_cast<int>(mi) || !is_op(g.nodes[mi], "Mul")) continue;
      const int vi = input_index(g.nodes[mi], v);
      if (vi < 0 || other(g.nodes[mi], vi) != gate.outputs[0]) continue;
      record(*product);
      plan.fused_away[gi] = static_cast<int>(p);
      pass_on(static_cast<int>(mi), vi);
      done = true;
    }
    // GELU as torch exports it below opset 20: h = Mul(Mul(v, Add(Erf(Div(v, √2)), 1)), 0.5)
    for (int side = 0; side < 2 && !done; ++side) {
      const size_t di = rd->second[side], mi = rd->second[1 - side];
      const Node& div = g.nodes[di];
      if (!is_op(div, "Div") || input_index(div, v) != 0 || !near(scalar_constant(g, div.inputs[1]), 1.41421356f))
        continue;
      const int ei = sole_reader(div.outputs[0]);
      if (ei < 0 || !is_op(g.nodes[ei], "Erf")) continue;
      const int ai = sole_reader(g.nodes[ei].outputs[0]);
      if (ai < 0 || !is_op(g.nodes[ai], "Add")) continue;
      const int ek = input_index(g.nodes[ai], g.nodes[ei].outputs[0]);
      if (ek < 0 || !near(scalar_constant(g, other(g.nodes[ai], ek)), 1.f)) continue;
      const Node& mul = g.nodes[mi];
      const int vi = is_op(mul, "Mul") ? input_index(mul, v) : -1;
      if (vi < 0 || other(mul, vi) != g.nodes[ai].outputs[0] || sole_reader(g.nodes[ai].outputs[0]) != static_cast<int>(mi))
        continue;
      const int hi = plan.outputs.count(mul.outputs[0]) ? -1 : sole_reader(mul.outputs[0]);
      if (hi < 0 || !is_op(g.nodes[hi], "Mul")) continue;
      const int mk = input_index(g.nodes[hi], mul.outputs[0]);
      if (mk < 0 || !near(scalar_constant(g, other(g.nodes[hi], mk)), 0.5f)) continue;
      FusedActivation a;
      a.kind = FusedActivation::Kind::GeluErf;
      record(a);
      plan.fused_away[di] = plan.fused_away[ei] = plan.fused_away[ai] = static_cast<int>(p);
      pass_on(static_cast<int>(mi), vi);  // the last reader of v hands it on ...
      pass_on(hi, mk);                    // ... to the node whose output the GELU is
      done = true;
    }
  }
}

}  // namespace oc
