// Conv + activation fusion in the CPU executor's plan.
//
//   y = act(Conv(x, W, b))  with act ∈ {Relu, LeakyRelu(α), Clip(lo, hi)}
//
// runs as one Conv whose kernel applies act to its output (a oneDNN eltwise post-op, or one pass
// over the output on the kernel's own paths), and the activation node hands the value on. It
// applies when the Conv's output is read by that activation alone and is not a graph output, the
// activation's bounds are constants, and the run has no value hook (nobody may see the value
// before the activation); the plan records the pairs, the run decides (GraphRun::fuse).
#pragma once
#include "engine/executor.h"

namespace oc {

// Fills plan.fused_into and plan.activation_of for graph `g` (plan.uses and plan.outputs set).
void plan_fusions(const Graph& g, GraphPlan& plan);

}  // namespace oc
