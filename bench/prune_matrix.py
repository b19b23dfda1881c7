#!/usr/bin/python3
"""Pruning test matrix (issue 16 point 7): every corpus model and torchvision export, pruned to half
its MACs with the default data-aware method, no --input-shape:

  onnx-compress prune MODEL -o OUT --target-macs 0.5 --calib DATA --report OUT.json

Each row says whether the command met the target (MACs kept within 0.03 of 0.5), whether the output
runs in ONNX Runtime with the original's output shapes, or the one-line reason it refused. DATA is
the model's own calibration set where the project has one, else seeded random samples at the
model's input shape (concrete dims from the file; the corpus' symbolic dims get small fixed sizes).
Writes docs/PRUNE_MATRIX.md.

  /usr/bin/python3 bench/prune_matrix.py [--bin build/onnx-compress] [--timeout S] [MODEL ...]

With MODEL names only those rows are rerun; the other rows of the existing doc stay, each with the
commit its binary was built at (column "binary").
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOC = os.path.join(ROOT, "docs", "PRUNE_MATRIX.md")
ORT_RUN = os.path.join(ROOT, "tests", "node", "ort_run.js")

# name -> (path, data): data is a file under ROOT, or {input: shape} for seeded random samples.
MODELS = {
    "fashion_cnn": ("models/fashion_cnn/model.onnx", "models/fashion_cnn/calib.npy"),
    "bert_tiny": ("models/bert_tiny/model.onnx", "models/bert_tiny/calib.npy"),
    "gpt_tiny": ("models/gpt_tiny/model.onnx", "models/gpt_tiny/calib.npy"),
    "ppocr4_rec": ("models/corpus/ppocr4_rec.onnx", "models/ocr_lines/lines_x.npy"),
    "ppocr4_det": ("models/corpus/ppocr4_det.onnx", {"x": [3, 160, 224]}),
    "ppocr2_cls": ("models/corpus/ppocr2_cls.onnx", {"x": [3, 48, 192]}),
    "blazeface_front": ("models/corpus/blazeface_front.onnx", None),
    "blazeface_back": ("models/corpus/blazeface_back.onnx", None),
    "wakeword_hello": ("models/corpus/wakeword_hello.onnx", None),
    # A tuple: one file per value (a scalar input takes one value per file), so both If branches
    # (16 and 8 kHz) see data.
    "silero_vad": ("models/corpus/silero_vad.onnx", {"input": [512], "sr": (16000, 8000)}),
}
for z in ["resnet18", "resnet50", "resnext50_32x4d", "mobilenet_v2", "mobilenet_v3_large", "efficientnet_b0",
          "regnet_y_400mf", "shufflenet_v2_x1_0", "densenet121", "convnext_tiny", "vit_b_16", "vit_b_16_heads",
          "swin_t"]:
    MODELS[z] = (f"models/zoo/{z.replace('_heads', '')}.onnx", {"input": [3, 224, 224]})
# Rows that add flags to the default command.
FLAGS = {"vit_b_16_heads": ["--heads"]}
SAMPLES = 8


def onnx_inputs(binary, path):
    """(name, dims with None for symbolic, numpy dtype) of the graph's runtime inputs, from inspect --json."""
    r = subprocess.run([binary, "inspect", path, "--json"], capture_output=True, text=True, check=True)
    return [(i["name"], [d if isinstance(d, int) else None for d in i["shape"]], np.dtype(i["dtype"]))
            for i in json.loads(r.stdout)["inputs"]]


