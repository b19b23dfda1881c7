// Pruning inside If/Loop/Scan bodies: channel groups that stay inside one body.
//
// A body is pruned as a graph of its own: its dependency graph (graph/channel_deps.h) sees values
// from the outer scope as fixed-width inputs and locks the body's outputs (an If's branches must
// keep the outputs the If declares, a Loop's carried values their shapes), so every group it prunes
// starts and ends inside the body and the outer graph is unchanged. Values of the outer graph that
// a body reads are locked there (build_channel_deps), so main-graph pruning never changes them.
//
// Bodies are layers like any other: the calibration plan observes their consumers (values as
// "<path>::<value>", layers by node name; the executor reports only the branch that runs, so each
// branch of an If gets the statistics of the data that reaches it), data-aware criteria score
// body groups from those statistics, compensation re-solves body layers from their Grams
// (one-shot), and a --target-macs/--target-params plan prunes body groups at the same knob as the
// main graph's (the cost counts body MACs: an If's larger branch). A body no calibration sample
// reached is scored by magnitude and not compensated (the report says which).
#pragma once
#include <string>
#include <vector>

#include "engine/calibration_plan.h"
#include "engine/statistics.h"
#include "graph/channel_deps.h"
#include "graph/ir.h"
#include "prune/allocate.h"
#include "prune/importance.h"
#include "prune/prune.h"

namespace oc {

struct BodyPlan {
  std::string path;  // graph/subgraphs.h path of the body
  ChannelDeps deps;  // on the body as a graph of its own (node indices of the body)
  UnitScores scores;
  AllocationRules rules;
  Criterion criterion = Criterion::L1;  // what scored it (magnitude when no data reached it)
  bool data_aware = false;
  bool data_missing = false;  // a data-aware criterion, but no calibration sample reached the body
  CalibrationStats stats;  // the body's statistics keyed by its own value names (compensation)
  std::vector<std::vector<std::string>> members;  // per group: body nodes whose parameters it slices
};

struct BodyPlanner {
  std::vector<BodyPlan> bodies;  // children before parents
  bool compensate = false;
  double damping = 0.01;
  bool global = false;
  size_t num_groups() const;
  // Per body, per group, per unit: remove. `knob` is the main plan's: a local ratio, or a global
  // score threshold (global).
  std::vector<std::vector<std::vector<char>>> plans(double knob) const;
  // Rewrites the bodies of `m` (found by path) by `plans`; returns the bodies that lost units.
  // With `compensated` (the final rewrite, weights present) body layers are compensated when
  // `compensate` and their Grams are there, and their count added to it; without it (cost probes
  // on weightless copies) nothing is re-solved.
  int apply(Model& m, const std::vector<std::vector<std::vector<char>>>& plans, int* compensated = nullptr) const;
};

// Plans every nested graph of `m` (weights only one body reads must already be localized:
// localize_subgraph_weights). Data-aware criteria use `stats` where the body's statistics are
// there; `compensate` re-solves body layers with Grams.
BodyPlanner plan_bodies(const Model& m, const PruneOptions& o, const CalibrationStats* stats, bool compensate);

// The statistics data-aware pruning of `m`'s bodies needs, added to `plan` (scoped value names and
// body layer names). `m` is localized on a copy first.
void add_body_calibration(const Model& m, const PruneOptions& o, CalibrationPlan& plan);

// Report rows for the bodies' groups under `plans`; ids continue from `first_id`.
std::vector<PruneGroupReport> body_group_reports(const BodyPlanner& bp, const std::vector<std::vector<std::vector<char>>>& plans,
                                                 int first_id);

}  // namespace oc
