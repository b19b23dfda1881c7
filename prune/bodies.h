// Pruning inside If/Loop/Scan bodies: channel groups that stay inside one body.
//
// A body is pruned as a graph of its own: its dependency graph (graph/channel_deps.h) sees values
// from the outer scope as fixed-width inputs and locks the body's outputs (an If's branches must
// keep the outputs the If declares, a Loop's carried values their shapes), so every group it prunes
// starts and ends inside the body and the outer graph is unchanged. Values of the outer graph that
// a body reads are locked there (build_channel_deps), so main-graph pruning never changes them.
#pragma once
#include <string>
#include <vector>

#include "engine/statistics.h"
#include "graph/ir.h"
#include "prune/prune.h"

namespace oc {

struct BodyPruneResult {
  std::vector<PruneGroupReport> groups;  // every body's groups; members are body node names
  int bodies = 0;                        // nested graphs looked at
  int bodies_pruned = 0;                 // nested graphs where a group lost units
};

// Prunes each nested graph of `m` with `o.ratio` (local scope: a fraction of every group's units),
// scored by `o.criterion` (statistics keyed by body value names are not collected, so data-aware
// criteria fall back to magnitude inside bodies). Weights only one body reads are moved into it
// first (localize_subgraph_weights). Group ids continue from `first_id`.
BodyPruneResult prune_bodies(Model& m, const PruneOptions& o, const CalibrationStats* stats, int first_id);

}  // namespace oc
