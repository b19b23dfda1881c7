#!/usr/bin/env bash
# Sets up everything, builds, and runs the main job on the bundled Fashion-MNIST CNN:
# activation-aware pruning of 30% of the MACs with least-squares compensation, then 8-bit weights,
# measured on 1500 held-out test images. Prints the summary; reports go to out/.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh >&2
bash scripts/build.sh >&2
mkdir -p out
./build/onnx-compress compress models/fashion_cnn/model.onnx -o out/fashion_cnn.compressed.onnx \
  --recipe prune30-obs-int8 --calib models/fashion_cnn/calib.npy \
  --eval models/fashion_cnn/test_x.npy --labels models/fashion_cnn/test_y.npy --eval-samples 1500 \
  --report out/report.json --html out/report.html
echo
echo "reports: out/report.json, out/report.html; compressed model: out/fashion_cnn.compressed.onnx"
