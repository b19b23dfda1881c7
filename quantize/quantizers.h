// Weight quantizers: W [rows, cols] (row = output channel, col = reduction axis) -> QuantizedMatrix.
//
//   rtn   round to nearest with the full range:          q = clamp(round(w/s) + z)
//   mse   per group, the clip ratio r ∈ {1, 1−δ, …, r_min} minimizing Σ(w − Q_r(w))²
//   gptq  column by column, error fed back through the Cholesky factor of H⁻¹, H = 2XᵀX + λI
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "quantize/layout.h"

namespace oc::quant {

enum class Method { RTN, MSE, GPTQ };
std::string method_name(Method m);
Method parse_method(const std::string& s);  // "rtn" | "mse" | "gptq"

// Scale and zero point of one group.
struct GroupParams {
  float scale = 1.f;
  uint8_t zero = 0;
};

// Range fit of values x[0..n) clipped to `clip`·range (clip = 1: min/max, or max|x| for sym).
// The range always includes 0 so that zero weights (and MatMulNBits padding) stay exact.
GroupParams fit_group(const float* x, size_t n, const QuantLayout& l, float clip = 1.f);
// The clip ratio of a grid (1 down to min_ratio in `grid` steps) with the least squared error.
GroupParams fit_group_mse(const float* x, size_t n, const QuantLayout& l, int grid = 20, float min_ratio = 0.5f);

// QuantLayout::pair_limit applies (sym, channel granularity, a layer whose kernel pairs columns):
// rtn and mse widen each row's step to fit the pairs and round the code over the limit toward
// zero; gptq clamps the second code of each pair it reaches to what the first leaves.
bool pair_limited(const QuantLayout& l);

inline uint8_t quantize_code(float w, const GroupParams& p, int code_max) {
  float q = w / p.scale + static_cast<float>(p.zero);
  q = q < 0.f ? 0.f : (q > static_cast<float>(code_max) ? static_cast<float>(code_max) : q);
  return static_cast<uint8_t>(q + 0.5f);  // q >= 0: round half up
}

QuantizedMatrix quantize_rtn(const float* w, int64_t rows, int64_t cols, const QuantLayout& l);
QuantizedMatrix quantize_mse(const float* w, int64_t rows, int64_t cols, const QuantLayout& l, int grid = 20,
                             float min_ratio = 0.5f);

struct GptqOptions {
  double damp = 0.01;        // λ = damp · mean(diag H)
  int64_t lazy_block = 128;  // columns whose error updates are batched
  bool mse_scales = false;   // fit group scales by the MSE clip search instead of min/max
  // Quantize columns in order of decreasing diag(H) (largest input energy first, so the most
  // important columns are rounded while the most columns are left to absorb their error). Block
  // scales are then fitted up front from the original weights ("static groups"), so the stored
  // layout stays the plain block layout (no g_idx).
  bool act_order = false;
};
// `xtx` is XᵀX (cols x cols, row-major) of the layer's input, as GramStat accumulates it.
QuantizedMatrix quantize_gptq(const float* w, int64_t rows, int64_t cols, const QuantLayout& l,
                              const std::vector<double>& xtx, const GptqOptions& opt = {});

// Output reconstruction error ‖X(W − Ŵ)ᵀ‖² = tr((W − Ŵ) XᵀX (W − Ŵ)ᵀ), from the Gram matrix.
double gram_error(const std::vector<float>& w, const std::vector<float>& wq, int64_t rows, int64_t cols,
                  const std::vector<double>& xtx);

}  // namespace oc::quant
