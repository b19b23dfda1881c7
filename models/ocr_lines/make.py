"""ocr_lines: 200 rendered text lines whose text is known, the evaluation set for PP-OCRv4 rec
(models/corpus/ppocr4_rec.onnx) before and after compression.

Each line: a few words taken from the English in the Python standard library's sources, sometimes
a number, a date or an amount, drawn in one of the six DejaVu fonts of fonts-dejavu-core, black on
white, cropped to the ink plus a margin. Then PP-OCR's rec preprocessing (PaddleOCR
resize_norm_img): scale to height 48 keeping the aspect ratio, x' = (x/255 - 0.5)/0.5 on RGB,
pad on the right with 0 (in normalized units) to width 320.

Files:
    lines_u8.npy    uint8 [200, 48, 320] grey pixels (right padding stored as 128, ignored)
    lines_text.json {"texts": [...], "widths": [...]}: the truth and the scaled width of each line
    lines_x.npy     float32 [24, 3, 48, 320]: the first 24 lines exactly as the model takes them
                    (a calibration-ready subset; all 200 would be 37 MB, over the file limit)
    metrics.json    character accuracy of ppocr4_rec.onnx on the 200 lines (from eval.js)
eval.js rebuilds the float input of all 200 lines from lines_u8.npy + widths, so both are exact.

Regenerate: /usr/bin/python3 models/ocr_lines/make.py   (renders, then runs eval.js)
"""
import collections
import glob
import json
import os
import re
import subprocess
import sys

import numpy as np
from PIL import Image, ImageDraw, ImageFont

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.dirname(HERE))
import common  # noqa: E402  (save_npy / save_json only: this script needs no torch)

SEED = 4242
N_LINES, N_FLOAT = 200, 24
H, W = 48, 320
FONT_DIR = "/usr/share/fonts/truetype/dejavu"
FONTS = ["DejaVuSans.ttf", "DejaVuSans-Bold.ttf", "DejaVuSerif.ttf", "DejaVuSerif-Bold.ttf",
         "DejaVuSansMono.ttf", "DejaVuSansMono-Bold.ttf"]


def vocabulary():
    """The 3000 most frequent 3-10 letter words in the stdlib sources (mostly comment/docstring
    English, some identifiers): real words in real letter statistics, from a fixed local source."""
    counts = collections.Counter()
    for f in sorted(glob.glob("/usr/lib/python3.11/*.py")):
        counts.update(re.findall(r"\b[A-Za-z]{3,10}\b", open(f, encoding="latin-1").read()))
    return [w for w, _ in counts.most_common(3000)]


def make_text(rng, words):
    parts = [words[rng.randint(len(words))] for _ in range(rng.randint(1, 4))]
    kind = rng.randint(6)
    if kind == 0:
        parts.append(str(rng.randint(0, 100000)))
    elif kind == 1:
        parts.append(f"{rng.randint(1990, 2030)}-{rng.randint(1, 13):02d}-{rng.randint(1, 29):02d}")
    elif kind == 2:
        parts.append(f"${rng.randint(1, 1000)}.{rng.randint(100):02d}")
    elif kind == 3:
        parts[0] = parts[0].capitalize()
        parts[-1] += "."
    elif kind == 4:
        parts.insert(rng.randint(len(parts) + 1), f"({rng.randint(1, 100)}%)")
    return " ".join(parts)


def render(text, font):
    """Grey uint8 image of text, cropped to the ink with a margin, scaled to height H."""
    box = font.getbbox(text)
    img = Image.new("L", (box[2] - box[0] + 16, box[3] - box[1] + 12), 255)
    ImageDraw.Draw(img).text((8 - box[0], 6 - box[1]), text, font=font, fill=0)
    w = max(1, round(img.width * H / img.height))
    return np.asarray(img.resize((w, H), Image.BILINEAR)) if w <= W else None


def to_model_input(grey, width):
    """PP-OCR rec input [3, H, W]: RGB (grey repeated), (x/255 - 0.5)/0.5, zero right padding."""
    x = np.zeros((3, H, W), dtype=np.float32)
    x[:, :, :width] = (grey[None, :, :width].astype(np.float32) / 255.0 - 0.5) / 0.5
    return x


def main():
    rng = np.random.RandomState(SEED)
    words = vocabulary()
    fonts = [ImageFont.truetype(os.path.join(FONT_DIR, f), 40) for f in FONTS]
    texts, widths, fonts_used = [], [], []
    grey = np.full((N_LINES, H, W), 128, dtype=np.uint8)
    while len(texts) < N_LINES:
        text, fi = make_text(rng, words), rng.randint(len(fonts))
        img = render(text, fonts[fi])
        if img is None:  # wider than 320 after scaling: PP-OCR would squeeze it; draw another
            continue
        grey[len(texts), :, :img.shape[1]] = img
        texts.append(text)
        widths.append(int(img.shape[1]))
        fonts_used.append(FONTS[fi])

    common.save_npy(os.path.join(HERE, "lines_u8.npy"), grey)
    common.save_json(os.path.join(HERE, "lines_text.json"),
                     {"texts": texts, "widths": widths, "fonts": fonts_used,
                      "format": "PP-OCR rec: RGB, (x/255-0.5)/0.5, height 48, right-padded with 0 "
                                "to width 320"})
    common.save_npy(os.path.join(HERE, "lines_x.npy"),
                    np.stack([to_model_input(grey[i], widths[i]) for i in range(N_FLOAT)]))

    res = subprocess.run(["node", os.path.join(HERE, "eval.js"),
                          os.path.join(ROOT, "models", "corpus", "ppocr4_rec.onnx")],
                         capture_output=True, text=True)
    if res.returncode != 0:
        sys.exit(f"eval.js failed: {res.stderr.strip()}")
    result = json.loads(res.stdout.strip().splitlines()[-1])
    metrics = {"model": "models/corpus/ppocr4_rec.onnx", "lines": N_LINES,
               "char_accuracy": result["char_accuracy"],
               "char_accuracy_no_space": result["char_accuracy_no_space"],
               "line_accuracy": result["line_accuracy"],
               "errors": result["errors"]}
    common.save_json(os.path.join(HERE, "metrics.json"), metrics)
    print({k: metrics[k] for k in ("char_accuracy", "line_accuracy")})


if __name__ == "__main__":
    main()
