// The rewrite: remove the chosen units of every group from the graph.
//
// For each value v losing channels: every parameter slice indexed by v keeps W[..., keep(v), ...]
// along its axis; attributes and shape constants that count channels are rewritten by the
// dependency graph's per-operator fix-ups; value_info dims follow. Graph inputs and outputs are
// never in a prunable unit, so their names and shapes are unchanged.
#pragma once
#include <vector>

#include "engine/statistics.h"
#include "graph/channel_deps.h"
#include "graph/spill.h"

namespace oc {

struct CompensationOptions {
  const CalibrationStats* stats = nullptr;  // GramStat per consumer node; null = no compensation
  double damping = 0.01;                    // λ = damping · mean(diag H)
};

struct RewriteStats {
  int params_sliced = 0;
  int nodes_fixed = 0;
  int layers_compensated = 0;
};

// Sliced tensors of at least this many bytes move to the spill file as they are made.
inline constexpr size_t kSpillMinBytes = size_t(64) << 10;

// `remove[g][u]`: remove unit u of group g. Locked units must not be set (throws InvalidArgument).
// With `spill` (models larger than memory, issue 18), each sliced tensor moves to that file as it is
// made and the pages of the tensor it replaces leave the resident set, so the rewrite holds about
// one tensor in memory instead of the pruned model.
RewriteStats apply_prune(Model& m, const ChannelDeps& deps, const std::vector<std::vector<char>>& remove,
                         const CompensationOptions& comp = {}, SpillFile* spill = nullptr);

}  // namespace oc
