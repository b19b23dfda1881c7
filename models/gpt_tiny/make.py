"""gpt_tiny: a small GPT-style byte-level language model, the project's reference transformer decoder.

Embedding + learned positions -> 4 pre-LN blocks with hand-written causal attention (see
models/transformer.py: Q/K/V/O MatMuls, constant Reshape targets, Softmax with a constant mask
add, GELU MLP) -> LayerNorm -> Linear to 256 byte logits.

    tokens int64 [batch, 128] (bytes 0..255)  ->  logits [batch, 128, 256]

Data: Python standard library sources /usr/lib/python3.11/*.py; every 8th file (sorted by name) is
held out for perplexity.
Regenerate: /usr/bin/python3 models/gpt_tiny/make.py   (34 min on one thread of a busy 2-core box)
"""
import glob
import math
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

SEED = 1234
T, D, H, LAYERS, FFN = 128, 128, 4, 4, 512
STEPS, BATCH, LR = 800, 16, 2e-3
N_CALIB, N_HELDOUT = 128, 128


def load_corpus():
    files = sorted(glob.glob("/usr/lib/python3.11/*.py"))
    held = files[3::8]
    train = [f for f in files if f not in held]

    def cat(fs):
        return np.frombuffer(b"".join(open(f, "rb").read() + b"\n" for f in fs), dtype=np.uint8)
    return cat(train), cat(held), [os.path.basename(f) for f in held]


class GPTTiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.tok = nn.Embedding(256, D)
        self.pos = nn.Parameter(torch.zeros(1, T, D))
        self.blocks = nn.Sequential(*(Block(D, H, T, FFN, causal=True) for _ in range(LAYERS)))
        self.ln = nn.LayerNorm(D)
        self.head = nn.Linear(D, 256)
        nn.init.normal_(self.pos, std=0.02)
        nn.init.normal_(self.tok.weight, std=0.02)

    def forward(self, tokens):
        return self.head(self.ln(self.blocks(self.tok(tokens) + self.pos)))


def windows(data, n, length, rng):
    starts = rng.randint(0, len(data) - length, size=n)
    return np.stack([data[s:s + length] for s in starts]).astype(np.int64)


def perplexity(logits, win):
    """exp(mean NLL of bytes 1..T given the bytes before), logits over win[:, :T]."""
    lg = torch.as_tensor(logits, dtype=torch.float64).reshape(-1, 256)
    return math.exp(F.cross_entropy(lg, torch.as_tensor(win[:, 1:]).reshape(-1)).item())


def main():
    common.setup(SEED)
    train, held, held_names = load_corpus()
    print(f"train {len(train)} bytes, held-out {len(held)} bytes ({len(held_names)} files)")
    rng = np.random.RandomState(SEED)
    heldout = windows(held, N_HELDOUT, T + 1, np.random.RandomState(SEED + 1))

    model = GPTTiny()
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2 and n != "pos"]
    other = [p for n, p in model.named_parameters() if p.dim() < 2 or n == "pos"]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1},
                             {"params": other, "weight_decay": 0.0}], lr=LR, betas=(0.9, 0.95))
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=LR, total_steps=STEPS, pct_start=0.05)
    t0 = time.time()
    for step in range(1, STEPS + 1):
        model.train()
        w = torch.from_numpy(windows(train, BATCH, T + 1, rng))
        loss = F.cross_entropy(model(w[:, :T]).reshape(-1, 256), w[:, 1:].reshape(-1))
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        if step % 100 == 0:
            ppl = perplexity(common.torch_batched(model, heldout[:32, :T], 32), heldout[:32])
            print(f"step {step}: train loss {loss.item():.3f} held-out ppl {ppl:.3f} "
                  f"({time.time() - t0:.0f}s)", flush=True)

    model.eval()
    path = os.path.join(HERE, "model.onnx")
    common.export(model, [torch.from_numpy(heldout[:2, :T])], path, ["tokens"], ["logits"])
    pt = common.torch_batched(model, heldout[:, :T], 32)
    ort = common.ort_run(path, {"tokens": heldout[:, :T]})["logits"]
    max_abs = float(np.abs(pt - ort).max())
    print(f"max |torch - ort| on held-out: {max_abs:.3g}")

    common.save_npy(os.path.join(HERE, "calib.npy"), windows(train, N_CALIB, T, rng))
    common.save_npy(os.path.join(HERE, "heldout.npy"), heldout)
    metrics = {
        "task": "byte-level language modelling of Python stdlib sources",
        "input": {"name": "tokens", "shape": ["batch", T], "dtype": "int64"},
        "output": {"name": "logits", "shape": ["batch", T, 256]},
        "config": {"layers": LAYERS, "d_model": D, "heads": H, "ffn": FFN, "context": T},
        "params": int(sum(p.numel() for p in model.parameters())),
        "steps": STEPS, "batch": BATCH,
        "heldout_perplexity": {"torch": perplexity(pt, heldout), "ort": perplexity(ort, heldout)},
        "heldout_bits_per_byte": math.log2(perplexity(pt, heldout)),
        "max_abs_diff_torch_vs_ort": max_abs,
        "files": {"calib.npy": f"{N_CALIB} random windows [N,{T}] of the training files",
                  "heldout.npy": f"{N_HELDOUT} random windows [N,{T + 1}] of the held-out files; "
                                 f"feed [:, :{T}], targets [:, 1:]"},
        "heldout_files": held_names,
        "train_seconds": round(time.time() - t0),
    }
    common.save_json(os.path.join(HERE, "metrics.json"), metrics)
    print(metrics["heldout_perplexity"], "model.onnx", common.file_mb(path), "MB")


if __name__ == "__main__":
    main()
