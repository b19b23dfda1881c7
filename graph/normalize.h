// normalize: the canonical form every later stage assumes.
//   - nodes in topological order (ONNX allows any order on disk; some exporters use it);
//   - Constant-node weights become initializers (PP-OCR stores every weight as a Constant);
//   - Identity nodes reading a constant become constants (torch shares equal weights that way);
//   - every node has a unique, non-empty name (reports and --ignore regexes refer to them).
// Applied to subgraphs too. Semantics are unchanged: outputs stay bitwise identical.
#pragma once
#include "graph/ir.h"

namespace oc {

struct NormalizeStats {
  int constants_lifted = 0;
  int nodes_named = 0;
  int identities_folded = 0;  // Identity(constant) replaced by a copy of the constant
};

NormalizeStats normalize(Model& m);

// Value of a Constant node's attribute as a tensor (value, value_float(s), value_int(s)).
// nullopt for sparse or string-list constants.
std::optional<Tensor> constant_node_value(const Node& n);

}  // namespace oc
