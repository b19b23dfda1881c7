// BatchNormalization folding (see fold_batchnorm.h).
#include "graph/fold_batchnorm.h"

#include <cmath>

namespace oc {
namespace {

const Tensor* float_init(const Graph& g, const std::string& name, int64_t numel) {
  const Tensor* t = name.empty() ? nullptr : g.initializer(name);
  if (!t || t->dtype != DType::Float || is_dataless(*t)) return nullptr;
  return numel < 0 || t->numel() == numel ? t : nullptr;
}

// The initializer `name` as node `n`'s own (a copy under a new name when another node reads it).
Tensor* own_initializer(Graph& g, Node& n, size_t input) {
  const std::string name = n.inputs[input];
  if (g.consumers(name).size() > 1 || g.is_graph_output(name)) {
    Tensor copy = *g.initializer(name);
    copy.name = g.unique_name(name + "_folded");
    n.inputs[input] = copy.name;
    g.add_initializer(copy);
  }
  return g.initializer(n.inputs[input]);
}

}  // namespace

bool is_foldable_batchnorm(const Graph& g, const Node& bn) {
  if (bn.op_type != "BatchNormalization" || !bn.is_default_domain() || bn.outputs.size() != 1 || bn.inputs.size() < 5)
    return false;
  if (bn.attr_int("training_mode", 0) != 0) return false;
  const int p = g.producer(bn.inputs[0]);
  if (p < 0) return false;
  const Node& conv = g.nodes[p];
  if (conv.op_type != "Conv" || !conv.is_default_domain() || conv.outputs.size() != 1 || conv.inputs.size() < 2) return false;
  if (g.consumers(bn.inputs[0]).size() != 1 || g.is_graph_output(bn.inputs[0])) return false;
  const Tensor* w = float_init(g, conv.inputs[1], -1);
  if (!w || w->dims.empty()) return false;
  const int64_t c = w->dims[0];
  if (conv.inputs.size() > 2 && !conv.inputs[2].empty() && !float_init(g, conv.inputs[2], c)) return false;
  for (int i = 1; i < 5; ++i)
    if (!float_init(g, bn.inputs[i], c)) return false;
  return true;
}

int fold_batchnorms(Model& m) {
  Graph& g = m.graph;
  std::vector<int> drop;
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    const Node bn = g.nodes[i];
    if (!is_foldable_batchnorm(g, bn)) continue;
    const int p = g.producer(bn.inputs[0]);
    const double eps = bn.attr_float("epsilon", 1e-5f);
    const auto gamma = g.initializer(bn.inputs[1])->to_float(), beta = g.initializer(bn.inputs[2])->to_float(),
               mean = g.initializer(bn.inputs[3])->to_float(), var = g.initializer(bn.inputs[4])->to_float();
    const int64_t c = static_cast<int64_t>(gamma.size());
    Node& conv = g.nodes[p];
    if (conv.inputs.size() < 3) conv.inputs.resize(3);
    if (conv.inputs[2].empty()) {
      conv.inputs[2] = g.unique_name(conv.name + "_bias");
      g.add_initializer(Tensor::from_float(conv.inputs[2], {c}, std::vector<float>(c, 0.f)));
    }
    Tensor* w = own_initializer(g, conv, 1);
    float* wd = w->data<float>();
    const int64_t per = w->numel() / c;
    Tensor* b = own_initializer(g, conv, 2);
    float* bd = b->data<float>();
    for (int64_t o = 0; o < c; ++o) {
      const double a = gamma[o] / std::sqrt(static_cast<double>(var[o]) + eps);
      for (int64_t k = 0; k < per; ++k) wd[o * per + k] = static_cast<float>(wd[o * per + k] * a);
      bd[o] = static_cast<float>(a * (bd[o] - mean[o]) + beta[o]);
    }
    // The Conv now writes the BatchNormalization's output: readers and graph outputs are unchanged.
    conv.outputs[0] = bn.outputs[0];
    drop.push_back(static_cast<int>(i));
    g.invalidate();
  }
  if (!drop.empty()) {
    g.remove_nodes(drop);
    g.remove_unused();
  }
  return static_cast<int>(drop.size());
}

}  // namespace oc
