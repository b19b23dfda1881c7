"""bert_tiny: a small BERT-style encoder classifier, the project's reference bidirectional transformer.

Task (real labels, built locally from files on a Debian system): which kind of source a 128-byte
snippet was cut from, one of CLASSES below. Files are split into train/test by a hash of their
path, so no test snippet comes from a file seen in training.

Model: byte embedding + learned positions -> 2 pre-LN blocks with hand-written bidirectional
attention (models/transformer.py) -> LayerNorm -> mean over positions (ReduceMean) -> Linear.

    tokens int64 [batch, 128] (bytes 0..255)  ->  logits [batch, 6]

Regenerate: /usr/bin/python3 models/bert_tiny/make.py   (31 min on one thread of a busy 2-core box)
"""
import glob
import gzip
import hashlib
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
from transformer import Block  # noqa: E402

SEED = 777
T, D, H, LAYERS, FFN = 128, 128, 4, 2, 512
STEPS, BATCH, LR = 700, 32, 1e-3
N_CALIB, N_TEST = 256, 3000


def shell_scripts():
    """Executables in /usr/bin and /usr/sbin whose first line names a POSIX shell or bash."""
    out = []
    for f in sorted(glob.glob("/usr/bin/*") + glob.glob("/usr/sbin/*")):
        try:
            with open(f, "rb") as fh:
                head = fh.read(64)
        except OSError:
            continue
        if head.startswith(b"#!") and any(s in head.split(b"\n")[0] for s in (b"sh", b"bash")):
            out.append(f)
    return out


def man_pages():
    return sorted(glob.glob("/usr/share/man/man[1-8]/*.gz"))


# class name -> list of files. Every source is in a Debian 12 base system plus this project's
# build dependencies; the lists are sorted so that sampling is reproducible.
CLASSES = {
    "python": lambda: sorted(glob.glob("/usr/lib/python3.11/**/*.py", recursive=True)),
    "c_header": lambda: sorted(glob.glob("/usr/include/**/*.h", recursive=True)),
    "shell": shell_scripts,
    "perl": lambda: sorted(glob.glob("/usr/share/perl*/**/*.pm", recursive=True)
                           + glob.glob("/usr/lib/x86_64-linux-gnu/perl*/**/*.pm", recursive=True)),
    "cmake": lambda: sorted(glob.glob("/usr/lib/x86_64-linux-gnu/cmake/**/*.cmake", recursive=True)
                            + glob.glob("/usr/share/cmake*/**/*.cmake", recursive=True)),
    "man_roff": man_pages,
}


def read(path):
    with open(path, "rb") as f:
        raw = f.read()
    return gzip.decompress(raw) if path.endswith(".gz") else raw


def is_test_file(path):
    return hashlib.sha1(path.encode()).digest()[0] % 5 == 0  # ~20% of the files of every class


def snippets(files, n, rng):
    """n snippets: pick a file uniformly (so a few huge files do not dominate), then an offset."""
    texts = []
    for f in files:
        data = read(f)
        if len(data) >= T:
            texts.append(data)
    out = np.empty((n, T), dtype=np.int64)
    for i in range(n):
        data = texts[rng.randint(len(texts))]
        s = rng.randint(len(data) - T + 1)
        out[i] = np.frombuffer(data[s:s + T], dtype=np.uint8)
    return out


