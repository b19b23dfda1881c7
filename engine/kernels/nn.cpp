// Heavy NN kernels of the CPU executor: convolutions, matrix products and pooling run on oneDNN;
// normalizations and softmax are short Eigen/loop code (memory-bound, oneDNN adds nothing there).
//
//   Conv:           y[n,m,o] = b[m] + Σ_{c∈group(m), k} w[m,c,k] · x[n,c, o·s + k·d − pad_l]
//   ConvTranspose:  the adjoint of Conv: x scattered through w, out = s·(in−1) + adj + d·(k−1) + 1 − pads
//   MatMul:         numpy matmul (batch dims broadcast, 1-D operands promoted then squeezed)
//   Gemm:           Y = α·op(A)·op(B) + β·C   (C unidirectionally broadcast to [M,N])
//   Pool:           max / mean over the window (padding excluded unless count_include_pad)
//   Norms:          y = (x − μ) / √(σ² + ε) · γ + β over the op's reduction set
//   Softmax:        y_i = e^{x_i − max} / Σ e^{x_j − max}  (LogSoftmax: x_i − max − log Σ)
//   LRN:            y = x / (bias + α/size · Σ_{window over channels} x²)^β
#include <Eigen/Core>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <numeric>
#include <utility>

#include "engine/channels_last.h"
#include "engine/kernel.h"
#include "engine/kernels/common.h"
#include "engine/buffer_pool.h"
#include "engine/kernels/dnnl_util.h"
#include "engine/kernels/vecmath.h"
#include "graph/conv_geometry.h"

