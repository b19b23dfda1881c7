"""Text pages for PP-OCRv4 det (models/corpus/ppocr4_det.onnx) built from the rendered lines of
lines_u8.npy, and the det fidelity metric: the cosine of a compressed model's probability map with
the float one's, in ONNX Runtime.

    /usr/bin/python3 models/ocr_lines/det_pages.py make OUT_DIR
        writes OUT_DIR/det_calib.npy (16 pages, lines 0-99) and OUT_DIR/det_eval.npy (8 pages,
        lines 100-199), float32 [N, 3, 320, 320]
    /usr/bin/python3 models/ocr_lines/det_pages.py eval CANDIDATE.onnx EVAL.npy [REFERENCE.onnx]
        prints one JSON line: cosine of the probability maps over all pages, the per-page minimum,
        and the fraction of pixels whose text/background decision (p > 0.3, PaddleOCR's DB
        threshold) agrees

A page: white 320x320, up to six lines pasted at seeded offsets (each line's ink width from
lines_text.json, the padding dropped), grey replicated to 3 channels, PaddleOCR det's
NormalizeImage: (x/255 - mean) / std with the ImageNet mean/std. The data is generated, not stored
(24 pages are 29 MB).
"""
import json
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
import common  # noqa: E402

SIZE = 320
MEAN = np.array([0.485, 0.456, 0.406], np.float32).reshape(3, 1, 1)
STD = np.array([0.229, 0.224, 0.225], np.float32).reshape(3, 1, 1)


def pages(first, count, seed):
    lines = np.load(os.path.join(HERE, "lines_u8.npy"))
    widths = json.load(open(os.path.join(HERE, "lines_text.json")))["widths"]
    rng = np.random.default_rng(seed)
    out, k = [], first
    for _ in range(count):
        page = np.full((SIZE, SIZE), 255, np.uint8)
        y = int(rng.integers(0, 12))
        for _ in range(6):
            w = min(int(widths[k]), SIZE)
            if y + 48 > SIZE:
                break
            x = int(rng.integers(0, SIZE - w + 1))
            page[y:y + 48, x:x + w] = lines[k, :, :w]
            k += 1
            y += 48 + int(rng.integers(0, 8))
        img = np.repeat(page[None].astype(np.float32) / 255.0, 3, 0)
        out.append((img - MEAN) / STD)
    return np.stack(out).astype(np.float32)


def prob_map(model, x):
    res = common.ort_run(model, {"x": x})
    return next(iter(res.values())).astype(np.float64)


def main():
    if len(sys.argv) >= 3 and sys.argv[1] == "make":
        os.makedirs(sys.argv[2], exist_ok=True)
        np.save(os.path.join(sys.argv[2], "det_calib.npy"), pages(0, 16, 1))
        np.save(os.path.join(sys.argv[2], "det_eval.npy"), pages(100, 8, 2))
        return
    if len(sys.argv) in (4, 5) and sys.argv[1] == "eval":
        ref = sys.argv[4] if len(sys.argv) == 5 else os.path.join(os.path.dirname(HERE), "corpus", "ppocr4_det.onnx")
        x = np.load(sys.argv[3])
        a, b = prob_map(sys.argv[2], x), prob_map(ref, x)
        cos = lambda u, v: float((u * v).sum() / np.sqrt((u * u).sum() * (v * v).sum()))
        per = [cos(a[i], b[i]) for i in range(len(x))]
        print(json.dumps({"cosine": cos(a, b), "min_page_cosine": min(per),
                          "decision_agreement": float(((a > 0.3) == (b > 0.3)).mean()),
                          "text_fraction": float((b > 0.3).mean()), "pages": len(x)}))
        return
    sys.exit(__doc__)


if __name__ == "__main__":
    main()
