#include "graph/normalize.h"

#include <unordered_set>

namespace oc {

std::optional<Tensor> constant_node_value(const Node& n) {
  for (const auto& a : n.attributes) {
    if (a.name == "value" && a.kind == Attribute::Kind::Tensor) return a.t;
    if (a.name == "value_float") return Tensor::from_float("", {}, {a.f});
    if (a.name == "value_floats") return Tensor::from_float("", {static_cast<int64_t>(a.floats.size())}, a.floats);
    if (a.name == "value_int") return Tensor::from_int64("", {}, {a.i});
    if (a.name == "value_ints") return Tensor::from_int64("", {static_cast<int64_t>(a.ints.size())}, a.ints);
  }
  return std::nullopt;
}

static void normalize_graph(Graph& g, NormalizeStats& st, std::unordered_set<std::string>& names) {
  toposort(g);
  std::vector<int> lifted;
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    Node& n = g.nodes[i];
    if (n.op_type == "Constant" && n.is_default_domain() && n.outputs.size() == 1 &&
        !g.is_graph_output(n.outputs[0])) {
      if (std::optional<Tensor> t = constant_node_value(n)) {
        t->name = n.outputs[0];
        g.initializers.push_back(std::move(*t));
        lifted.push_back(static_cast<int>(i));
        continue;
      }
    }
    for (auto& sg : n.subgraphs()) normalize_graph(*sg, st, names);
  }
  st.constants_lifted += static_cast<int>(lifted.size());
  g.remove_nodes(lifted);
  // Identity of a constant becomes its own constant: exporters share equal initializers through
  // Identity nodes (torch does for identical folded biases), and a rewrite that slices one user's
  // weights must not reach another's.
  std::vector<int> identities;
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    const Node& n = g.nodes[i];
    if (n.op_type != "Identity" || !n.is_default_domain() || n.outputs.size() != 1 || g.is_graph_output(n.outputs[0]))
      continue;
    const Tensor* src = g.initializer(n.input(0));
    if (!src) continue;
    Tensor copy = *src;
    copy.name = n.outputs[0];
    g.initializers.push_back(std::move(copy));
    g.invalidate();
    identities.push_back(static_cast<int>(i));
  }
  st.identities_folded += static_cast<int>(identities.size());
  g.remove_nodes(identities);
  for (auto& n : g.nodes) {
    if (n.name.empty() || names.count(n.name)) {
      std::string base = n.op_type + "_" + (n.outputs.empty() ? std::string("node") : n.outputs[0]);
      std::string cand = base;
      for (int k = 1; names.count(cand); ++k) cand = base + "_" + std::to_string(k);
      n.name = cand;
      ++st.nodes_named;
    }
    names.insert(n.name);
  }
  g.invalidate();
}

NormalizeStats normalize(Model& m) {
  NormalizeStats st;
  std::unordered_set<std::string> names;
  normalize_graph(m.graph, st, names);
  // IR 3 requires initializers to be listed as graph inputs; IR 4 lifted that, and
  // every runtime that reads IR 3 reads IR 4.
  if (st.constants_lifted > 0 && m.ir_version < 4) m.ir_version = 4;
  return st;
}

}  // namespace oc