def build_dataset(rng):
    per_class_train = STEPS * BATCH // len(CLASSES)
    xs, ys, xt, yt, counts = [], [], [], [], {}
    for label, (name, lister) in enumerate(CLASSES.items()):
        files = lister()
        train = [f for f in files if not is_test_file(f)]
        test = [f for f in files if is_test_file(f)]
        counts[name] = {"train_files": len(train), "test_files": len(test)}
        xs.append(snippets(train, per_class_train, rng))
        ys.append(np.full(per_class_train, label, dtype=np.int64))
        xt.append(snippets(test, N_TEST // len(CLASSES), rng))
        yt.append(np.full(N_TEST // len(CLASSES), label, dtype=np.int64))
    x, y = np.concatenate(xs), np.concatenate(ys)
    perm = rng.permutation(len(x))
    xt, yt = np.concatenate(xt), np.concatenate(yt)
    tperm = rng.permutation(len(xt))
    return x[perm], y[perm], xt[tperm], yt[tperm], counts


class BertTiny(nn.Module):
    def __init__(self, classes):
        super().__init__()
        self.tok = nn.Embedding(256, D)
        self.pos = nn.Parameter(torch.zeros(1, T, D))
        self.blocks = nn.Sequential(*(Block(D, H, T, FFN, causal=False) for _ in range(LAYERS)))
        self.ln = nn.LayerNorm(D)
        self.head = nn.Linear(D, classes)
        nn.init.normal_(self.pos, std=0.02)
        nn.init.normal_(self.tok.weight, std=0.02)

    def forward(self, tokens):
        return self.head(self.ln(self.blocks(self.tok(tokens) + self.pos)).mean(dim=1))


def accuracy(logits, labels):
    return float((logits.argmax(1) == labels).mean())


def main():
    common.setup(SEED)
    rng = np.random.RandomState(SEED)
    x, y, xt, yt, counts = build_dataset(rng)
    print(f"train {x.shape}, test {xt.shape}", counts, flush=True)

    model = BertTiny(len(CLASSES))
    opt = torch.optim.AdamW(model.parameters(), lr=LR, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=LR, total_steps=STEPS, pct_start=0.1)
    xtr, ytr = torch.from_numpy(x), torch.from_numpy(y)
    t0 = time.time()
    for step in range(STEPS):  # one pass over freshly cut snippets: no snippet is seen twice
        model.train()
        sl = slice(step * BATCH, (step + 1) * BATCH)
        loss = F.cross_entropy(model(xtr[sl]), ytr[sl])
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if (step + 1) % 100 == 0:
            acc = accuracy(common.torch_batched(model, xt[:600], 100), yt[:600])
            print(f"step {step + 1}: loss {loss.item():.3f} test acc (600) {acc:.3f} "
                  f"({time.time() - t0:.0f}s)", flush=True)

    model.eval()
    path = os.path.join(HERE, "model.onnx")
    common.export(model, [torch.from_numpy(xt[:2])], path, ["tokens"], ["logits"])
    pt = common.torch_batched(model, xt, 100)
    ort = common.ort_run(path, {"tokens": xt})["logits"]
    max_abs = float(np.abs(pt - ort).max())
    print(f"max |torch - ort| on test: {max_abs:.3g}")

    common.save_npy(os.path.join(HERE, "calib.npy"), x[:N_CALIB])
    common.save_npy(os.path.join(HERE, "test_x.npy"), xt)
    common.save_npy(os.path.join(HERE, "test_y.npy"), yt)
    per_class = {name: accuracy(pt[yt == i], yt[yt == i]) for i, name in enumerate(CLASSES)}
    metrics = {
        "task": "which kind of source file a 128-byte snippet comes from",
        "classes": list(CLASSES),
        "input": {"name": "tokens", "shape": ["batch", T], "dtype": "int64"},
        "output": {"name": "logits", "shape": ["batch", len(CLASSES)]},
        "config": {"layers": LAYERS, "d_model": D, "heads": H, "ffn": FFN, "context": T,
                   "pooling": "mean"},
        "params": int(sum(p.numel() for p in model.parameters())),
        "steps": STEPS, "batch": BATCH,
        "test_accuracy": {"torch": accuracy(pt, yt), "ort": accuracy(ort, yt)},
        "test_accuracy_per_class_torch": per_class,
        "max_abs_diff_torch_vs_ort": max_abs,
        "source_files": counts,
        "files": {"calib.npy": f"{N_CALIB} training snippets [N,{T}] int64",
                  "test_x.npy": f"{N_TEST} test snippets [N,{T}] int64 (files disjoint from training)",
                  "test_y.npy": "their class indices (int64), order of 'classes'"},
        "train_seconds": round(time.time() - t0),
    }
    common.save_json(os.path.join(HERE, "metrics.json"), metrics)
    print(metrics["test_accuracy"], per_class, "model.onnx", common.file_mb(path), "MB")


if __name__ == "__main__":
    main()
