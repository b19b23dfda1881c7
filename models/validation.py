"""Validation metric for choosing between pruning/quantization variants without touching the reported
test sets (docs/PRUNING.md, "Allocation by measured sensitivity").

    /usr/bin/python3 models/validation.py fashion_cnn|gpt_tiny MODEL.onnx [MODEL.onnx ...]

fashion_cnn: accuracy on Fashion-MNIST test images 1500..9999 (models/fashion_cnn/test_x.npy holds 0..1499;
             needs the Debian package dataset-fashion-mnist).
gpt_tiny:    perplexity on 128 seeded windows of /usr/lib/python3.11 sub-package sources (models/gpt_tiny/make.py
             trains on and holds out only top-level *.py files), test files excluded.
Prints one JSON line per model.
"""
import glob
import gzip
import json
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import common  # noqa: E402

MNIST = "/usr/share/datasets/fashion-mnist"


def read_idx(name):
    raw = gzip.open(os.path.join(MNIST, name), "rb").read()
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def fashion_cnn(models):
    if not os.path.isdir(MNIST):
        sys.exit("validation.py: needs the Debian package dataset-fashion-mnist")
    x = ((read_idx("t10k-images-idx3-ubyte.gz")[1500:].astype(np.float32) / 255.0 - 0.2860) / 0.3530)[:, None]
    y = read_idx("t10k-labels-idx1-ubyte.gz")[1500:].astype(np.int64)
    for m in models:
        logits = common.ort_run(m, {"x": x})["logits"]
        yield {"model": m, "val_accuracy": float((logits.argmax(1) == y).mean()), "n": int(len(y))}


def gpt_tiny(models):
    files = sorted(f for f in glob.glob("/usr/lib/python3.11/*/**/*.py", recursive=True) if "test" not in f)
    data = np.frombuffer(b"".join(open(f, "rb").read() + b"\n" for f in files), dtype=np.uint8)
    starts = np.random.RandomState(777).randint(0, len(data) - 129, size=128)
    win = np.stack([data[s:s + 129] for s in starts]).astype(np.int64)
    for m in models:
        logits = common.ort_run(m, {"tokens": win[:, :128]})["logits"].astype(np.float64)
        z = logits - logits.max(-1, keepdims=True)
        logp = z - np.log(np.exp(z).sum(-1, keepdims=True))
        nll = -np.take_along_axis(logp, win[:, 1:, None], -1).mean()
        yield {"model": m, "val_perplexity": float(np.exp(nll))}


def main():
    tasks = {"fashion_cnn": fashion_cnn, "gpt_tiny": gpt_tiny}
    if len(sys.argv) < 3 or sys.argv[1] not in tasks:
        sys.exit("usage: validation.py fashion_cnn|gpt_tiny MODEL.onnx [MODEL.onnx ...]")
    for row in tasks[sys.argv[1]]([os.path.abspath(m) for m in sys.argv[2:]]):
        print(json.dumps(row))


if __name__ == "__main__":
    main()
