// Data-free statistics for pruning (issue 15, point 8): per-channel moments of the activations
// predicted from what the graph itself carries, so compensation and OBS scores work without
// calibration data.
//
// A BatchNormalization's output channel c is (in inference, on data like the training data)
// distributed with mean β_c and variance γ_c² — its running statistics normalize the input. From
// there the moments are pushed forward, channels assumed independent and Gaussian:
//   Relu          closed-form rectified Gaussian: with a = μ/σ, E = μΦ(a) + σφ(a),
//                 E[y²] = (μ² + σ²)Φ(a) + μσφ(a)
//   Sigmoid, Tanh, Clip, LeakyRelu, HardSigmoid, HardSwish   Gauss–Hermite quadrature (32 nodes)
//   Add / Mul of two such values   means add, variances add / E[ab] = E[a]E[b], E[(ab)²] = E[a²]E[b²]
//   Conv (dense or depthwise), Gemm, MatMul with constant weights   mean W·μ + b, variance Σ W²·σ²
//   GlobalAveragePool, ReduceMean over space, pooling, Flatten to [N, C], Identity, Dropout   unchanged
// Channels are axis 1 (NCHW, or [N, C] after Flatten). Values not reached this way (a graph input,
// an op not listed) have no moments, and the layers reading them are neither scored nor
// compensated from these statistics.
//
// The statistics are written as calibration statistics: for a layer reading x with per-channel
// mean μ and variance σ², the Gram is E[x xᵀ] = μμᵀ + diag(σ²) over the layer's features (Conv:
// channel c, kernel tap k -> feature c·K + k, every tap with its channel's moments), col_sum = μ,
// rows = 1. compensate_layer then folds a removed channel's mean contribution W·μ into the bias
// (the optimum when kept and removed channels are independent) and re-solves the kept weights
// of a layer without a bias slot against the mean; OBS scores use the diagonal.
#pragma once
#include <map>
#include <string>
#include <vector>

#include "engine/calibration_plan.h"
#include "engine/statistics.h"
#include "graph/ir.h"

namespace oc {

struct ChannelMoments {
  std::vector<double> mean, var;  // per channel (axis 1)
};

// Moments of every value they can be predicted for (empty when the graph has no BatchNormalization).
// `input_shapes` as for shape inference (ranks and Flatten need shapes).
std::map<std::string, ChannelMoments> predict_channel_moments(
    const Model& m, const std::map<std::string, std::vector<int64_t>>& input_shapes = {});

// The statistics `plan` asks for (channels, grams), where the moments reach; `covered` (optional)
// gets the number of gram layers filled and asked for.
CalibrationStats moment_statistics(const Model& m, const CalibrationPlan& plan,
                                   const std::map<std::string, std::vector<int64_t>>& input_shapes = {},
                                   std::pair<int, int>* covered = nullptr);

// Closed-form moments of relu(x), x ~ N(mean, var): {E[y], E[y²]}.
std::pair<double, double> relu_moments(double mean, double var);

}  // namespace oc

namespace oc {

// Data-free statistics correction (issue 15, point 3) after pruning: each BatchNormalization's
// running mean and variance move by what the moments predict for its input in `pruned` against
// `original` (mean += Δμ, var ×= σ²_pruned / σ²_original), so its output keeps the distribution the
// next layers were trained on. Returns how many were changed.
int correct_batchnorm_statistics(Model& pruned, const Model& original,
                                 const std::map<std::string, std::vector<int64_t>>& input_shapes = {});

}  // namespace oc
