// The executor's CPU kernels as shape inference's value evaluator (graph/shape_inference.h).
//
// graph/ folds shape arithmetic symbolically; what its rules do not cover (float math on sizes,
// Floor/Ceil, Range, Resize scales computed from Shape, ...) is evaluated here on the constant
// values with the same kernels that run the model, so the inferred shapes are the ones the
// executor produces. Layers above the engine call infer_shapes_evaluated instead of infer_shapes.
#pragma once
#include <map>
#include <string>
#include <vector>

#include "graph/shape_inference.h"

namespace oc {

// Runs node `n` on `inputs` with its CPU kernel (one thread); false when there is no kernel or the
// kernel refuses the node. Never throws.
const ValueEvaluator& kernel_value_evaluator();

// infer_shapes(m, input_shapes, kernel_value_evaluator()).
ShapeInferenceResult infer_shapes_evaluated(Model& m, const std::map<std::string, std::vector<int64_t>>& input_shapes = {});

}  // namespace oc
