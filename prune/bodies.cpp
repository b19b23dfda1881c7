// Pruning inside nested graphs (see bodies.h).
#include "prune/bodies.h"

#include <algorithm>
#include <regex>
#include <set>

#include "graph/errors.h"
#include "graph/subgraphs.h"
#include "prune/rewrite.h"

namespace oc {

namespace {

// A body as a model of its own (the graph copied: planning never changes the model).
Model body_model(const Model& m, const Graph& body) {
  Model sub;
  sub.ir_version = m.ir_version;
  sub.opset_imports = m.opset_imports;
  sub.graph = body;
  return sub;
}

bool dense_layer(const Node& n) {
  return (n.op_type == "Conv" && n.attr_int("group", 1) == 1) || n.op_type == "Gemm" || n.op_type == "MatMul";
}

// The criterion a body is scored by, given what its statistics hold: the main graph's, with CFSP's
// per-block knob replaced by its unit scores (OBS with --cfsp-scores obs, activation otherwise).
Criterion body_criterion(const PruneOptions& o, bool compensate) {
  if (o.criterion == Criterion::CFSP) return o.cfsp_obs && compensate ? Criterion::OBS : Criterion::Activation;
  return o.criterion;
}

bool data_criterion(Criterion c) { return c == Criterion::Activation || criterion_uses_grams(c); }

}  // namespace

size_t BodyPlanner::num_groups() const {
  size_t n = 0;
  for (const auto& b : bodies) n += b.deps.groups.size();
  return n;
}

std::vector<std::vector<std::vector<char>>> BodyPlanner::plans(double knob) const {
  std::vector<std::vector<std::vector<char>>> out;
  for (const auto& b : bodies)
    out.push_back(global ? allocate_global(b.deps, b.scores.score, knob, b.rules)
                         : allocate_local(b.deps, b.scores.score, knob, b.rules));
  return out;
}

int BodyPlanner::apply(Model& m, const std::vector<std::vector<std::vector<char>>>& plans, int* compensated) const {
  int pruned = 0;
  for (size_t i = 0; i < bodies.size(); ++i) {
    const BodyPlan& b = bodies[i];
    if (std::none_of(plans[i].begin(), plans[i].end(),
                     [](const std::vector<char>& p) { return std::find(p.begin(), p.end(), 1) != p.end(); }))
      continue;
    Graph* body = graph_at(m.graph, b.path);
    if (!body) throw Error("pruning: nested graph '" + b.path + "' disappeared before its rewrite");
    Model sub;
    sub.ir_version = m.ir_version;
    sub.opset_imports = m.opset_imports;
    sub.graph = std::move(*body);
    CompensationOptions comp;
    if (compensated && compensate && !b.stats.grams.empty()) {
      comp.stats = &b.stats;
      comp.damping = damping;
    }
    RewriteStats rs = apply_prune(sub, b.deps, plans[i], comp);
    if (compensated) *compensated += rs.layers_compensated;
    *body = std::move(sub.graph);
    ++pruned;
  }
  return pruned;
}

BodyPlanner plan_bodies(const Model& m, const PruneOptions& o, const CalibrationStats* stats, bool compensate) {
  BodyPlanner bp;
  bp.compensate = compensate && stats;
  bp.damping = o.damping;
  bp.global = o.global;
  std::vector<std::regex> ignore;
  for (const auto& s : o.ignore) ignore.emplace_back(s);  // prune_model validated them
  const std::vector<GraphScope> scopes = all_graphs(m.graph);
  for (size_t si = scopes.size(); si-- > 1;) {  // children before parents
    BodyPlan b;
    b.path = scopes[si].path;
    const Model sub = body_model(m, *scopes[si].graph);
    ChannelDepsOptions dopt;
    dopt.heads = o.heads;
    b.deps = build_channel_deps(sub, dopt);
    // The body's statistics under its own names: channel moments of its values, Grams of its layers
    // (only those some sample reached).
    std::set<std::string> names;
    for (const auto& n : sub.graph.nodes) names.insert(n.name);
    if (stats) {
      for (const auto& gr : b.deps.groups)
        for (const auto& p : gr.params) {
          if (p.role != ParamSlice::Role::Consumer) continue;
          auto it = stats->channels.find(scoped_value(b.path, p.value));
          if (it != stats->channels.end() && it->second.count > 0) b.stats.channels[p.value] = it->second;
        }
      for (const auto& [layer, gs] : stats->grams)
        if (names.count(layer) && gs.rows > 0) b.stats.grams[layer] = gs;
      b.stats.samples = stats->samples;
    }
    // Data-aware where every prunable group's consumers have statistics; magnitude otherwise.
    Criterion crit = body_criterion(o, compensate);
    bool have = stats != nullptr;
    for (const auto& gr : b.deps.groups) {
      if (!gr.prunable()) continue;
      for (const auto& p : gr.params) {
        if (p.role != ParamSlice::Role::Consumer) continue;
        const Node& n = sub.graph.nodes[static_cast<size_t>(p.node)];
        if (crit == Criterion::Activation && !b.stats.channels.count(p.value)) have = false;
        if (criterion_uses_grams(crit) && dense_layer(n) && !b.stats.grams.count(n.name)) have = false;
      }
    }
    b.data_aware = data_criterion(crit) && have;
    b.data_missing = data_criterion(crit) && !have;
    if (data_criterion(crit) && !have) crit = crit == Criterion::Activation ? Criterion::L1 : Criterion::L2;
    b.criterion = crit;
    b.scores = score_units(sub, b.deps, crit, o.aggregate, o.seed, b.data_aware ? &b.stats : nullptr, o.damping,
                           o.max_layer_ratio);
    if (!have) b.stats.grams.clear();  // no compensation from partial statistics
    b.rules.max_layer_ratio = o.max_layer_ratio;
    b.rules.round_to = o.round_to;
    b.rules.skip.assign(b.deps.groups.size(), 0);
    for (size_t g = 0; g < b.deps.groups.size(); ++g) {
      std::vector<std::string> mem;
      for (const auto& p : b.deps.groups[g].params) {
        const Node& n = sub.graph.nodes[static_cast<size_t>(p.node)];
        if (std::find(mem.begin(), mem.end(), n.name) == mem.end()) mem.push_back(n.name);
        for (const auto& re : ignore)
          if (std::regex_search(n.name, re) || std::regex_search(n.op_type, re)) b.rules.skip[g] = 1;
      }
      b.members.push_back(std::move(mem));
    }
    bp.bodies.push_back(std::move(b));
  }
  return bp;
}

void add_body_calibration(const Model& m, const PruneOptions& o, CalibrationPlan& plan) {
  if (all_graphs(m.graph).size() < 2) return;
  Model c = copy_without_weight_data(m);
  localize_subgraph_weights(c.graph);
  const Criterion crit = body_criterion(o, o.compensate || criterion_uses_grams(o.criterion));
  const bool act = crit == Criterion::Activation, gram = criterion_uses_grams(crit) || o.compensate;
  if (!act && !gram) return;
  const std::vector<GraphScope> scopes = all_graphs(c.graph);
  std::set<std::string> layers(plan.grams.begin(), plan.grams.end());
  for (size_t si = 1; si < scopes.size(); ++si) {
    const Model sub = body_model(c, *scopes[si].graph);
    ChannelDepsOptions dopt;
    dopt.heads = o.heads;
    const ChannelDeps d = build_channel_deps(sub, dopt);
    for (const auto& gr : d.groups) {
      if (!gr.prunable()) continue;
      for (const auto& p : gr.params) {
        if (p.role != ParamSlice::Role::Consumer) continue;
        const Node& n = sub.graph.nodes[static_cast<size_t>(p.node)];
        if (act) plan.channels[scoped_value(scopes[si].path, p.value)] = kAutoAxis;
        if (gram && dense_layer(n) && layers.insert(n.name).second) plan.grams.push_back(n.name);
      }
    }
  }
}

std::vector<PruneGroupReport> body_group_reports(const BodyPlanner& bp, const std::vector<std::vector<std::vector<char>>>& plans,
                                                 int first_id) {
  std::vector<PruneGroupReport> out;
  for (size_t i = 0; i < bp.bodies.size(); ++i) {
    const BodyPlan& b = bp.bodies[i];
    for (size_t g = 0; g < b.deps.groups.size(); ++g) {
      const auto& gr = b.deps.groups[g];
      PruneGroupReport gp;
      gp.id = first_id + static_cast<int>(out.size());
      gp.members = b.members[g];
      gp.units_before = gr.num_units;
      gp.locked = gr.locked_units;
      gp.units_after = gr.num_units - std::count(plans[i][g].begin(), plans[i][g].end(), 1);
      const auto& s = b.scores.score[g];
      if (!s.empty()) {
        gp.score_min = *std::min_element(s.begin(), s.end());
        gp.score_max = *std::max_element(s.begin(), s.end());
        for (double x : s) gp.score_mean += x / static_cast<double>(s.size());
      }
      std::string why = "in " + b.path;
      for (const auto& r : gr.reasons) why += "; " + r;
      if (b.rules.skip[g]) why = "ignored by --ignore; " + why;
      gp.skip = gr.reasons.empty() && !b.rules.skip[g] ? "" : why;
      out.push_back(std::move(gp));
    }
  }
  return out;
}

}  // namespace oc