namespace oc {
namespace {

using namespace oc::dnnl_util;
using RowMat = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

using kern::numel;

const Tensor& f32_input(const KernelContext& ctx, size_t i) {
  const Tensor& t = ctx.input(i);
  if (t.dtype != DType::Float) ctx.unsupported("input " + std::to_string(i) + " of type " + dtype_name(t.dtype) + " (float32 only)");
  return t;
}
const Tensor* f32_optional(const KernelContext& ctx, size_t i) { return ctx.has_input(i) ? &f32_input(ctx, i) : nullptr; }

// Output k as float32 of `dims`, zeroed unless `zero` is false (the kernel writes every element).
Tensor& new_f32(KernelContext& ctx, size_t k, const std::vector<int64_t>& dims, bool zero = true) {
  Tensor& t = ctx.output(k);
  t = Tensor{};
  t.name = ctx.node.outputs.at(k);
  t.dtype = DType::Float;
  t.dims = dims;
  t.bytes = buffer_pool::take(static_cast<size_t>(numel(dims)) * sizeof(float), zero);
  return t;
}
bool wants_output(const KernelContext& ctx, size_t k) { return k < ctx.node.outputs.size() && !ctx.node.outputs[k].empty(); }

int64_t norm_axis(const KernelContext& ctx, int64_t axis, size_t rank) {
  const int64_t r = static_cast<int64_t>(rank);
  if (axis < -r || axis >= std::max<int64_t>(r, 1)) ctx.unsupported("axis " + std::to_string(axis) + " for rank " + std::to_string(r));
  return axis < 0 ? axis + r : axis;
}

// Values of `t` broadcast (numpy, right-aligned) to `target`.
std::vector<float> broadcast_to(const KernelContext& ctx, const Tensor& t, const std::vector<int64_t>& target) {
  const std::vector<float> v = t.to_float();
  if (t.dims == target) return v;
  if (t.dims.size() > target.size()) ctx.unsupported("cannot broadcast " + shape_str(t.dims) + " to " + shape_str(target));
  const size_t r = target.size(), off = r - t.dims.size();
  std::vector<int64_t> src_stride(r, 0);
  int64_t s = 1;
  for (size_t i = r; i-- > off;) {
    const int64_t d = t.dims[i - off];
    if (d != 1 && d != target[i]) ctx.unsupported("cannot broadcast " + shape_str(t.dims) + " to " + shape_str(target));
    src_stride[i] = d == 1 ? 0 : s;
    s *= d;
  }
  std::vector<float> out(static_cast<size_t>(numel(target)));
  std::vector<int64_t> idx(r, 0);
  for (size_t o = 0; o < out.size(); ++o) {
    int64_t si = 0;
    for (size_t i = 0; i < r; ++i) si += idx[i] * src_stride[i];
    out[o] = v[static_cast<size_t>(si)];
    for (size_t i = r; i-- > 0;) {
      if (++idx[i] < target[i]) break;
      idx[i] = 0;
    }
  }
  return out;
}

using dnnl_util::guarded;

// ---------------------------------------------------------------- window geometry

AutoPad auto_pad_of(const KernelContext& ctx) {
  const std::string s = ctx.node.attr_string("auto_pad", "NOTSET");
  const std::optional<AutoPad> ap = parse_auto_pad(s);
  if (!ap) ctx.unsupported("auto_pad " + s);
  return *ap;
}

struct Window {
  std::vector<int64_t> kernel, strides, dilations, pad_l, pad_r, out;
};

// Reads kernel_shape/strides/dilations/pads with their defaults for `sp` spatial dims.
Window read_window(const KernelContext& ctx, size_t sp, const std::vector<int64_t>& kernel) {
  Window w;
  w.kernel = ctx.node.attr_ints("kernel_shape", kernel);
  w.strides = ctx.node.attr_ints("strides", std::vector<int64_t>(sp, 1));
  w.dilations = ctx.node.attr_ints("dilations", std::vector<int64_t>(sp, 1));
  std::vector<int64_t> pads = ctx.node.attr_ints("pads", std::vector<int64_t>(2 * sp, 0));
  if (w.kernel.size() != sp || w.strides.size() != sp || w.dilations.size() != sp || pads.size() != 2 * sp)
    ctx.unsupported("kernel_shape/strides/dilations/pads do not match " + std::to_string(sp) + " spatial dims");
  for (size_t i = 0; i < sp; ++i)
    if (w.strides[i] < 1 || w.dilations[i] < 1 || w.kernel[i] < 1 || pads[i] < 0 || pads[sp + i] < 0)
      ctx.unsupported("non-positive stride/dilation/kernel or negative pad");
  w.pad_l.assign(pads.begin(), pads.begin() + static_cast<long>(sp));
  w.pad_r.assign(pads.begin() + static_cast<long>(sp), pads.end());
  return w;
}

WindowAxis window_axis_of(const Window& w, const std::vector<int64_t>& in, size_t i) {
  return {in[i], w.kernel[i], w.strides[i], w.dilations[i], w.pad_l[i], w.pad_r[i]};
}

// Conv output size and SAME padding (graph/conv_geometry.h).
void conv_geometry(const KernelContext& ctx, Window& w, const std::vector<int64_t>& in) {
  const AutoPad ap = auto_pad_of(ctx);
  w.out.resize(in.size());
  for (size_t i = 0; i < in.size(); ++i) {
    const WindowAxisGeometry g = window_axis(window_axis_of(w, in, i), ap, false, false);
    if (!g.fits) ctx.unsupported("kernel larger than padded input " + shape_str(in));
    w.pad_l[i] = g.pad_begin, w.pad_r[i] = g.pad_end, w.out[i] = g.out;
  }
}

// Pool output size as ONNX Runtime computes it (graph/conv_geometry.h): SAME pads ignore
// dilation (legacy), ceil_mode drops a last window that would start in the end padding.
void pool_geometry(const KernelContext& ctx, Window& w, const std::vector<int64_t>& in, bool ceil_mode) {
  const AutoPad ap = auto_pad_of(ctx);
  w.out.resize(in.size());
  for (size_t i = 0; i < in.size(); ++i) {
    const WindowAxisGeometry g = window_axis(window_axis_of(w, in, i), ap, true, ceil_mode);
    if (is_same_pad(ap) && g.same_total < 0) ctx.unsupported("SAME padding with kernel smaller than stride");
    if (!g.fits) ctx.unsupported("pooling window larger than padded input " + shape_str(in));
    w.pad_l[i] = g.pad_begin, w.pad_r[i] = g.pad_end, w.out[i] = g.out;
  }
}

// Padding on the high side that makes oneDNN's (in + l + r − kr)/s + 1 equal our output size.
std::vector<int64_t> effective_pad_r(const Window& w, const std::vector<int64_t>& in) {
  std::vector<int64_t> r(in.size());
  for (size_t i = 0; i < in.size(); ++i) {
    const int64_t kr = window_span(w.kernel[i], w.dilations[i]);
    r[i] = std::max(w.pad_r[i], (w.out[i] - 1) * w.strides[i] + kr - in[i] - w.pad_l[i]);
  }
  return r;
}

std::vector<int64_t> minus_one(std::vector<int64_t> v) {
  for (auto& x : v) --x;  // oneDNN counts dilation from 0
  return v;
}
std::string vec_key(const std::vector<int64_t>& v) { return dims_key(v); }

std::vector<int64_t> spatial(const std::vector<int64_t>& d) { return {d.begin() + 2, d.end()}; }

// ---------------------------------------------------------------- Conv / ConvTranspose

void dnnl_matmul(const dnnl::memory::desc& a_md, const void* a, const dnnl::memory::desc& b_md, const void* b,
                 const dnnl::memory::desc& c_md, void* c, const std::string& k,
                 const dnnl::memory::desc& bias_md = {}, const void* bias = nullptr,
                 const dnnl::primitive_attr& attr = {});

// A primitive created with format_tag::any and the layouts it chose.
struct LayoutPrimitive {
  dnnl::primitive prim;
  dnnl::memory::desc src, weights, dst;
};

// `data` (plain `md`) in layout `want`: itself when they agree, else a reordered copy in scratch `slot`.
const void* in_layout(const dnnl::memory::desc& md, const void* data, const dnnl::memory::desc& want, int slot,
                      const std::string& k) {
  if (want == md) return data;
  void* buf = scratch(slot, want.get_size());
  reorder(md, data, want, buf, k);
  return buf;
}

void check_spatial(const KernelContext& ctx, const Tensor& x, const Tensor& w) {
  if (x.dims.size() < 3 || x.dims.size() > 5) ctx.unsupported("input rank " + std::to_string(x.dims.size()) + " (1-D to 3-D spatial only)");
  if (w.dims.size() != x.dims.size()) ctx.unsupported("weight " + shape_str(w.dims) + " does not match input " + shape_str(x.dims));
}

// Depthwise 2-D conv directly on NCHW, one (n, c) plane per task: each output row accumulates
// w[c,kh,kw] · (input row ih, shifted by kw·d − pad and strided) over the range of ow whose input
// column lies inside the image. oneDNN's depthwise kernels want nhwc/blocked data, and the
// reorders in and out cost more than the convolution itself.
void depthwise_nchw(const KernelContext& ctx, const Tensor& x, const Tensor& w, const Tensor* b, const Window& win,
                    Tensor& y) {
  const int64_t N = x.dims[0], C = x.dims[1], H = x.dims[2], W = x.dims[3];
  const int64_t OH = win.out[0], OW = win.out[1], KH = win.kernel[0], KW = win.kernel[1];
  const int64_t sh = win.strides[0], sw = win.strides[1], dh = win.dilations[0], dw = win.dilations[1];
  const int64_t ph = win.pad_l[0], pw = win.pad_l[1];
  const float* xp = x.data<float>();
  const float* wp = w.data<float>();
  const float* bp = b ? b->data<float>() : nullptr;
  float* yp = y.data<float>();
  // Per kw: the first output column whose input column is ≥ 0, and one past the last that is < W.
  std::vector<int64_t> lo(static_cast<size_t>(KW)), hi(static_cast<size_t>(KW));
  for (int64_t kw = 0; kw < KW; ++kw) {
    const int64_t shift = kw * dw - pw;  // iw = ow·sw + shift
    lo[kw] = shift >= 0 ? 0 : std::min(OW, (-shift + sw - 1) / sw);
    hi[kw] = W - 1 - shift < 0 ? 0 : std::min(OW, (W - 1 - shift) / sw + 1);
  }
  kern::parallel_for(N * C, ctx.num_threads, [&](int64_t begin, int64_t end) {
    for (int64_t nc = begin; nc < end; ++nc) {
      const int64_t c = nc % C;
      const float* plane = xp + nc * H * W;
      const float* wc = wp + c * KH * KW;
      float* out = yp + nc * OH * OW;
      for (int64_t oh = 0; oh < OH; ++oh) {
        float* row = out + oh * OW;
        std::fill(row, row + OW, bp ? bp[c] : 0.f);
        for (int64_t kh = 0; kh < KH; ++kh) {
          const int64_t ih = oh * sh + kh * dh - ph;
          if (ih < 0 || ih >= H) continue;
          for (int64_t kw = 0; kw < KW; ++kw)
            if (hi[kw] > lo[kw])
              kern::axpy_strided(row + lo[kw], plane + ih * W + lo[kw] * sw + kw * dw - pw, hi[kw] - lo[kw], sw,
                                 wc[kh * KW + kw]);
        }
      }
    }
  }, std::max<int64_t>(2, kern::kParallelGrain / std::max<int64_t>(OH * OW * KH * KW, 1)));
}

// The fused activation over n values in place, vectorized (engine/kernels/vecmath.h).
void apply_fused_span(const FusedActivation& act, float* p, int64_t n) {
  using K = FusedActivation::Kind;
  constexpr float kInf = std::numeric_limits<float>::infinity();
  switch (act.kind) {
    case K::None: return;
    case K::Sigmoid: kern::sigmoid_array(p, p, n); return;
    case K::GeluErf: kern::gelu_erf_array(p, p, n); return;
    case K::GeluTanh: kern::gelu_tanh_array(p, p, n); return;
    case K::Swish: {
      float gate[256];
      for (int64_t i = 0; i < n; i += 256) {
        const int64_t m = std::min<int64_t>(256, n - i);
        kern::sigmoid_array(p + i, gate, m);
        for (int64_t j = 0; j < m; ++j) p[i + j] *= gate[j];
      }
      return;
    }
    case K::Relu: kern::clamp_affine_array(p, p, n, 1.f, 0.f, 0.f, kInf, false); return;
    case K::LeakyRelu: kern::leaky_relu_array(p, p, n, act.alpha); return;
    case K::Clip: kern::clamp_affine_array(p, p, n, 1.f, 0.f, act.lo, act.hi, false); return;
    case K::HardSigmoid: kern::clamp_affine_array(p, p, n, act.alpha, act.beta, 0.f, 1.f, false); return;
    case K::HardSwish: kern::clamp_affine_array(p, p, n, act.alpha, act.beta, 0.f, 1.f, true); return;
    case K::Linear: kern::clamp_affine_array(p, p, n, act.alpha, act.beta, -kInf, kInf, false); return;
  }
}

// The activation the executor fused into this Conv (engine/fusion.h), applied over y in place on
// the paths that do not run it as a oneDNN post-op.
void apply_fused(const KernelContext& ctx, Tensor& y) {
  if (!ctx.fused) return;
  const FusedActivation& act = *ctx.fused;
  float* p = y.data<float>();
  kern::parallel_for(y.numel(), ctx.num_threads, [&](int64_t begin, int64_t end) {
    apply_fused_span(act, p + begin, end - begin);
  });
}

// oneDNN attributes applying the fused activation as an eltwise post-op, and its cache-key part.
dnnl::primitive_attr fused_attr(const FusedActivation* fused) {
  dnnl::primitive_attr attr;
  if (!fused) return attr;
  const FusedActivation& a = *fused;
  dnnl::post_ops po;
  if (a.residual) po.append_sum(1.f);  // dst = conv + dst, dst holding the residual on entry
  using K = FusedActivation::Kind;
  using alg = dnnl::algorithm;
  switch (a.kind) {
    case K::Relu: po.append_eltwise(1.f, alg::eltwise_relu, 0.f, 0.f); break;
    case K::LeakyRelu: po.append_eltwise(1.f, alg::eltwise_relu, a.alpha, 0.f); break;
    case K::Clip: po.append_eltwise(1.f, alg::eltwise_clip, a.lo, a.hi); break;
    case K::Sigmoid: po.append_eltwise(1.f, alg::eltwise_logistic, 0.f, 0.f); break;
    case K::Swish: po.append_eltwise(1.f, alg::eltwise_swish, 1.f, 0.f); break;
    case K::HardSigmoid:  // clamp(αv+β, 0, 1) as two post-ops
      po.append_eltwise(1.f, alg::eltwise_linear, a.alpha, a.beta);
      po.append_eltwise(1.f, alg::eltwise_clip, 0.f, 1.f);
      break;
    case K::HardSwish: po.append_eltwise(1.f, alg::eltwise_hardswish, 0.f, 0.f); break;  // α = 1/6, β = 1/2 only (fusion.cpp)
    case K::GeluErf: po.append_eltwise(1.f, alg::eltwise_gelu_erf, 0.f, 0.f); break;
    case K::GeluTanh: po.append_eltwise(1.f, alg::eltwise_gelu_tanh, 0.f, 0.f); break;
    case K::Linear: po.append_eltwise(1.f, alg::eltwise_linear, a.alpha, a.beta); break;
    case K::None: break;
  }
  if (po.len() > 0) attr.set_post_ops(po);
  return attr;
}
std::string fused_key(const FusedActivation* f) {
  if (!f) return "-";
  return key(static_cast<int>(f->kind), f->alpha, f->beta, f->lo, f->hi, f->bias != nullptr, f->residual);
}
dnnl::primitive_attr fused_attr(const KernelContext& ctx) { return fused_attr(ctx.fused); }
std::string fused_key(const KernelContext& ctx) { return fused_key(ctx.fused); }

void conv(KernelContext& ctx) {
  const Tensor& x = f32_input(ctx, 0);
  const Tensor& w = f32_input(ctx, 1);
  const Tensor* b = f32_optional(ctx, 2);
  check_spatial(ctx, x, w);
  const int64_t g = ctx.node.attr_int("group", 1);
  const int64_t N = x.dims[0], C = x.dims[1], M = w.dims[0];
  if (g < 1 || C != w.dims[1] * g || M % g != 0)
    ctx.unsupported("channels " + std::to_string(C) + " / weight " + shape_str(w.dims) + " / group " + std::to_string(g) + " mismatch");
  const std::vector<int64_t> in = spatial(x.dims);
  Window win = read_window(ctx, in.size(), spatial(w.dims));
  if (win.kernel != spatial(w.dims)) ctx.unsupported("kernel_shape differs from the weight's spatial dims");
  conv_geometry(ctx, win, in);
  std::vector<int64_t> ydims = {N, M};
  ydims.insert(ydims.end(), win.out.begin(), win.out.end());
  const std::vector<int64_t> pr = effective_pad_r(win, in);
  bool pointwise = g == 1;
  for (size_t i = 0; i < win.kernel.size(); ++i)
    pointwise = pointwise && win.kernel[i] == 1 && win.strides[i] == 1 && win.pad_l[i] == 0 && pr[i] == 0;
  // Channels-last (engine/channels_last.h): a conv that reads N,H,W,C data writes it too, and so does
  // any but a 1x1 conv on plain data (it would reorder anyway), so chains stay channels-last.
  const bool in_cl = ctx.channels_last(0);
  const bool out_cl = ctx.allow_channels_last && ydims.size() == 4 && (in_cl || !pointwise);
  // A fused residual Add (engine/fusion.h) needs r at the output's dims; the plain-layout paths
  // below take it only as N,C,H,W bytes (oneDNN's path reorders it as needed).
  const Tensor* residual = ctx.fused && ctx.fused->residual ? ctx.residual : nullptr;
  const bool matmul_path = pointwise && !in_cl && !out_cl;
  const bool depthwise_path = g == C && M == C && in.size() == 2 && !in_cl && !out_cl;
  if (ctx.fused && ctx.fused->residual) {
    if (!residual || residual->dtype != DType::Float || residual->dims != ydims ||
        ((matmul_path || depthwise_path) && ctx.residual_channels_last)) {
      ctx.residual_declined = true;
      ctx.fused = nullptr, residual = nullptr;
    }
  }
  // Not zeroed: every path below writes each element (oneDNN primitives, the 1x1 matmul, the
  // depthwise loop's bias fill), and a pooled buffer's old bytes would cost a pass to clear.
  Tensor& y = new_f32(ctx, 0, ydims, /*zero=*/false);
  if (numel(ydims) == 0) return;

  std::vector<int64_t> wdims = w.dims;
  if (g > 1) {
    wdims = {g, M / g, C / g};
    wdims.insert(wdims.end(), win.kernel.begin(), win.kernel.end());
  }
  const auto src_md = plain_desc(to_dims(x.dims)), w_md = plain_desc(to_dims(wdims)), dst_md = plain_desc(to_dims(ydims));
  const auto b_md = b ? plain_desc({M}) : dnnl::memory::desc();
  if (b && b->numel() != M) ctx.unsupported("bias " + shape_str(b->dims) + " for " + std::to_string(M) + " output channels");
  if (matmul_path) {
    // A 1x1 conv on NCHW is a matrix product per image, y[n] (M×HW) = W (M×C) · x[n] (C×HW),
    // run as one batched matmul in the tensors' own layout, the bias added after.
    const int64_t HW = numel(in);
    const auto a_md = plain_desc({1, M, C}), x_md = plain_desc({N, C, HW}), y_md = plain_desc({N, M, HW});
    dnnl_matmul(a_md, w.bytes.data(), x_md, x.bytes.data(), y_md, y.bytes.data(), key("pwconv", N, M, C, HW));
    if (b || residual) {
      const float* bp = b ? b->data<float>() : nullptr;
      const float* rp = residual ? residual->data<float>() : nullptr;
      float* yp = y.data<float>();
      const FusedActivation* act = ctx.fused;
      kern::parallel_for(N * M, ctx.num_threads, [&](int64_t begin, int64_t end) {
        for (int64_t nm = begin; nm < end; ++nm) {
          const float bias = bp ? bp[nm % M] : 0.f;
          float* row = yp + nm * HW;
          if (rp)
            for (int64_t i = 0; i < HW; ++i) row[i] += bias + rp[nm * HW + i];
          else
            for (int64_t i = 0; i < HW; ++i) row[i] += bias;
          if (act) apply_fused_span(*act, row, HW);
        }
      }, std::max<int64_t>(2, kern::kParallelGrain / std::max<int64_t>(HW, 1)));
    } else {
      apply_fused(ctx, y);
    }
    return;
  }
  if (depthwise_path) {
    depthwise_nchw(ctx, x, w, b, win, y);
    if (residual) {
      float* yp = y.data<float>();
      const float* rp = residual->data<float>();
      kern::parallel_for(y.numel(), ctx.num_threads, [&](int64_t begin, int64_t end) {
        for (int64_t i = begin; i < end; ++i) yp[i] += rp[i];
      });
    }
    apply_fused(ctx, y);
    return;
  }
  const std::string k = key("conv", dims_key(x.dims), dims_key(wdims), b != nullptr, vec_key(win.strides),
                            vec_key(win.dilations), vec_key(win.pad_l), vec_key(pr), in_cl, out_cl, fused_key(ctx));
  const auto nhwc = [](const std::vector<int64_t>& d) { return dnnl::memory::desc(to_dims(d), dt::f32, tag::nhwc); };
  const auto x_md = in_cl ? nhwc(x.dims) : src_md, y_md = out_cl ? nhwc(ydims) : dst_md;
  // Other convs run in the layouts the primitive chooses (format_tag::any: nhwc or blocked, whose
  // jit kernels are 2-10x faster than the plain-layout path, depthwise most of all): plain tensors
  // are reordered in and the result reordered back (docs/BENCHMARKS.md, executor table).
  const LayoutPrimitive& lp = cached_value<LayoutPrimitive>(k, [&] {
    auto any = [](const std::vector<int64_t>& d) { return dnnl::memory::desc(to_dims(d), dt::f32, tag::any); };
    auto make = [&](const dnnl::memory::desc& src, const dnnl::memory::desc& dst) {
      dnnl::convolution_forward::desc d(dnnl::prop_kind::forward_inference, dnnl::algorithm::convolution_direct, src,
                                        any(wdims), b_md, dst, to_dims(win.strides),
                                        to_dims(minus_one(win.dilations)), to_dims(win.pad_l), to_dims(pr));
      return dnnl::convolution_forward::primitive_desc(d, fused_attr(ctx), engine());
    };
    dnnl::convolution_forward::primitive_desc pd = make(in_cl ? x_md : any(x.dims), out_cl ? y_md : any(ydims));
    // Some shapes have no jit kernel on N,H,W,C data (AVX2's first layer, 3 input channels, only
    // writes nChw8c): oneDNN's reference loop there is ~100x slower than a jit kernel in its own
    // layouts behind two reorders (resnet50's 7x7 stem on AVX2: 4 s against 3 ms per image).
    if (std::string(pd.impl_info_str()).rfind("ref", 0) == 0 && (in_cl || out_cl)) {
      dnnl::convolution_forward::primitive_desc own = make(any(x.dims), any(ydims));
      if (std::string(own.impl_info_str()).rfind("ref", 0) != 0) pd = own;
    }
    return LayoutPrimitive{dnnl::convolution_forward(pd), pd.src_desc(), pd.weights_desc(), pd.dst_desc()};
  });
  dnnl::primitive prim = lp.prim;
  const LayoutPrimitive& layouts = lp;  // valid until the next conv: reorders use another cache
  const void* src = in_layout(x_md, x.bytes.data(), layouts.src, 0, k + "src");
  // Constant weights are reordered once per executor, not on every run.
  const void* wei = nullptr;
  if (ctx.constant(1) && !(layouts.weights == w_md)) {
    const dnnl::memory::desc want = layouts.weights;
    wei = ctx.constants->get(&w, k + "wei", [&](std::vector<uint8_t>& out) {
      out.resize(want.get_size());
      reorder(w_md, w.bytes.data(), want, out.data(), k + "wei");
    }).data();
  } else {
    wei = in_layout(w_md, w.bytes.data(), layouts.weights, 1, k + "wei");
  }
  void* dst = layouts.dst == y_md ? static_cast<void*>(y.bytes.data()) : scratch(2, layouts.dst.get_size());
  if (residual) {  // the sum post-op adds the convolution to what dst holds: the residual
    const auto r_md = ctx.residual_channels_last ? nhwc(ydims) : dst_md;
    if (r_md == layouts.dst && dst == y.bytes.data() && ctx.residual_movable)
      std::swap(y.bytes, ctx.residual_movable->bytes);  // written in place: r is read by no one after
    else if (r_md == layouts.dst)
      std::memcpy(dst, residual->bytes.data(), layouts.dst.get_size());
    else
      reorder(r_md, residual->bytes.data(), layouts.dst, dst, k + "res");
    dst = layouts.dst == y_md ? static_cast<void*>(y.bytes.data()) : dst;
  }
  std::unordered_map<int, dnnl::memory> args = {{DNNL_ARG_SRC, wrap(layouts.src, src)},
                                                {DNNL_ARG_WEIGHTS, wrap(layouts.weights, wei)},
                                                {DNNL_ARG_DST, wrap(layouts.dst, dst)}};
  if (b) args[DNNL_ARG_BIAS] = wrap(b_md, b->bytes.data());
  run(prim, args);
  if (dst != y.bytes.data()) reorder(layouts.dst, dst, y_md, y.bytes.data(), k + "dst");
  if (out_cl) ctx.set_channels_last(0);
}

// ConvTranspose pads, as ONNX Runtime derives them: from output_shape when given, else from SAME_*
// (output = in * stride), else the pads attribute. A derived odd unit goes to the end for
// SAME_UPPER and to the start otherwise (the ONNX spec's rule, which ONNX Runtime 1.30 follows).
void conv_transpose_geometry(const KernelContext& ctx, Window& w, const std::vector<int64_t>& in) {
  const AutoPad ap = auto_pad_of(ctx);
  const size_t sp = in.size();
  std::vector<int64_t> adj = ctx.node.attr_ints("output_padding", std::vector<int64_t>(sp, 0));
  std::vector<int64_t> oshape = ctx.node.attr_ints("output_shape");
  if (adj.size() != sp) ctx.unsupported("output_padding length");
  if (!oshape.empty() && oshape.size() != sp) {
    if (oshape.size() == sp + 2) oshape.erase(oshape.begin(), oshape.begin() + 2);
    else ctx.unsupported("output_shape length");
  }
  w.out.resize(sp);
  for (size_t i = 0; i < sp; ++i) {
    const int64_t full = (in[i] - 1) * w.strides[i] + adj[i] + window_span(w.kernel[i], w.dilations[i]);
    auto distribute = [&](int64_t total) {
      total = std::max<int64_t>(0, total);
      w.pad_l[i] = ap == AutoPad::SameUpper ? total / 2 : total - total / 2;
      w.pad_r[i] = total - w.pad_l[i];
    };
    if (!oshape.empty()) {
      distribute(full - oshape[i]);
      w.pad_r[i] = full - w.pad_l[i] - oshape[i];  // negative when output_shape exceeds the full size
    } else if (is_same_pad(ap)) {
      distribute(full - in[i] * w.strides[i]);
    } else if (ap == AutoPad::Valid) {
      w.pad_l[i] = w.pad_r[i] = 0;
    }
    w.out[i] = full - w.pad_l[i] - w.pad_r[i];
    if (w.out[i] <= 0) ctx.unsupported("non-positive output size");
    // Output padding and an output_shape beyond the full size are rows no input reaches.
    w.pad_r[i] -= adj[i];
  }
}

void conv_transpose(KernelContext& ctx) {
  const Tensor& x = f32_input(ctx, 0);
  const Tensor& w = f32_input(ctx, 1);
  const Tensor* b = f32_optional(ctx, 2);
  check_spatial(ctx, x, w);
  const int64_t g = ctx.node.attr_int("group", 1);
  const int64_t N = x.dims[0], C = x.dims[1], Mg = w.dims[1], M = Mg * g;
  if (g < 1 || C != w.dims[0] || C % g != 0) ctx.unsupported("channels / weight / group mismatch");
  const std::vector<int64_t> in = spatial(x.dims);
  Window win = read_window(ctx, in.size(), spatial(w.dims));
  conv_transpose_geometry(ctx, win, in);
  std::vector<int64_t> ydims = {N, M};
  ydims.insert(ydims.end(), win.out.begin(), win.out.end());
  Tensor& y = new_f32(ctx, 0, ydims);
  if (numel(ydims) == 0) return;
  if (b && b->numel() != M) ctx.unsupported("bias " + shape_str(b->dims) + " for " + std::to_string(M) + " output channels");

  // oneDNN's logical deconv weights are [g][M/g][C/g][k]; ONNX stores [g][C/g][M/g][k], which is
  // the "(g)iohw" layout its gemm implementation reads directly (plain oihw would fall back to the
  // reference kernel, ~90x slower), so the weights are described, not copied.
  const int64_t Cg = C / g;
  std::vector<int64_t> wdims = g > 1 ? std::vector<int64_t>{g, Mg, Cg} : std::vector<int64_t>{M, C};
  wdims.insert(wdims.end(), win.kernel.begin(), win.kernel.end());
  std::vector<int> perm(wdims.size());
  std::iota(perm.begin(), perm.end(), 0);
  std::swap(perm[g > 1 ? 1 : 0], perm[g > 1 ? 2 : 1]);
  const auto w_md = permuted_desc(to_dims(wdims), perm);

  const auto src_md = plain_desc(to_dims(x.dims)), dst_md = plain_desc(to_dims(ydims));
  const auto b_md = b ? plain_desc({M}) : dnnl::memory::desc();
  const std::string k = key("deconv", dims_key(x.dims), dims_key(wdims), dims_key(ydims), b != nullptr, vec_key(win.strides),
                            vec_key(win.dilations), vec_key(win.pad_l), vec_key(win.pad_r));
  dnnl::primitive p = cached(k, [&] {
    dnnl::deconvolution_forward::desc d(dnnl::prop_kind::forward_inference, dnnl::algorithm::deconvolution_direct,
                                        src_md, w_md, b_md, dst_md, to_dims(win.strides),
                                        to_dims(minus_one(win.dilations)), to_dims(win.pad_l), to_dims(win.pad_r));
    return dnnl::deconvolution_forward(dnnl::deconvolution_forward::primitive_desc(d, engine()));
  });
  std::unordered_map<int, dnnl::memory> args = {{DNNL_ARG_SRC, wrap(src_md, x.bytes.data())},
                                                {DNNL_ARG_WEIGHTS, wrap(w_md, w.bytes.data())},
                                                {DNNL_ARG_DST, wrap(dst_md, y.bytes.data())}};
  if (b) args[DNNL_ARG_BIAS] = wrap(b_md, b->bytes.data());
  run(p, args);
}

// ---------------------------------------------------------------- MatMul / Gemm

// dst[batch, M, N] = src[batch, M, K] · wei[batch, K, N] (+ bias, broadcast, when given), then the
// attribute's post-ops; descriptors carry broadcast batch dims (size 1) and any strides (transposes).
// `k` must name everything the primitive depends on (shapes, bias, post-ops).
void dnnl_matmul(const dnnl::memory::desc& a_md, const void* a, const dnnl::memory::desc& b_md, const void* b,
                 const dnnl::memory::desc& c_md, void* c, const std::string& k, const dnnl::memory::desc& bias_md,
                 const void* bias, const dnnl::primitive_attr& attr) {
  dnnl::primitive p = cached(k, [&] {
    dnnl::matmul::desc d(a_md, b_md, bias_md, c_md);
    return dnnl::matmul(dnnl::matmul::primitive_desc(d, attr, engine()));
  });
  std::unordered_map<int, dnnl::memory> args = {
      {DNNL_ARG_SRC, wrap(a_md, a)}, {DNNL_ARG_WEIGHTS, wrap(b_md, b)}, {DNNL_ARG_DST, wrap(c_md, c)}};
  if (bias) args[DNNL_ARG_BIAS] = wrap(bias_md, bias);
  run(p, args);
}

void matmul(KernelContext& ctx) {
  const Tensor& A = f32_input(ctx, 0);
  const Tensor& B = f32_input(ctx, 1);
  if (A.dims.empty() || B.dims.empty()) ctx.unsupported("scalar operand");
  std::vector<int64_t> ad = A.dims, bd = B.dims;
  const bool a_vec = ad.size() == 1, b_vec = bd.size() == 1;
  if (a_vec) ad.insert(ad.begin(), 1);
  if (b_vec) bd.push_back(1);
  const size_t r = std::max(ad.size(), bd.size());
  ad.insert(ad.begin(), r - ad.size(), 1);
  bd.insert(bd.begin(), r - bd.size(), 1);
  const int64_t M = ad[r - 2], K = ad[r - 1], N = bd[r - 1];
  if (bd[r - 2] != K) ctx.unsupported("inner dims differ: " + shape_str(A.dims) + " x " + shape_str(B.dims));
  std::vector<int64_t> batch(r - 2);
  for (size_t i = 0; i + 2 < r; ++i) {
    if (ad[i] != bd[i] && ad[i] != 1 && bd[i] != 1) ctx.unsupported("batch dims do not broadcast: " + shape_str(A.dims) + " x " + shape_str(B.dims));
    batch[i] = std::max(ad[i], bd[i]);
  }
  std::vector<int64_t> ydims = batch;
  if (!a_vec) ydims.push_back(M);
  if (!b_vec) ydims.push_back(N);
  Tensor& Y = new_f32(ctx, 0, ydims, /*zero=*/K == 0);  // else oneDNN writes every element
  if (numel(ydims) == 0) return;
  if (K == 0) {  // empty sum: zeros, then what the executor fused
    if (ctx.fused) {
      float* y = Y.data<float>();
      const float* bias = ctx.fused->bias ? ctx.fused->bias->data<float>() : nullptr;
      for (int64_t i = 0; i < Y.numel(); ++i) y[i] = (*ctx.fused)(bias ? bias[i % N] : 0.f);
    }
    return;
  }

  // Shapes oneDNN handles fastest: a shared weight folds A's batch into rows; equal batches
  // collapse to one batch dim. Anything else goes as broadcast batch dims.
  const int64_t a_batch = numel({ad.begin(), ad.end() - 2}), b_batch = numel({bd.begin(), bd.end() - 2});
  std::vector<int64_t> a2, b2, c2;
  if (b_batch == 1) {
    a2 = {a_batch * M, K}; b2 = {K, N}; c2 = {a_batch * M, N};
  } else if (std::equal(ad.begin(), ad.end() - 2, bd.begin())) {
    a2 = {a_batch, M, K}; b2 = {b_batch, K, N}; c2 = {a_batch, M, N};
  } else {
    a2 = ad; b2 = bd; c2 = batch;
    c2.push_back(M);
    c2.push_back(N);
  }
  const auto a_md = plain_desc(to_dims(a2)), b_md = plain_desc(to_dims(b2)), c_md = plain_desc(to_dims(c2));
  if (!ctx.fused) {
    dnnl_matmul(a_md, A.bytes.data(), b_md, B.bytes.data(), c_md, Y.bytes.data(),
                key("matmul", dims_key(a2), dims_key(b2)));
    return;
  }
  // The executor fused the following bias Add and activation (engine/fusion.h): one primitive
  // adds the bias ([1, N], broadcast over rows) and applies the activation as a post-op.
  const Tensor* bias = ctx.fused->bias;
  if (bias && (b_batch != 1 || bias->numel() != N)) ctx.unsupported("fused bias " + shape_str(bias->dims) + " for N = " + std::to_string(N));
  std::vector<int64_t> bias_dims(c2.size(), 1);
  bias_dims.back() = N;
  const auto bias_md = bias ? plain_desc(to_dims(bias_dims)) : dnnl::memory::desc();
  // GELU runs as our own vectorized pass: oneDNN 2.6's gelu post-op costs more than the pass
  // (1024x128x512: 1.25 -> 1.79 ms with it).
  using Act = FusedActivation::Kind;
  const bool own_gelu = ctx.fused->kind == Act::GeluErf || ctx.fused->kind == Act::GeluTanh;
  FusedActivation bias_only;
  bias_only.bias = bias;
  const FusedActivation* post = own_gelu ? &bias_only : ctx.fused;
  dnnl_matmul(a_md, A.bytes.data(), b_md, B.bytes.data(), c_md, Y.bytes.data(),
              key("matmul", dims_key(a2), dims_key(b2), fused_key(post)), bias_md,
              bias ? bias->bytes.data() : nullptr, fused_attr(post));
  if (own_gelu) {
    float* y = Y.data<float>();
    const bool erf = ctx.fused->kind == Act::GeluErf;
    kern::parallel_for(Y.numel(), ctx.num_threads, [&](int64_t begin, int64_t end) {
      (erf ? kern::gelu_erf_array : kern::gelu_tanh_array)(y + begin, y + begin, end - begin);
    });
  }
}

void gemm(KernelContext& ctx) {
  const Tensor& A = f32_input(ctx, 0);
  const Tensor& B = f32_input(ctx, 1);
  const Tensor* C = f32_optional(ctx, 2);
  if (A.dims.size() != 2 || B.dims.size() != 2) ctx.unsupported("operands must be 2-D, got " + shape_str(A.dims) + " x " + shape_str(B.dims));
  const bool ta = ctx.node.attr_int("transA", 0) != 0, tb = ctx.node.attr_int("transB", 0) != 0;
  const float alpha = ctx.node.attr_float("alpha", 1.f), beta = ctx.node.attr_float("beta", 1.f);
  const int64_t M = ta ? A.dims[1] : A.dims[0], K = ta ? A.dims[0] : A.dims[1];
  const int64_t Kb = tb ? B.dims[1] : B.dims[0], N = tb ? B.dims[0] : B.dims[1];
  if (K != Kb) ctx.unsupported("inner dims differ: " + shape_str(A.dims) + " x " + shape_str(B.dims));
  Tensor& Y = new_f32(ctx, 0, {M, N});
  if (M * N == 0) return;
  if (K > 0) {
    const auto a_md = permuted_desc({M, K}, ta ? std::vector<int>{1, 0} : std::vector<int>{0, 1});
    const auto b_md = permuted_desc({K, N}, tb ? std::vector<int>{1, 0} : std::vector<int>{0, 1});
    const auto c_md = plain_desc({M, N});
    dnnl_matmul(a_md, A.bytes.data(), b_md, B.bytes.data(), c_md, Y.bytes.data(), key("gemm", M, K, N, ta, tb));
  }
  Eigen::Map<RowMat> y(Y.data<float>(), M, N);
  if (alpha != 1.f) y *= alpha;
  if (C && beta != 0.f) {
    const std::vector<float> c = broadcast_to(ctx, *C, {M, N});
    y += beta * Eigen::Map<const RowMat>(c.data(), M, N);
  }
}

// ---------------------------------------------------------------- pooling

void pool(KernelContext& ctx, bool is_max) {
  const Tensor& x = f32_input(ctx, 0);
  const bool cl = ctx.channels_last(0);
  if (x.dims.size() < 3 || x.dims.size() > 5) ctx.unsupported("input rank " + std::to_string(x.dims.size()) + " (1-D to 3-D spatial only)");
  if (wants_output(ctx, 1)) ctx.unsupported("the Indices output");
  if (ctx.node.attr_int("storage_order", 0) != 0) ctx.unsupported("storage_order=1");
  const std::vector<int64_t> in = spatial(x.dims);
  if (!ctx.node.has_attr("kernel_shape")) ctx.unsupported("missing kernel_shape");
  Window win = read_window(ctx, in.size(), {});
  pool_geometry(ctx, win, in, ctx.node.attr_int("ceil_mode", 0) != 0);
  std::vector<int64_t> ydims = {x.dims[0], x.dims[1]};
  ydims.insert(ydims.end(), win.out.begin(), win.out.end());
  Tensor& y = new_f32(ctx, 0, ydims);
  if (numel(ydims) == 0) return;
  const bool include_pad = ctx.node.attr_int("count_include_pad", 0) != 0;
  const auto alg = is_max ? dnnl::algorithm::pooling_max
                          : include_pad ? dnnl::algorithm::pooling_avg_include_padding
                                        : dnnl::algorithm::pooling_avg_exclude_padding;
  const std::vector<int64_t> pr = effective_pad_r(win, in);
  const bool corrected = !is_max && include_pad && pr != win.pad_r;  // the fix-up below indexes N,C,H,W
  if (cl && corrected) {
    Tensor plain = x;
    channels_last_to_plain(plain);
    KernelContext sub{ctx.node, {&plain}, ctx.outputs, ctx.num_threads, ctx.opset, ctx.executor, ctx.lookup};
    return pool(sub, is_max);
  }
  const auto layout = [&](const std::vector<int64_t>& d) {
    return cl ? dnnl::memory::desc(to_dims(d), dt::f32, tag::nhwc) : plain_desc(to_dims(d));
  };
  const auto src_md = layout(x.dims), dst_md = layout(ydims);
  const std::string k = key("pool", static_cast<int>(alg), dims_key(x.dims), vec_key(win.kernel), vec_key(win.strides),
                            vec_key(win.dilations), vec_key(win.pad_l), vec_key(pr), cl);
  dnnl::primitive p = cached(k, [&] {
    dnnl::pooling_v2_forward::desc d(dnnl::prop_kind::forward_inference, alg, src_md, dst_md, to_dims(win.strides),
                                     to_dims(win.kernel), to_dims(minus_one(win.dilations)), to_dims(win.pad_l),
                                     to_dims(pr));
    return dnnl::pooling_v2_forward(dnnl::pooling_v2_forward::primitive_desc(d, engine()));
  });
  run(p, {{DNNL_ARG_SRC, wrap(src_md, x.bytes.data())}, {DNNL_ARG_DST, wrap(dst_md, y.bytes.data())}});
  if (cl) ctx.set_channels_last(0);
  // Include-pad averages divide by the whole window, but ONNX counts only the window part that
  // lies inside input + explicit pads; the extra high-side padding ceil_mode adds is not counted.
  if (corrected) {
    const size_t sp = in.size();
    const int64_t NC = x.dims[0] * x.dims[1], S = numel(win.out), full = numel(win.kernel);
    float* yp = y.data<float>();
    std::vector<int64_t> o(sp, 0);
    for (int64_t s = 0; s < S; ++s) {
      int64_t cnt = 1;
      for (size_t i = 0; i < sp; ++i) {
        const int64_t start = o[i] * win.strides[i] - win.pad_l[i];
        const int64_t end = std::min(start + window_span(win.kernel[i], win.dilations[i]), in[i] + win.pad_r[i]);
        cnt *= (end - start + win.dilations[i] - 1) / win.dilations[i];
      }
      if (cnt != full)
        for (int64_t nc = 0; nc < NC; ++nc) yp[nc * S + s] *= static_cast<float>(full) / static_cast<float>(cnt);
      for (size_t i = sp; i-- > 0;) {
        if (++o[i] < win.out[i]) break;
        o[i] = 0;
      }
    }
  }
}
void max_pool(KernelContext& ctx) { pool(ctx, true); }
void average_pool(KernelContext& ctx) { pool(ctx, false); }

void global_pool(KernelContext& ctx, bool is_max) {
  const Tensor& x = f32_input(ctx, 0);
  if (x.dims.size() < 2) ctx.unsupported("input rank < 2");
  std::vector<int64_t> ydims(x.dims.size(), 1);
  ydims[0] = x.dims[0];
  ydims[1] = x.dims[1];
  const int64_t NC = x.dims[0] * x.dims[1], S = numel(spatial(x.dims));
  Tensor& y = new_f32(ctx, 0, ydims);
  if (NC == 0) return;
  if (S == 0) ctx.unsupported("empty spatial extent");
  if (ctx.channels_last(0)) {  // per image an S x C matrix; [N,C,1,1] has the same bytes in both layouts
    const int64_t C = x.dims[1];
    for (int64_t n = 0; n < x.dims[0]; ++n) {
      Eigen::Map<const RowMat> xm(x.data<float>() + n * S * C, S, C);
      Eigen::Map<Eigen::RowVectorXf> ym(y.data<float>() + n * C, C);
      if (is_max) ym = xm.colwise().maxCoeff();
      else ym = xm.colwise().mean();
    }
    return;
  }
  Eigen::Map<const RowMat> xm(x.data<float>(), NC, S);
  Eigen::Map<Eigen::VectorXf> ym(y.data<float>(), NC);
  if (is_max) ym = xm.rowwise().maxCoeff();
  else ym = xm.rowwise().mean();
}
void global_average_pool(KernelContext& ctx) { global_pool(ctx, false); }
void global_max_pool(KernelContext& ctx) { global_pool(ctx, true); }

// ---------------------------------------------------------------- normalizations

void batch_norm(KernelContext& ctx) {
  const Tensor& x = f32_input(ctx, 0);
  if (ctx.node.attr_int("training_mode", 0) != 0) ctx.unsupported("training_mode=1");
  for (size_t k = 1; k < ctx.node.outputs.size(); ++k)
    if (wants_output(ctx, k)) ctx.unsupported("training outputs (running mean/var)");
  if (x.dims.size() < 2) ctx.unsupported("input rank < 2");
  const float eps = ctx.node.attr_float("epsilon", 1e-5f);
  const int64_t N = x.dims[0], C = x.dims[1], S = numel(x.dims) / std::max<int64_t>(N * C, 1);
  const auto scale = f32_input(ctx, 1).to_float(), bias = f32_input(ctx, 2).to_float();
  const auto mean = f32_input(ctx, 3).to_float(), var = f32_input(ctx, 4).to_float();
  if (static_cast<int64_t>(scale.size()) != C || bias.size() != scale.size() || mean.size() != scale.size() || var.size() != scale.size())
    ctx.unsupported("per-channel parameters must have " + std::to_string(C) + " values");
  // Folded to y = x·a + b per channel, in place when x is read here for the last time.
  std::vector<float> a(static_cast<size_t>(C)), b(static_cast<size_t>(C));
  for (int64_t c = 0; c < C; ++c) {
    a[c] = scale[c] / std::sqrt(var[c] + eps);
    b[c] = bias[c] - mean[c] * a[c];
  }
  const float* xp = x.data<float>();
  const std::vector<int64_t> dims = x.dims;
  Tensor* own = ctx.movable_input(0);
  Tensor& y = own ? (ctx.output(0) = std::move(*own)) : new_f32(ctx, 0, dims);
  float* yp = y.data<float>();
  if (ctx.channels_last(0)) {  // N,H,W,C bytes: per pixel a row of C channels
    kern::parallel_for(N * S, ctx.num_threads, [&](int64_t begin, int64_t end) {
      for (int64_t p = begin; p < end; ++p)
        for (int64_t c = 0; c < C; ++c) yp[p * C + c] = xp[p * C + c] * a[c] + b[c];
    }, std::max<int64_t>(2, kern::kParallelGrain / std::max<int64_t>(C, 1)));
    ctx.set_channels_last(0);
    return;
  }
  kern::parallel_for(N * C, ctx.num_threads, [&](int64_t begin, int64_t end) {
    for (int64_t nc = begin; nc < end; ++nc) {
      const float ac = a[nc % C], bc = b[nc % C];
      const float* xs = xp + nc * S;
      float* ys = yp + nc * S;
      for (int64_t i = 0; i < S; ++i) ys[i] = xs[i] * ac + bc;
    }
  }, std::max<int64_t>(2, kern::kParallelGrain / std::max<int64_t>(S, 1)));
}

// Normalizes each row of a [rows, len] view; scale/bias index chosen per element by `param_of`.
template <typename ParamFn>
void normalize_rows(const float* x, float* y, int64_t rows, int64_t len, float eps, ParamFn param_of,
                    float* mean_out = nullptr, float* inv_std_out = nullptr) {
  for (int64_t r = 0; r < rows; ++r) {
    Eigen::Map<const Eigen::ArrayXf> xr(x + r * len, len);
    // Two passes in double: calibration inputs can have large offsets.
    const double mu = xr.cast<double>().mean();
    const double var = (xr.cast<double>() - mu).square().mean();
    const float inv = static_cast<float>(1.0 / std::sqrt(var + eps));
    if (mean_out) mean_out[r] = static_cast<float>(mu);
    if (inv_std_out) inv_std_out[r] = inv;
    for (int64_t i = 0; i < len; ++i) {
      const auto [s, b] = param_of(r, i);
      y[r * len + i] = (x[r * len + i] - static_cast<float>(mu)) * inv * s + b;
    }
  }
}

void instance_norm(KernelContext& ctx) {
  const Tensor& x = f32_input(ctx, 0);
  if (x.dims.size() < 3) ctx.unsupported("input rank < 3");
  const auto scale = f32_input(ctx, 1).to_float(), bias = f32_input(ctx, 2).to_float();
  const int64_t C = x.dims[1], S = numel(spatial(x.dims));
  if (static_cast<int64_t>(scale.size()) != C || static_cast<int64_t>(bias.size()) != C) ctx.unsupported("scale/bias must have C values");
  Tensor& y = new_f32(ctx, 0, x.dims);
  normalize_rows(x.data<float>(), y.data<float>(), x.dims[0] * C, S, ctx.node.attr_float("epsilon", 1e-5f),
                 [&](int64_t r, int64_t) { return std::pair<float, float>(scale[r % C], bias[r % C]); });
}

void layer_norm(KernelContext& ctx) {
  const Tensor& x = f32_input(ctx, 0);
  const int64_t axis = norm_axis(ctx, ctx.node.attr_int("axis", -1), x.dims.size());
  const std::vector<int64_t> outer_dims(x.dims.begin(), x.dims.begin() + axis), inner_dims(x.dims.begin() + axis, x.dims.end());
  const int64_t rows = numel(outer_dims), len = numel(inner_dims);
  const std::vector<float> scale = broadcast_to(ctx, f32_input(ctx, 1), inner_dims);
  const std::vector<float> bias = ctx.has_input(2) ? broadcast_to(ctx, f32_input(ctx, 2), inner_dims) : std::vector<float>(static_cast<size_t>(len), 0.f);
  Tensor& y = new_f32(ctx, 0, x.dims);
  std::vector<int64_t> stat_dims = outer_dims;
  stat_dims.resize(x.dims.size(), 1);
  float* mean = wants_output(ctx, 1) ? new_f32(ctx, 1, stat_dims).data<float>() : nullptr;
  float* inv = wants_output(ctx, 2) ? new_f32(ctx, 2, stat_dims).data<float>() : nullptr;
  const float eps = ctx.node.attr_float("epsilon", 1e-5f);
  const float* xp = x.data<float>();
  float* yp = y.data<float>();
  // Rows vectorized (kern::layer_norm_row), split across threads.
  kern::parallel_for(rows, ctx.num_threads, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      float mu = 0;
      const float is = kern::layer_norm_row(xp + r * len, yp + r * len, len, scale.data(), bias.data(), eps, &mu);
      if (mean) mean[r] = mu;
      if (inv) inv[r] = is;
    }
  }, std::max<int64_t>(2, kern::kParallelGrain / std::max<int64_t>(len, 1)));
}

