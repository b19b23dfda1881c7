// The device operator table. Math per family:
//   elementwise   y = f(x) or y[idx] = f(a[idx·sa], b[idx·sb]) (numpy broadcasting, stride 0 when stretched)
//   Conv          per image and group: Y_g[M/g, P] = W_g[M/g, C/g·kh·kw] · im2col(X_g)[C/g·kh·kw, P] (+ bias);
//                 depthwise convs run a direct kernel; 1×1 stride-1 convs skip im2col
//   MatMul/Gemm   cuBLAS SGEMM (strided-batched when the broadcast batch offsets are linear)
//   data movement y[i] = x[map[i] − 1]: the CPU kernel computes `map` once per input shape by
//                 moving element numbers (int32) instead of data, so every layout rule (Pad modes,
//                 Slice steps, Gather indices, Concat offsets) is the CPU kernel's own.
#include "engine/cuda/ops.h"

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <limits>
#include <numeric>

#include "engine/cuda/launch.h"
#include "engine/kernel.h"
#include "graph/conv_geometry.h"

namespace oc::cuda {
namespace {

using Dims = std::vector<int64_t>;

int64_t numel(const Dims& d) {
  int64_t n = 1;
  for (int64_t v : d) n *= v;
  return n;
}

int64_t norm_axis(CudaOpContext& c, int64_t axis, int64_t rank) {
  if (axis < -rank || axis >= rank) c.fallback("axis out of range");
  return axis < 0 ? axis + rank : axis;
}

float scalar_of(const Tensor& t, float def) {
  if (t.numel() == 0) return def;
  return t.to_float().at(0);
}

// ---------------------------------------------------------------- elementwise

CudaOpFn unary_op(Unary op, float a = 0, float b = 0) {
  return [=](CudaOpContext& c) {
    const float* x = c.dev_f32(0);
    float* y = c.output(0, c.dims(0));
    unary(c.dc.stream(), op, x, y, numel(c.dims(0)), a, b);
  };
}

void leaky_relu(CudaOpContext& c) { unary_op(Unary::LeakyRelu, c.node.attr_float("alpha", 0.01f))(c); }
void elu(CudaOpContext& c) { unary_op(Unary::Elu, c.node.attr_float("alpha", 1.f))(c); }
void hard_sigmoid(CudaOpContext& c) {
  unary_op(Unary::HardSigmoid, c.node.attr_float("alpha", 0.2f), c.node.attr_float("beta", 0.5f))(c);
}
void gelu(CudaOpContext& c) {
  unary_op(c.node.attr_string("approximate", "none") == "tanh" ? Unary::GeluTanh : Unary::Gelu)(c);
}
void clip(CudaOpContext& c) {
  float lo = -std::numeric_limits<float>::infinity(), hi = std::numeric_limits<float>::infinity();
  if (c.opset < 11) {
    lo = c.node.attr_float("min", lo);
    hi = c.node.attr_float("max", hi);
  } else {
    if (c.has_input(1)) lo = scalar_of(c.host(1), lo);
    if (c.has_input(2)) hi = scalar_of(c.host(2), hi);
  }
  unary_op(Unary::Clip, lo, hi)(c);
}
void cast(CudaOpContext& c) {
  if (c.node.attr_int("to", 0) != static_cast<int64_t>(DType::Float)) c.fallback("cast to a non-float32 type");
  unary_op(Unary::Copy)(c);
}
void dropout(CudaOpContext& c) {
  if (c.output_used(1)) c.fallback("mask output");
  unary_op(Unary::Copy)(c);
}

CudaOpFn binary_op(Binary op) {
  return [=](CudaOpContext& c) {
    if (c.num_inputs() != 2) c.fallback("not two inputs");
    const Dims &da = c.dims(0), &db = c.dims(1);
    const size_t rank = std::max(da.size(), db.size());
    if (rank > static_cast<size_t>(kMaxRank)) c.fallback("rank above 8");
    const float* a = c.dev_f32(0);
    const float* b = c.dev_f32(1);
    Dims out(rank);
    BroadcastGeometry g;
    g.rank = static_cast<int>(rank);
    int64_t sa = 1, sb = 1;
    for (int64_t k = static_cast<int64_t>(rank) - 1; k >= 0; --k) {
      const int64_t ka = k - static_cast<int64_t>(rank - da.size()), kb = k - static_cast<int64_t>(rank - db.size());
      const int64_t xa = ka >= 0 ? da[ka] : 1, xb = kb >= 0 ? db[kb] : 1;
      if (xa != xb && xa != 1 && xb != 1) c.fallback("shapes do not broadcast");
      out[k] = xa == 1 ? xb : xa;
      g.dims[k] = out[k];
      g.sa[k] = xa == 1 ? 0 : sa;
      g.sb[k] = xb == 1 ? 0 : sb;
      sa *= xa;
      sb *= xb;
    }
    float* y = c.output(0, out);
    binary(c.dc.stream(), op, a, b, y, numel(out), g);
  };
}

void prelu(CudaOpContext& c) { binary_op(Binary::PRelu)(c); }
void mod(CudaOpContext& c) {
  if (c.node.attr_int("fmod", 0) != 1) c.fallback("float Mod without fmod=1");
  binary_op(Binary::Mod)(c);
}

// ---------------------------------------------------------------- normalization

void softmax(CudaOpContext& c, bool log) {
  const Dims& d = c.dims(0);
  const int64_t rank = static_cast<int64_t>(d.size());
  const float* x = c.dev_f32(0);
  const int64_t axis = norm_axis(c, c.node.attr_int("axis", c.opset < 13 ? 1 : -1), rank);
  if (c.opset >= 13 && axis != rank - 1) c.fallback("softmax over a non-last axis");
  const int64_t rows = numel(Dims(d.begin(), d.begin() + axis)), cols = numel(Dims(d.begin() + axis, d.end()));
  float* y = c.output(0, d);
  softmax_rows(c.dc.stream(), x, y, rows, cols, log);
}

void layer_norm(CudaOpContext& c) {
  if (c.output_used(1) || c.output_used(2)) c.fallback("mean/inv-std outputs");
  const Dims& d = c.dims(0);
  const int64_t axis = norm_axis(c, c.node.attr_int("axis", -1), static_cast<int64_t>(d.size()));
  const int64_t cols = numel(Dims(d.begin() + axis, d.end()));
  if (numel(c.dims(1)) != cols || (c.has_input(2) && numel(c.dims(2)) != cols)) c.fallback("broadcast scale/bias");
  const float* x = c.dev_f32(0);
  const float* scale = c.dev_f32(1);
  const float* bias = c.has_input(2) ? c.dev_f32(2) : nullptr;
  float* y = c.output(0, d);
  layer_norm_rows(c.dc.stream(), x, scale, bias, y, numel(d) / std::max<int64_t>(cols, 1), cols,
                  c.node.attr_float("epsilon", 1e-5f));
}

void batch_norm_op(CudaOpContext& c) {
  for (size_t k = 1; k < c.num_outputs(); ++k)
    if (c.output_used(k)) c.fallback("training-mode outputs");
  if (c.node.attr_int("training_mode", 0)) c.fallback("training mode");
  const Dims& d = c.dims(0);
  if (d.size() < 2) c.fallback("rank below 2");
  const int64_t C = d[1];
  for (size_t i = 1; i <= 4; ++i)
    if (numel(c.dims(i)) != C) c.fallback("per-channel parameter size");
  const float* x = c.dev_f32(0);
  const float *scale = c.dev_f32(1), *bias = c.dev_f32(2), *mean = c.dev_f32(3), *var = c.dev_f32(4);
  float* y = c.output(0, d);
  batch_norm(c.dc.stream(), x, scale, bias, mean, var, y, numel(d), C, numel(Dims(d.begin() + 2, d.end())),
             c.node.attr_float("epsilon", 1e-5f));
}

// ---------------------------------------------------------------- reductions and pooling

void reduce_dims(CudaOpContext& c, Reduce op, const Dims& d, std::vector<char> red, bool keep) {
  if (d.size() > static_cast<size_t>(kMaxRank)) c.fallback("rank above 8");
  ReduceGeometry g;
  g.rank = static_cast<int>(d.size());
  Dims out;
  for (size_t k = 0; k < d.size(); ++k) {
    g.dims[k] = d[k];
    g.reduce[k] = red[k] != 0;
    if (!red[k]) out.push_back(d[k]);
    else if (keep) out.push_back(1);
    if (red[k] && d[k] == 0) c.fallback("reduction over an empty axis");
  }
  const float* x = c.dev_f32(0);
  float* y = c.output(0, out);
  reduce(c.dc.stream(), op, x, y, g);
}

CudaOpFn reduce_op(Reduce op) {
  return [=](CudaOpContext& c) {
    const Dims& d = c.dims(0);
    const int64_t rank = static_cast<int64_t>(d.size());
    std::vector<int64_t> axes = c.node.attr_ints("axes");
    const bool axes_input = c.opset >= 18 || (c.node.op_type == "ReduceSum" && c.opset >= 13);
    if (axes_input && c.has_input(1)) axes = c.host(1).to_int64();
    if (axes.empty() && c.node.attr_int("noop_with_empty_axes", 0)) c.fallback("noop_with_empty_axes");
    std::vector<char> red(d.size(), axes.empty() ? 1 : 0);
    for (int64_t a : axes) red[norm_axis(c, a, rank)] = 1;
    reduce_dims(c, op, d, red, c.node.attr_int("keepdims", 1) != 0);
  };
}

CudaOpFn global_pool(Reduce op) {
  return [=](CudaOpContext& c) {
    const Dims& d = c.dims(0);
    if (d.size() < 3) c.fallback("rank below 3");
    std::vector<char> red(d.size(), 1);
    red[0] = red[1] = 0;
    reduce_dims(c, op, d, red, true);
  };
}

// An unknown auto_pad counts as NOTSET.
AutoPad auto_pad(const Node& n) { return parse_auto_pad(n.attr_string("auto_pad", "NOTSET")).value_or(AutoPad::NotSet); }

// Spatial attributes of a conv or pool over `sr` (1 or 2) spatial axes, as 2-D (h slot 1 for 1-D).
struct Window {
  int64_t k[2] = {1, 1}, s[2] = {1, 1}, d[2] = {1, 1}, pb[2] = {0, 0}, pe[2] = {0, 0}, in[2] = {1, 1}, out[2] = {1, 1};
};

Window read_window(CudaOpContext& c, const Dims& x, const Dims& kernel, bool pool) {
  const size_t sr = x.size() - 2;
  if (sr < 1 || sr > 2) c.fallback(std::to_string(sr) + "-D window");
  if (kernel.size() != sr) c.fallback("kernel rank");
  Window w;
  const size_t off = 2 - sr;
  const auto strides = c.node.attr_ints("strides", Dims(sr, 1));
  const auto dil = c.node.attr_ints("dilations", Dims(sr, 1));
  const auto pads = c.node.attr_ints("pads", Dims(2 * sr, 0));
  if (strides.size() != sr || dil.size() != sr || pads.size() != 2 * sr) c.fallback("window attribute sizes");
  const AutoPad ap = auto_pad(c.node);
  const bool ceil_mode = pool && c.node.attr_int("ceil_mode", 0) != 0;
  for (size_t i = 0; i < sr; ++i) {
    const size_t j = off + i;
    w.k[j] = kernel[i];
    w.s[j] = strides[i];
    w.d[j] = dil[i];
    w.in[j] = x[2 + i];
    // graph/conv_geometry.h: SAME pools ignore dilation (ORT); a SAME total below 0 counts as 0.
    const WindowAxisGeometry g = window_axis({w.in[j], w.k[j], w.s[j], w.d[j], pads[i], pads[sr + i]}, ap, pool, ceil_mode);
    if (!g.fits) c.fallback("window larger than the padded input");
    w.pb[j] = g.pad_begin, w.pe[j] = g.pad_end, w.out[j] = g.out;
  }
  return w;
}

Dims out_dims(const Dims& x, int64_t channels, const Window& w) {
  Dims out = {x[0], channels};
  if (x.size() == 4) out.push_back(w.out[0]);
  out.push_back(w.out[1]);
  return out;
}

void pool(CudaOpContext& c, bool is_max) {
  if (is_max && c.output_used(1)) c.fallback("MaxPool indices");
  const Dims& x = c.dims(0);
  const Window w = read_window(c, x, c.node.attr_ints("kernel_shape"), true);
  const float* xp = c.dev_f32(0);
  const Dims od = out_dims(x, x[1], w);
  float* y = c.output(0, od);
  PoolGeometry g;
  g.planes = x[0] * x[1];
  g.h = w.in[0], g.w = w.in[1], g.oh = w.out[0], g.ow = w.out[1];
  g.kh = w.k[0], g.kw = w.k[1], g.sh = w.s[0], g.sw = w.s[1], g.ph = w.pb[0], g.pw = w.pb[1];
  g.dh = w.d[0], g.dw = w.d[1], g.ph_end = w.pe[0], g.pw_end = w.pe[1];
  g.count_include_pad = c.node.attr_int("count_include_pad", 0) != 0;
  if (is_max) max_pool(c.dc.stream(), xp, y, g);
  else {
    if (w.d[0] != 1 || w.d[1] != 1) c.fallback("dilated AveragePool");
    avg_pool(c.dc.stream(), xp, y, g);
  }
}

// ---------------------------------------------------------------- Conv, MatMul, Gemm

void conv(CudaOpContext& c) {
  const Dims& x = c.dims(0);
  const Dims& wd = c.dims(1);
  if (wd.size() != x.size()) c.fallback("weight rank");
  const Window w = read_window(c, x, Dims(wd.begin() + 2, wd.end()), false);
  const int64_t groups = c.node.attr_int("group", 1);
  const int64_t N = x[0], C = x[1], M = wd[0], Cg = wd[1];
  if (Cg * groups != C || M % groups) c.fallback("channels do not match the groups");
  const float* xp = c.dev_f32(0);
  const float* wp = c.dev_f32(1);
  const float* bias = c.has_input(2) ? c.dev_f32(2) : nullptr;
  float* y = c.output(0, out_dims(x, M, w));
  ConvGeometry g;
  g.c = C, g.h = w.in[0], g.w = w.in[1], g.m = M, g.oh = w.out[0], g.ow = w.out[1], g.groups = groups;
  g.kh = w.k[0], g.kw = w.k[1], g.sh = w.s[0], g.sw = w.s[1], g.ph = w.pb[0], g.pw = w.pb[1], g.dh = w.d[0], g.dw = w.d[1];
  cudaStream_t s = c.dc.stream();
  if (groups == C && Cg == 1) {
    depthwise_conv(s, xp, wp, bias, y, N, g);
    return;
  }
  const int64_t P = g.oh * g.ow, K = Cg * g.kh * g.kw, Mg = M / groups;
  const bool direct = g.kh == 1 && g.kw == 1 && g.sh == 1 && g.sw == 1 && g.ph == 0 && g.pw == 0 && w.pe[0] == 0 &&
                      w.pe[1] == 0 && groups == 1;
  DeviceBuffer col = direct ? DeviceBuffer() : c.scratch(static_cast<size_t>(K * P) * sizeof(float));
  for (int64_t n = 0; n < N; ++n) {
    const float* img = xp + n * C * g.h * g.w;
    for (int64_t gi = 0; gi < groups; ++gi) {
      const float* b = img;
      if (!direct) {
        im2col(s, img, col.get<float>(), g, gi * Cg, Cg);
        b = col.get<float>();
      }
      c.dc.gemm(false, false, Mg, P, K, 1.f, wp + gi * Mg * K, K, b, P, 0.f, y + (n * M + gi * Mg) * P, P);
    }
  }
  if (bias) add_channel_bias(s, y, bias, N, M, P);
}

void conv_transpose(CudaOpContext& c) {
  const Dims& x = c.dims(0);
  const Dims& wd = c.dims(1);
  if (x.size() != 4 || wd.size() != 4) c.fallback("not 2-D");
  if (c.node.has_attr("output_shape")) c.fallback("output_shape attribute");
  if (auto_pad(c.node) != AutoPad::NotSet) c.fallback("auto_pad");
  const int64_t groups = c.node.attr_int("group", 1);
  const int64_t N = x[0], C = x[1], Mg = wd[1], M = Mg * groups;
  if (wd[0] != C || C % groups) c.fallback("channels do not match the groups");
  const auto strides = c.node.attr_ints("strides", {1, 1}), dil = c.node.attr_ints("dilations", {1, 1});
  const auto pads = c.node.attr_ints("pads", {0, 0, 0, 0}), outpad = c.node.attr_ints("output_padding", {0, 0});
  if (strides.size() != 2 || dil.size() != 2 || pads.size() != 4 || outpad.size() != 2) c.fallback("attribute sizes");
  ConvGeometry g;
  g.c = C, g.h = x[2], g.w = x[3], g.m = M, g.groups = groups;
  g.kh = wd[2], g.kw = wd[3], g.sh = strides[0], g.sw = strides[1], g.dh = dil[0], g.dw = dil[1];
  g.ph = pads[0], g.pw = pads[1];
  g.oh = g.sh * (g.h - 1) + outpad[0] + (g.kh - 1) * g.dh + 1 - pads[0] - pads[2];
  g.ow = g.sw * (g.w - 1) + outpad[1] + (g.kw - 1) * g.dw + 1 - pads[1] - pads[3];
  if (g.oh <= 0 || g.ow <= 0) c.fallback("empty output");
  const float* xp = c.dev_f32(0);
  const float* wp = c.dev_f32(1);
  const float* bias = c.has_input(2) ? c.dev_f32(2) : nullptr;
  float* y = c.output(0, {N, M, g.oh, g.ow});
  const int64_t Cg = C / groups, HW = g.h * g.w, rows = Mg * g.kh * g.kw, P = g.oh * g.ow;
  DeviceBuffer col = c.scratch(static_cast<size_t>(rows * HW) * sizeof(float));
  for (int64_t n = 0; n < N; ++n)
    for (int64_t gi = 0; gi < groups; ++gi) {
      // col[Mg·kh·kw, HW] = W_gᵀ · X_g, W_g = W[gi·Cg : (gi+1)·Cg] as [Cg, Mg·kh·kw]
      c.dc.gemm(true, false, rows, HW, Cg, 1.f, wp + gi * Cg * rows, rows, xp + (n * C + gi * Cg) * HW, HW, 0.f,
                col.get<float>(), HW);
      col2im(c.dc.stream(), col.get<float>(), y + (n * M + gi * Mg) * P, g, Mg);
    }
  if (bias) add_channel_bias(c.dc.stream(), y, bias, N, M, P);
}

// Shape arithmetic reads only dims: the data stays where it is.
void shape_op(CudaOpContext& c) {
  const Dims& d = c.dims(0);
  const int64_t rank = static_cast<int64_t>(d.size());
  int64_t start = c.node.attr_int("start", 0), end = c.node.attr_int("end", rank);
  if (start < 0) start += rank;
  if (end < 0) end += rank;
  start = std::clamp<int64_t>(start, 0, rank);
  end = std::clamp<int64_t>(end, start, rank);
  const Dims v(d.begin() + start, d.begin() + end);
  c.host_output(0, Tensor::from_int64("", {static_cast<int64_t>(v.size())}, v));
}

void size_op(CudaOpContext& c) { c.host_output(0, Tensor::from_int64("", {}, {numel(c.dims(0))})); }

void matmul(CudaOpContext& c) {
  const Dims &da = c.dims(0), &db = c.dims(1);
  if (da.size() < 2 || db.size() < 2) c.fallback("1-D MatMul operand");
  const float* a = c.dev_f32(0);
  const float* b = c.dev_f32(1);
  const int64_t M = da[da.size() - 2], K = da.back(), N = db.back();
  if (db[db.size() - 2] != K) c.fallback("inner dimensions differ");
  const Dims ba(da.begin(), da.end() - 2), bb(db.begin(), db.end() - 2);
  const size_t br = std::max(ba.size(), bb.size());
  Dims bo(br);
  for (size_t k = 0; k < br; ++k) {
    const int64_t ia = static_cast<int64_t>(k) - static_cast<int64_t>(br - ba.size());
    const int64_t ib = static_cast<int64_t>(k) - static_cast<int64_t>(br - bb.size());
    const int64_t xa = ia >= 0 ? ba[ia] : 1, xb = ib >= 0 ? bb[ib] : 1;
    if (xa != xb && xa != 1 && xb != 1) c.fallback("batch dims do not broadcast");
    bo[k] = xa == 1 ? xb : xa;
  }
  Dims od = bo;
  od.push_back(M);
  od.push_back(N);
  float* y = c.output(0, od);
  const int64_t batch = numel(bo);
  if (numel(bb) == 1) {  // one weight matrix: fold A's batch into its rows
    c.dc.gemm(false, false, numel(ba) * M, N, K, 1.f, a, K, b, N, 0.f, y, N);
    return;
  }
  // Offsets of each output batch entry into A and B.
  std::vector<int64_t> oa(batch), ob(batch);
  for (int64_t i = 0; i < batch; ++i) {
    int64_t rest = i, offa = 0, offb = 0, sa = 1, sb = 1;
    for (int64_t k = static_cast<int64_t>(br) - 1; k >= 0; --k) {
      const int64_t coord = rest % bo[k];
      rest /= bo[k];
      const int64_t ia = k - static_cast<int64_t>(br - ba.size()), ib = k - static_cast<int64_t>(br - bb.size());
      const int64_t xa = ia >= 0 ? ba[ia] : 1, xb = ib >= 0 ? bb[ib] : 1;
      if (xa != 1) offa += coord * sa;
      if (xb != 1) offb += coord * sb;
      sa *= xa;
      sb *= xb;
    }
    oa[i] = offa * M * K;
    ob[i] = offb * K * N;
  }
  auto linear = [&](const std::vector<int64_t>& o) {
    const int64_t step = batch > 1 ? o[1] - o[0] : 0;
    for (int64_t i = 0; i < batch; ++i)
      if (o[i] != o[0] + i * step) return -1L;
    return static_cast<long>(step);
  };
  const long step_a = linear(oa), step_b = linear(ob);
  if (step_a >= 0 && step_b >= 0) {
    c.dc.gemm_batched(false, false, M, N, K, a + oa[0], K, step_a, b + ob[0], N, step_b, y, N, M * N, batch);
    return;
  }
  for (int64_t i = 0; i < batch; ++i) c.dc.gemm(false, false, M, N, K, 1.f, a + oa[i], K, b + ob[i], N, 0.f, y + i * M * N, N);
}

void gemm(CudaOpContext& c) {
  const Dims &da = c.dims(0), &db = c.dims(1);
  if (da.size() != 2 || db.size() != 2) c.fallback("Gemm operands not 2-D");
  const bool ta = c.node.attr_int("transA", 0) != 0, tb = c.node.attr_int("transB", 0) != 0;
  const int64_t M = ta ? da[1] : da[0], K = ta ? da[0] : da[1], N = tb ? db[0] : db[1];
  if ((tb ? db[1] : db[0]) != K) c.fallback("inner dimensions differ");
  const float alpha = c.node.attr_float("alpha", 1.f), beta = c.node.attr_float("beta", 1.f);
  const float* a = c.dev_f32(0);
  const float* b = c.dev_f32(1);
  const bool has_c = c.has_input(2) && beta != 0.f;
  const float* cp = has_c ? c.dev_f32(2) : nullptr;
  float* y = c.output(0, {M, N});
  if (has_c) {  // y = broadcast(C), then y = alpha·A·B + beta·y
    const Dims& dc = c.dims(2);
    if (dc.size() > 2) c.fallback("C of rank above 2");
    BroadcastGeometry g;
    g.rank = 2;
    g.dims[0] = M, g.dims[1] = N;
    const int64_t cr = dc.size() == 2 ? dc[0] : 1, cc = dc.empty() ? 1 : dc.back();
    if ((cr != 1 && cr != M) || (cc != 1 && cc != N)) c.fallback("C does not broadcast to [M,N]");
    g.sb[1] = cc == 1 ? 0 : 1;
    g.sb[0] = cr == 1 ? 0 : cc;
    binary(c.dc.stream(), Binary::Second, cp, cp, y, M * N, g);
  }
  c.dc.gemm(ta, tb, M, N, K, alpha, a, ta ? M : K, b, tb ? K : N, has_c ? beta : 0.f, y, N);
}

// ---------------------------------------------------------------- data movement by index maps

// Runs the CPU kernel of the node on element numbers: data inputs (`data`) are replaced by int32
// tensors holding 1..n (offset per input for Concat), other inputs are passed as they are.
CudaOpFn index_map_op(std::vector<int> data_inputs, bool all_inputs_data = false) {
  return [=](CudaOpContext& c) {
    std::vector<size_t> data;
    if (all_inputs_data) {
      for (size_t i = 0; i < c.num_inputs(); ++i)
        if (c.has_input(i)) data.push_back(i);
    } else {
      for (int i : data_inputs)
        if (c.has_input(static_cast<size_t>(i))) data.push_back(static_cast<size_t>(i));
    }
    if (data.empty() || data.size() > static_cast<size_t>(kMaxParts)) c.fallback("data input count");
    for (size_t i : data)
      if (c.dtype(i) != DType::Float) c.fallback(dtype_name(c.dtype(i)) + " data");
    const bool is_pad = c.node.op_type == "Pad";
    float fill = 0.f;
    if (is_pad) {
      if (c.node.attr_string("mode", "constant") == "constant" && c.has_input(2) && c.num_inputs() > 2)
        fill = scalar_of(c.host(2), 0.f);
    }
    // Cache key: every input's shape, and the values of the non-data inputs.
    std::string key;
    for (size_t i = 0; i < c.num_inputs(); ++i) {
      key += "|";
      if (!c.has_input(i)) continue;
      for (int64_t v : c.dims(i)) key += std::to_string(v) + ",";
      if (std::find(data.begin(), data.end(), i) == data.end() && !(is_pad && i == 2)) {
        const Tensor& t = c.host(i);
        key.append(reinterpret_cast<const char*>(t.bytes.data()), t.bytes.size());
      }
    }
    NodeCache& cache = c.cache();
    GatherParts parts;
    parts.count = static_cast<int>(data.size());
    int64_t total = 0;
    for (size_t k = 0; k < data.size(); ++k) {
      parts.offset[k] = total;
      total += numel(c.dims(data[k]));
    }
    parts.offset[data.size()] = total;
    if (total >= std::numeric_limits<int32_t>::max()) c.fallback("more than 2^31 elements");
    if (cache.key != key) {
      std::vector<Tensor> numbers(data.size());
      std::vector<const Tensor*> inputs(c.num_inputs(), nullptr);
      Tensor pad_fill;
      for (size_t i = 0; i < c.num_inputs(); ++i) {
        auto it = std::find(data.begin(), data.end(), i);
        if (it != data.end()) {
          const size_t k = static_cast<size_t>(it - data.begin());
          Tensor& t = numbers[k];
          t.dtype = DType::Int32;
          t.dims = c.dims(i);
          t.bytes.resize(static_cast<size_t>(numel(t.dims)) * 4);
          int32_t* p = reinterpret_cast<int32_t*>(t.bytes.data());
          for (int64_t e = 0; e < numel(t.dims); ++e) p[e] = static_cast<int32_t>(parts.offset[k] + e + 1);
          inputs[i] = &t;
        } else if (is_pad && i == 2 && c.has_input(2)) {
          pad_fill = Tensor::from_int32("", {}, {0});
          inputs[i] = &pad_fill;
        } else if (c.has_input(i)) {
          inputs[i] = &c.host(i);
        }
      }
      std::vector<Tensor> outs(c.num_outputs());
      const KernelFn* fn = KernelRegistry::instance().find(c.node);
      if (!fn) c.fallback("no CPU kernel");
      KernelContext kc{c.node, inputs, outs, c.cpu_threads(), c.opset, nullptr, nullptr};
      try {
        (*fn)(kc);
      } catch (const std::exception& e) {
        c.fallback(std::string("index map: ") + e.what());
      }
      cache.key.clear();
      cache.maps.clear();
      cache.out_dims.clear();
      for (auto& o : outs) {
        if (o.dtype != DType::Int32) c.fallback("index map changed the element type");
        DeviceBuffer map(c.dc.pool(), o.bytes.size());
        c.dc.upload(map.get(), o.bytes.data(), o.bytes.size());
        cache.maps.push_back(std::move(map));
        cache.out_dims.push_back(o.dims);
      }
      cache.key = key;
    }
    for (size_t k = 0; k < data.size(); ++k) parts.data[k] = c.dev(data[k]);
    for (size_t k = 0; k < cache.maps.size(); ++k) {
      if (!c.output_used(k)) continue;
      float* y = c.output(k, cache.out_dims[k]);
      gather_map(c.dc.stream(), parts, cache.maps[k].get<int32_t>(), y, numel(cache.out_dims[k]), fill);
    }
  };
}

// By Node::key() (every device op is in the default domain).
std::map<std::string, CudaOpFn> build_table() {
  std::map<std::string, CudaOpFn> t;
  auto add = [&](const char* op, CudaOpFn fn) { t[op_key("", op)] = std::move(fn); };
  const std::pair<const char*, Unary> unaries[] = {
      {"Relu", Unary::Relu}, {"Sigmoid", Unary::Sigmoid}, {"Tanh", Unary::Tanh}, {"Erf", Unary::Erf},
      {"HardSwish", Unary::HardSwish}, {"Exp", Unary::Exp}, {"Log", Unary::Log}, {"Sqrt", Unary::Sqrt},
      {"Neg", Unary::Neg}, {"Abs", Unary::Abs}, {"Reciprocal", Unary::Reciprocal}, {"Softplus", Unary::Softplus},
      {"Sin", Unary::Sin}, {"Cos", Unary::Cos}, {"Floor", Unary::Floor}, {"Ceil", Unary::Ceil},
      {"Round", Unary::Round}, {"Sign", Unary::Sign}, {"Softsign", Unary::Softsign}, {"Mish", Unary::Mish},
      {"Identity", Unary::Copy}};
  for (const auto& [op, u] : unaries) add(op, unary_op(u));
  add("LeakyRelu", leaky_relu);
  add("Elu", elu);
  add("HardSigmoid", hard_sigmoid);
  add("Gelu", gelu);
  add("Clip", clip);
  add("Cast", cast);
  add("Dropout", dropout);
  const std::pair<const char*, Binary> binaries[] = {{"Add", Binary::Add}, {"Sub", Binary::Sub}, {"Mul", Binary::Mul},
                                                     {"Div", Binary::Div}, {"Pow", Binary::Pow}, {"Max", Binary::Max},
                                                     {"Min", Binary::Min}};
  for (const auto& [op, b] : binaries) add(op, binary_op(b));
  add("PRelu", prelu);
  add("Mod", mod);
  add("Softmax", [](CudaOpContext& c) { softmax(c, false); });
  add("LogSoftmax", [](CudaOpContext& c) { softmax(c, true); });
  add("LayerNormalization", layer_norm);
  add("BatchNormalization", batch_norm_op);
  const std::pair<const char*, Reduce> reductions[] = {
      {"ReduceSum", Reduce::Sum}, {"ReduceMean", Reduce::Mean}, {"ReduceMax", Reduce::Max},
      {"ReduceMin", Reduce::Min}, {"ReduceSumSquare", Reduce::SumSquare}, {"ReduceL2", Reduce::L2},
      {"ReduceL1", Reduce::L1}, {"ReduceProd", Reduce::Prod}};
  for (const auto& [op, r] : reductions) add(op, reduce_op(r));
  add("GlobalAveragePool", global_pool(Reduce::Mean));
  add("GlobalMaxPool", global_pool(Reduce::Max));
  add("MaxPool", [](CudaOpContext& c) { pool(c, true); });
  add("AveragePool", [](CudaOpContext& c) { pool(c, false); });
  add("Conv", conv);
  add("ConvTranspose", conv_transpose);
  add("Shape", shape_op);
  add("Size", size_op);
  add("MatMul", matmul);
  add("Gemm", gemm);
  for (const char* op : {"Reshape", "Flatten", "Squeeze", "Unsqueeze", "Transpose", "Slice", "Split", "Gather",
                         "GatherElements", "Expand", "Tile", "Pad", "Resize", "Upsample"})
    add(op, index_map_op({0}));
  add("Concat", index_map_op({}, true));
  return t;
}

const std::map<std::string, CudaOpFn>& table() {
  static const auto t = build_table();
  return t;
}

}  // namespace

const CudaOpFn* find_cuda_op(const Node& n) {
  auto it = table().find(n.key());
  return it == table().end() ? nullptr : &it->second;
}

std::vector<std::string> cuda_ops() {
  std::vector<std::string> out;
  for (const auto& [k, v] : table()) out.push_back(k);
  return out;
}

}  // namespace oc::cuda
