// Slicing every member of the pruned groups (see rewrite.h).
#include "prune/rewrite.h"

#include <set>

#include "graph/errors.h"
#include "prune/compensate.h"

namespace oc {

RewriteStats apply_prune(Model& m, const ChannelDeps& deps, const std::vector<std::vector<char>>& remove,
                         const CompensationOptions& comp, SpillFile* spill) {
  if (remove.size() != deps.groups.size()) throw InvalidArgument("prune plan does not match the dependency graph");
  for (size_t gi = 0; gi < deps.groups.size(); ++gi) {
    if (static_cast<int>(remove[gi].size()) != deps.groups[gi].num_units)
      throw InvalidArgument("prune plan does not match group " + std::to_string(gi));
    int left = 0;
    for (int u = 0; u < deps.groups[gi].num_units; ++u) {
      if (remove[gi][u] && deps.unit_locked(static_cast<int>(gi), u))
        throw InvalidArgument("prune plan removes a locked channel of group " + std::to_string(gi));
      left += !remove[gi][u];
    }
    if (left == 0 && deps.groups[gi].num_units > 0)
      throw InvalidArgument("prune plan removes every channel of group " + std::to_string(gi));
  }
  Graph& g = m.graph;
  KeptChannels kept = kept_channels(deps, remove);
  for (const auto& [v, k] : kept)
    if (k.empty()) throw InvalidArgument("prune plan removes every channel of '" + v + "'");
  RewriteStats st;

  // Compensation reads the full original weights, so it runs before any slicing.
  if (comp.stats) {
    std::set<int> done;
    for (const auto& gr : deps.groups)
      for (const auto& p : gr.params)
        if (p.role == ParamSlice::Role::Consumer && kept.count(p.value) && done.insert(p.node).second)
          st.layers_compensated += compensate_layer(g, p.node, p.input, p.axis, kept.at(p.value), *comp.stats,
                                                    comp.damping)
                                       ? 1
                                       : 0;
  }
  for (const auto& gr : deps.groups)
    for (const auto& p : gr.params) {
      auto it = kept.find(p.value);
      if (it == kept.end()) continue;
      const std::string& name = g.nodes[p.node].inputs[p.input];
      const Tensor* t = g.initializer(name);
      if (!t) throw UnsupportedError("parameter '" + name + "' of node '" + g.nodes[p.node].name + "' is not a constant");
      const Bytes source = t->bytes;  // shares a mapped range: its pages are dropped once sliced
      Tensor sliced = slice_axis(*t, p.axis, kept_indices(p, it->second));
      if (spill && sliced.nbytes() >= kSpillMinBytes && sliced.dtype != DType::String) sliced.bytes = spill->append(sliced.bytes);
      set_node_constant(g, p.node, p.input, std::move(sliced));
      if (spill) release_pages(source);
      ++st.params_sliced;
    }
  // Compensation may have given a bias-less layer a new bias (bias correction) after the groups
  // were built, so no group slices it: cut it to the layer's kept output channels here.
  for (int i = 0; i < static_cast<int>(g.nodes.size()); ++i) {
    Node& n = g.nodes[static_cast<size_t>(i)];
    if ((n.op_type != "Conv" && n.op_type != "Gemm") || n.input(2).empty() || !kept.count(n.outputs[0])) continue;
    const Tensor* w = g.initializer(n.input(1));
    const Tensor* b = g.initializer(n.input(2));
    if (!w || !b || w->dims.size() < 2 || b->dims.size() != 1) continue;
    int64_t out_ch = n.op_type == "Conv" || n.attr_int("transB", 0) ? w->dims[0] : w->dims[1];
    const auto& keep = kept.at(n.outputs[0]);
    if (b->dims[0] != out_ch && static_cast<int64_t>(keep.size()) == out_ch)
      set_node_constant(g, i, 2, slice_axis(*b, 0, keep));
  }
  for (int i = 0; i < static_cast<int>(g.nodes.size()); ++i) fix_node_for_channels(g, i, deps, kept);
  for (auto& vi : g.value_info) {
    auto it = kept.find(vi.name);
    if (it == kept.end() || !vi.has_shape) continue;
    const ChannelSpace& s = deps.spaces.at(vi.name);
    int pos = static_cast<int>(vi.shape.size()) + s.neg_axis;
    if (pos >= 0 && (s.rank < 0 || s.rank == static_cast<int>(vi.shape.size())))
      vi.shape[pos] = Dim::of(static_cast<int64_t>(it->second.size()));
  }
  g.invalidate();
  g.remove_unused();
  return st;
}

}  // namespace oc
