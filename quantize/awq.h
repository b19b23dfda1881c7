// Activation-aware weight scaling (AWQ, Lin et al. 2023), searched on the layer's calibration Gram
// matrix instead of re-running the model:
//   a_c   = RMS of input channel c      = sqrt(mean_p H[c·P+p, c·P+p] / rows)   (P = kh·kw, 1 for MatMul)
//   s_c   = a_c^α / sqrt(max a^α · min a^α)                    α ∈ {0, 1/grid, …, 1}
//   Ŵ(α)  = Q(W·diag(s)) · diag(1/s)                            (y = W x = (W diag s)(x / s))
//   α*    = argmin_α Σ_layers tr((W − Ŵ) H (W − Ŵ)ᵀ)            = Σ ‖X Wᵀ − X Ŵᵀ‖² on the calibration rows
// α = 0 is plain quantization, so the chosen scales never raise the calibration error (tested).
// Layers that read the same activation share one H and must share s: they are searched together.
#pragma once
#include <cstdint>
#include <functional>
#include <vector>

#include "quantize/layout.h"

namespace oc::quant {

struct AwqMember {
  const std::vector<float>* w = nullptr;  // [rows, cols] row-major
  int64_t rows = 0;
  QuantLayout layout;
};

struct AwqResult {
  std::vector<double> channel_scale;  // s_c per input channel (cols / per_channel of them)
  double alpha = 0;
  double error_plain = 0;   // Σ gram error at α = 0
  double error_scaled = 0;  // Σ gram error at α*
};

// `quantize`: the quantizer used for the search (w already scaled, rows, cols, layout, the channel
// scales s) -> dequantized scaled weights. A data-aware quantizer (GPTQ) takes the Gram of x / s
// (scale_gram), so the search measures the method that will run.
using DequantFn = std::function<std::vector<float>(const std::vector<float>& w, int64_t rows, int64_t cols,
                                                   const QuantLayout& l, const std::vector<double>& s)>;

// `xtx`: XᵀX [cols, cols] of the shared input (GramStat), `rows_seen` its row count; `per_channel`:
// columns per input channel (kh·kw for Conv, 1 for MatMul/Gemm).
AwqResult awq_search(const std::vector<AwqMember>& members, int64_t cols, int64_t per_channel,
                     const std::vector<double>& xtx, int64_t rows_seen, const DequantFn& quantize, int grid = 20);

// W·diag(s) with s per channel spread over its `per_channel` columns.
std::vector<float> scale_columns(const std::vector<float>& w, int64_t rows, int64_t cols, int64_t per_channel,
                                 const std::vector<double>& channel_scale, bool inverse = false);
// diag(1/s) H diag(1/s): the Gram of the scaled input x / s.
std::vector<double> scale_gram(const std::vector<double>& xtx, int64_t cols, int64_t per_channel,
                               const std::vector<double>& channel_scale);

}  // namespace oc::quant
