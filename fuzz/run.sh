#!/usr/bin/env bash
# Builds the loader fuzzer (fuzz/load_fuzzer.cpp) with clang + libFuzzer + ASan/UBSan and runs it.
# NOT part of CI: a manual robustness check of graph/ (load, normalize, save) against hostile files.
#
#   bash fuzz/run.sh [SECONDS=300] [JOBS=1]
#
# Seeds: models/corpus/*.onnx and models/*/model.onnx (libFuzzer cuts inputs to -max_len, so big seeds
# also act as truncated models). Build, generated inputs and crashes live in $FUZZ_WORK (default
# /tmp/oc-fuzz), outside the repository; a crash input is written to $FUZZ_WORK/crashes/.
# Needs clang and libclang-rt-14-dev (apt-get install clang libclang-rt-14-dev).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
secs=${1:-300}
jobs=${2:-1}
work=${FUZZ_WORK:-/tmp/oc-fuzz}
mkdir -p "$work/corpus" "$work/crashes" "$work/seeds"
CXX=${CXX:-clang++}
command -v "$CXX" >/dev/null || { echo "fuzz: $CXX not found (apt-get install clang libclang-rt-14-dev)" >&2; exit 1; }

bin="$work/load_fuzzer"
srcs=("$root"/graph/*.cpp "$root"/engine/npy.cpp "$root"/fuzz/load_fuzzer.cpp)
newest=$(ls -t "${srcs[@]}" "$root"/graph/*.h | head -1)
if [ ! -x "$bin" ] || [ "$newest" -nt "$bin" ]; then
  echo "fuzz: building $bin"
  flags=(-std=c++17 -O1 -g -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
         -DONNX_ML=1 -DONNX_NAMESPACE=onnx -I"$root" -I/usr/include/eigen3)
  objs=()
  for s in "${srcs[@]}"; do
    o="$work/obj/$(basename "$s" .cpp).o"
    mkdir -p "$work/obj"
    if [ ! -f "$o" ] || [ "$s" -nt "$o" ] || [ "$newest" -nt "$o" ]; then
      "$CXX" "${flags[@]}" -c "$s" -o "$o" &
      # two at a time: the CI box has 2 cores
      while [ "$(jobs -rp | wc -l)" -ge "${FUZZ_BUILD_JOBS:-2}" ]; do wait -n; done
    fi
    objs+=("$o")
  done
  wait
  "$CXX" "${flags[@]}" "${objs[@]}" -o "$bin" -lonnx_proto -lprotobuf -lz -lpthread
fi

for f in "$root"/models/corpus/*.onnx "$root"/models/*/model.onnx; do
  [ -f "$f" ] && cp -f "$f" "$work/seeds/$(basename "$(dirname "$f")")_$(basename "$f")"
done
echo "fuzz: running for ${secs}s (inputs in $work/corpus, crashes in $work/crashes)"
# -rss_limit_mb: the loader must refuse absurd shapes instead of allocating them.
# -max_len: corpus models are up to ~11 MB; mutations of the big ones are slow, 1 MB keeps
# the rate up while the seeds still load whole.
# -jobs writes fuzz-N.log into the current folder: run from $work so nothing lands in the repository.
par=()
[ "$jobs" -gt 1 ] && par=(-jobs="$jobs" -workers="$jobs")
cd "$work"
ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=0} \
"$bin" -max_total_time="$secs" -rss_limit_mb=4096 -malloc_limit_mb=2048 -timeout=20 -max_len=1048576 \
  "${par[@]}" -artifact_prefix="$work/crashes/" -print_final_stats=1 \
  "$work/corpus" "$work/seeds"
