#!/usr/bin/python3
"""A one-block torchvision VisionTransformer at tiny width (image 32, patch 16, hidden 32, 4 heads of 8,
MLP 64, 10 classes), exported the way models/export_torchvision.py exports ViT-B/16 (torch 1.13, opset
13, dynamic batch, gradients on so nn.MultiheadAttention traces its decomposition: packed Q/K/V sliced
with run-time bounds, heads folded into the batch axis). Seeded random weights; the classifier, which
torchvision zero-initializes, gets random weights so the logits carry signal. Writes model.onnx here
(~60 KB, committed; the pruning tests read it).

  /usr/bin/python3 models/vit_tiny/make.py
"""
import os

import torch
from torchvision.models.vision_transformer import VisionTransformer

HERE = os.path.dirname(os.path.abspath(__file__))


def main():
    torch.manual_seed(0)
    m = VisionTransformer(image_size=32, patch_size=16, num_layers=1, num_heads=4, hidden_dim=32, mlp_dim=64,
                          num_classes=10).eval()
    torch.nn.init.normal_(m.heads.head.weight, std=0.5)
    x = torch.randn(1, 3, 32, 32)
    out = os.path.join(HERE, "model.onnx")
    torch.onnx.export(m, x, out + ".tmp", opset_version=13, input_names=["input"], output_names=["logits"],
                      dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}}, do_constant_folding=True)
    os.replace(out + ".tmp", out)
    print(out, os.path.getsize(out), "bytes")


if __name__ == "__main__":
    main()
