// Coarse-to-fine activation scoring (CFSP): how much each block keeps (coarse), from one
// calibration pass of block angles; which units inside it go is the activation score (fine,
// prune/importance.h: Σ_i |W_ij|·‖X_j‖₂ per channel, summed over a unit's channels, e.g. a head).
//
//   I_l    = mean over calibration tokens of arccos(cos(x_in, x_out))/π      (BlockAngleStat)
//   z_l    = (I_l − mean I) / std I            (0 for every block when std I = 0)
//   s_l    = sigmoid(a·z_l)                    a = sharpness (--cfsp-sharpness)
//   keep_l = (1 − P)·s_l / mean(s)             mean keep = 1 − P, larger where the block changes more
//   shrink-to-fit: keep_l ← k̄ + λ·(keep_l − k̄), k̄ = 1 − P, with the largest λ ≤ 1 such that
//                  1 − max_layer_ratio ≤ keep_l ≤ 1 for every block
// Blocks with nothing prunable (every group locked or --ignore'd) take no part: keep 1, and they are
// left out of mean I, std I and mean(s), so the prunable blocks share the whole budget.
// Groups inside block l remove the fraction 1 − keep_l of their units (rounded by the allocator);
// groups outside every block (the residual stream itself, stems, heads) remove P. The overall
// target (MACs, params) is met by searching P.
#pragma once
#include <vector>

namespace oc {

// `active` (empty = all): which blocks have something to prune.
std::vector<double> cfsp_keep_fractions(const std::vector<double>& importance, double P, double sharpness,
                                        double max_layer_ratio, const std::vector<char>& active = {});

// Per group: 1 − keep of its block (group_block[g] ≥ 0), else P.
std::vector<double> cfsp_group_ratios(const std::vector<int>& group_block, const std::vector<double>& keep, double P);

}  // namespace oc
