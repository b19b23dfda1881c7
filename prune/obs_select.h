// Structured OBS selection (issue 15 point 2): which units of a channel group to remove so that
// the consumers' output error left AFTER optimal compensation of the kept weights is least.
//
// For a consumer layer with weights W (rows × F) and input Gram H = XᵀX (+ λI, λ = damping ·
// mean diag; for a layer with a bias slot the constant feature is part of H, so the bias takes
// up a removed channel's mean), removing the feature set U and re-solving the kept weights by
// least squares leaves the output error
//     E(U) = tr( W_U · ((H⁻¹)_UU)⁻¹ · W_Uᵀ )        (OBS / OBC, block form)
// and the optimal update of the rest is W ← W − W_U ((H⁻¹)_UU)⁻¹ (H⁻¹)_U,:, with H⁻¹ downdated
// by the same Schur complement, H⁻¹ ← H⁻¹ − (H⁻¹)_:,U ((H⁻¹)_UU)⁻¹ (H⁻¹)_U,:.
// Greedy selection (as in ZipLM / SlimGPT's structured OBS): repeatedly remove the unit (all its
// features in every consumer of the group: a Conv channel is kh·kw features, a head Dh) with the
// least E summed over the group's consumers, then apply both updates. Diagonal OBS (Σ W²·H_ff)
// ignores the correlation between features and the compensation: it is E only for a diagonal H.
// Wide groups remove several units per step (about 64 steps per group) to bound the cost.
#pragma once
#include <cstdint>
#include <vector>

#include "engine/statistics.h"
#include "graph/channel_deps.h"
#include "graph/ir.h"

namespace oc {

// Consumers with more input features than this (H⁻¹ costs F³, each greedy step F²·k) are left to
// diagonal OBS: a group whose consumers are all wider is scored by obs-diag (and says so).
inline constexpr int64_t kObsMaxFeatures = 2048;

// One consumer as seen by the selection: W rows × F (row-major), H F × F (row-major, symmetric,
// undamped), and per unit the features it owns (empty for units this layer does not read).
struct ObsLayer {
  int64_t rows = 0, features = 0;
  std::vector<double> w, h;
  std::vector<std::vector<int64_t>> unit_features;
};

struct ObsGreedyResult {
  std::vector<int> order;      // units in removal order (only the ones removed)
  std::vector<double> error;   // cumulative E after each removal, summed over layers
  double energy = 0;           // Σ over layers of tr(W H Wᵀ): the output energy (for relative errors)
};

// Greedy structured OBS over `num_units` units; `locked[u]` units are never removed; stops after
// `max_remove` units. `batch` units per step (1 = exact greedy; 0 = about 64 steps).
ObsGreedyResult obs_greedy(const std::vector<ObsLayer>& layers, int num_units, const std::vector<char>& locked,
                           int max_remove, double damping = 0.01, int batch = 0);

// E(U) for removing exactly the units `removed` at once (features of every layer), with the optimal
// compensation of the rest: the quantity the greedy selection minimizes (tests compare selections).
double obs_compensated_error(const std::vector<ObsLayer>& layers, const std::vector<int>& removed, double damping = 0.01);

// The consumer layers of group g of `m` that have a Gram in `stats` (dense Conv, Gemm, MatMul read
// through a Consumer slice), in ObsLayer form; the constant feature is added for layers with a bias slot.
std::vector<ObsLayer> obs_group_layers(const Model& m, const ChannelDeps& d, int g, const CalibrationStats& stats);

// Per-unit scores for group g from the greedy order: the relative error E/energy reached when the
// unit is removed (non-decreasing along the order, so the lowest k scores are the first k removed);
// units never removed score above every removed one. Empty when the group has no such consumer.
std::vector<double> obs_greedy_scores(const Model& m, const ChannelDeps& d, int g, const CalibrationStats& stats,
                                      double damping, double max_ratio);

}  // namespace oc
