// GPTQ (Frantar et al. 2022): quantize W column by column and push each column's error onto the
// columns not yet quantized, weighted by the inverse Hessian of the layer's squared output error:
//   H = 2XᵀX + λI,  U = chol(H⁻¹) (upper, H⁻¹ = UᵀU)
//   for column i:  q_i = Q(w_i),  e_i = (w_i − q_i) / U_ii,  W[:, j>i] −= e_i · U_i,j
// Updates are applied lazily: inside a batch of B columns immediately, to the columns after the
// batch once per batch (W[:, after] −= E · U[batch, after]), which keeps the work cache-friendly.
// Block granularity fits each group's (s, z) when its first column is reached, from the weights as
// already updated by earlier errors (the "groupsize" variant).
#include <Eigen/Dense>
#include <algorithm>
#include <cmath>
#include <vector>

#include "engine/dense_solve.h"
#include "graph/errors.h"
#include "quantize/quantizers.h"

namespace oc::quant {

using MatD = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using MatF = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

QuantizedMatrix quantize_gptq(const float* w, int64_t rows, int64_t cols, const QuantLayout& l,
                              const std::vector<double>& xtx, const GptqOptions& opt) {
  if (static_cast<int64_t>(xtx.size()) != cols * cols)
    throw InvalidArgument("gptq: Gram matrix has " + std::to_string(xtx.size()) + " entries, expected " +
                          std::to_string(cols) + "x" + std::to_string(cols));
  // Scales for tensor/channel granularity come from the original weights, like RTN.
  QuantizedMatrix m = opt.mse_scales ? quantize_mse(w, rows, cols, l) : quantize_rtn(w, rows, cols, l);
  Eigen::Map<const MatD> X(xtx.data(), cols, cols);
  // perm[i]: the original column quantized i-th (identity without act_order).
  std::vector<int64_t> perm(static_cast<size_t>(cols));
  for (int64_t i = 0; i < cols; ++i) perm[i] = i;
  if (opt.act_order)
    std::stable_sort(perm.begin(), perm.end(), [&](int64_t a, int64_t b) { return X(a, a) > X(b, b); });
  // Single precision like the reference implementation; one cols² buffer holds H, then its factor,
  // then U (an 8192-column layer's H is 256 MiB).
  MatF W(rows, cols), H(cols, cols);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t i = 0; i < cols; ++i) W(r, i) = w[r * cols + perm[i]];
  // Inputs that never fired carry no information: their weights cannot matter, so zero them.
  double mean_diag = 0;
  std::vector<char> dead(static_cast<size_t>(cols), 0);
  for (int64_t i = 0; i < cols; ++i) {
    double d = 2.0 * X(perm[i], perm[i]);
    if (d == 0.0) d = 1.0, dead[i] = 1;
    mean_diag += d;
  }
  mean_diag /= static_cast<double>(std::max<int64_t>(cols, 1));
  const double lambda = opt.damp * mean_diag;
  for (int64_t i = 0; i < cols; ++i) {
    const double* xr = &xtx[static_cast<size_t>(perm[i] * cols)];
    float* hr = H.data() + i * cols;
    if (dead[i]) {
      std::fill(hr, hr + cols, 0.f);
      hr[i] = static_cast<float>(1.0 + lambda);
      W.col(i).setZero();
      continue;
    }
    for (int64_t j = 0; j < cols; ++j) hr[j] = dead[j] ? 0.f : static_cast<float>(2.0 * xr[perm[j]]);
    hr[i] = static_cast<float>(2.0 * xr[perm[i]] + lambda);
  }
  // U = chol_upper(H⁻¹) without forming H⁻¹: with J the index reversal, JHJ = LLᵀ gives
  // H = RRᵀ for the upper R = JLJ, so H⁻¹ = R⁻ᵀR⁻¹ and U = R⁻¹ = J L⁻¹ J. Reversing both indices
  // of a square row-major matrix reverses its storage. Cost: Cholesky + triangular inverse.
  std::reverse(H.data(), H.data() + H.size());
  if (!cholesky_lower(H.data(), cols)) throw InvalidArgument("gptq: H = 2XᵀX + λI is not positive definite");
  invert_lower(H.data(), cols, cols);
  std::reverse(H.data(), H.data() + H.size());
  const MatF& U = H;  // upper triangle (the strict lower one is zero)
  if (!U.diagonal().allFinite() || (U.diagonal().array() <= 0).any())
    throw InvalidArgument("gptq: H⁻¹ is not positive definite (raise damping)");