// GroupNormalization: opset 18 has one scale/bias per group, opset 21 one per channel.
void group_norm(KernelContext& ctx) {
  const Tensor& x = f32_input(ctx, 0);
  if (x.dims.size() < 2) ctx.unsupported("input rank < 2");
  const int64_t G = ctx.node.attr_int("num_groups", 0), C = x.dims[1];
  if (G <= 0 || C % G != 0) ctx.unsupported("num_groups " + std::to_string(G) + " does not divide " + std::to_string(C) + " channels");
  const auto scale = f32_input(ctx, 1).to_float(), bias = f32_input(ctx, 2).to_float();
  const bool per_channel = ctx.opset >= 21 || (ctx.opset == 0 && static_cast<int64_t>(scale.size()) == C);
  const int64_t want = per_channel ? C : G;
  if (static_cast<int64_t>(scale.size()) != want || static_cast<int64_t>(bias.size()) != want)
    ctx.unsupported("scale/bias must have " + std::to_string(want) + " values at opset " + std::to_string(ctx.opset));
  const int64_t S = numel(spatial(x.dims)), Cg = C / G, len = Cg * S;
  Tensor& y = new_f32(ctx, 0, x.dims);
  normalize_rows(x.data<float>(), y.data<float>(), x.dims[0] * G, len, ctx.node.attr_float("epsilon", 1e-5f),
                 [&](int64_t r, int64_t i) {
                   const int64_t g = r % G, p = per_channel ? g * Cg + i / S : g;
                   return std::pair<float, float>(scale[p], bias[p]);
                 });
}

