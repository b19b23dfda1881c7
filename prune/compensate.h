// Compensation after a layer loses input channels (OBS/OBC family, with FLAP's bias term):
//   with X_a = [X, 1] and H = X_aᵀX_a (GramStat xtx, col_sum, rows),
//   [W'_S, b'] = [W, b] · H[:, S∪1] · (H[S∪1, S∪1] + λI)⁻¹,   λ = damping · mean(diag XᵀX)
// i.e. the kept weights and the bias are re-solved by least squares so the layer's output on the
// calibration data stays as close as possible to the unpruned one. S = kept input features
// (channel c owns features [c·K, (c+1)·K) for Conv with K = kh·kw; K = 1 for Gemm/MatMul).
#pragma once
#include <vector>

#include "engine/statistics.h"
#include "graph/ir.h"

namespace oc {

// Updates node `node`'s weight (input `weight_input`, input channels along `in_axis`) in place
// for keeping only `kept_in` input channels; the removed slices are left for the rewrite to cut.
// Returns false (and changes nothing) when there is no matching GramStat or the layer kind is not
// handled (grouped Conv, non-float weights).
bool compensate_layer(Graph& g, int node, int weight_input, int in_axis, const std::vector<int64_t>& kept_in,
                      const CalibrationStats& stats, double damping = 0.01);

}  // namespace oc