  const int code_max = l.code_max();
  const bool pairs = pair_limited(l);
  const std::vector<int64_t> partners = pairs ? pair_partners(cols, l.pair_taps) : std::vector<int64_t>();
  std::vector<char> done(pairs ? static_cast<size_t>(cols) : 0, 0);  // original columns quantized so far
  const int64_t gc = l.group_cols(cols);
  const int64_t nb = m.nblocks();
  // With act_order the block scales stay those fitted on the original weights (static groups).
  const bool dynamic_groups = l.granularity == Granularity::Block && !opt.act_order;
  std::vector<float> colbuf;
  const int64_t B = std::max<int64_t>(1, opt.lazy_block);
  MatF Err(rows, B);
  for (int64_t i1 = 0; i1 < cols; i1 += B) {
    const int64_t i2 = std::min(cols, i1 + B);
    const int64_t cnt = i2 - i1;
    for (int64_t i = i1; i < i2; ++i) {
      if (dynamic_groups && i % gc == 0) {
        const int64_t b = i / gc, n = std::min(gc, cols - i);
        colbuf.resize(static_cast<size_t>(n));
        for (int64_t r = 0; r < rows; ++r) {
          for (int64_t k = 0; k < n; ++k) colbuf[k] = W(r, i + k);
          GroupParams p = opt.mse_scales ? fit_group_mse(colbuf.data(), colbuf.size(), l) : fit_group(colbuf.data(), colbuf.size(), l);
          m.scales[r * nb + b] = p.scale;
          m.zero_points[r * nb + b] = p.zero;
        }
      }
      const float d = U(i, i);
      const int64_t c = perm[i];
      // The pair's first code leaves the second pair_limit − |q₁| of its sign (the error feedback absorbs the clamp).
      const int64_t partner = pairs ? partners[c] : -1;
      const bool clamp_pair = partner >= 0 && done[partner];
      for (int64_t r = 0; r < rows; ++r) {
        int64_t g = m.group_of(r, c);
        GroupParams p{m.scales[g], m.zero_points[g]};
        uint8_t q = quantize_code(W(r, i), p, code_max);
        if (clamp_pair) {  // only the partner's sign is limited (an opposite-sign pair cannot saturate)
          const int z = p.zero, first = m.codes[r * cols + partner] - z, room = l.pair_limit - std::abs(first);
          if (first > 0) q = static_cast<uint8_t>(std::min(q - z, room) + z);
          if (first < 0) q = static_cast<uint8_t>(std::max(q - z, -room) + z);
        }
        m.codes[r * cols + c] = q;
        const float wq = p.scale * (static_cast<float>(q) - static_cast<float>(p.zero));
        Err(r, i - i1) = (W(r, i) - wq) / d;
      }
      if (pairs) done[c] = 1;
      // Feedback inside the batch, to the columns right of i.
      const int64_t rest = i2 - i - 1;
      if (rest > 0) W.block(0, i + 1, rows, rest).noalias() -= Err.col(i - i1) * U.block(i, i + 1, 1, rest);
    }
    // The batch's errors onto every later column at once: W[:, i2:] −= Err · U[i1:i2, i2:].
    if (i2 < cols)
      sgemm('N', 'N', rows, cols - i2, cnt, -1.f, Err.data(), B, U.data() + i1 * cols + i2, cols, 1.f, W.data() + i2, cols, "gptq");
  }
  return m;
}

double gram_error(const std::vector<float>& w, const std::vector<float>& wq, int64_t rows, int64_t cols,
                  const std::vector<double>& xtx) {
  MatD D(rows, cols);
  for (int64_t i = 0; i < rows * cols; ++i) D.data()[i] = static_cast<double>(w[i]) - wq[i];
  Eigen::Map<const MatD> G(xtx.data(), cols, cols);
  return (D * G).cwiseProduct(D).sum();
}

}  // namespace oc::quant