void lrn(KernelContext& ctx) {
  const Tensor& x = f32_input(ctx, 0);
  if (x.dims.size() < 3) ctx.unsupported("input rank < 3");
  const int64_t size = ctx.node.attr_int("size", 0);
  if (size < 1) ctx.unsupported("size attribute missing");
  const float alpha = ctx.node.attr_float("alpha", 1e-4f), beta = ctx.node.attr_float("beta", 0.75f), bias = ctx.node.attr_float("bias", 1.f);
  const int64_t N = x.dims[0], C = x.dims[1], S = numel(spatial(x.dims));
  const int64_t lo = (size - 1) / 2, hi = size - 1 - lo;
  Tensor& y = new_f32(ctx, 0, x.dims);
  const float* xp = x.data<float>();
  float* yp = y.data<float>();
  Eigen::ArrayXf sq(S);
  for (int64_t n = 0; n < N; ++n)
    for (int64_t c = 0; c < C; ++c) {
      sq.setZero();
      for (int64_t j = std::max<int64_t>(0, c - lo); j <= std::min(C - 1, c + hi); ++j)
        sq += Eigen::Map<const Eigen::ArrayXf>(xp + (n * C + j) * S, S).square();
      const int64_t off = (n * C + c) * S;
      Eigen::Map<Eigen::ArrayXf>(yp + off, S) =
          Eigen::Map<const Eigen::ArrayXf>(xp + off, S) / (bias + alpha / static_cast<float>(size) * sq).pow(beta);
    }
}

