// Shape inference: element type and shape of every value the graph computes.
//
// Rule per operator, evaluated in topological order:  out = rule(in_types, in_shapes, in_values, attrs).
// Dims are known sizes, symbolic names ("batch") or derived names ("floor((H-1)/2)+1", "batch*4"), so
// one symbolic input keeps its name through the graph and two values with the same symbolic dim compare
// equal. Small integer tensors are folded as values whose elements are such dims (Shape -> Gather ->
// Concat -> Reshape chains), which is how Reshape/Expand/Slice targets resolve, symbolically or not.
//
// Debian's onnx 1.12 inference stops at opset 17, so this is our own; it follows the ONNX operator
// specification (and ONNX Runtime where the spec leaves room, e.g. pooling ceil_mode).
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "graph/ir.h"

namespace oc {

struct ShapeInferenceResult {
  int values = 0;           // values produced by nodes (subgraphs included)
  int typed = 0;            // ... whose element type is known
  int ranked = 0;           // ... whose rank is known
  int concrete = 0;         // ... whose every dim is a number
  // "domain:Op" (domain omitted for ai.onnx) of operators without a rule; their outputs stay unknown.
  std::vector<std::string> unknown_ops;
  // Nodes (by name) whose outputs could not be inferred, with why ("unknown op", "input x has no shape").
  std::vector<std::pair<std::string, std::string>> unresolved;
  // Integer values produced by nodes that folded to known constants (shape tensors, Reshape targets).
  std::map<std::string, std::vector<int64_t>> folded;
  // Nodes whose outputs the ValueEvaluator computed from constant inputs.
  int evaluated = 0;
  bool complete() const { return unresolved.empty(); }
};

// Computes node `n`'s outputs from its constant inputs (nullptr where an optional input is omitted),
// for the shape computations the symbolic rules do not fold (float arithmetic on sizes, Floor, Range,
// Resize scales computed from Shape, ...). graph/ has no kernels, so the engine layer provides one
// (engine/shape_eval.h: kernel_value_evaluator(), the executor's CPU kernels). Returns false when it
// cannot evaluate the node; must not throw.
using ValueEvaluator = std::function<bool(const Node& n, int64_t opset, const std::vector<const Tensor*>& inputs,
                                          std::vector<Tensor>& outputs)>;

// Fills graph.value_info (and subgraphs' value_info) with dtype + shape for every value it infers,
// replacing entries of the same name; graph outputs get the inferred shape where it is at least as
// specific as the declared one. `input_shapes` makes the named runtime inputs concrete (the graph
// inputs are rewritten, so the model stays self-consistent; pass a copy to keep the original dynamic).
// Throws InvalidArgument when a name in input_shapes is not a runtime input or its rank differs.
// Never throws for unknown operators: their outputs are left unknown and listed in the result.
// With `evaluate`, a node whose inputs are all small constants (every element known, at most 4096 of
// them: shape tensors, sizes, scales) and whose outputs the rules left without a known value is
// evaluated on those constants, so Shape -> Cast -> Mul(float) -> Floor -> Cast -> Resize chains
// (tf2onnx, paddle2onnx) get concrete shapes once the input shapes are concrete.
ShapeInferenceResult infer_shapes(Model& m, const std::map<std::string, std::vector<int64_t>>& input_shapes = {},
                                  const ValueEvaluator& evaluate = nullptr);

// Operators with a shape rule, as Node::key() writes them ("Conv", "com.microsoft:Gelu"), sorted.
std::vector<std::string> shape_rule_ops();

// Value of a dim under concrete symbols: a number, a symbol in `symbols`, or a derived expression
// written by infer_shapes (+ - * /, ceil(), parentheses; '/' is floor division). nullopt when a
// symbol is not in `symbols` or the text is not such an expression.
std::optional<int64_t> evaluate_dim(const Dim& d, const std::map<std::string, int64_t>& symbols);

}  // namespace oc
