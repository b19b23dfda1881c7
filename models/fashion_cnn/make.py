"""Fashion-MNIST CNN: the project's reference conv net for structured pruning and quantization.

It carries every coupling the channel-group code has to handle: residual Adds (a group spans the
block input, both convs and the output), BatchNorm after every conv, a depthwise conv (in == out
channels, `group` must follow), and a squeeze-excite gate (GlobalAveragePool -> 1x1 convs ->
Sigmoid -> Mul with the feature map, a second dynamic input to Mul).

    x [batch,1,28,28], normalized (pixel/255 - MEAN)/STD  ->  logits [batch,10]

Regenerate: /usr/bin/python3 models/fashion_cnn/make.py   (15-40 min on one thread of a busy 2-core box)
Data: Debian package dataset-fashion-mnist.
"""
import gzip
import os
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
import common  # noqa: E402

DATA = "/usr/share/datasets/fashion-mnist"
MEAN, STD = 0.2860, 0.3530  # Fashion-MNIST training-set pixel mean / std (of pixel/255)
SEED = 20240601
EPOCHS = 4
N_CALIB = 512
N_TEST = 1500  # 1500 x 1x28x28 float32 = 4.7 MB: the largest split under the 5 MB file limit


def read_idx(name):
    with gzip.open(os.path.join(DATA, name), "rb") as f:
        raw = f.read()
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def normalize(images_u8):
    return ((images_u8.astype(np.float32) / 255.0 - MEAN) / STD)[:, None, :, :]


class ResBlock(nn.Module):
    """y = relu(x + bn(conv(relu(bn(conv(x))))))"""

    def __init__(self, c):
        super().__init__()
        self.c1, self.b1 = nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c)
        self.c2, self.b2 = nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c)

    def forward(self, x):
        return F.relu(x + self.b2(self.c2(F.relu(self.b1(self.c1(x))))))


class SqueezeExcite(nn.Module):
    """y = x * sigmoid(W2 relu(W1 mean_hw(x)))"""

    def __init__(self, c, r=4):
        super().__init__()
        self.fc1 = nn.Conv2d(c, c // r, 1)
        self.fc2 = nn.Conv2d(c // r, c, 1)

    def forward(self, x):
        s = F.adaptive_avg_pool2d(x, 1)
        return x * torch.sigmoid(self.fc2(F.relu(self.fc1(s))))


class DepthwiseSEBlock(nn.Module):
    """y = relu(x + SE(bn(pw(relu(bn(dw(x)))))))  (MobileNet-style inverted residual, no expansion)"""

    def __init__(self, c):
        super().__init__()
        self.dw, self.b1 = nn.Conv2d(c, c, 3, padding=1, groups=c, bias=False), nn.BatchNorm2d(c)
        self.pw, self.b2 = nn.Conv2d(c, c, 1, bias=False), nn.BatchNorm2d(c)
        self.se = SqueezeExcite(c)

    def forward(self, x):
        return F.relu(x + self.se(self.b2(self.pw(F.relu(self.b1(self.dw(x)))))))


def down(cin, cout):
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride=2, padding=1, bias=False),
                         nn.BatchNorm2d(cout), nn.ReLU())


class FashionCNN(nn.Module):
    # Sized for a 2-core machine: the stem downsamples at once, so the 3x3 residual convs run at
    # 14x14 and 7x7 (about 7 M multiply-adds per image).
    def __init__(self):
        super().__init__()
        self.stem = down(1, 24)      # 14x14
        self.features = nn.Sequential(
            ResBlock(24),
            DepthwiseSEBlock(24),
            down(24, 64),            # 7x7
            ResBlock(64),
            DepthwiseSEBlock(64),
        )
        self.head = nn.Linear(64, 10)

    def forward(self, x):
        h = self.features(self.stem(x))
        return self.head(torch.flatten(F.adaptive_avg_pool2d(h, 1), 1))


def accuracy(logits, labels):
    return float((logits.argmax(1) == labels).mean())


