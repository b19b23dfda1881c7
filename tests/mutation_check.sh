#!/usr/bin/env bash
# Mutation check: "a test would catch it", itself tested. Applies one-line source mutations, each a
# plausible bug (an inverted criterion order, a compensation sign, a wrong QDQ scale), to a copy of
# the tree, rebuilds the tests there and expects the named tests to FAIL for every mutation. The
# real tree is never edited: the copy lives in a temporary folder beside the repository (same
# depth, so with CCACHE_BASEDIR set to the parent, ccache serves the unchanged files from the main
# build) and is removed on exit, whatever happens.
#
#   bash tests/mutation_check.sh            # run from anywhere; needs the corpus and node_modules
#   OC_MUTATION_KEEP=1 ...                  # keep the copy for inspection
#   OC_MUTATION_SRC=DIR OC_MUTATION_BUILD=DIR ...   # mutate a scratch copy you built already (say a
#                                           # git worktree) in place, restoring each file after
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
parent=$(dirname "$repo")
work=$(mktemp -d "$parent/.oc-mutation-XXXXXX" 2>/dev/null || mktemp -d)  # beside the tree: ccache hits
mutated=""  # the file under mutation, restored from $mutated.orig whatever happens
cleanup() {
  if [ -n "$mutated" ] && [ -f "$mutated.orig" ]; then mv "$mutated.orig" "$mutated"; fi
  if [ "${OC_MUTATION_KEEP:-0}" = 1 ]; then echo "kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
export CCACHE_BASEDIR="$parent"

if [ -n "${OC_MUTATION_SRC:-}" ]; then
  src=$(cd "$OC_MUTATION_SRC" && pwd)
  build=$(cd "${OC_MUTATION_BUILD:?set OC_MUTATION_BUILD with OC_MUTATION_SRC}" && pwd)
  [ "$src" != "$repo" ] || { echo "OC_MUTATION_SRC must be a scratch copy, not this tree"; exit 2; }
else
  src="$work/src"
  mkdir -p "$src"
  # The files git tracks, as they are in the working tree (uncommitted edits included).
  (cd "$repo" && git ls-files -z | xargs -0 cp --parents -t "$src" 2>/dev/null || true)
  # Ignored inputs the tests read: linked, never copied or written.
  for p in models/corpus models/zoo tests/node/node_modules; do
    if [ -e "$repo/$p" ]; then ln -sfn "$repo/$p" "$src/$p"; fi
  done
  build="$src/build"
  launcher=(); command -v ccache >/dev/null 2>&1 && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
  cmake -S "$src" -B "$build" -DCMAKE_BUILD_TYPE=Release "${launcher[@]}" >/dev/null
fi
jobs=$(nproc)
rebuild() { cmake --build "$build" -j"$jobs" --target oc_tests onnx-compress >"$work/build.log" 2>&1 || { tail -30 "$work/build.log"; return 1; }; }
echo "== mutation check: building the unmutated copy"
rebuild

# name | file | exact text | replacement | Catch2 test spec that must fail (a few fast tests, not
# whole tags: each mutation costs a compile, two links and this run)
# A new file here goes into OC_SEPARATE_SOURCES (CMakeLists.txt): outside a unity batch, a mutation
# recompiles that file alone.
mutations=(
  "l1 order inverted|prune/importance.cpp|case Criterion::L1: return slice_sums(*t, p.axis).l1;|case Criterion::L1: { auto s = slice_sums(*t, p.axis).l1; for (auto& x : s) x = 1.0 / (1e-9 + x); return s; }|[criteria]"
  "activation divides by the norm|prune/importance.cpp|s[c] *= it->second.l2(c);|s[c] /= it->second.l2(c);|[criteria]"
  "bn ranks by the wrong sign|prune/importance.cpp|return std::vector<double>(v.begin(), v.end());|{ std::vector<double> r(v.begin(), v.end()); for (auto& x : r) x = 1.0 / (1e-9 + std::fabs(x)); return r; }|[criteria]"
  "compensation sign flipped|prune/compensate.cpp|const Mat sol = spd_solve_product(A, B, W.leftCols(nall));|const Mat sol = -spd_solve_product(A, B, W.leftCols(nall));|prune compensation reduces the output error,compensation damping*"
  "QDQ scale off by 10%|quantize/export.cpp|std::vector<float> scales = q.scales;|std::vector<float> scales = q.scales; for (auto& s : scales) s *= 1.1f;|small_cnn quantized in every format*,recipe int8 on fashion_cnn"
  "dynamic int8 re-quantized without the pair limit|quantize/export.cpp|per_channel.pair_limit = ql.q.layout.pair_limit;|per_channel.pair_limit = 0;|MatMulNBits format: 4-bit layers ask for fp32 compute*"
  "int8 weights at full range for AVX2|quantize/quantize.cpp|!weight_only && l.pair_taps > 0) l.pair_limit = opt.pair_limit;|!weight_only && l.pair_taps > 0) l.pair_limit = 0;|8-bit weights multiplied with uint8 activations*"
  "gptq ignores the pair limit|quantize/gptq.cpp|const bool clamp_pair = partner >= 0 && done[partner];|const bool clamp_pair = false;|8-bit pairs that ORT's AVX2*"
)

status=0
for m in "${mutations[@]}"; do
  IFS='|' read -r name file from to spec <<<"$m"
  f="$src/$file"
  cp -p "$f" "$f.orig"
  mutated="$f"
  if ! FROM="$from" TO="$to" perl -0pi -e '$n = s/\Q$ENV{FROM}\E/$ENV{TO}/g; END { exit($n == 1 ? 0 : 3) }' "$f"; then
    echo "STALE  $name: the text to mutate is not in $file exactly once (update tests/mutation_check.sh)"
    status=1
    mv "$f.orig" "$f"
    mutated=""
    continue
  fi
  if ! rebuild; then
    echo "ERROR  $name: the mutated tree does not build"
    status=1
  elif (cd "$build" && ./tests/oc_tests "$spec" >"$work/run.log" 2>&1); then
    echo "MISSED $name ($file): $spec still passes"
    status=1
  else
    echo "caught $name: $(grep -E '^test cases:' "$work/run.log" | tail -1)"
  fi
  mv "$f.orig" "$f"
  mutated=""
  touch "$f"  # newer than the mutated object: the next build recompiles it (a ccache hit)
done
if [ $status -ne 0 ]; then echo "mutation check FAILED"; else echo "mutation check: every mutation was caught"; fi
exit $status
