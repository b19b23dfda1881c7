// Reference topologies built in C++ with random weights, exactly the torchvision architectures with
// BatchNorm folded into the preceding Conv (as torch.onnx exports them in eval mode), so tests can
// check shape inference and MAC/parameter counting against published figures without PyTorch.
// Input "input" [batch, 3, H, W] (symbolic batch), output "logits" [batch, 1000]; opset 13.
#pragma once
#include <cstdint>

#include "graph/ir.h"

namespace oc::test {

Model build_resnet18(uint64_t seed = 1, int64_t image = 224);
Model build_resnet50(uint64_t seed = 1, int64_t image = 224);
Model build_mobilenet_v2(uint64_t seed = 1, int64_t image = 224);

}  // namespace oc::test
