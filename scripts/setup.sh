#!/usr/bin/env bash
# Installs everything onnx-compress needs to build and test on Debian 12.
# Idempotent: does nothing when all packages and node modules are already present.
set -euo pipefail
cd "$(dirname "$0")/.."

PKGS=(build-essential cmake pkg-config
      libonnx-dev libprotobuf-dev protobuf-compiler
      libeigen3-dev libdnnl-dev ocl-icd-opencl-dev opencl-c-headers
      libboost-program-options-dev catch2 nlohmann-json3-dev zlib1g-dev libssl-dev libpng-dev libjpeg-dev
      libonnx-testdata
      pybind11-dev python3-dev python3-venv python3-pytest python3-numpy python3-setuptools python3-wheel
      chromium)
command -v node >/dev/null 2>&1 || PKGS+=(nodejs)
command -v npm  >/dev/null 2>&1 || PKGS+=(npm)
for extra in "$@"; do PKGS+=("$extra"); done

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# onnxruntime-node is the reference runtime for tests. Its postinstall would try to
# download GPU add-ons, which fails offline: .npmrc skips it.
if [ ! -d tests/node/node_modules/onnxruntime-node ]; then
  echo "setup: installing onnxruntime-node"
  (cd tests/node && ONNXRUNTIME_NODE_INSTALL=skip npm ci --no-audit --no-fund --loglevel=error)
fi
