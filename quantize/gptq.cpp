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
#include <thread>
#include <vector>

#include "graph/errors.h"
#include "quantize/quantizers.h"

namespace oc::quant {

using MatD = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

namespace {

// L⁻¹ in place for the lower triangle of L (the strict upper triangle is neither read nor
// written), recursively: [L11 0; L21 L22]⁻¹ = [L11⁻¹ 0; −L22⁻¹·L21·L11⁻¹ L22⁻¹], ⅓·n³ flops in
// triangular matrix products.
void invert_lower_in_place(Eigen::Ref<MatD> L) {
  const Eigen::Index n = L.rows();
  if (n <= 64) {
    MatD X = MatD::Identity(n, n);
    L.triangularView<Eigen::Lower>().solveInPlace(X);
    L.triangularView<Eigen::Lower>() = X;
    return;
  }
  const Eigen::Index n1 = n / 2, n2 = n - n1;
  invert_lower_in_place(L.topLeftCorner(n1, n1));
  invert_lower_in_place(L.bottomRightCorner(n2, n2));
  MatD T = L.bottomRightCorner(n2, n2).triangularView<Eigen::Lower>() * L.bottomLeftCorner(n2, n1);
  L.bottomLeftCorner(n2, n1).noalias() = -(T * L.topLeftCorner(n1, n1).triangularView<Eigen::Lower>());
}

}  // namespace

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
  // One cols² buffer holds H, then its factor, then U (issue 18: an 8192-column layer's H is
  // 512 MiB; the former H0/H/LLT/H⁻¹/U copies took 3.5 GiB).
  MatD W(rows, cols), H(cols, cols);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t i = 0; i < cols; ++i) W(r, i) = static_cast<double>(w[r * cols + perm[i]]);
  for (int64_t i = 0; i < cols; ++i)
    for (int64_t j = 0; j < cols; ++j) H(i, j) = 2.0 * X(perm[i], perm[j]);
  // Inputs that never fired carry no information: their weights cannot matter, so zero them.
  for (int64_t i = 0; i < cols; ++i)
    if (H(i, i) == 0.0) {
      H(i, i) = 1.0;
      W.col(i).setZero();
    }
  const double lambda = opt.damp * H.diagonal().mean();
  H.diagonal().array() += lambda;
  // U = chol_upper(H⁻¹) without forming H⁻¹: with J the index reversal, JHJ = LLᵀ gives
  // H = RRᵀ for the upper R = JLJ, so H⁻¹ = R⁻ᵀR⁻¹ and U = R⁻¹ = J L⁻¹ J. Reversing both indices
  // of a square row-major matrix reverses its storage. Cost: Cholesky + triangular inverse
  // (⅔·cols³) instead of Cholesky + solve against I + Cholesky (⁸⁄₃·cols³).
  std::reverse(H.data(), H.data() + H.size());
  {
    Eigen::LLT<Eigen::Ref<MatD>> llt(H);  // in place: L in the lower triangle
    if (llt.info() != Eigen::Success) throw InvalidArgument("gptq: H = 2XᵀX + λI is not positive definite");
  }
  invert_lower_in_place(H);
  std::reverse(H.data(), H.data() + H.size());
  const MatD& U = H;  // upper triangle (the strict lower one is not read)
  if (!U.diagonal().allFinite() || (U.diagonal().array() <= 0).any())
    throw InvalidArgument("gptq: H⁻¹ is not positive definite (raise damping)");

  const int code_max = l.code_max();
  const int64_t gc = l.group_cols(cols);
  const int64_t nb = m.nblocks();
  // With act_order the block scales stay those fitted on the original weights (static groups).
  const bool dynamic_groups = l.granularity == Granularity::Block && !opt.act_order;
  // Rows never interact after U is known (each row's errors feed only its own later columns):
  // row ranges run on separate cores.
  auto run_rows = [&](int64_t r0, int64_t r1) {
    const int64_t nr = r1 - r0;
    auto Wr = W.middleRows(r0, nr);
    std::vector<float> colbuf;
    MatD Err(nr, opt.lazy_block);
    for (int64_t i1 = 0; i1 < cols; i1 += opt.lazy_block) {
      const int64_t i2 = std::min(cols, i1 + opt.lazy_block);
      const int64_t cnt = i2 - i1;
      for (int64_t i = i1; i < i2; ++i) {
        if (dynamic_groups && i % gc == 0) {
          const int64_t b = i / gc, n = std::min(gc, cols - i);
          colbuf.resize(static_cast<size_t>(n));
          for (int64_t r = r0; r < r1; ++r) {
            for (int64_t k = 0; k < n; ++k) colbuf[k] = static_cast<float>(W(r, i + k));
            GroupParams p = opt.mse_scales ? fit_group_mse(colbuf.data(), colbuf.size(), l)
                                           : fit_group(colbuf.data(), colbuf.size(), l);
            m.scales[r * nb + b] = p.scale;
            m.zero_points[r * nb + b] = p.zero;
          }
        }
        const double d = U(i, i);
        const int64_t c = perm[i];
        for (int64_t r = r0; r < r1; ++r) {
          int64_t g = m.group_of(r, c);
          GroupParams p{m.scales[g], m.zero_points[g]};
          uint8_t q = quantize_code(static_cast<float>(W(r, i)), p, code_max);
          m.codes[r * cols + c] = q;
          double wq = static_cast<double>(p.scale) * (static_cast<double>(q) - p.zero);
          Err(r - r0, i - i1) = (W(r, i) - wq) / d;
        }
        // Feedback inside the batch, to the columns right of i.
        const int64_t rest = i2 - i - 1;
        if (rest > 0) Wr.block(0, i + 1, nr, rest).noalias() -= Err.col(i - i1) * U.block(i, i + 1, 1, rest);
      }
      if (i2 < cols) Wr.rightCols(cols - i2).noalias() -= Err.leftCols(cnt) * U.block(i1, i2, cnt, cols - i2);
    }
  };
  const int64_t hw = std::max<int64_t>(1, static_cast<int64_t>(std::thread::hardware_concurrency()));
  const int64_t nt = std::min<int64_t>({hw, std::max<int64_t>(1, rows / 64), std::max<int64_t>(1, rows * cols * cols / (int64_t(1) << 26))});
  if (nt <= 1) {
    run_rows(0, rows);
  } else {
    std::vector<std::thread> th;
    for (int64_t k = 0; k < nt; ++k) th.emplace_back(run_rows, rows * k / nt, rows * (k + 1) / nt);
    for (auto& t : th) t.join();
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
