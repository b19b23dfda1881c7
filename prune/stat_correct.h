// Statistics correction of a re-solved layer's outputs (issue 15 point 3).
//
// After pruning and least-squares compensation a layer's output y' = W'x̂ + b' matches the
// original y = Wx + b in the mean (the fit has a constant feature) but has less variance: the
// least-squares fit is a projection, Var(y) = Var(y') + Var(residual). A BatchNormalization after
// it (or folded into it) then hands the next layers a narrower distribution than they were
// trained on. The correction rescales each output channel about its mean so that the mean and the
// variance on the calibration data are the original's:
//     y'' = μ + s·(y' − μ'),  s = σ / σ'   ⇒   W'' = s·W',  b'' = s·b' + μ − s·μ'
// with (μ, σ²) of y from the original layer's input statistics (Σx, Σxxᵀ, n) and (μ', σ'²) of y'
// from the pruned input's. The scale is clamped to [1, max_scale] (it only undoes the shrink).
// Both moments are exact functions of the Grams the compensation already holds: no extra pass.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "engine/calibrate.h"
#include "graph/ir.h"

namespace oc {

// Per-row mean and variance of y = W x + b over n samples with column sums s and Gram G (F × F
// row-major) of x. W is rows × F row-major; b may be empty (no bias).
struct RowMoments {
  std::vector<double> mean, var;
};
RowMoments row_moments(const std::vector<double>& w, const std::vector<double>& b, int64_t rows, int64_t features,
                       const std::vector<double>& gram, const std::vector<double>& col_sum, double n);

// Rescales rows of (w, b) (rows × F row-major, b of rows) from moments `have` to `want` as above;
// b must be present (a layer without a bias slot cannot move its mean and is left alone: returns 0).
// Returns how many rows changed.
int match_row_moments(std::vector<double>& w, std::vector<double>& b, int64_t rows, int64_t features,
                      const RowMoments& have, const RowMoments& want, double max_scale = 2.0);

// Measured correction after sequential reconstruction, one calibration pass of each model:
// for each re-solved layer (`layers`: node name and the original output rows it keeps, as
// SequentialLayer), the per-channel mean (and with `variance`, the variance) of its output in
// `pruned` is moved to the original's on the calibration data. The mean matters for MatMul layers
// followed by an Add of a constant bias (transformer Linear exports): least squares without a
// constant feature cannot carry a removed neuron's mean (GELU outputs are not centred), so the
// difference goes into that Add's constant. With `variance`, Conv and Gemm (transB) rows are also
// rescaled about the mean (factor clamped to [1, 2]). Returns the number of layers changed.
struct OutputCorrection {
  std::string node;
  std::vector<int64_t> rows;  // original output channels kept, in order; empty = all
};
int correct_output_statistics(const Model& original, Model& pruned, const std::vector<OutputCorrection>& layers,
                              CalibrationSource& source, const ExecutorOptions& exec = {}, bool variance = false);

}  // namespace oc
