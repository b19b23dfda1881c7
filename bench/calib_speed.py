#!/usr/bin/python3
"""Calibration samples/s with Grams vs plain inference, two builds interleaved.

    bench/calib_speed.py BEFORE_BENCH AFTER_BENCH [--threads T] [--samples N] [MODEL ...]

BEFORE_BENCH / AFTER_BENCH are oc-executor-bench binaries (bench/executor_bench.cpp). Per model
and build, alternating before/after ROUNDS times: `--mode infer` (batch 8, fastest of 3 runs)
and `--mode calib` (min/max on every float activation + XᵀX on every Conv/MatMul/Gemm with a
Gram, over N samples in batches of 8; samples/s over the whole pass). Each side's best round
counts (the machine is shared). Prints a markdown table: calib/infer is the ratio the issue's
target (>= 0.3x) reads.
"""
import json
import os
import subprocess
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "bench", "out", "data")
MODELS = {
    "resnet50": ("models/zoo/resnet50.onnx", (3, 224, 224)),
    "mobilenet_v2": ("models/zoo/mobilenet_v2.onnx", (3, 224, 224)),
    "bert_tiny": ("models/bert_tiny/model.onnx", "models/bert_tiny/calib.npy"),
    "gpt_tiny": ("models/gpt_tiny/model.onnx", "models/gpt_tiny/calib.npy"),
    "ppocr4_rec": ("models/corpus/ppocr4_rec.onnx", "models/ocr_lines/lines_x.npy"),
}
ROUNDS = 1


def data(name, src, n):
    os.makedirs(OUT, exist_ok=True)
    path = os.path.join(OUT, f"calib_speed_{name}_{n}.npy")
    if not os.path.exists(path):
        if isinstance(src, tuple):
            x = np.random.default_rng(1).standard_normal((n,) + src).astype(np.float32)
        else:
            x = np.load(os.path.join(ROOT, src))
            x = np.concatenate([x] * (n // len(x) + 1))[:n]
        np.save(path, x)
    return path


def run(binary, model, spec, mode, threads, samples):
    cmd = [binary, model, "--data", spec, "--threads", str(threads), "--mode", mode]
    cmd += ["--repeat", "3"] if mode == "infer" else ["--samples", str(samples)]
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if r.returncode:
        raise RuntimeError(f"{' '.join(cmd)}: {r.stderr.strip()}")
    return json.loads(r.stdout)


def main():
    args = sys.argv[1:]
    threads, samples = 1, 16
    if "--threads" in args:
        i = args.index("--threads"); threads = int(args[i + 1]); del args[i:i + 2]
    if "--samples" in args:
        i = args.index("--samples"); samples = int(args[i + 1]); del args[i:i + 2]
    before, after, names = args[0], args[1], args[2:] or list(MODELS)
    print(f"threads {threads}, calibration over {samples} samples, batch 8, best of {ROUNDS} interleaved rounds")
    print("| model | build | infer samples/s | calib samples/s | calib / infer | calib peak RSS MiB |")
    print("|---|---|---|---|---|---|")
    for name in names:
        model, src = MODELS[name]
        spec = data(name, src, samples)
        best = {}
        for _ in range(ROUNDS):
            for label, b in (("before", before), ("after", after)):
                i = run(b, model, spec, "infer", threads, samples)
                c = run(b, model, spec, "calib", threads, samples)
                o = best.setdefault(label, dict(infer=0, calib=0, rss=0, grams=c["gram_layers"]))
                o["infer"] = max(o["infer"], i["samples_per_s"])
                if c["samples_per_s"] > o["calib"]:
                    o["calib"], o["rss"] = c["samples_per_s"], c["peak_rss_bytes"]
                print(f"[calib_speed] {name} {label}: infer {i['samples_per_s']:.2f}/s calib {c['samples_per_s']:.2f}/s",
                      file=sys.stderr, flush=True)
        for label in ("before", "after"):
            o = best[label]
            print(f"| {name} ({o['grams']} Grams) | {label} | {o['infer']:.2f} | {o['calib']:.2f} | "
                  f"{o['calib'] / o['infer']:.2f} | {o['rss'] / 2**20:.0f} |", flush=True)


if __name__ == "__main__":
    main()