// ---------------------------------------------------------------- softmax family

enum class SoftKind { Softmax, LogSoftmax, Hardmax };

// Before opset 13 the input is flattened to [prod(d<axis), prod(d>=axis)] (default axis 1); from 13
// on the op runs along one axis (default -1).
void softmax_family(KernelContext& ctx, SoftKind kind) {
  const Tensor& x = f32_input(ctx, 0);
  const bool legacy = ctx.opset > 0 && ctx.opset < 13;
  const size_t rank = x.dims.size();
  if (rank == 0) ctx.unsupported("scalar input");
  const int64_t axis = norm_axis(ctx, ctx.node.attr_int("axis", legacy ? 1 : -1), rank);
  const int64_t outer = numel({x.dims.begin(), x.dims.begin() + axis});
  int64_t len = x.dims[axis], inner = numel({x.dims.begin() + axis + 1, x.dims.end()});
  if (legacy) {
    len *= inner;
    inner = 1;
  }
  Tensor& y = new_f32(ctx, 0, x.dims);
  const float* xp = x.data<float>();
  float* yp = y.data<float>();
  if (kind != SoftKind::Hardmax) {
    const bool log = kind == SoftKind::LogSoftmax;
    kern::parallel_for(outer * inner, ctx.num_threads, [&](int64_t begin, int64_t end) {
      std::vector<float> row(inner == 1 ? 0 : static_cast<size_t>(len));
      for (int64_t r = begin; r < end; ++r) {
        const int64_t base = (r / inner) * len * inner + r % inner;
        if (inner == 1) {
          kern::softmax_row(xp + base, yp + base, len, log);
          continue;
        }
        for (int64_t j = 0; j < len; ++j) row[j] = xp[base + j * inner];
        kern::softmax_row(row.data(), row.data(), len, log);
        for (int64_t j = 0; j < len; ++j) yp[base + j * inner] = row[j];
      }
    }, std::max<int64_t>(2, kern::kParallelGrain / std::max<int64_t>(len, 1)));
    return;
  }
  std::vector<float> buf(static_cast<size_t>(len));
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t i = 0; i < inner; ++i) {
      const int64_t base = o * len * inner + i;
      float mx = -std::numeric_limits<float>::infinity();
      int64_t arg = 0;
      for (int64_t j = 0; j < len; ++j) {
        buf[j] = xp[base + j * inner];
        if (buf[j] > mx) { mx = buf[j]; arg = j; }
      }
      if (kind == SoftKind::Hardmax) {
        for (int64_t j = 0; j < len; ++j) yp[base + j * inner] = j == arg ? 1.f : 0.f;
        continue;
      }
      double sum = 0;
      for (int64_t j = 0; j < len; ++j) sum += std::exp(static_cast<double>(buf[j] - mx));
      const float lsum = static_cast<float>(std::log(sum));
      for (int64_t j = 0; j < len; ++j)
        yp[base + j * inner] = kind == SoftKind::LogSoftmax ? buf[j] - mx - lsum
                                                            : static_cast<float>(std::exp(static_cast<double>(buf[j] - mx)) / sum);
    }
}
void softmax(KernelContext& ctx) { softmax_family(ctx, SoftKind::Softmax); }
void log_softmax(KernelContext& ctx) { softmax_family(ctx, SoftKind::LogSoftmax); }
void hardmax(KernelContext& ctx) { softmax_family(ctx, SoftKind::Hardmax); }

}  // namespace

void register_nn_kernels(KernelRegistry& r) {
  static const std::pair<const char*, void (*)(KernelContext&)> table[] = {
      {"Conv", conv},
      {"ConvTranspose", conv_transpose},
      {"MatMul", matmul},
      {"Gemm", gemm},
      {"MaxPool", max_pool},
      {"AveragePool", average_pool},
      {"GlobalAveragePool", global_average_pool},
      {"GlobalMaxPool", global_max_pool},
      {"BatchNormalization", batch_norm},
      {"InstanceNormalization", instance_norm},
      {"LayerNormalization", layer_norm},
      {"GroupNormalization", group_norm},
      {"LRN", lrn},
      {"Softmax", softmax},
      {"LogSoftmax", log_softmax},
      {"Hardmax", hardmax},
  };
  for (const auto& [op, fn] : table) r.add(op, guarded(fn));
}

}  // namespace oc
