// Allocation by measured sensitivity (issue 15 point 4).
//
// Per prunable group g and a few ratios r (default kDefaultSensitivityRatios, eighths): the model with only group g
// pruned at r (its lowest-scored units, the consumers compensated one-shot from the calibration
// Grams) is run on the first calibration samples, and its loss of fidelity is
//     S_g(r) = Σ (y' − y)² / Σ y²     over every float graph output, y the original model's.
// The allocation then minimizes Σ_g S_g(r_g) subject to the cost target (prune/allocate.h,
// allocate_sensitivity: Lagrangian, each group's cost saving taken as linear in r), the
// multiplier found by the same bisection on the rewritten model's MACs/params as every target.
// Cost: |groups| × |ratios| runs of the model over `max_samples` samples (ratios that round to the
// same units are run once). Runs the executor.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

#include "engine/calib_data.h"
#include "engine/executor.h"
#include "engine/statistics.h"
#include "graph/channel_deps.h"
#include "graph/ir.h"
#include "prune/allocate.h"

namespace oc {

// How S_g(r) measures the loss of fidelity: relative squared error of every float output, or the
// mean KL divergence KL(softmax(y) ‖ softmax(y′)) over the last axis of every float output of rank
// >= 2 (logits: what accuracy and perplexity read); outputs that are not such fall back to MSE.
enum class SensitivityLoss { MSE, KL };

struct SensitivityOptions {
  std::vector<double> ratios = kDefaultSensitivityRatios;
  // Calibration samples per measurement (the first ones, exactly: a batch is cut). The same plans at
  // 16 as at 32 for fashion_cnn 50%, gpt_tiny 60%, bert_tiny 60% and ppocr4_rec 60% MACs (its 24
  // lines: 0.9533 character accuracy at 16 and 24, 0.946 at 8); gpt_tiny 6.5243 ppl at 32 as at
  // 128 (docs/PRUNING.md). Probe time is linear in it.
  int64_t max_samples = 16;
  SensitivityLoss loss = SensitivityLoss::MSE;
  // Bytes of the original model's values at the cached cut (all batches); 0 = every probe runs the
  // whole pruned model from the calibration batches.
  size_t cache_bytes = size_t{512} << 20;
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
