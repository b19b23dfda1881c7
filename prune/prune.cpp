// The pruning driver (see prune.h). Targets search the one knob of the allocation (ratio for local
// scope, score threshold for global) by bisection on the measured cost of the rewritten model.
#include "prune/prune.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <limits>
#include <regex>
#include <set>
#include <sstream>

#include "graph/channel_deps.h"
#include "graph/cost.h"
#include "graph/errors.h"
#include "graph/onnx_io.h"
#include "engine/shape_eval.h"
#include "graph/shape_inference.h"
#include "prune/allocate.h"
#include "prune/bodies.h"
#include "prune/blocks.h"
#include "prune/cfsp.h"
#include "prune/rewrite.h"
#include "graph/spill.h"
#include "graph/subgraphs.h"

namespace oc {

namespace {

struct Costs {
  int64_t params = 0, macs = -1;
};
Costs measure(const Model& m, const PruneOptions& o, bool need_macs) {
  if (!need_macs) return {count_costs(m).params, -1};
  Model c = copy_without_weight_data(m);  // shapes and counts need no weight values
  infer_shapes_evaluated(c, o.input_shapes);
  CostReport r = count_costs(c);
  return {r.params, r.macs_complete ? r.macs : -1};
}

std::vector<std::string> member_nodes(const Graph& g, const ChannelGroup& gr) {
  std::vector<std::string> out;
  for (const auto& p : gr.params) {
    const std::string& n = g.nodes[p.node].name;
    if (std::find(out.begin(), out.end(), n) == out.end()) out.push_back(n);
  }
  return out;
}

// Blocks of `m` for CFSP, detected on a shape-inferred copy (residual Adds need shapes).
std::vector<Block> cfsp_blocks(const Model& m, const PruneOptions& o) {
  Model c = m;
  infer_shapes_evaluated(c, o.input_shapes);
  return find_blocks(c, o.blocks);
}

std::string fixed(double v, int prec = 3) {
  std::ostringstream s;
  s.setf(std::ios::fixed);
  s.precision(prec);
  s << v;
  return s.str();
}

// A lock reason without the node and value names, so reasons of the same kind count together:
// "reaches graph output 'y'" -> "reaches graph output", "grouped Conv 'c3' (group=4) is not pruned"
// -> "grouped Conv (group=4) is not pruned".
std::string reason_kind(const std::string& r) {
  std::string out;
  bool quoted = false;
  for (char ch : r) {
    if (ch == '\'') { quoted = !quoted; continue; }
    if (quoted) continue;
    if (ch == ' ' && (out.empty() || out.back() == ' ')) continue;
    out += ch;
  }
  while (!out.empty() && out.back() == ' ') out.pop_back();
  for (size_t p; (p = out.find(" 's")) != std::string::npos;) out.erase(p + 1, 1);  // "Reshape's"
  return out;
}

// Why pruning stops at `reachable`: locked groups counted by reason kind, then the rules' caps.
std::string unreachable_reasons(const ChannelDeps& d, const AllocationRules& rules, const PruneOptions& o,
                                bool nothing = false, const BodyPlanner* bodies = nullptr) {
  std::map<std::string, int> kinds;
  int locked = 0, ignored = 0;
  size_t all = d.groups.size();
  auto count = [&](const ChannelDeps& dd, const AllocationRules& rr) {
    for (size_t g = 0; g < dd.groups.size(); ++g) {
      const auto& gr = dd.groups[g];
      if (rr.skip[g]) { ++ignored; continue; }
      if (gr.locked_units == 0) continue;
      ++locked;
      std::set<std::string> seen;
      for (const auto& r : gr.reasons)
        if (seen.insert(reason_kind(r)).second) ++kinds[reason_kind(r)];
    }
  };
  count(d, rules);
  if (bodies)  // groups inside If/Loop/Scan bodies count with the main graph's
    for (const auto& b : bodies->bodies) { count(b.deps, b.rules); all += b.deps.groups.size(); }
  std::vector<std::pair<int, std::string>> by_count;
  for (const auto& [k, n] : kinds) by_count.push_back({-n, k});
  std::sort(by_count.begin(), by_count.end());
  std::ostringstream s;
  s << locked << " of " << all << " channel groups locked";
  for (size_t i = 0; i < by_count.size() && i < 4; ++i)
    s << (i ? ", " : " — ") << by_count[i].second << " (" << -by_count[i].first << ")";
  if (by_count.size() > 4) s << ", …";
  if (ignored) s << "; " << ignored << " ignored by --ignore";
  if (nothing)
    s << "; the others lose no channel at " << (o.ratio >= 0 ? "--ratio " + fixed(o.ratio, 2) : std::string("this target"))
      << " once kept channels are rounded to a multiple of --round-to " << o.round_to << " (raise the ratio or lower --round-to)";
  else
    s << "; the others cut to --max-layer-ratio " << o.max_layer_ratio << " with kept channels a multiple of --round-to "
      << o.round_to;
  return s.str();
}

double channels_kept(const ChannelDeps& d, const std::vector<std::vector<char>>& plan) {
  int64_t all = 0, kept = 0;
  for (size_t g = 0; g < d.groups.size(); ++g)
    for (char c : plan[g]) { ++all; kept += !c; }
  return all ? static_cast<double>(kept) / static_cast<double>(all) : 1.0;
}

// Why --target-macs cannot count MACs: the symbolic input dims and the flag that fixes them, or
// (all inputs concrete) the first MAC node whose shapes stayed unknown.
std::string macs_unknown_reason(const Model& m, const PruneOptions& o) {
  std::string dims;
  for (const ValueInfo* v : m.graph.runtime_inputs()) {
    if (o.input_shapes.count(v->name)) continue;
    std::string syms, spec;
    for (const Dim& d : v->shape) {
      std::string s = d.known() ? std::to_string(d.value) : d.param.empty() ? "?" : d.param;
      if (!d.known()) syms += (syms.empty() ? "" : ", ") + s;
      spec += (spec.empty() ? "" : ",") + (d.known() ? s : std::string("N"));
    }
    if (!v->has_shape) syms = "unknown rank", spec = "D0,D1,...";
    if (!syms.empty())
      dims += (dims.empty() ? "" : "; ") + ("input '" + v->name + "' has symbolic dims " + syms + " (--input-shape " +
                                            v->name + "=" + spec + ")");
  }
  if (!dims.empty())
    return "--target-macs needs concrete input shapes: " + dims + "; give --input-shape or --calib data with concrete shapes";
  Model c = copy_without_weight_data(m);
  infer_shapes_evaluated(c, o.input_shapes);
  CostReport r = count_costs(c);
  for (const auto& n : r.per_node)
    if (n.macs < 0) return "--target-macs: MACs of " + n.op_type + " '" + n.node + "' are unknown (" + n.why + ")";
  return "--target-macs: the model has no MACs to count (no Conv/MatMul/Gemm); use --target-params";
}

}  // namespace

CalibrationPlan prune_calibration_plan(const Model& m, const PruneOptions& opt) {
  CalibrationPlan n;
  bool act = opt.criterion == Criterion::Activation || opt.criterion == Criterion::CFSP,
       gram = criterion_uses_grams(opt.criterion) || opt.compensate;
  if (!act && !gram) return n;
  if (opt.criterion == Criterion::CFSP)
    for (const auto& b : cfsp_blocks(m, opt)) n.blocks.push_back({b.name, b.input, b.output, kAutoAxis});
  ChannelDeps d = build_channel_deps(m, {opt.heads});
  std::set<std::string> vals, layers;
  for (const auto& gr : d.groups) {
    if (!gr.prunable()) continue;
    for (const auto& p : gr.params) {
      if (p.role != ParamSlice::Role::Consumer) continue;
      const Node& node = m.graph.nodes[p.node];
      if (act) vals.insert(p.value);
      bool dense_conv = node.op_type == "Conv" && node.attr_int("group", 1) == 1;  // compensation's scope
      if (gram && (dense_conv || node.op_type == "Gemm" || node.op_type == "MatMul")) layers.insert(node.name);
    }
  }
  for (const auto& v : vals) n.channels[v] = kAutoAxis;
  n.grams.assign(layers.begin(), layers.end());
  add_body_calibration(m, opt, n);  // consumers inside If/Loop/Scan bodies (prune/bodies.h)
  return n;
}

PruneReport prune_model(Model& m, const PruneOptions& o, const CalibrationStats* stats) {
  auto t0 = std::chrono::steady_clock::now();
  PruneReport rep;
  auto phase_start = t0;
  auto phase_end = [&](const char* name) {
    const auto now = std::chrono::steady_clock::now();
    rep.phases.push_back({name, std::chrono::duration<double>(now - phase_start).count()});
    phase_start = now;
    if (trace_memory()) std::fprintf(stderr, "[memory] prune %s done: %s\n", name, memory_status_line().c_str());
  };
  int targets = (o.ratio >= 0) + (o.target_macs >= 0) + (o.target_params >= 0);
  if (targets != 1) throw InvalidArgument("give exactly one of --ratio, --target-macs, --target-params");
  if (o.ratio >= 1 || (o.target_macs >= 0 && (o.target_macs <= 0 || o.target_macs > 1)) ||
      (o.target_params >= 0 && (o.target_params <= 0 || o.target_params > 1)))
    throw InvalidArgument("--ratio must be in [0, 1) and targets in (0, 1]");
  if (o.max_layer_ratio <= 0 || o.max_layer_ratio >= 1) throw InvalidArgument("--max-layer-ratio must be in (0, 1)");
  if (o.round_to < 1) throw InvalidArgument("--round-to must be >= 1");
  const bool cfsp = o.criterion == Criterion::CFSP;
  if (cfsp && o.global) throw InvalidArgument("--criterion cfsp allocates per block: --scope global does not apply");
  if (!o.blocks.empty() && !cfsp) throw InvalidArgument("--blocks applies to --criterion cfsp only");
  if (!std::isfinite(o.cfsp_sharpness) || o.cfsp_sharpness < 0) throw InvalidArgument("--cfsp-sharpness must be >= 0");
  bool compensate = o.compensate || criterion_uses_grams(o.criterion);
  if (compensate && !stats) throw InvalidArgument("compensation needs calibration data (--calib)");

  rep.criterion = criterion_name(o.criterion);
  // Weights only one body reads move into it, so body groups own them (graph/subgraphs.h).
  if (all_graphs(m.graph).size() > 1) localize_subgraph_weights(m.graph);
  ChannelDeps d = build_channel_deps(m, {o.heads});
  const Criterion scored = cfsp && o.cfsp_obs && compensate ? Criterion::OBS : o.criterion;
  UnitScores us = score_units(m, d, scored, o.aggregate, o.seed, stats, o.damping, o.max_layer_ratio);
  rep.notes = us.notes;
  phase_end("scoring");

  AllocationRules rules;
  rules.max_layer_ratio = o.max_layer_ratio;
  rules.round_to = o.round_to;
  rules.skip.assign(d.groups.size(), 0);
  std::vector<std::regex> ignore;
  for (const auto& s : o.ignore) {
    try { ignore.emplace_back(s); } catch (const std::regex_error&) { throw InvalidArgument("bad --ignore regex '" + s + "'"); }
  }
  for (size_t g = 0; g < d.groups.size(); ++g)
    for (const auto& p : d.groups[g].params) {
      const Node& n = m.graph.nodes[p.node];
      for (const auto& re : ignore)
        if (std::regex_search(n.name, re) || std::regex_search(n.op_type, re)) rules.skip[g] = 1;
    }

  bool need_macs = o.target_macs >= 0;
  Costs before = measure(m, o, true);
  rep.params_before = before.params;
  rep.macs_before = before.macs;
  rep.bytes_before = model_weight_bytes(m);
  if (need_macs && before.macs <= 0) throw InvalidArgument(macs_unknown_reason(m, o));
  // Groups inside If/Loop/Scan bodies, planned at the main plan's knob (prune/bodies.h).
  const BodyPlanner bp = plan_bodies(m, o, stats, compensate);
  bool sens_knob = static_cast<bool>(o.sensitivity) && !cfsp && !o.global;  // t in [0, 1]
  auto body_for = [&](double knob) { return bp.plans(sens_knob ? knob * o.max_layer_ratio : knob); };
  std::vector<std::vector<std::vector<char>>> body_plan;

  // CFSP: block importances from the angle statistics; the knob is P, the mean removed fraction.
  std::vector<Block> blocks;
  std::vector<double> importance;
  std::vector<int> group_block;
  std::vector<char> active;  // blocks with something to prune
  if (cfsp) {
    blocks = cfsp_blocks(m, o);
    for (const auto& b : blocks) {
      auto it = stats->blocks.find(b.name);
      if (it == stats->blocks.end() || it->second.count == 0)
        throw InvalidArgument("criterion cfsp: no angle statistics for block '" + b.name + "' (calibrate with prune_needs)");
      importance.push_back(it->second.mean_angle());
    }
    group_block = group_blocks(d, blocks, m.graph.nodes.size());
    active.assign(blocks.size(), 0);
    for (size_t g = 0; g < d.groups.size(); ++g)
      if (group_block[g] >= 0 && d.groups[g].prunable() && !rules.skip[g]) active[group_block[g]] = 1;
    if (blocks.empty()) rep.notes.push_back("cfsp: no residual blocks found, every group pruned uniformly (name blocks with --blocks REGEX)");
  }
  // Sensitivity allocation: S_g(r) measured per group; the knob t in [0, 1] is the multiplier
  // λ = λ0·t/(1−t) (t = 1: as far as the rules allow), λ0 = Σ S_g(0.5) / Σ saving_g·0.5.
  bool sens = static_cast<bool>(o.sensitivity) && !cfsp && !o.global;
  std::vector<double> saving;
  double lambda0 = 1;
  if (sens) {
    if (o.ratio >= 0) throw InvalidArgument("allocation by sensitivity needs --target-macs or --target-params");
    rep.sensitivity = o.sensitivity(m, d, us.score, rules);
    phase_end("sensitivity");
    rep.allocation = "sensitivity";
    // No probe changed the outputs (a model whose outputs do not depend on the input, e.g. a
    // zero-initialized classifier): S_g ≡ 0 makes every group free at any λ > 0, so the knob jumps
    // from nothing to everything. Such data ranks nothing; allocate uniformly instead.
    bool any_signal = false;
    for (const auto& row : rep.sensitivity)
      for (double v : row) any_signal = any_signal || v > 0;
    if (!any_signal) {
      sens = sens_knob = false;
      rep.allocation = "uniform";
      rep.notes.push_back("sensitivity: no probe changed the outputs on the calibration data (outputs constant?), "
                          "so nothing ranks the groups; allocated uniformly");
    }
  } else {
    rep.allocation = cfsp ? "cfsp" : o.global ? "global" : "uniform";
  }
  auto plan_for = [&](double knob) {
    if (sens) {
      const double lambda = knob >= 1 ? std::numeric_limits<double>::infinity() : lambda0 * knob / (1 - knob);
      return allocate_sensitivity(d, us.score, o.sensitivity_ratios, rep.sensitivity, saving, lambda, rules);
    }
    if (cfsp) {
      auto keep = cfsp_keep_fractions(importance, knob, o.cfsp_sharpness, o.max_layer_ratio, active);
      return allocate_per_group(d, us.score, cfsp_group_ratios(group_block, keep, knob), rules);
    }
    return o.global ? allocate_global(d, us.score, knob, rules) : allocate_local(d, us.score, knob, rules);
  };
  double chosen_knob = o.ratio;
  std::vector<std::vector<char>> plan;
  if (o.ratio >= 0 && !o.global && !sens) {
    plan = plan_for(o.ratio);
    body_plan = body_for(o.ratio);
  } else {
    // Bisection on the knob; the metric falls as the knob rises.
    // Each try rewrites a copy without the weights' values: the cost of a plan needs only shapes.
    const Model shapes_only = copy_without_weight_data(m);
    double target_frac = o.ratio >= 0 ? 1.0 - o.ratio : (need_macs ? o.target_macs : o.target_params);
    auto metric = [&](const std::vector<std::vector<char>>& p, const std::vector<std::vector<std::vector<char>>>& bpl) -> double {
      if (o.ratio >= 0) {  // global ratio: fraction of all units kept
        int64_t all = 0, kept = 0;
        for (size_t g = 0; g < d.groups.size(); ++g)
          for (char c : p[g]) { ++all; kept += !c; }
        for (const auto& b : bpl)
          for (const auto& u : b)
            for (char c : u) { ++all; kept += !c; }
        return all ? static_cast<double>(kept) / static_cast<double>(all) : 1.0;
      }
      Model c = shapes_only;
      apply_prune(c, d, p);
      bp.apply(c, bpl);
      Costs k = measure(c, o, need_macs);
      return need_macs ? static_cast<double>(k.macs) / static_cast<double>(before.macs)
                       : static_cast<double>(k.params) / static_cast<double>(before.params);
    };
    if (sens) {
      // Each group's cost saving per unit of r, from pruning it alone at half.
      saving.assign(d.groups.size(), 0.0);
      double num = 0, den = 0;
      for (size_t g = 0; g < d.groups.size(); ++g) {
        std::vector<double> ratio(d.groups.size(), 0.0);
        ratio[g] = 0.5;
        const auto p = allocate_per_group(d, us.score, ratio, rules);
        const double removed = static_cast<double>(std::count(p[g].begin(), p[g].end(), 1));
        if (removed <= 0) continue;
        saving[g] = (1.0 - metric(p, body_for(0))) / (removed / d.groups[g].num_units);
        size_t half = 0;
        for (size_t i = 0; i < o.sensitivity_ratios.size(); ++i)
          if (std::fabs(o.sensitivity_ratios[i] - 0.5) < std::fabs(o.sensitivity_ratios[half] - 0.5)) half = i;
        if (half < rep.sensitivity[g].size()) num += rep.sensitivity[g][half];
        den += saving[g] * 0.5;
      }
      if (num > 0 && den > 0) lambda0 = num / den;
    }
    double hi = sens ? 1.0 : o.global ? 0 : o.max_layer_ratio;
    if (o.global) for (const auto& s : us.score) for (double x : s) hi = std::max(hi, x * 1.0001 + 1e-12);
    if (o.global)
      for (const auto& b : bp.bodies)
        for (const auto& s : b.scores.score) for (double x : s) hi = std::max(hi, x * 1.0001 + 1e-12);
    double lo = 0;
    auto best_plan = plan_for(lo);
    double best_metric = 1.0;
    auto max_plan = plan_for(hi);
    auto max_body = body_for(hi), best_body = body_for(lo);
    double max_metric = metric(max_plan, max_body);
    const char* what = need_macs ? "MACs" : o.ratio >= 0 ? "channels" : "parameters";
    const double tol = kPruneTargetTolerance;
    if (max_metric > target_frac + tol) {
      std::string why = "reachable " + fixed(max_metric) + " of " + what + " (target " + fixed(target_frac) + "): " +
                        unreachable_reasons(d, rules, o, false, &bp);
      if (!o.best_effort) throw Error(why + "; --best-effort writes the reachable model");
      rep.target = {{"status", "missed"}, {"note", "best effort: " + why}};
      rep.notes.push_back("best effort: " + why);
      plan = max_plan;
      body_plan = max_body;
      chosen_knob = hi;
    } else {
      // Only plans at most target + tol qualify; of those the one nearest the target wins.
      best_plan = max_plan;
      best_body = max_body;
      best_metric = max_metric;
      chosen_knob = hi;
      double above = 1.0;  // the smallest metric seen above the window (what the next coarser step keeps)
      for (int it = 0; it < 22; ++it) {
        double mid = 0.5 * (lo + hi);
        auto p = plan_for(mid);
        auto pb = body_for(mid);
        double v = metric(p, pb);
        // (--scope global --ratio keeps its nearest-plan search: the window is for MAC/param targets.)
        if ((v <= target_frac + tol || o.ratio >= 0) && std::fabs(v - target_frac) < std::fabs(best_metric - target_frac)) {
          best_metric = v; best_plan = p; best_body = pb; chosen_knob = mid;
        }
        if (v > target_frac + tol) above = std::min(above, v);
        if (v > target_frac) lo = mid; else hi = mid;
        if (std::fabs(v - target_frac) < 1e-3) break;
      }
      // Every group steps by --round-to at the same knob values, so the bisection can jump over the
      // window; then give back round_to units at a time (a group's best-scored removed ones, groups
      // with the best such units first) while the plan stays at most target + tol.
      // (Passes until none helps: one step per group each, fine steps may need many.)
      for (int pass = 0; pass < 64 && o.ratio < 0 && best_metric < target_frac - tol; ++pass) {
        std::vector<std::pair<double, size_t>> order;
        for (size_t g = 0; g < d.groups.size(); ++g) {
          double best = -1;
          for (size_t u = 0; u < best_plan[g].size(); ++u)
            if (best_plan[g][u]) best = std::max(best, us.score[g][u]);
          if (best >= 0) order.push_back({-best, g});
        }
        std::sort(order.begin(), order.end());
        bool changed = false;
        for (const auto& [neg, g] : order) {
          if (best_metric >= target_frac - tol) break;
          auto p = best_plan;
          std::vector<size_t> removed;
          for (size_t u = 0; u < p[g].size(); ++u) if (p[g][u]) removed.push_back(u);
          std::sort(removed.begin(), removed.end(), [&](size_t a, size_t b) { return us.score[g][a] > us.score[g][b]; });
          // One rounding step of this group: round_to channels, which is one unit where a unit is
          // a head or a conv group of round_to or more channels.
          size_t give = std::min<size_t>(removed.size(), static_cast<size_t>(unit_round_to(d, static_cast<int>(g), o.round_to)));
          for (size_t i = 0; i < give; ++i) p[g][removed[i]] = 0;
          double v = metric(p, best_body);
          if (v <= target_frac + tol) { best_plan = std::move(p); best_metric = v; changed = true; }
        }
        if (!changed) break;
      }
      plan = best_plan;
      body_plan = best_body;
      if (o.ratio >= 0) {
        // a ratio is not a target: nothing to report
      } else if (best_metric < target_frac - tol) {
        std::string note = "target " + fixed(target_frac) + " of " + what + " overshot: kept " + fixed(best_metric) +
                           ", the nearest plan at --round-to " + std::to_string(o.round_to) + " (giving back " +
                           std::to_string(o.round_to) + " more channels in any group keeps over " +
                           fixed(target_frac + tol) + ", coarsest uniform step " + fixed(above) +
                           "; a smaller --round-to gives finer steps)";
        if (best_metric < target_frac - kPruneOvershootLimit) {
          std::string why = "target " + fixed(target_frac) + " of " + what + " cannot be met within " +
                            fixed(kPruneOvershootLimit, 2) + " at --round-to " + std::to_string(o.round_to) +
                            ": the nearest plans keep " + fixed(best_metric) + " and " + fixed(above) +
                            " (giving back " + std::to_string(o.round_to) + " channels in any group keeps over " +
                            fixed(target_frac + tol) + "); a smaller --round-to gives finer steps";
          if (!o.best_effort) throw Error(why + "; --best-effort writes the " + fixed(best_metric) + " plan");
          note = "best effort: " + why;
        }
        rep.target = {{"status", "overshot"}, {"note", note}};
        rep.notes.push_back(note);
      } else {
        rep.target = {{"status", "met"}};
      }
    }
    if (!(o.ratio >= 0 && rep.target.is_null())) {
      rep.target["metric"] = need_macs ? "macs" : o.ratio >= 0 ? "channels" : "params";
      rep.target["requested"] = target_frac;
      rep.target["reachable"] = max_metric;
      rep.target["tolerance"] = tol;
      rep.target["best_effort"] = o.best_effort;
    }
  }

  phase_end("allocation");
  const bool sequential = compensate && o.reconstruct;
  CompensationOptions comp;
  if (compensate && !sequential) { comp.stats = stats; comp.damping = o.damping; }
  Model original;
  std::vector<SequentialLayer> layers;
  if (sequential) {
    original = m;
    layers = compensated_layers(m, d, plan);
  }
  if (!d.whole_group_convs.empty()) {  // grouped convs whose units are whole groups
    const KeptChannels kept = kept_channels(d, plan);
    int cut = 0;
    for (int ni : d.whole_group_convs) cut += kept.count(m.graph.nodes[static_cast<size_t>(ni)].outputs[0]) > 0;
    rep.notes.push_back("grouped convs: " + std::to_string(cut) + " of " + std::to_string(d.whole_group_convs.size()) +
                        " lose whole groups");
  }
  // Group members by name before the rewrite: it may drop nodes (a computed shape replaced by a
  // constant), and the groups' node indices refer to the graph before it.
  std::vector<std::vector<std::string>> members;
  for (const auto& gr : d.groups) members.push_back(member_nodes(m.graph, gr));
  RewriteStats rs = apply_prune(m, d, plan, comp, o.spill);
  rep.layers_compensated = rs.layers_compensated;
  if (compensate) rep.compensation = sequential ? "sequential" : "one-shot";
  // Bodies before the main graph's sequential pass, so its layers see the pruned bodies' outputs;
  // body layers are compensated one-shot from their own Grams.
  int body_compensated = 0;
  const int bodies_pruned = bp.apply(m, body_plan, &body_compensated);
  phase_end("rewrite");
  if (sequential) {
    rep.layers_compensated = o.reconstruct(original, m, layers);
    original = Model();
    phase_end("reconstruction");
  }
  rep.layers_compensated += body_compensated;
  Costs after = measure(m, o, true);
  rep.params_after = after.params;
  rep.macs_after = after.macs;
  rep.bytes_after = model_weight_bytes(m);
  if (rep.target.is_object()) {
    rep.target["reached"] = need_macs ? static_cast<double>(after.macs) / static_cast<double>(before.macs)
                          : o.ratio >= 0 ? channels_kept(d, plan)
                                         : static_cast<double>(after.params) / static_cast<double>(before.params);
  }

  for (size_t g = 0; g < d.groups.size(); ++g) {
    const auto& gr = d.groups[g];
    PruneGroupReport gp;
    gp.id = gr.id;
    gp.members = members[g];
    gp.units_before = gr.num_units;
    gp.locked = gr.locked_units;
    gp.units_after = gr.num_units - std::count(plan[g].begin(), plan[g].end(), 1);
    if (!us.score[g].empty()) {
      gp.score_min = *std::min_element(us.score[g].begin(), us.score[g].end());
      gp.score_max = *std::max_element(us.score[g].begin(), us.score[g].end());
      for (double x : us.score[g]) gp.score_mean += x / static_cast<double>(us.score[g].size());
    }
    std::string why;
    for (const auto& r : gr.reasons) why += (why.empty() ? "" : "; ") + r;
    if (rules.skip[g]) why = "ignored by --ignore" + (why.empty() ? "" : "; " + why);
    gp.skip = why;
    rep.groups.push_back(std::move(gp));
  }
  for (auto& gp : body_group_reports(bp, body_plan, static_cast<int>(d.groups.size()))) rep.groups.push_back(std::move(gp));
  if (bodies_pruned > 0) {
    int aware = 0;
    std::string blind;
    for (const auto& b : bp.bodies) {
      aware += b.data_aware;
      if (b.data_missing) blind += (blind.empty() ? "" : ", ") + b.path;
    }
    std::string how = "groups that stay inside a body; " + std::to_string(aware) + " scored from the calibration data that reached them";
    if (body_compensated) how += ", " + std::to_string(body_compensated) + " layers compensated one-shot";
    if (!blind.empty()) how += "; magnitude-scored (no calibration sample reached them): " + blind;
    rep.notes.push_back("pruned inside " + std::to_string(bodies_pruned) + " of " + std::to_string(bp.bodies.size()) +
                        " If/Loop/Scan bodies (" + how + ")");
  }
  if (cfsp) {
    rep.uniform_ratio = chosen_knob;
    std::vector<double> keep = cfsp_keep_fractions(importance, chosen_knob, o.cfsp_sharpness, o.max_layer_ratio, active);
    for (size_t b = 0; b < blocks.size(); ++b) {
      PruneBlockReport br;
      br.name = blocks[b].name;
      br.input = blocks[b].input;
      br.output = blocks[b].output;
      br.importance = importance[b];
      br.ratio = 1.0 - keep[b];
      for (size_t g = 0; g < d.groups.size(); ++g) {
        if (group_block[g] != static_cast<int>(b)) continue;
        br.groups.push_back(d.groups[g].id);
        br.units_before += rep.groups[g].units_before;
        br.units_after += rep.groups[g].units_after;
      }
      rep.blocks.push_back(std::move(br));
    }
  }
  rep.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return rep;
}

std::vector<SequentialLayer> compensated_layers(const Model& m, const ChannelDeps& d,
                                                const std::vector<std::vector<char>>& plan) {
  const KeptChannels kept = kept_channels(d, plan);
  std::vector<SequentialLayer> out;
  std::set<int> done;
  for (const auto& gr : d.groups)
    for (const auto& p : gr.params) {
      if (p.role != ParamSlice::Role::Consumer || !kept.count(p.value) || p.input != 1 || !done.insert(p.node).second)
        continue;
      const Node& n = m.graph.nodes[static_cast<size_t>(p.node)];
      if (n.op_type != "Conv" && n.op_type != "Gemm" && n.op_type != "MatMul") continue;
      if (n.op_type == "Conv" && n.attr_int("group", 1) != 1) continue;
      SequentialLayer l;
      l.node = n.name;
      for (const auto& g2 : d.groups)
        for (const auto& q : g2.params)
          if (q.role == ParamSlice::Role::Producer && q.node == p.node && q.input == 1 && kept.count(q.value))
            l.rows = kept_indices(q, kept.at(q.value));
      out.push_back(std::move(l));
    }
  return out;
}

nlohmann::json PruneReport::to_json() const {
  nlohmann::json j;
  j["criterion"] = criterion;
  j["totals"] = {{"params_before", params_before}, {"params_after", params_after},
                 {"macs_before", macs_before},     {"macs_after", macs_after},
                 {"bytes_before", bytes_before},   {"bytes_after", bytes_after},
                 {"layers_compensated", layers_compensated}};
  if (!compensation.empty()) j["compensation"] = compensation;
  if (!allocation.empty()) j["allocation"] = allocation;
  if (!sensitivity.empty()) j["sensitivity"] = sensitivity;
  j["seconds"] = seconds;
  if (!phases.empty()) {
    j["phase_seconds"] = nlohmann::json::object();
    for (const auto& [name, s] : phases) j["phase_seconds"][name] = s;
  }
  j["notes"] = notes;
  if (target.is_object()) j["target"] = target;
  j["groups"] = nlohmann::json::array();
  for (const auto& g : groups) {
    nlohmann::json e = {{"id", g.id},
                        {"members", g.members},
                        {"channels_before", g.units_before},
                        {"channels_after", g.units_after},
                        {"locked", g.locked},
                        {"score", {{"min", g.score_min}, {"mean", g.score_mean}, {"max", g.score_max}}}};
    if (!g.skip.empty()) e["skip_reason"] = g.skip;
    j["groups"].push_back(e);
  }
  if (uniform_ratio >= 0) {
    j["uniform_ratio"] = uniform_ratio;
    j["blocks"] = nlohmann::json::array();
    for (const auto& b : blocks)
      j["blocks"].push_back({{"name", b.name},
                             {"input", b.input},
                             {"output", b.output},
                             {"importance", b.importance},
                             {"ratio", b.ratio},
                             {"units_before", b.units_before},
                             {"units_after", b.units_after},
                             {"groups", b.groups}});
  }
  return j;
}

}  // namespace oc
