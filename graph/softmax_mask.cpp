#include "graph/softmax_mask.h"

#include <algorithm>
#include <cmath>

namespace oc {

namespace {

bool has_masked_entry(const Tensor& t) {
  if (t.dtype != DType::Float) return false;
  for (float v : t.to_float())
    if (v <= kDenormalExp) return true;
  return false;
}

// The initializer of `c` holding the masked entries, or "".
std::string mask_initializer(const Graph& g, const std::string& c) {
  if (const Tensor* t = g.initializer(c)) return has_masked_entry(*t) ? c : "";
  const int p = g.producer(c);
  if (p < 0 || g.nodes[p].op_type != "Where" || g.nodes[p].inputs.size() != 3) return "";
  for (int k = 1; k <= 2; ++k) {
    const Tensor* t = g.initializer(g.nodes[p].input(k));
    if (t && t->dims.empty() && has_masked_entry(*t)) return t->name;
  }
  return "";
}

}  // namespace

std::vector<SoftmaxMask> find_softmax_masks(const Graph& g) {
  std::vector<SoftmaxMask> out;
  std::vector<int> site_adds;
  for (const Node& sm : g.nodes) {
    if (sm.op_type != "Softmax" || !sm.is_default_domain() || sm.inputs.empty()) continue;
    const int a = g.producer(sm.input(0));
    if (a < 0 || g.nodes[a].op_type != "Add" || g.nodes[a].inputs.size() != 2) continue;
    const Node& add = g.nodes[a];
    for (int k = 0; k < 2; ++k) {
      const std::string values = mask_initializer(g, add.input(1 - k));
      if (values.empty() || g.is_initializer(add.input(k)) || g.is_graph_output(values)) continue;
      out.push_back({add.input(k), values, add.input(1 - k), add.outputs[0]});
      site_adds.push_back(a);
      break;
    }
  }
  // A mask read by anything but these Adds (or, for a Where's scalar, by other nodes) stays as it is.
  auto only_sites = [&](const std::string& v) {
    for (int c : g.consumers(v))
      if (std::find(site_adds.begin(), site_adds.end(), c) == site_adds.end()) return false;
    return !g.is_graph_output(v);
  };
  std::vector<SoftmaxMask> kept;
  for (const auto& s : out) {
    bool ok = true;
    if (s.mask != s.values) {  // a Where's scalar: every Where reading it feeds sites only
      for (int w : g.consumers(s.values)) ok = ok && g.nodes[w].op_type == "Where" && only_sites(g.nodes[w].outputs[0]);
    } else {
      ok = only_sites(s.values);
    }
    if (ok) kept.push_back(s);
  }
  return kept;
}

float mask_value(float d_min, float d_max) {
  const float m = -22.f - 1.25f * std::max(d_max, 0.f);
  return m + d_min >= kDenormalExp ? m : std::nanf("");
}

int64_t set_mask_entries(Graph& g, const std::string& values, float v) {
  Tensor* t = g.initializer(values);
  if (!t || t->dtype != DType::Float) return 0;
  std::vector<float> x = t->to_float();
  int64_t n = 0;
  for (float& e : x)
    if (e <= kDenormalExp) e = v, ++n;
  if (n) *t = Tensor::from_float(t->name, t->dims, x);
  return n;
}

std::string own_where_mask(Graph& g, const SoftmaxMask& site) {
  const int w = g.producer(site.mask);
  if (w < 0 || g.nodes[w].op_type != "Where") return "";
  const Tensor* scalar = g.initializer(site.values);
  if (!scalar) return "";
  Tensor copy = *scalar;
  copy.name = g.unique_name(site.values + "_" + site.sum);
  const std::string name = copy.name;
  g.add_initializer(std::move(copy));
  Node clone = g.nodes[w];
  clone.name = g.unique_name(clone.name.empty() ? name + "_where" : clone.name + "_own");
  for (auto& in : clone.inputs)
    if (in == site.values) in = name;
  clone.outputs = {g.unique_name(site.mask + "_" + site.sum)};
  const std::string out = clone.outputs[0];
  const int add = g.producer(site.sum);
  g.insert_node(static_cast<size_t>(w) + 1, clone);
  g.invalidate();
  Node& a = g.nodes[add + (add > w ? 1 : 0)];
  for (auto& in : a.inputs)
    if (in == site.mask) in = out;
  g.invalidate();
  return name;
}

}  // namespace oc
