#!/usr/bin/python3
"""Export torchvision reference models with random weights to models/zoo/ (git-ignored).

Used to check `onnx-compress inspect` against the published parameter and MAC figures, and as
larger real-topology inputs for pruning and quantization. No downloads: weights are random
(seeded), which does not change shapes, parameter counts or MACs.

Needs Debian's python3-torch 1.13 and python3-torchvision (apt-get install python3-torchvision);
run with the system interpreter:  /usr/bin/python3 models/export_torchvision.py [NAME ...]
"""
import os
import sys

import torch
import torchvision

torch.set_num_threads(2)
torch.manual_seed(0)

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "zoo")

# name -> (constructor, published params, published GMACs at 1x3x224x224, from the torchvision docs)
MODELS = {
    "resnet18": (torchvision.models.resnet18, 11.69e6, 1.81),
    "resnet50": (torchvision.models.resnet50, 25.56e6, 4.09),
    "mobilenet_v2": (torchvision.models.mobilenet_v2, 3.50e6, 0.30),
    "mobilenet_v3_large": (torchvision.models.mobilenet_v3_large, 5.48e6, 0.22),
    "efficientnet_b0": (torchvision.models.efficientnet_b0, 5.29e6, 0.39),
    "vit_b_16": (torchvision.models.vit_b_16, 86.57e6, 17.56),
    "convnext_tiny": (torchvision.models.convnext_tiny, 28.59e6, 4.46),
    "densenet121": (torchvision.models.densenet121, 7.98e6, 2.83),
    "regnet_y_400mf": (torchvision.models.regnet_y_400mf, 4.34e6, 0.40),
    "shufflenet_v2_x1_0": (torchvision.models.shufflenet_v2_x1_0, 2.28e6, 0.14),
    "resnext50_32x4d": (torchvision.models.resnext50_32x4d, 25.03e6, 4.23),
    "swin_t": (torchvision.models.swin_t, 28.29e6, 4.49),
}


def export(name):
    ctor, params, gmacs = MODELS[name]
    model = ctor(weights=None).eval()
    n = sum(p.numel() for p in model.parameters())
    path = os.path.join(OUT, name + ".onnx")
    tmp = path + ".tmp"
    x = torch.randn(1, 3, 224, 224)
    # Not under no_grad: nn.MultiheadAttention (ViT) would take its fused fast path, which has no
    # ONNX export in torch 1.13; with gradients enabled it traces the exportable decomposition.
    torch.onnx.export(model, x, tmp, opset_version=13, input_names=["input"], output_names=["logits"],
                      dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}}, do_constant_folding=True)
    os.replace(tmp, path)
    print(f"{name:20s} params {n / 1e6:7.2f}M (published {params / 1e6:.2f}M, {gmacs:.2f} GMACs) -> {path}")


def main():
    os.makedirs(OUT, exist_ok=True)
    names = sys.argv[1:] or list(MODELS)
    for name in names:
        if name not in MODELS:
            sys.exit(f"unknown model {name}; known: {', '.join(MODELS)}")
        export(name)


if __name__ == "__main__":
    main()
