// Folding BatchNormalization into the Conv before it.
//
//   BN(x) = γ·(x − μ)/√(σ² + ε) + β,  a_o = γ_o/√(σ²_o + ε)
//   Conv(x; W, b) → BN  ≡  Conv(x; W', b')  with  W'[o, …] = a_o·W[o, …],  b'_o = a_o·(b_o − μ_o) + β_o
//
// Matches a BatchNormalization (inference form: one output) whose input is the only use of a Conv
// output that is not a graph output, with float32 initializer weights and BN parameters. A weight
// or bias shared with another node is copied first. Integer runtimes need this: ONNX Runtime fuses
// QDQ Conv → QLinearConv, but not a BatchNormalization between a Conv and its output Q.
#pragma once
#include "graph/ir.h"

namespace oc {

bool is_foldable_batchnorm(const Graph& g, const Node& bn);
// Folds every match in the main graph; returns how many BatchNormalization nodes were removed.
int fold_batchnorms(Model& m);

}  // namespace oc
