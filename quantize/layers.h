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
// Float32 initializers that no other layer claims first, in the main graph and in every nested
// graph (If branches, Loop/Scan bodies: WeightLayer::graph names it, graph/subgraphs.h). A body
// layer's weight must live in its own graph: localize_subgraph_weights moves outer-scope weights
// there first (quantize_model does).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "graph/ir.h"

namespace oc::quant {

struct WeightLayer {
  std::string node;     // node name
  std::string graph;    // path of the graph holding node and weight (graph/subgraphs.h); "" = main
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

// Conv/MatMul/Gemm nodes with a constant float32 weight: the main graph's in node order, then each
// nested graph's (all_graphs order). `index` is the position in the layer's own graph.
std::vector<WeightLayer> find_weight_layers(const Graph& g, std::vector<SkippedLayer>* skipped = nullptr);
// The graph holding the layer (`root` is the main graph).
Graph& layer_graph(Graph& root, const WeightLayer& l);
const Graph& layer_graph(const Graph& root, const WeightLayer& l);
// The weight as a row-major [N, K] matrix (`g` is the main graph; the layer's own graph is found).
std::vector<float> layer_matrix(const Graph& g, const WeightLayer& l);
// Writes a [N, K] matrix back into the weight initializer in ONNX orientation.
void set_layer_matrix(Graph& g, const WeightLayer& l, const std::vector<float>& nk);
// Row-major [N, K] <-> the ONNX orientation of the weight.
std::vector<float> to_onnx_layout(const WeightLayer& l, const std::vector<float>& nk);

}  // namespace oc::quant
