// Explicit gaps between the operator tables, each with the reason (tests/test_op_tables.cpp checks
// them against the shape rules, the CPU kernel registry, the channel and MAC rules and the CUDA ops).
#pragma once
#include <map>
#include <string>

namespace oc {

// Ops with a shape rule (graph/shape_inference.cpp) but no CPU kernel, by Node::key(): the
// executor refuses them ("no kernel for ..."), while inspect still infers their shapes.
inline const std::map<std::string, std::string>& cpu_unsupported_ops() {
  static const std::string kContrib =
      "ONNX Runtime contrib op of ORT-optimized graphs (inspect and cost read them); compress the unoptimized model";
  static const std::string kRandom = "random op: its output is not a function of its inputs (ONNX conformance excludes it too)";
  static const std::string kLp = "Lp pooling: no CPU kernel yet (oneDNN has none; not in the corpus or torchvision exports)";
  static const std::map<std::string, std::string> t = {
      {"LpPool", kLp},
      {"GlobalLpPool", kLp},
      {"RandomNormalLike", kRandom},
      {"RandomUniformLike", kRandom},
      {"com.microsoft:BiasGelu", kContrib},
      {"com.microsoft:FastGelu", kContrib},
      {"com.microsoft:FusedConv", kContrib},
      {"com.microsoft:FusedMatMul", kContrib},
      {"com.microsoft:Gelu", kContrib},
      {"com.microsoft:QuickGelu", kContrib},
      {"com.microsoft:SimplifiedLayerNormalization", kContrib},
      {"com.microsoft:SkipLayerNormalization", kContrib},
      {"com.microsoft:SkipSimplifiedLayerNormalization", kContrib},
  };
  return t;
}

// Ops with a CPU kernel but no shape rule, by Node::key(): shape inference leaves their outputs
// unknown (inspect lists them), while the executor runs them.
inline const std::map<std::string, std::string>& cpu_kernels_without_shape_rule() {
  static const std::map<std::string, std::string> t = {
      {"Scan", "outputs come from the body's scan outputs; no rule walks Scan bodies yet (If and Loop have one)"},
      {"NegativeLogLikelihoodLoss", "training loss (conformance only): no rule for the reduction modes yet"},
      {"SoftmaxCrossEntropyLoss", "training loss (conformance only): no rule for the reduction modes yet"},
  };
  return t;
}

}  // namespace oc
