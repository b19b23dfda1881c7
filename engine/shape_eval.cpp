// Shape inference's value evaluator on the CPU kernels (see shape_eval.h).
#include "engine/shape_eval.h"

#include <exception>

#include "engine/kernel.h"

namespace oc {

const ValueEvaluator& kernel_value_evaluator() {
  static const ValueEvaluator eval = [](const Node& n, int64_t opset, const std::vector<const Tensor*>& inputs,
                                        std::vector<Tensor>& outputs) {
    const KernelFn* fn = KernelRegistry::instance().find(n);
    if (!fn) return false;
    outputs.assign(n.outputs.size(), Tensor{});
    KernelContext ctx{n, inputs, outputs, 1, opset};
    try {
      (*fn)(ctx);
    } catch (const std::exception&) {
      return false;  // a kernel that refuses the node leaves its outputs to the symbolic rules
    }
    return true;
  };
  return eval;
}

ShapeInferenceResult infer_shapes_evaluated(Model& m, const std::map<std::string, std::vector<int64_t>>& input_shapes) {
  return infer_shapes(m, input_shapes, kernel_value_evaluator());
}

}  // namespace oc
