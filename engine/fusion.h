// Conv + activation fusion in the CPU executor's plan.
//
//   y = act(Conv(x, W, b))  with act ∈ {Relu, LeakyRelu(α), Clip(lo, hi), Sigmoid, HardSigmoid(α, β)}
//   y = v · Sigmoid(v)      (SiLU / Swish, as exporters write it),  v = Conv(x, W, b)
//   y = v · HardSigmoid(v)  with α = 1/6, β = 1/2 (HardSwish as torch exports it at opset < 14)
//   y = act(Conv(x, W, b) + r)   Conv → Add(v, r) → act, r computed before the Conv runs (a residual
//                                shortcut): oneDNN's sum post-op, the Conv's output written over r's copy
//
// runs as one Conv whose kernel applies the activation to its output (oneDNN eltwise post-ops, or
// one pass over the output on the kernel's own paths). The activation node (for v·act(v): the Mul)
// hands the value on and the Sigmoid/HardSigmoid inside v·act(v) is never run. It applies when the
// Conv's output is read by those nodes alone and none of the values is a graph output, the
// activation's parameters are constants, and no value hook of the run watches the values in
// between (the Conv's output, the act(v)); the plan records the pattern, the run decides
// (GraphRun::settle_fusions).
#pragma once
#include "engine/executor.h"

namespace oc {

// Fills plan.fused_into and plan.activation_of for graph `g` (plan.uses and plan.outputs set).
void plan_fusions(const Graph& g, GraphPlan& plan);

}  // namespace oc
