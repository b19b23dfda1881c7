// Lossless shrinking of constant tensors that are not weights (attention masks and the like), so a
// quantized file is not dominated by the floats no quantizer touches:
//
//   1. identical initializers (same type, dims and bytes, ≥ 1 KiB) become one; every reader takes
//      the first (gpt_tiny's four blocks each carry the same 128×128 causal mask);
//   2. a float32 initializer of ≥ 1024 elements holding exactly two values a, b is computed as
//        Where(mask, a, b)
//      where mask is
//        - Cast<bool>(Trilu(Expand(1.0, dims), upper, k)) when the a-positions form the same
//          triangle (j − i ≥ k upper, j − i ≤ k lower, over the last two axes) in every leading
//          index: no bytes at all (opset ≥ 14, Trilu's);
//        - else a bool initializer (1 byte per element instead of 4).
//      The Where keeps the tensor's name, so readers (nested graphs included) are unchanged, and
//      ONNX Runtime constant-folds it at session start: the run computes what it did before.
//
// Left alone: graph inputs and outputs (a caller may override or read them), tensors read as a
// Conv/ConvTranspose/MatMul/Gemm weight or a Gather table (the quantizer's), tensors nested graphs
// read (dedupe renames readers in the main graph only).
#pragma once
#include <string>

#include "graph/ir.h"

namespace oc {

struct CompactResult {
  int merged = 0;          // duplicate initializers removed
  int computed = 0;        // two-valued tensors rebuilt from Trilu (no bytes)
  int as_bool = 0;         // two-valued tensors stored as a bool mask
  int64_t bytes_saved = 0; // initializer bytes removed (the new bool masks subtracted)
  std::string summary() const;  // one line, "" when nothing changed
};

CompactResult compact_constants(Model& m);

}  // namespace oc
