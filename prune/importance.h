// Importance of each removable unit of each channel group.
//
// Per member slice p (a parameter slice indexed by a value's channels) a per-channel score s_p(c):
//   l1  Σ|W_slice|          l2  ‖W_slice‖₂          bn  |γ_c| (BatchNorm scale members only)
//   activation (Wanda)      Σ_i |W_ic|·‖X_c‖₂      on consumer slices, ‖X_c‖ from ChannelStat
//   obs (structured OBS)    output error left after optimal compensation, greedy over units
//                           (prune/obs_select.h), relative to the consumers' output energy
//   obs-diag (diagonal OBS) Σ_i Σ_{f∈c} W_if²·H_ff on consumer slices, H = XᵀX from GramStat
//   cfsp                    the activation score inside blocks; per-block amounts come from
//                           prune/cfsp.h (block angles), not from these scores
//   random                  seeded uniform per unit
// A unit's score aggregates (mean | sum | max) over members of the sum of s_p over its channels;
// scores are then divided by their group's mean so groups compare in a global ranking (obs: not).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "engine/statistics.h"
#include "graph/channel_deps.h"

namespace oc {

enum class Criterion { L1, L2, BN, Random, Activation, OBS, CFSP, OBSDiag };
enum class Aggregate { Mean, Sum, Max };
Criterion parse_criterion(const std::string& s);  // throws InvalidArgument
Aggregate parse_aggregate(const std::string& s);
const char* criterion_name(Criterion c);
// obs and obs-diag: scored from the consumers' Grams, compensation implied.
bool criterion_uses_grams(Criterion c);

struct UnitScores {
  std::vector<std::vector<double>> score;  // [group][unit], normalized by the group mean
  std::vector<std::string> notes;          // fallbacks taken (e.g. no BatchNorm in a group)
};

// damping, max_ratio: structured OBS's damping (as compensation's) and how far its greedy goes.
UnitScores score_units(const Model& m, const ChannelDeps& d, Criterion c, Aggregate agg, uint64_t seed,
                       const CalibrationStats* stats, double damping = 0.01, double max_ratio = 0.9);

}  // namespace oc
