"""Task metric of one of the project's own models, or of a compressed copy of it, in ONNX Runtime.

    /usr/bin/python3 models/evaluate.py NAME [MODEL.onnx]
      NAME: fashion_cnn | bert_tiny  -> accuracy on test_x.npy / test_y.npy
            gpt_tiny                 -> perplexity per byte on heldout.npy
            ocr_lines                -> PP-OCRv4 rec character accuracy (MODEL defaults to the corpus one)
    MODEL defaults to models/NAME/model.onnx. Prints one JSON line.

Needs numpy and node (tests/node/ort_run.js); no torch. The metrics are the same definitions the
make.py scripts put in metrics.json, so a compressed model's number compares directly:
    accuracy   = mean(argmax(logits) == label)
    perplexity = exp(mean over tokens of -log softmax(logits)[target])
"""
import json
import os
import subprocess
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import common  # noqa: E402


def accuracy(folder, model):
    x, y = np.load(os.path.join(folder, "test_x.npy")), np.load(os.path.join(folder, "test_y.npy"))
    name = "x" if x.dtype == np.float32 else "tokens"
    logits = common.ort_run(model, {name: x})["logits"]
    return {"accuracy": float((logits.argmax(1) == y).mean()), "n": int(len(y))}


def perplexity(folder, model):
    win = np.load(os.path.join(folder, "heldout.npy"))
    t = win.shape[1] - 1
    logits = common.ort_run(model, {"tokens": win[:, :t]})["logits"].astype(np.float64)
    # log softmax with the max subtracted, so large logits cannot overflow exp
    z = logits - logits.max(-1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(-1, keepdims=True))
    nll = -np.take_along_axis(logp, win[:, 1:, None], -1).mean()
    return {"perplexity": float(np.exp(nll)), "bits_per_byte": float(nll / np.log(2)),
            "tokens": int(win[:, 1:].size)}


def ocr(folder, model):
    res = subprocess.run(["node", os.path.join(folder, "eval.js"), model],
                         capture_output=True, text=True)
    if res.returncode != 0:
        sys.exit(res.stderr.strip())
    return json.loads(res.stdout.strip().splitlines()[-1])


TASKS = {"fashion_cnn": accuracy, "bert_tiny": accuracy, "gpt_tiny": perplexity, "ocr_lines": ocr}


def main():
    if len(sys.argv) not in (2, 3) or sys.argv[1] not in TASKS:
        sys.exit(f"usage: evaluate.py {{{'|'.join(TASKS)}}} [MODEL.onnx]")
    name = sys.argv[1]
    folder = os.path.join(HERE, name)
    default = (os.path.join(HERE, "corpus", "ppocr4_rec.onnx") if name == "ocr_lines"
               else os.path.join(folder, "model.onnx"))
    model = os.path.abspath(sys.argv[2] if len(sys.argv) == 3 else default)
    if not os.path.isfile(model):
        sys.exit(f"evaluate.py: no model at {model}")
    print(json.dumps({"task": name, "model": model, **TASKS[name](folder, model)}))


if __name__ == "__main__":
    main()
