// Channels-last (NHWC) storage between convolutions, inside the CPU executor.
//
// oneDNN's fast convolution kernels (brgconv, brdgmm depthwise) work on N,H,W,C data; fed plain
// N,C,H,W tensors, every Conv pays a reorder in and a reorder out, and depthwise convs run on a
// hand-written NCHW loop — together most of a MobileNet's time. So in a plain inference run (no
// value hook watching), a Conv may leave its output channels-last: the Tensor keeps its logical
// dims [N,C,H,W] while its bytes are in N,H,W,C order, and the executor records that beside the
// value. Each operator says in one table entry (layout_use) what it does with such a value:
//   Transparent — an elementwise op: runs on the bytes as they are. When its inputs that are not
//                 single elements are channels-last at one dims D, per-channel ([1|N, C, 1, 1]) or
//                 plain float at D (converted to a channels-last copy), the output is channels-last.
//   Aware       — the kernel reads KernelContext::in_channels_last and may set out_channels_last
//                 (Conv, pooling, GlobalAveragePool).
//   ShapeOnly   — reads only the dims (Shape, Size): inputs as they are, outputs plain.
//   Plain       — everything else: the executor converts its channels-last inputs to N,C,H,W first
//                 (once per value: the stored value itself is converted).
// Graph outputs and subgraph reads always see N,C,H,W; a value hook sees an N,C,H,W copy, or the
// value as stored where its statistic ignores element order (Executor::run's any_order).
#pragma once
#include "graph/ir.h"

namespace oc {

enum class LayoutUse { Plain, Transparent, Aware, ShapeOnly };

LayoutUse layout_use(const Node& n);

// A rank-4 float tensor whose bytes are N,H,W,C, rewritten in place to N,C,H,W bytes (dims unchanged).
void channels_last_to_plain(Tensor& t);
// The reverse: N,C,H,W bytes rewritten to N,H,W,C.
void plain_to_channels_last(Tensor& t);

}  // namespace oc