def make_data(binary, path, spec, tmp):
    """A calibration file for the model: spec is a file, {input: dims after batch}, or None (all dims
    from the file, symbolic ones 1)."""
    if isinstance(spec, str):
        return os.path.join(ROOT, spec)
    rng = np.random.default_rng(7)
    inputs = onnx_inputs(binary, path)
    per_file = next((v for v in (spec or {}).values() if isinstance(v, tuple)), (None,))
    files = []
    for k, value in enumerate(per_file):
        arrays = {}
        for name, dims, dt in inputs:
            if not dims:  # a scalar input: one value for every sample of the file
                v = spec[name][k] if spec and isinstance(spec.get(name), tuple) else 1
                arrays[name] = np.array(v, dtype=dt)
                continue
            if dims[0] is not None and dims[0] > 1 and not (spec and name in spec):
                # a fixed leading dim (silero's LSTM state [2, batch, 64]): one zero sample, repeated
                arrays[name] = np.zeros([d or 1 for d in dims], dtype=dt)
                continue
            if spec and name in spec:
                shape = [SAMPLES // len(per_file)] + list(spec[name])
            else:
                shape = [SAMPLES // len(per_file)] + [d or 1 for d in dims[1:]]
            if np.issubdtype(dt, np.floating):
                arrays[name] = rng.random(shape, dtype=np.float32).astype(dt)
            else:
                arrays[name] = np.full(shape, 1, dtype=dt)
        files.append(arrays)
    if len(files) > 1:  # a folder, one file per value
        d = os.path.join(tmp, os.path.basename(path) + ".calib")
        os.makedirs(d, exist_ok=True)
        for k, arrays in enumerate(files):
            np.savez(os.path.join(d, f"{k}.npz"), **arrays)
        return d
    arrays = files[0]
    f = os.path.join(tmp, os.path.basename(path) + (".npz" if len(arrays) > 1 else ".npy"))
    if len(arrays) > 1:
        np.savez(f, **arrays)
    else:
        np.save(f, next(iter(arrays.values())))
    return f


def ort_shapes(model, tmp, tag):
    out = os.path.join(tmp, tag)
    r = subprocess.run(["node", ORT_RUN, model, out, "--random-seed", "1"], capture_output=True, text=True,
                       timeout=600)
    if r.returncode != 0:
        return None, (r.stderr.strip().splitlines() or ["ORT failed"])[-1][:200]
    shapes = {}
    for f in sorted(os.listdir(out)):
        if f.endswith(".npy"):
            shapes[f[:-4]] = list(np.load(os.path.join(out, f), mmap_mode="r").shape)
    return shapes, None


def one(binary, name, path, spec, timeout, tmp):
    row = {"model": name}
    src = os.path.join(ROOT, path)
    data = make_data(binary, src, spec, tmp)
    out = os.path.join(tmp, name + ".pruned.onnx")
    rep = out + ".json"
    flags = FLAGS.get(name, [])
    cmd = [binary, "prune", src, "-o", out, "--target-macs", "0.5", "--calib", data, "--report", rep] + flags
    row["command"] = " ".join(["onnx-compress", "prune", path, "-o", "OUT", "--target-macs", "0.5", "--calib",
                               os.path.relpath(data, ROOT) if data.startswith(ROOT) else f"DATA({SAMPLES} random)"] +
                              flags)
    t0 = time.time()
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        row.update(status="timeout", why=f"over {timeout} s")
        return row
    row["seconds"] = round(time.time() - t0, 1)
    if r.returncode != 0:
        lines = [x for x in (r.stderr + r.stdout).strip().splitlines() if x.strip()]
        row.update(status="refused", why=(lines[-1] if lines else f"exit {r.returncode}")[:300])
        return row
    with open(rep) as fh:
        report = json.load(fh)
    before, after = report["totals"]["before"]["macs"], report["totals"]["after"]["macs"]
    row["macs_kept"] = round(after / before, 4) if before else None
    ref, why = ort_shapes(src, tmp, name + ".ref")
    got, why2 = ort_shapes(out, tmp, name + ".out")
    if got is None:
        row.update(status="ORT fails", why=why2)
        return row
    row["shapes_match"] = ref == got if ref is not None else None
    notes = [n for st in report.get("steps", []) for n in st.get("details", {}).get("notes", [])]
    row["why"] = "; ".join(n for n in notes if n.startswith("grouped convs:") or n.startswith("pruned inside"))
    met = row["macs_kept"] is not None and abs(row["macs_kept"] - 0.5) <= 0.03
    row["status"] = "met" if met and row["shapes_match"] else "MISSED" if not met else "shape mismatch"
    return row


def old_rows():
    """Rows of the existing doc, by model: the table's cells and the command line."""
    if not os.path.exists(DOC):
        return {}
    rows, cmds = {}, []
    with open(DOC) as fh:
        lines = fh.read().splitlines()
    for ln in lines:
        cells = [c.strip() for c in ln.strip().strip("|").split(" | ")]
        if ln.startswith("| ") and len(cells) >= 6 and cells[0] not in ("model",) and not cells[0].startswith("---"):
            rows[cells[0]] = {"cells": cells}
        if ln.startswith("onnx-compress prune "):
            cmds.append(ln)
    for name, r in rows.items():
        path = MODELS.get(name, ("?",))[0]
        flags = " ".join(FLAGS.get(name, []))
        r["command"] = next((c for c in cmds if f" {path} " in c and (c.endswith(flags) if flags else
                                                                       not any(c.endswith(" ".join(f)) for f in FLAGS.values()))), None)
    return rows


# Hand-written findings, kept in the doc on every regeneration (update them with the rows).
FINDINGS = (
    "Findings: every model prunes or refuses with its reason, and every pruned output runs in ONNX Runtime "
    "with the original's output shapes. Rows at ed06dda were rerun on 2 Dec 2026, 13:42-15:10 UTC, with the "
    "binary of main at ed06dda (today's defaults: sensitivity allocation, sequential reconstruction) on the "
    "shared 2-core machine at load 9-18 (six engineers building and benchmarking): seconds are 10-20x a quiet "
    "run (ppocr2_cls 133 s, against 6.6 s at 02ea108). convnext_tiny was tried at ed06dda and timed out at "
    "1800 s having had 7.5 minutes of CPU (load 14), so its 0dc2c2c row stays; the other 0dc2c2c rows "
    "(resnet18, resnet50, densenet121, vit_b_16, swin_t) and the remaining 02ea108 rows were not reached in "
    "that sitting and are still to rerun (vit_b_16 and swin_t need "
    "`/usr/bin/python3 models/export_torchvision.py vit_b_16 swin_t` first). "
    "Rows at 02ea108 and 65fb426 were rerun on 2 Dec 2026, 06:06-07:30 UTC, "
    "on the shared 2-core machine at load 12-19 (seconds are 5-10x a quiet run); 65fb426 is 02ea108 plus the "
    "uniform fallback below (landed on main as 8dd7aa9). Rows at 02ea108 predate 31e6ab6, which made sensitivity "
    "allocation the default for BatchNorm CNNs too: their MACs kept may move a little under it. resnext50_32x4d "
    "(its first measurement; 3000 s timeout) is met at 0.494, 10 of its 16 grouped convs losing whole "
    "groups. RegNetY-400MF's grouped convs (group width 8) are pruned as whole groups (13 of its 16 lose "
    "groups at 0.5; `--criterion l1 --target-macs 0.1` is met). blazeface_back is refused at `--round-to 8`: "
    "its plans jump from 0.365 to 0.899 of the MACs (few, coarse residual groups; giving back one step of "
    "any group overshoots the window), a real limit of that granularity; `--round-to 1` meets it (0.48). "
    "wakeword_hello has nothing prunable (every group locked, reasons in the row). silero_vad gets one "
    "calibration file per sample rate (its scalar `sr` is one value per file), so both If branches are "
    "observed; body groups are scored, compensated and counted for MAC targets, and it is refused with the "
    "reachable bound 0.923 (its STFT and LSTM part is fixed width; `--target-macs 0.95` is met at 0.941, "
    "docs/PRUNING.md). vit_b_16_heads was refused (0.436 / 1.000) because torchvision's ViT export with "
    "random weights has a zero-initialized classifier: its logits are 0 for every input, every sensitivity "
    "probe measured S_g = 0 and the plan jumped from nothing to everything; such data now allocates "
    "uniformly with a note (65fb426, docs/PRUNING.md), heads prune in steps of one head, and vit_b_16_heads is met at 0.500 "
    "(65fb426, 2411 s at load 15). "
    "Rows at 0dc2c2c predate sequential reconstruction (29b53ae) and were not rerun this time (the machine's "
    "load): their plan, and so the MACs kept, is the same; vit_b_16 (no --heads) at 0dc2c2c predates the "
    "sensitivity default and takes the same uniform fallback now. vit_b_16 runs without --heads here (matrix: "
    "default flags); with `--heads` its 12 attention layers prune heads too (docs/PRUNING.md, *Heads folded "
    "into the batch axis*).")


def write_doc(rows, commit):
    # Rows not rerun keep their cells (and the commit they were measured at).
    fresh = {r["model"]: r for r in rows}
    kept = old_rows()
    ordered = []
    for name in MODELS:
        if name in fresh:
            ordered.append(("new", fresh[name]))
        elif name in kept:
            ordered.append(("old", kept[name]))
    L = ["# Pruning test matrix", "",
         "Every corpus model and torchvision export (random weights), pruned to half its MACs by the default "
         "data-aware method (`--calib`, no `--input-shape`, no method flags). *met*: MACs kept within 0.03 of "
         "0.5 and the output runs in ONNX Runtime with the original's output shapes; *refused*: the command's "
         "one-line error; for met rows, how many grouped convs lost whole groups. Generated by "
         "`/usr/bin/python3 bench/prune_matrix.py [MODEL ...]` (rerunning only the rows named); *binary*: the "
         "commit the binary of that row was built at (a trailing + : from a working tree with uncommitted changes of "
         "other work on top); the machine was shared, so seconds are indicative only.", "",
         FINDINGS, "",
         "| model | status | MACs kept | ORT output shapes | seconds | reason / notes | binary |",
         "|---|---|---|---|---|---|---|"]
    cmds = []
    for kind, r in ordered:
        if kind == "old":
            cells = r["cells"] + [""] * (7 - len(r["cells"]))
            if not cells[6]:
                cells[6] = "0dc2c2c"
            L.append("| " + " | ".join(cells[:7]) + " |")
            if r.get("command"):
                cmds.append(r["command"])
            continue
        shapes = {True: "same", False: "DIFFER", None: "–"}[r.get("shapes_match")]
        kept = f"{r['macs_kept']:.3f}" if r.get("macs_kept") is not None else "–"
        why = r.get("why", "").replace("|", "\\|")
        L.append(f"| {r['model']} | {r['status']} | {kept} | {shapes} | {r.get('seconds', '–')} | {why} | {commit} |")
        if "command" in r:
            cmds.append(r["command"])
    L += ["", "Commands:", "", "```"] + cmds + ["```", ""]
    with open(DOC + ".tmp", "w") as fh:
        fh.write("\n".join(L))
    os.replace(DOC + ".tmp", DOC)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("models", nargs="*")
    ap.add_argument("--bin", default=os.path.join(ROOT, "build", "onnx-compress"))
    ap.add_argument("--timeout", type=int, default=900)
    ap.add_argument("--commit", help="the commit the binary was built from (default: HEAD)")
    a = ap.parse_args()
    names = a.models or list(MODELS)
    commit = a.commit or subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                                        text=True).stdout.strip()
    rows = []
    with tempfile.TemporaryDirectory(prefix="oc-matrix-") as tmp:
        for name in names:
            path, spec = MODELS[name]
            if not os.path.exists(os.path.join(ROOT, path)):
                print(f"[matrix] {name}: {path} missing, skipped", file=sys.stderr)
                continue
            row = one(os.path.abspath(a.bin), name, path, spec, a.timeout, tmp)
            print(json.dumps(row), flush=True)
            rows.append(row)
            write_doc(rows, commit)
    return 0 if all(r["status"] in ("met", "refused") for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
