// Raising a model's default-domain opset.
//
// Only the operators whose signature changed between the versions crossed are rewritten
// (attributes that became inputs: Pad@11, Clip@11, Squeeze/Unsqueeze/Split/ReduceSum@13,
// other Reduce*@18, ...). Operators removed or changed in meaning (Upsample@10, Scatter@11, ...)
// make the conversion refuse with the node named. Lowering is refused.
#pragma once
#include "graph/ir.h"

namespace oc {

// Throws UnsupportedError naming the first node that cannot be carried to `target`.
void convert_opset(Model& m, int64_t target);

}  // namespace oc
