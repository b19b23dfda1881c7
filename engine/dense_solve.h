// Dense linear algebra of the statistics solvers (prune's compensation and sequential
// reconstruction, quantize's GPTQ), in single precision on oneDNN's sgemm: its JIT kernels run at
// the CPU's widest vectors on the executor's threads, where the build (no -march) leaves Eigen's
// own products at SSE2 width in double (issue 17: most of a ResNet-50 compensation's time).
//
//   sgemm:            C = alpha·op(A)·op(B) + beta·C, row-major
//   cholesky_lower:   A = L·Lᵀ, blocked right-looking (diagonal blocks by Eigen, panels and
//                     trailing updates by sgemm)
//   invert_lower:     L⁻¹ by recursion, [L11 0; L21 L22]⁻¹ = [L11⁻¹ 0; −L22⁻¹·L21·L11⁻¹ L22⁻¹]
//   spd_solve_product X = A⁻¹·(B·Tᵀ) for symmetric positive definite A: the least-squares
//                     re-solve of a layer's weights T from its normal equations
//   spd_inverse       A⁻¹ = L⁻ᵀ·L⁻¹
#pragma once
#include <Eigen/Core>
#include <cstdint>

namespace oc {

using RowMatrixD = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

// Throws UnsupportedError when oneDNN refuses the call (naming `who`).
void sgemm(char ta, char tb, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda, const float* B,
           int64_t ldb, float beta, float* C, int64_t ldc, const char* who = "sgemm");

// Lower Cholesky factor of the n×n row-major `a` (leading dimension n) in place; the strict upper
// triangle is zeroed. False if `a` is not positive definite in single precision.
bool cholesky_lower(float* a, int64_t n);

// L⁻¹ in place for the lower-triangular n×n block at `a` (leading dimension lda, zero above the
// diagonal).
void invert_lower(float* a, int64_t n, int64_t lda);

// X = A⁻¹·(B·Tᵀ): A n×n symmetric positive definite (damped), B n×k, T r×k; X is n×r. Systems of
// at least kSinglePrecisionSolveMin unknowns are solved in single precision (Cholesky, L⁻¹ and two
// products, all on sgemm); the double result of Eigen's LLT (LDLT when A is not numerically
// positive definite) is taken for smaller ones, or when the single-precision factor fails.
constexpr int64_t kSinglePrecisionSolveMin = 512;
RowMatrixD spd_solve_product(const RowMatrixD& A, const RowMatrixD& B, const RowMatrixD& T);

// A⁻¹ of a symmetric positive definite A, as L⁻ᵀ·L⁻¹ on sgemm from kSinglePrecisionSolveMin rows
// on (structured OBS's damped H⁻¹); Eigen's double LLT (LDLT if not positive definite) below, or
// when the single-precision factor fails.
RowMatrixD spd_inverse(const RowMatrixD& A);

}  // namespace oc
