// Allocation by measured sensitivity (issue 15 point 4).
//
// Per prunable group g and a few ratios r (default 0.25, 0.5, 0.75): the model with only group g
// pruned at r (its lowest-scored units, the consumers compensated one-shot from the calibration
// Grams) is run on the first calibration samples, and its loss of fidelity is
//     S_g(r) = Σ (y' − y)² / Σ y²     over every float graph output, y the original model's.
// The allocation then minimizes Σ_g S_g(r_g) subject to the cost target (prune/allocate.h,
// allocate_sensitivity: Lagrangian, each group's cost saving taken as linear in r), the
// multiplier found by the same bisection on the rewritten model's MACs/params as every target.
// Cost: |groups| × |ratios| runs of the model over `max_samples` samples. Runs the executor.
#pragma once
#include <cstdint>
#include <vector>

#include "engine/calib_data.h"
#include "engine/executor.h"
#include "engine/statistics.h"
#include "graph/channel_deps.h"
#include "graph/ir.h"
#include "prune/allocate.h"

namespace oc {

struct SensitivityOptions {
  std::vector<double> ratios{0.25, 0.5, 0.75};
  int64_t max_samples = 128;                  // calibration samples per measurement
  const CalibrationStats* stats = nullptr;    // one-shot compensation of the pruned group (null: none)
  double damping = 0.01;
  ExecutorOptions exec;
};

// [group][ratio index] = S_g(r); groups that are not prunable (or skipped) get zeros.
std::vector<std::vector<double>> measure_group_sensitivity(const Model& m, const ChannelDeps& d,
                                                           const std::vector<std::vector<double>>& scores,
                                                           const AllocationRules& rules, CalibrationSource& source,
                                                           const SensitivityOptions& opt = {});

}  // namespace oc
