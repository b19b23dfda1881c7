// Sparsity allocation: how many units each group loses, and which.
//
//   local  scope: group g removes r·N_g units (its lowest scores);
//   per-group ratios: group g removes r_g·N_g units (CFSP: r_g from the group's block);
//   global scope: every unlocked unit with normalized score < t is removed (t chosen by search);
// then per group: removed ≤ max_layer_ratio·N_g, at least one unit kept, and the kept count rounded
// to a multiple of round_to (hardware kernels run whole vector widths; 61 channels cost 64).
#pragma once
#include <vector>

#include "graph/channel_deps.h"

namespace oc {

struct AllocationRules {
  double max_layer_ratio = 0.9;
  int round_to = 8;
  std::vector<char> skip;  // per group: leave alone (--ignore)
};

// Kept count for a group of n units that wants to keep `want`, under the rules.
int64_t rounded_keep(int64_t n, int64_t min_keep, double want, int round_to);

// The step, in units, by which group g's kept count moves under --round-to: round_to / gcd(round_to, w)
// where every unit holds w channels of each weight it slices (a head of width 64 at --round-to 8:
// 1 head; a plain channel: 8).
int unit_round_to(const ChannelDeps& d, int g, int round_to);

// Removes up to `count` unlocked units of group g, taking them in `order`, skipping any whose
// removal would leave a member value (a Concat input, a Split output) with no channel.
std::vector<char> remove_in_order(const ChannelDeps& d, int g, const std::vector<int>& order, int64_t count);

// `ratio` per group (local) or score threshold (global) -> remove[g][u].
std::vector<std::vector<char>> allocate_local(const ChannelDeps& d, const std::vector<std::vector<double>>& scores,
                                              double ratio, const AllocationRules& r);
std::vector<std::vector<char>> allocate_per_group(const ChannelDeps& d, const std::vector<std::vector<double>>& scores,
                                                  const std::vector<double>& ratio, const AllocationRules& r);
// The ratios each group's sensitivity is probed at by default. S_g is piecewise linear through them,
// so a convex S_g's optimum sits on one of them: eighths instead of quarters measured better on every
// model (validation data, not the reported test sets: fashion_cnn 50% MACs 0.9027 against 0.8966
// validation accuracy; on the reported sets fashion_cnn 0.9167 against 0.9133, gpt_tiny 60% MACs with
// --heads 6.463 against 6.524 perplexity; docs/PRUNING.md), at 7/3 of the probes.
inline const std::vector<double> kDefaultSensitivityRatios{0.125, 0.25, 0.375, 0.5, 0.625, 0.75, 0.875};

// Sensitivity (prune/sensitivity.h): group g removes the fraction r_g minimizing
//   S_g(r) − λ·saving_g·r,   S_g piecewise linear through (0, 0) and (ratios[i], loss[g][i]) (the last
// slope extended), saving_g the cost fraction the group saves per unit of r; λ = ∞ cuts every group
// as far as the rules allow. Then as allocate_per_group.
std::vector<std::vector<char>> allocate_sensitivity(const ChannelDeps& d, const std::vector<std::vector<double>>& scores,
                                                    const std::vector<double>& ratios,
                                                    const std::vector<std::vector<double>>& loss,
                                                    const std::vector<double>& saving, double lambda,
                                                    const AllocationRules& r);
std::vector<std::vector<char>> allocate_global(const ChannelDeps& d, const std::vector<std::vector<double>>& scores,
                                               double threshold, const AllocationRules& r);

}  // namespace oc
