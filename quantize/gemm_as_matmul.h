// Gemm layers written as MatMul (+ Add of the bias), so that static int8 can run them as integer
// kernels and store their weights in 8 bits:
//
//   Gemm(A, B, C; alpha 1, beta 1, transA 0, transB t) = MatMul(A, t ? Bᵀ : B) + C
//
// with B a constant [N, K] (t = 1) or [K, N] initializer read by this Gemm alone (stored transposed
// once, here) and C absent or a constant of N values ([N] or [1, N]).
//
// Why: ONNX Runtime 1.30's CPU EP forms no QGemm from a QDQ Gemm (its optimized graph keeps a float
// Gemm that dequantizes the int8 weight on every run), so `int8` had to keep Gemm weights float at
// 32 bits (mobilenet_v3_large's classifier: the file 0.61x of float). The same product as a MatMul is
// run by ORT as an integer kernel in the dynamic W8A8 form (DynamicQuantizeLinear → MatMulInteger,
// fused with the bias Add into DynamicQuantizeMatMul: static_qdq.h, dynamic_int8_matmuls; a static
// QDQ MatMul followed by an Add ORT's level-1 MatMulAddFusion turns back into a float Gemm), and
// quantize_model stores its weight in 8 bits.
#pragma once
#include <string>
#include <vector>

#include "graph/ir.h"

namespace oc::quant {

// Rewrites every such Gemm of the main graph; the MatMul keeps the Gemm's name (reports and
// --keep-float patterns still find the layer). Returns the names of the rewritten layers.
std::vector<std::string> gemm_as_matmul(Model& m);

}  // namespace oc::quant
