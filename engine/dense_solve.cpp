// Single-precision dense solvers on oneDNN's sgemm (see dense_solve.h).
#include "engine/dense_solve.h"

#include <dnnl.h>

#include <Eigen/Dense>
#include <algorithm>
#include <string>

#include "graph/errors.h"

namespace oc {

namespace {
using MatF = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using Strided = Eigen::Map<MatF, 0, Eigen::OuterStride<>>;
}  // namespace

void sgemm(char ta, char tb, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda, const float* B,
           int64_t ldb, float beta, float* C, int64_t ldc, const char* who) {
  if (M <= 0 || N <= 0 || K <= 0) return;
  if (dnnl_sgemm(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc) != dnnl_success)
    throw UnsupportedError(std::string(who) + ": oneDNN sgemm failed");
}

bool cholesky_lower(float* a, int64_t n) {
  constexpr int64_t nb = 256;
  MatF panel;
  for (int64_t k0 = 0; k0 < n; k0 += nb) {
    const int64_t kb = std::min(nb, n - k0);
    Strided a11(a + k0 * n + k0, kb, kb, Eigen::OuterStride<>(n));
    MatF d = a11;
    Eigen::LLT<MatF> llt(d);
    if (llt.info() != Eigen::Success) return false;
    MatF l11 = llt.matrixL();
    a11 = l11;
    const int64_t m = n - k0 - kb;
    if (m == 0) break;
    MatF linv = MatF::Identity(kb, kb);
    l11.triangularView<Eigen::Lower>().solveInPlace(linv);
    // L21 = A21 · L11⁻ᵀ
    float* a21 = a + (k0 + kb) * n + k0;
    panel.resize(m, kb);
    sgemm('N', 'T', m, kb, kb, 1.f, a21, n, linv.data(), kb, 0.f, panel.data(), kb, "cholesky");
    for (int64_t r = 0; r < m; ++r) std::copy(panel.data() + r * kb, panel.data() + (r + 1) * kb, a21 + r * n);
    // A22 −= L21·L21ᵀ on the lower block columns.
    for (int64_t j0 = k0 + kb; j0 < n; j0 += nb) {
      const int64_t jb = std::min(nb, n - j0);
      sgemm('N', 'T', n - j0, jb, kb, -1.f, a + j0 * n + k0, n, a + j0 * n + k0, n, 1.f, a + j0 * n + j0, n, "cholesky");
    }
  }
  for (int64_t r = 0; r < n; ++r) std::fill(a + r * n + r + 1, a + (r + 1) * n, 0.f);
  return true;
}

void invert_lower(float* a, int64_t n, int64_t lda) {
  if (n <= 256) {
    Strided L(a, n, n, Eigen::OuterStride<>(lda));
    MatF X = MatF::Identity(n, n);
    MatF l = L;
    l.triangularView<Eigen::Lower>().solveInPlace(X);
    L = X.triangularView<Eigen::Lower>();
    return;
  }
  const int64_t n1 = (n / 2 + 63) / 64 * 64, n2 = n - n1;
  float* l11 = a;
  float* l21 = a + n1 * lda;
  float* l22 = a + n1 * lda + n1;
  invert_lower(l11, n1, lda);
  invert_lower(l22, n2, lda);
  MatF t(n2, n1);
  sgemm('N', 'N', n2, n1, n2, 1.f, l22, lda, l21, lda, 0.f, t.data(), n1, "triangular inverse");
  sgemm('N', 'N', n2, n1, n1, -1.f, t.data(), n1, l11, lda, 0.f, l21, lda, "triangular inverse");
}

RowMatrixD spd_solve_product(const RowMatrixD& A, const RowMatrixD& B, const RowMatrixD& T) {
  const int64_t n = A.rows(), k = B.cols(), r = T.rows();
  if (n >= kSinglePrecisionSolveMin && r > 0) {
    MatF a = A.cast<float>();
    MatF rhs(n, r);
    {
      const MatF b = B.cast<float>(), t = T.cast<float>();
      sgemm('N', 'T', n, r, k, 1.f, b.data(), k, t.data(), k, 0.f, rhs.data(), r, "least-squares solve");
    }
    if (cholesky_lower(a.data(), n)) {
      // X = L⁻ᵀ·(L⁻¹·rhs): with L⁻¹ formed, both triangular solves are products.
      invert_lower(a.data(), n, n);
      MatF y(n, r);
      sgemm('N', 'N', n, r, n, 1.f, a.data(), n, rhs.data(), r, 0.f, y.data(), r, "least-squares solve");
      sgemm('T', 'N', n, r, n, 1.f, a.data(), n, y.data(), r, 0.f, rhs.data(), r, "least-squares solve");
      RowMatrixD x = rhs.cast<double>();
      if (x.allFinite()) return x;
    }
  }
  // Double precision: Cholesky (blocked, GEMM-bound) rather than LDLT (unblocked, GEMV-bound);
  // LDLT only if damping left A not numerically positive definite.
  const RowMatrixD rhs = B * T.transpose();
  Eigen::LLT<RowMatrixD> llt(A);
  return llt.info() == Eigen::Success ? RowMatrixD(llt.solve(rhs)) : RowMatrixD(A.ldlt().solve(rhs));
}

RowMatrixD spd_inverse(const RowMatrixD& A) {
  const int64_t n = A.rows();
  if (n >= kSinglePrecisionSolveMin) {
    MatF a = A.cast<float>();
    if (cholesky_lower(a.data(), n)) {
      invert_lower(a.data(), n, n);
      MatF inv(n, n);
      sgemm('T', 'N', n, n, n, 1.f, a.data(), n, a.data(), n, 0.f, inv.data(), n, "inverse");
      RowMatrixD x = inv.cast<double>();
      if (x.allFinite()) return x;
    }
  }
  const RowMatrixD I = RowMatrixD::Identity(n, n);
  Eigen::LLT<RowMatrixD> llt(A);
  return llt.info() == Eigen::Success ? RowMatrixD(llt.solve(I)) : RowMatrixD(A.ldlt().solve(I));
}

}  // namespace oc
