// SmoothQuant (Xiao et al. 2023) for W8A8 transformers: per-input-channel migration of the
// activation's outliers into the weights, done on the float model before activation ranges are
// calibrated, so the model computes the same function:
//   s_j  = max|X_j|^α / max_l,i |W_l[i, j]|^(1−α)        (over every layer l reading X)
//   X' = X · diag(1/s),  W_l' = W_l · diag(s)               (y = W x = W' x')
// The 1/s goes into the producer of X: a LayerNormalization's scale and bias when X feeds only the
// layers of the group; else, only with `allow_mul`, a Mul by 1/s in front of them (an extra
// elementwise op at every run, so off by default: as in the paper, QKV and FFN-up inputs only).
// α is searched per group on calibration rows against the int8 form ONNX Runtime runs
// (uint8 asymmetric per-tensor activations with each calibration batch's own range, as
// DynamicQuantizeLinear takes it; int8 symmetric per-output-channel weights):
//   err(α) = Σ_l ‖X W_lᵀ − Q(X/s) Q(W_l s)ᵀ‖²  on the kept rows,
// and s = 1 (no migration) is always a candidate, so the simulated calibration error never rises.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "engine/calib_data.h"
#include "engine/executor.h"
#include "graph/ir.h"

namespace oc::quant {

struct SmoothQuantOptions {
  std::vector<double> alphas = {0.3, 0.4, 0.5, 0.6, 0.7, 0.8};  // searched, besides s = 1
  int max_batches = 16;        // calibration batches observed
  int64_t max_rows = 4096;     // X rows kept per group for the search (evenly spaced per batch)
  bool allow_mul = false;      // groups whose producer cannot absorb 1/s get a Mul (an extra op per run)
};

struct SmoothGroup {
  std::string input;                // the activation X
  std::vector<std::string> layers;  // MatMul/Gemm nodes reading it
  std::string applied;              // "folded into <LayerNorm>", "Mul <name>", or "" (not smoothed)
  double alpha = -1;                // chosen α; −1: s = 1 won
  double error_plain = 0, error_smoothed = 0;  // simulated W8A8 error on the kept rows
};

struct SmoothQuantResult {
  std::vector<SmoothGroup> groups;
  int smoothed = 0;
};

// The activations SmoothQuant may rescale: main-graph values read as input 0 by MatMul (float
// [K, N] initializer weight) or Gemm (transA = 0) layers, and by no other node; each with its
// layers. A LayerNormalization producer (last axis) is noted by smooth_quant.
std::vector<SmoothGroup> smooth_groups(const Model& m);

// Observes the groups' inputs on up to `max_batches` batches of `src` (rewound first and after),
// searches α per group and rewrites `m` (normalized, float weights) in place.
SmoothQuantResult smooth_quant(Model& m, CalibrationSource& src, const SmoothQuantOptions& opt = {},
                               const ExecutorOptions& exec = {});

}  // namespace oc::quant
