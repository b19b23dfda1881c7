#!/bin/bash
# issue 15 point 9: task metric vs stored bits with the defaults (--calib), and prune + quantize.
# usage (repository root): bench/quant_bits_table.sh build/onnx-compress OUTDIR fashion_cnn gpt_tiny bert_tiny ppocr4_rec
# prints one line per run: file size and the models/evaluate.py JSON, or the one-line refusal
B=$1; O=$2; shift 2
mkdir -p $O
for M in "$@"; do
  case $M in
    ppocr4_rec) SRC=models/corpus/ppocr4_rec.onnx; CAL=models/ocr_lines/lines_x.npy; EV=ocr_lines;;
    *) SRC=models/$M/model.onnx; CAL=models/$M/calib.npy; EV=$M;;
  esac
  for T in "--bits 8" "--bits 4" "--avg-bits 3.25" "--avg-bits 2.5" "--bits 2" "prune"; do
    tag=$M.$(echo $T | tr -d ' -')
    if [ "$T" = prune ]; then
      $B prune $SRC -o $O/$tag.p.onnx --target-macs 0.7 --calib $CAL > $O/$tag.log 2>&1 &&
      $B quantize $O/$tag.p.onnx -o $O/$tag.onnx --format matmulnbits --bits 4 --calib $CAL --report $O/$tag.json >> $O/$tag.log 2>&1
    else
      $B quantize $SRC -o $O/$tag.onnx --format matmulnbits $T --calib $CAL --report $O/$tag.json > $O/$tag.log 2>&1
    fi
    rc=$?
    if [ $rc = 0 ]; then
      r=$(/usr/bin/python3 models/evaluate.py $EV $O/$tag.onnx 2>&1 | tail -1)
      echo "$tag size=$(stat -c %s $O/$tag.onnx) $r"
    else
      echo "$tag FAILED: $(grep -v '^$' $O/$tag.log | tail -1)"
    fi
  done
  echo "$M float size=$(stat -c %s $SRC) $(/usr/bin/python3 models/evaluate.py $EV $SRC 2>&1 | tail -1)"
done
