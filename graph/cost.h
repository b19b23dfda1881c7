// Parameter and multiply-accumulate (MAC) counting.
//
// What counts as a MAC: only the multiply-accumulates of the linear operators, one per weight use —
//   Conv            N * Cout * prod(out spatial) * (Cin/group) * prod(kernel)   (= numel(Y) * prod(W.dims[1:]))
//   ConvTranspose   N * Cin * prod(in spatial) * (Cout/group) * prod(kernel)    (= numel(X) * prod(W.dims[1:]))
//   Gemm            M * N * K
//   MatMul          batch * M * N * K, weights or activation x activation (attention scores, context)
//   MatMulNBits     rows(A) * N * K;  QLinearConv/ConvInteger/QLinearMatMul/MatMulInteger/FusedMatMul alike
//   LSTM/GRU/RNN    seq * batch * (numel(W) + numel(R)): the input and recurrent gate matmuls per timestep
// Elementwise ops, activations, normalizations, pooling, Resize and Softmax are not counted (they are
// memory-bound and the published figures that this matches leave them out too). If counts its larger
// branch (one runs); Loop counts body x trip count when the trip count is a constant.
//
// What counts as a parameter: elements of float and quantized (8/4-bit, and int32 biases behind
// DequantizeLinear) initializers, subgraphs included. Quantization metadata (Q/DQ scales and zero
// points, MatMulNBits scales/zero points) is not counted; packed MatMulNBits weights count as K*N.
// Integer initializers (shape constants, indices) are not parameters.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "graph/ir.h"

namespace oc {

struct NodeCost {
  std::string node;
  std::string op_type;   // "domain:Op" for non-default domains
  int64_t params = 0;    // parameters first read by this node
  int64_t macs = 0;      // -1 when shapes needed for the count are unknown
  std::string why;       // when macs < 0: which value lacks a concrete shape
};

struct CostReport {
  int64_t params = 0;
  int64_t macs = 0;             // sum of the nodes whose count is known
  bool macs_complete = true;    // false when some MAC operator could not be counted
  std::vector<NodeCost> per_node;  // every node with params > 0 or a MAC rule, in graph order
  std::map<std::string, int64_t> macs_by_op, params_by_op;
  std::vector<std::string> uncounted;  // names of MAC nodes whose count is unknown
};

// Reads shapes from value_info, graph inputs/outputs and initializers: run infer_shapes first.
CostReport count_costs(const Model& m);
// True when `op` (as in NodeCost::op_type) has a MAC rule.
bool has_mac_rule(const std::string& op);
// Operators with a MAC rule, as Node::key() writes them, sorted.
std::vector<std::string> mac_rule_ops();

}  // namespace oc
