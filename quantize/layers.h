// Weight layers that the quantizer handles, each seen as a matrix W [N = output channels, K =
// reduction axis]:
//
//   op      | ONNX weight               | matrix view            | N axis | K axis
//   --------+---------------------------+------------------------+--------+-------
//   Conv    | [Cout, Cin/g, kh, kw]     | [Cout, Cin/g·kh·kw]    | 0      | 1 (only when kh·kw = 1)
//   MatMul  | [K, N] (rank-2 constant)  | transposed             | 1      | 0
//   Gemm    | transB=1: [N, K]          | as is                  | 0      | 1
//   Gemm    | transB=0: [K, N]          | transposed             | 1      | 0
//
// Only the main graph, float32 initializers, and weights that no other layer claims first.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "graph/ir.h"

namespace oc::quant {

struct WeightLayer {
  std::string node;     // node name
  std::string op;       // Conv | MatMul | Gemm
  std::string weight;   // initializer name (node input 1)
  std::string bias;     // Conv/Gemm input 2, "" if none
  std::vector<int64_t> weight_dims;
  int64_t rows = 0;     // N
  int64_t cols = 0;     // K
  bool transposed = false;  // ONNX tensor is [K, N]
  int64_t group = 1;        // Conv groups
  int index = 0;            // position in the node list (topological order)

  int64_t params() const { return rows * cols; }
  int n_axis() const { return transposed ? 1 : 0; }
  int k_axis() const { return transposed ? 0 : 1; }
  // K is one axis of the ONNX tensor (blocks along it can be expressed by QDQ block_size).
  bool k_is_single_axis() const;
};

struct SkippedLayer {
  std::string node, reason;
};

// Conv/MatMul/Gemm nodes of the main graph with a constant float32 weight, in node order.
std::vector<WeightLayer> find_weight_layers(const Graph& g, std::vector<SkippedLayer>* skipped = nullptr);
// The weight as a row-major [N, K] matrix.
std::vector<float> layer_matrix(const Graph& g, const WeightLayer& l);
// Writes a [N, K] matrix back into the weight initializer in ONNX orientation.
void set_layer_matrix(Graph& g, const WeightLayer& l, const std::vector<float>& nk);
// Row-major [N, K] <-> the ONNX orientation of the weight.
std::vector<float> to_onnx_layout(const WeightLayer& l, const std::vector<float>& nk);

}  // namespace oc::quant