def main():
    common.setup(SEED)
    xtr_u8 = read_idx("train-images-idx3-ubyte.gz")
    ytr = read_idx("train-labels-idx1-ubyte.gz").astype(np.int64)
    xte = normalize(read_idx("t10k-images-idx3-ubyte.gz"))
    yte = read_idx("t10k-labels-idx1-ubyte.gz").astype(np.int64)
    xtr = torch.from_numpy(normalize(xtr_u8))
    ytr_t = torch.from_numpy(ytr)

    model = FashionCNN()
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=5e-4)
    batch = 128
    steps = EPOCHS * (len(xtr) // batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=steps)
    gen = torch.Generator().manual_seed(SEED)
    t0 = time.time()
    for epoch in range(EPOCHS):
        model.train()
        perm = torch.randperm(len(xtr), generator=gen)
        total = 0.0
        for i in range(len(xtr) // batch):
            idx = perm[i * batch:(i + 1) * batch]
            xb = xtr[idx]
            # random horizontal flip: clothing is left/right symmetric, helps at no cost
            flip = torch.rand(len(idx), generator=gen) < 0.5
            xb = torch.where(flip[:, None, None, None], xb.flip(3), xb)
            loss = F.cross_entropy(model(xb), ytr_t[idx], label_smoothing=0.05)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item()
        acc = accuracy(common.torch_batched(model, xte), yte)
        print(f"epoch {epoch + 1}: loss {total / (len(xtr) // batch):.4f} test acc {acc:.4f} "
              f"({time.time() - t0:.0f}s)", flush=True)

    model.eval()
    path = os.path.join(HERE, "model.onnx")
    common.export(model, [torch.from_numpy(xte[:2])], path, ["x"], ["logits"], keep_batchnorm=True)

    # Evaluate the full 10000-image test set in both runtimes; commit only a subset.
    pt_logits = common.torch_batched(model, xte)
    ort_logits = common.ort_run(path, {"x": xte})["logits"]
    max_abs = float(np.abs(pt_logits - ort_logits).max())
    print(f"max |torch - ort| on 10000 test images: {max_abs:.3g}")

    # Calibration: 512 training images, a fixed random draw (not the first 512: classes balanced).
    calib_idx = np.random.RandomState(SEED).choice(len(xtr_u8), N_CALIB, replace=False)
    common.save_npy(os.path.join(HERE, "calib.npy"), normalize(xtr_u8[np.sort(calib_idx)]))
    common.save_npy(os.path.join(HERE, "test_x.npy"), xte[:N_TEST])
    common.save_npy(os.path.join(HERE, "test_y.npy"), yte[:N_TEST])

    metrics = {
        "task": "Fashion-MNIST 10-class image classification",
        "input": {"name": "x", "shape": ["batch", 1, 28, 28], "dtype": "float32",
                  "normalization": f"(pixel/255 - {MEAN}) / {STD}"},
        "output": {"name": "logits", "shape": ["batch", 10]},
        "params": int(sum(p.numel() for p in model.parameters())),
        "epochs": EPOCHS,
        "test_accuracy_10000": {"torch": accuracy(pt_logits, yte), "ort": accuracy(ort_logits, yte)},
        f"test_accuracy_{N_TEST}": {"torch": accuracy(pt_logits[:N_TEST], yte[:N_TEST]),
                                    "ort": accuracy(ort_logits[:N_TEST], yte[:N_TEST])},
        "max_abs_diff_torch_vs_ort": max_abs,
        "files": {"test_x.npy": f"first {N_TEST} test images", "test_y.npy": "their labels (int64)",
                  "calib.npy": f"{N_CALIB} training images (seeded random draw)"},
        "train_seconds": round(time.time() - t0),
    }
    common.save_json(os.path.join(HERE, "metrics.json"), metrics)
    print({k: metrics[k] for k in ("test_accuracy_10000", f"test_accuracy_{N_TEST}")})
    print("model.onnx", common.file_mb(path), "MB")


if __name__ == "__main__":
    main()
