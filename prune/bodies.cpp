// Pruning inside nested graphs (see bodies.h).
#include "prune/bodies.h"

#include <algorithm>
#include <regex>

#include "graph/channel_deps.h"
#include "graph/subgraphs.h"
#include "prune/allocate.h"
#include "prune/importance.h"
#include "prune/rewrite.h"

namespace oc {

BodyPruneResult prune_bodies(Model& m, const PruneOptions& o, const CalibrationStats* stats, int first_id) {
  BodyPruneResult res;
  localize_subgraph_weights(m.graph);
  std::vector<GraphScope> scopes = all_graphs(m.graph);
  std::vector<std::regex> ignore;
  for (const auto& s : o.ignore) ignore.emplace_back(s);  // prune_model validated them
  // Children before parents: rewriting a graph never touches the graphs nested in it (they are
  // shared_ptr-held and already done), so the scope pointers stay valid.
  for (size_t si = scopes.size(); si-- > 1;) {
    Graph* body = scopes[si].graph;
    ++res.bodies;
    Model sub;
    sub.ir_version = m.ir_version;
    sub.opset_imports = m.opset_imports;
    sub.graph = std::move(*body);
    ChannelDepsOptions dopt;
    dopt.heads = o.heads;
    ChannelDeps d = build_channel_deps(sub, dopt);
    // Magnitude criteria score from the weights alone; the others have no body statistics.
    Criterion crit = o.criterion;
    if (crit == Criterion::Activation || crit == Criterion::CFSP) crit = Criterion::L1;
    if (crit == Criterion::OBS) crit = Criterion::L2;
    UnitScores us = score_units(sub, d, crit, o.aggregate, o.seed, stats);
    AllocationRules rules;
    rules.max_layer_ratio = o.max_layer_ratio;
    rules.round_to = o.round_to;
    rules.skip.assign(d.groups.size(), 0);
    for (size_t g = 0; g < d.groups.size(); ++g)
      for (const auto& p : d.groups[g].params) {
        const Node& n = sub.graph.nodes[p.node];
        for (const auto& re : ignore)
          if (std::regex_search(n.name, re) || std::regex_search(n.op_type, re)) rules.skip[g] = 1;
      }
    auto plan = allocate_local(d, us.score, o.ratio, rules);
    bool changed = false;
    for (size_t g = 0; g < d.groups.size(); ++g) {
      const auto& gr = d.groups[g];
      PruneGroupReport gp;
      gp.id = first_id + static_cast<int>(res.groups.size());
      for (const auto& p : gr.params) {
        const std::string& n = sub.graph.nodes[p.node].name;
        if (std::find(gp.members.begin(), gp.members.end(), n) == gp.members.end()) gp.members.push_back(n);
      }
      gp.units_before = gr.num_units;
      gp.locked = gr.locked_units;
      gp.units_after = gr.num_units - std::count(plan[g].begin(), plan[g].end(), 1);
      changed = changed || gp.units_after < gp.units_before;
      if (!us.score[g].empty()) {
        gp.score_min = *std::min_element(us.score[g].begin(), us.score[g].end());
        gp.score_max = *std::max_element(us.score[g].begin(), us.score[g].end());
        for (double x : us.score[g]) gp.score_mean += x / static_cast<double>(us.score[g].size());
      }
      std::string why = "in " + scopes[si].path;
      for (const auto& r : gr.reasons) why += "; " + r;
      if (rules.skip[g]) why = "ignored by --ignore; " + why;
      gp.skip = gr.reasons.empty() && !rules.skip[g] ? "" : why;
      res.groups.push_back(std::move(gp));
    }
    if (changed) {
      apply_prune(sub, d, plan);
      ++res.bodies_pruned;
    }
    *body = std::move(sub.graph);
  }
  return res;
}

}  // namespace oc
