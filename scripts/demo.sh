#!/usr/bin/env bash
# Sets up everything, builds, and runs the main job on a bundled model with a readable summary.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh >&2
bash models/fetch-corpus.sh >&2
bash scripts/build.sh >&2
MODEL=${1:-models/corpus/ppocr2_cls.onnx}
mkdir -p out
./build/onnx-compress inspect "$MODEL"
./build/onnx-compress convert "$MODEL" -o out/normalized.onnx
