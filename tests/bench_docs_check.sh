#!/usr/bin/env bash
# docs/BENCHMARKS.md is generated from bench/results.json: a row names the commit of the binary
# that produced it and is marked (older) when the library code at that commit differs from HEAD's,
# the header counts those rows, prose numbers are read from the rows, and a failed task metric
# reads FAILED with its reason (never a dash). Checked on a synthetic results file.
set -euo pipefail
root=${1:-$(cd "$(dirname "$0")/.." && pwd)}
tmp=$(mktemp -d)
trap "rm -rf $tmp" EXIT
head=$(git -C "$root" rev-parse --short HEAD)
cat >"$tmp/results.json" <<JSON
{"created": "2026-12-01T00:00Z", "commit": "$head", "machine": "test machine",
 "runs": [
  {"model": "fashion_cnn", "recipe": "int8", "commit": "$head", "command": "c1", "metric_name": "accuracy",
   "metric_before": 0.9267, "metric_after": {"error": "evaluate.py: model has no output named logits"},
   "file_bytes_before": 1000, "file_bytes_after": 500, "params_before": 10, "params_after": 10,
   "macs_before": 100, "macs_after": 100, "cosine": 0.99, "top1_agreement": 0.98,
   "ort_latency_ms_before": 1.0, "ort_latency_ms_after": 0.5, "compress_wall_s": 1.0,
   "time_ratio_to_io_floor": 10.0, "peak_rss_bytes": 1048576},
  {"model": "gpt_tiny", "recipe": "int8", "commit": "0000000", "command": "c2", "metric_name": "perplexity",
   "metric_before": 6.19, "metric_after": 6.20, "file_bytes_before": 1000, "file_bytes_after": 400,
   "params_before": 10, "params_after": 10, "macs_before": 100, "macs_after": 100, "cosine": 0.999,
   "top1_agreement": 0.99, "ort_latency_ms_before": 3.0, "ort_latency_ms_after": 2.0,
   "compress_wall_s": 1.0, "time_ratio_to_io_floor": 10.0, "peak_rss_bytes": 1048576}],
 "deploy": [
  {"model": "resnet50", "recipe": "int8", "commit": "$head", "command": "c3", "ort_command": "o3",
   "deployment": {"integer_layers": 54, "compute_layers": 54, "integer_ops": {"QLinearConv": 53}},
   "ort": {"1": {"rounds": 20, "before": {"median_ms": 90.0, "min_ms": 88.0},
                 "after": {"median_ms": 27.3, "min_ms": 26.0}, "speedup": 3.2967, "speedup_min": 3.3846}},
   "cosine": 0.9998}]}
JSON
OC_BENCH_RESULTS="$tmp/results.json" OC_BENCH_DOC="$tmp/BENCH.md" /usr/bin/python3 "$root/bench/run" --docs-only
doc="$tmp/BENCH.md"
fail() { echo "bench_docs_check: $*" >&2; exit 1; }
grep -q "written at HEAD \`$head\`. 1 of 3 rows come from a binary older than HEAD" "$doc" \
  || fail "the header does not count the one row older than HEAD"
grep -q "| \`0000000\` | ? | 1 | recipes | unknown commit |" "$doc" || fail "no provenance line for the unknown commit"
grep -q "| gpt_tiny | int8 .*| \`0000000\` (older: commit unknown here) |" "$doc" || fail "the older row is not marked (older)"
grep -q "| fashion_cnn | int8 .*| \`$head\` |" "$doc" || fail "a HEAD row lacks its commit"
grep -q "0.9267 → FAILED: evaluate.py: model has no output named logits" "$doc" \
  || fail "a failed metric is not written as FAILED with its reason"
grep -q "resnet50 3.30× (3.38×)" "$doc" || fail "the deployment prose does not read its numbers from the rows"
grep -q "mobilenet_v2 (no row)" "$doc" || fail "the prose does not say a row is missing"
echo "bench_docs_check: ok"
