// Conv and pool window geometry along one spatial axis: the padding auto_pad resolves to and the
// output length, as ONNX Runtime computes them. Shared by shape inference, the CPU kernels, the
// CUDA ops and the observers' Conv Gram, so they agree on every shape.
//
// Callers keep their own error handling: the CPU kernels refuse a window larger than the padded
// input, the CUDA ops fall back to the CPU, the observers trust shapes the executor produced.
#pragma once
#include <algorithm>
#include <cstdint>
#include <optional>
#include <string>

namespace oc {

enum class AutoPad { NotSet, Valid, SameUpper, SameLower };

// "NOTSET" and "" are NotSet; nullopt for any other unknown value.
inline std::optional<AutoPad> parse_auto_pad(const std::string& s) {
  if (s == "NOTSET" || s.empty()) return AutoPad::NotSet;
  if (s == "VALID") return AutoPad::Valid;
  if (s == "SAME_UPPER") return AutoPad::SameUpper;
  if (s == "SAME_LOWER") return AutoPad::SameLower;
  return std::nullopt;
}

inline bool is_same_pad(AutoPad ap) { return ap == AutoPad::SameUpper || ap == AutoPad::SameLower; }

// Extent of a dilated window: (kernel − 1)·dilation + 1.
inline int64_t window_span(int64_t kernel, int64_t dilation) { return (kernel - 1) * dilation + 1; }

// ceil_mode keeps a last window only when it starts inside the input or its begin padding.
inline bool window_starts_in_end_pad(int64_t out, int64_t in, int64_t pad_begin, int64_t stride) {
  return (out - 1) * stride >= in + pad_begin;
}

struct WindowAxis {
  int64_t in = 1, kernel = 1, stride = 1, dilation = 1;
  int64_t pad_begin = 0, pad_end = 0;  // the pads attribute; replaced for VALID and SAME_*
};

struct WindowAxisGeometry {
  int64_t pad_begin = 0, pad_end = 0, out = 0;
  // SAME_*: the total padding out = ceil(in / stride) needs, before clamping at 0 (negative when
  // the window is smaller than the stride); 0 otherwise.
  int64_t same_total = 0;
  bool fits = true;  // the window fits in the padded input (out is meaningless otherwise)
};

// SAME_* pads total out = ceil(in / stride); the odd unit goes to the end for SAME_UPPER, to the
// start for SAME_LOWER. Pools size SAME pads by the undilated kernel (ONNX Runtime's legacy rule),
// convs by the dilated span. ceil_mode (pools) rounds the output up, less a last window that would
// start in the end padding.
inline WindowAxisGeometry window_axis(const WindowAxis& w, AutoPad ap, bool pool, bool ceil_mode) {
  WindowAxisGeometry g;
  const int64_t span = window_span(w.kernel, w.dilation);
  g.pad_begin = ap == AutoPad::NotSet ? w.pad_begin : 0;
  g.pad_end = ap == AutoPad::NotSet ? w.pad_end : 0;
  if (is_same_pad(ap)) {
    const int64_t target = (w.in + w.stride - 1) / w.stride;
    g.same_total = (target - 1) * w.stride + (pool ? w.kernel : span) - w.in;
    const int64_t total = std::max<int64_t>(0, g.same_total);
    g.pad_begin = ap == AutoPad::SameUpper ? total / 2 : total - total / 2;
    g.pad_end = total - g.pad_begin;
  }
  const int64_t num = w.in + g.pad_begin + g.pad_end - span;
  g.fits = num >= 0;
  g.out = num / w.stride + 1;
  if (ceil_mode && g.fits) {
    g.out = (num + w.stride - 1) / w.stride + 1;
    if (window_starts_in_end_pad(g.out, w.in, g.pad_begin, w.stride)) --g.out;
  }
  return g;
}

}  // namespace oc
