#!/usr/bin/env bash
# Layering check: every project include in a layer names that layer or one below it.
#   graph <- engine <- {prune, quantize} <- compressor <- {cli, python}
# (The link side is checked by the oc_layer_check_* shared objects in CMakeLists.txt.)
set -euo pipefail
root=${1:-$(cd "$(dirname "$0")/.." && pwd)}
declare -A allowed=(
  [graph]="graph"
  [engine]="graph engine"
  [prune]="graph engine prune"
  [quantize]="graph engine quantize"
  [compressor]="graph engine prune quantize compressor"
)
bad=0
for layer in "${!allowed[@]}"; do
  while IFS= read -r line; do
    file=${line%%:*}
    inc=$(sed -E 's/.*#include "([^/"]+)\/.*/\1/' <<<"${line#*:}")
    ok=0
    for a in ${allowed[$layer]}; do [ "$inc" = "$a" ] && ok=1; done
    if [ "$ok" = 0 ]; then echo "layering: ${file#$root/} ($layer) includes $inc/"; bad=1; fi
  done < <(grep -rHE '^\s*#\s*include "[a-z_]+/' "$root/$layer" --include='*.h' --include='*.cpp' --include='*.cu' || true)
done
[ "$bad" = 0 ] && echo "layering: ok (${!allowed[*]})"
exit "$bad"
