"""Shared helpers for the scripts that make the project's own reference models.

Every models/<name>/make.py imports this file. It pins the environment (seeds, 2 threads), exports
to ONNX the one way the project wants (opset 17, constant folding, eval mode, dynamic "batch" axis)
and checks an exported model against PyTorch by running it in onnxruntime-node through the test
runner tests/node/ort_run.js (ONNX Runtime has no Debian Python package; the node one is the
project's reference runtime).

torch is imported inside the functions that need it, so ocr_lines/make.py runs without it.
Run the scripts with Debian's interpreter: /usr/bin/python3 models/<name>/make.py
"""
import json
import os
import random
import subprocess
import sys
import tempfile

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ORT_RUN = os.path.join(ROOT, "tests", "node", "ort_run.js")


def setup(seed):
    """Fixed seeds and one thread. One, not two: the 2 cores are shared with builds, and an
    oversubscribed OpenMP team spins at its barriers (measured: a GPT step 25x slower with 2
    threads than with 1 under load). One thread also fixes the reduction order."""
    import torch
    torch.set_num_threads(1)
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True)


def export(model, example_inputs, path, input_names, output_names, keep_batchnorm=False):
    """Export in eval mode at opset 17 with the first axis of every input and output named
    "batch". Weights are initializers (constant folding), which is what the compressor reads.
    keep_batchnorm: export BatchNormalization nodes (inference mode) instead of letting the
    exporter fold them into the preceding Conv, so BN-based pruning criteria have gammas to read."""
    import torch
    model.eval()
    axes = {n: {0: "batch"} for n in list(input_names) + list(output_names)}
    tmp = path + ".tmp-export"
    with torch.no_grad():
        torch.onnx.export(model, tuple(example_inputs), tmp, opset_version=17,
                          do_constant_folding=True, input_names=list(input_names),
                          output_names=list(output_names), dynamic_axes=axes,
                          training=(torch.onnx.TrainingMode.PRESERVE if keep_batchnorm
                                    else torch.onnx.TrainingMode.EVAL))
    os.replace(tmp, path)  # never leave a half-written model behind


def save_npy(path, array):
    tmp = path + ".tmp-npy"
    with open(tmp, "wb") as f:
        np.save(f, np.ascontiguousarray(array))
    os.replace(tmp, path)


def save_json(path, obj):
    tmp = path + ".tmp-json"
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=2, sort_keys=True)
        f.write("\n")
    os.replace(tmp, path)


def ort_run(model_path, feeds, threads=2):
    """Runs model_path in onnxruntime-node on feeds {input name: array}; returns {output: array}."""
    with tempfile.TemporaryDirectory(prefix="oc-models-") as tmp:
        args = ["node", ORT_RUN, model_path, os.path.join(tmp, "out"), "--threads", str(threads)]
        for name, arr in feeds.items():
            f = os.path.join(tmp, name + ".npy")
            np.save(f, np.ascontiguousarray(arr))
            args.append(f"{name}={f}")
        res = subprocess.run(args, capture_output=True, text=True)
        if res.returncode != 0:
            sys.exit(f"ort_run.js failed on {model_path}: {res.stderr.strip()}")
        names = json.loads(res.stdout.strip().splitlines()[-1])["outputs"]
        return {n: np.load(os.path.join(tmp, "out", n + ".npy")) for n in names}


def torch_batched(model, x, batch=500):
    """Model outputs on x in eval mode, in batches (keeps memory flat on big eval sets)."""
    import torch
    model.eval()
    outs = []
    with torch.no_grad():
        for i in range(0, len(x), batch):
            outs.append(model(torch.as_tensor(x[i:i + batch])).numpy())
    return np.concatenate(outs)


def file_mb(path):
    return round(os.path.getsize(path) / 1e6, 3)
