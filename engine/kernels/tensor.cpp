// Shape, layout and indexing kernels. Most are dtype-agnostic byte moves: the element size is
// all they need, so they serve float, int64 shape math, bool masks and fp16 alike.
//
// Slice:  out[j] = in[start + j·step] per axis, count = max(0, ceil((end − start)/step)) after
//         clamping start/end (ONNX rules; negative steps walk backwards).
// Pad/Resize(nearest): out[o] = in[Σ table_k[o_k]], one index table per axis (−1 = constant).
// Resize(linear/cubic): out[o] = Σ_taps Π_k w_k · in[tap], separable per axis (2 or 4 taps per axis).
#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "engine/kernels/common.h"
#include "graph/normalize.h"

namespace oc {
namespace {

using namespace kern;

Tensor with_dims(const Tensor& in, Dims dims) {
  Tensor t;
  t.dtype = in.dtype;
  t.dims = std::move(dims);
  t.bytes = in.bytes;
  t.strings = in.strings;
  return t;
}

// Input 0 under new dims: its storage is taken over when this node reads it for the last time
// (no copy; input 0 is then empty), else copied. Read everything needed from input 0 first.
Tensor input0_as(KernelContext& ctx, Dims dims) {
  Tensor* own = ctx.movable_input(0);
  if (!own) return with_dims(ctx.input(0), std::move(dims));
  Tensor t = std::move(*own);
  t.name.clear();
  t.dims = std::move(dims);
  return t;
}

void copy_kernel(KernelContext& ctx) { ctx.output(0) = input0_as(ctx, ctx.input(0).dims); }

// ---- Cast ----

template <typename Out>
void store_all(Tensor& out, int64_t n, const std::function<Out(int64_t)>& get) {
  Out* o = reinterpret_cast<Out*>(out.bytes.data());
  for (int64_t i = 0; i < n; ++i) o[i] = get(i);
}

void cast_kernel(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  DType to = static_cast<DType>(ctx.node.attr_int("to", 0));
  if (to == x.dtype) {
    copy_kernel(ctx);
    return;
  }
  if (x.dtype == DType::String || to == DType::String) ctx.unsupported("string casts");
  const int64_t n = x.numel();
  Tensor out = make_tensor(to, x.dims);
  // Integers keep full 64-bit precision through int64; everything else goes through double.
  const bool int_src = dtype_is_integer(x.dtype) || x.dtype == DType::Bool;
  std::vector<int64_t> iv;
  std::vector<double> dv;
  if (int_src) iv = x.to_int64();
  else if (x.dtype == DType::Double) dv.assign(x.data<double>(), x.data<double>() + n);
  else {
    auto f = x.to_float();
    dv.assign(f.begin(), f.end());
  }
  auto as_double = [&](int64_t i) { return int_src ? static_cast<double>(iv[i]) : dv[i]; };
  auto as_int = [&](int64_t i) -> int64_t {
    if (int_src) return iv[i];
    double v = dv[i];
    if (std::isnan(v)) return 0;
    return static_cast<int64_t>(std::max(-9.2e18, std::min(9.2e18, v)));  // truncates toward zero
  };
  switch (to) {
    case DType::Float: store_all<float>(out, n, [&](int64_t i) { return static_cast<float>(as_double(i)); }); break;
    case DType::Double: store_all<double>(out, n, as_double); break;
    case DType::Float16:
      store_all<uint16_t>(out, n, [&](int64_t i) { return float_to_half(static_cast<float>(as_double(i))); });
      break;
    case DType::BFloat16:
      out = Tensor::from_float_as("", to, x.dims, [&] {
        std::vector<float> f(static_cast<size_t>(n));
        for (int64_t i = 0; i < n; ++i) f[i] = static_cast<float>(as_double(i));
        return f;
      }());
      break;
    case DType::Bool: store_all<uint8_t>(out, n, [&](int64_t i) { return uint8_t(int_src ? iv[i] != 0 : dv[i] != 0); }); break;
    case DType::Int64: store_all<int64_t>(out, n, as_int); break;
    case DType::Int32: store_all<int32_t>(out, n, [&](int64_t i) { return static_cast<int32_t>(as_int(i)); }); break;
    case DType::Int16: store_all<int16_t>(out, n, [&](int64_t i) { return static_cast<int16_t>(as_int(i)); }); break;
    case DType::Int8: store_all<int8_t>(out, n, [&](int64_t i) { return static_cast<int8_t>(as_int(i)); }); break;
    case DType::UInt8: store_all<uint8_t>(out, n, [&](int64_t i) { return static_cast<uint8_t>(as_int(i)); }); break;
    case DType::UInt16: store_all<uint16_t>(out, n, [&](int64_t i) { return static_cast<uint16_t>(as_int(i)); }); break;
    case DType::UInt32: store_all<uint32_t>(out, n, [&](int64_t i) { return static_cast<uint32_t>(as_int(i)); }); break;
    case DType::UInt64: store_all<uint64_t>(out, n, [&](int64_t i) { return static_cast<uint64_t>(as_int(i)); }); break;
    default: ctx.unsupported("cast to " + dtype_name(to));
  }
  ctx.output(0) = std::move(out);
}

// ---- reshaping ----

void reshape_kernel(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  std::vector<int64_t> shape = ctx.opset < 5 ? ctx.node.attr_ints("shape") : int_values(ctx.input(1));
  bool allowzero = ctx.node.attr_int("allowzero", 0) != 0;
  int64_t known = 1, infer = -1;
  for (size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] == 0 && !allowzero) {
      if (i >= x.dims.size()) bad_input(ctx, "shape " + shape_str(shape) + " copies a dim the input " + shape_str(x.dims) + " lacks");
      shape[i] = x.dims[i];
    }
    if (shape[i] == -1) {
      if (infer >= 0) bad_input(ctx, "more than one -1 in shape " + shape_str(shape));
      infer = static_cast<int64_t>(i);
    } else {
      known *= shape[i];
    }
  }
  if (infer >= 0) shape[infer] = known == 0 ? 0 : x.numel() / known;
  if (numel(shape) != x.numel()) bad_input(ctx, "cannot reshape " + shape_str(x.dims) + " to " + shape_str(shape));
  ctx.output(0) = input0_as(ctx, shape);
}

void flatten_kernel(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  int64_t r = static_cast<int64_t>(x.dims.size());
  int64_t axis = ctx.node.attr_int("axis", 1);
  if (axis < 0) axis += r;
  if (axis < 0 || axis > r) bad_input(ctx, "axis out of range");
  int64_t a = 1, b = 1;
  for (int64_t i = 0; i < r; ++i) (i < axis ? a : b) *= x.dims[i];
  ctx.output(0) = input0_as(ctx, {a, b});
}

void transpose_kernel(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  std::vector<int64_t> perm = ctx.node.attr_ints("perm");
  if (perm.empty())
    for (int64_t i = static_cast<int64_t>(x.dims.size()) - 1; i >= 0; --i) perm.push_back(i);
  ctx.output(0) = transpose(ctx, x, perm);
}

void squeeze_kernel(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  bool given = false;
  auto axes = axes_input_or_attr(ctx, 1, "axes", &given);
  const int64_t r = static_cast<int64_t>(x.dims.size());
  std::vector<bool> drop(r, false);
  if (!given)
    for (int64_t i = 0; i < r; ++i) drop[i] = x.dims[i] == 1;
  for (int64_t a : axes) {
    a = norm_axis(ctx, a, r);
    if (x.dims[a] != 1) bad_input(ctx, "cannot squeeze axis " + std::to_string(a) + " of " + shape_str(x.dims));
    drop[a] = true;
  }
  Dims d;
  for (int64_t i = 0; i < r; ++i)
    if (!drop[i]) d.push_back(x.dims[i]);
  ctx.output(0) = input0_as(ctx, d);
}

void unsqueeze_kernel(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  bool given = false;
  auto axes = axes_input_or_attr(ctx, 1, "axes", &given);
  const int64_t r = static_cast<int64_t>(x.dims.size() + axes.size());
  std::vector<bool> ins(r, false);
  for (int64_t a : axes) {
    a = norm_axis(ctx, a, r);
    if (ins[a]) bad_input(ctx, "repeated axis " + std::to_string(a));
    ins[a] = true;
  }
  Dims d;
  size_t k = 0;
  for (int64_t i = 0; i < r; ++i) d.push_back(ins[i] ? 1 : x.dims[k++]);
  ctx.output(0) = input0_as(ctx, d);
}

// ---- joining and splitting along an axis: [outer, axis·inner] blocks ----

void concat_kernel(KernelContext& ctx) {
  const Tensor& x0 = ctx.input(0);
  const int64_t r = static_cast<int64_t>(x0.dims.size());
  const int64_t axis = norm_axis(ctx, ctx.node.attr_int("axis", 0), r);
  Dims od = x0.dims;
  od[axis] = 0;
  for (size_t i = 0; i < ctx.num_inputs(); ++i) {
    const Tensor& t = ctx.input(i);
    if (t.dtype != x0.dtype || static_cast<int64_t>(t.dims.size()) != r) bad_input(ctx, "inputs differ in type or rank");
    for (int64_t k = 0; k < r; ++k)
      if (k != axis && t.dims[k] != x0.dims[k])
        bad_input(ctx, "cannot concatenate " + shape_str(x0.dims) + " and " + shape_str(t.dims) + " on axis " + std::to_string(axis));
    od[axis] += t.dims[axis];
  }
  const size_t es = elem_size(ctx, x0.dtype);
  int64_t outer = 1, inner = 1;
  for (int64_t k = 0; k < axis; ++k) outer *= od[k];
  for (int64_t k = axis + 1; k < r; ++k) inner *= od[k];
  Tensor out = make_tensor(x0.dtype, od);
  const size_t row = static_cast<size_t>(od[axis] * inner) * es;
  size_t off = 0;
  for (size_t i = 0; i < ctx.num_inputs(); ++i) {
    const Tensor& t = ctx.input(i);
    const size_t chunk = static_cast<size_t>(t.dims[axis] * inner) * es;
    for (int64_t o = 0; o < outer; ++o)
      if (chunk) std::memcpy(out.bytes.data() + o * row + off, t.bytes.data() + o * chunk, chunk);
    off += chunk;
  }
  ctx.output(0) = std::move(out);
}

void split_kernel(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  const int64_t r = static_cast<int64_t>(x.dims.size());
  const int64_t axis = norm_axis(ctx, ctx.node.attr_int("axis", 0), r);
  const int64_t n_out = static_cast<int64_t>(ctx.outputs.size());
  const int64_t dim = x.dims[axis];
  std::vector<int64_t> sizes;
  if (ctx.has_input(1)) sizes = int_values(ctx.input(1));
  else sizes = ctx.node.attr_ints("split");
  if (sizes.empty()) {
    if (ctx.node.has_attr("num_outputs")) {  // opset 18: ceil-sized chunks, last one smaller
      int64_t c = (dim + n_out - 1) / n_out;
      for (int64_t i = 0; i < n_out; ++i) sizes.push_back(std::max<int64_t>(0, std::min(c, dim - c * i)));
    } else {
      if (dim % n_out) bad_input(ctx, "axis of size " + std::to_string(dim) + " does not split evenly in " + std::to_string(n_out));
      sizes.assign(static_cast<size_t>(n_out), dim / n_out);
    }
  }
  if (static_cast<int64_t>(sizes.size()) != n_out || std::accumulate(sizes.begin(), sizes.end(), int64_t{0}) != dim)
    bad_input(ctx, "split sizes " + shape_str(sizes) + " do not cover axis of size " + std::to_string(dim));
  const size_t es = elem_size(ctx, x.dtype);
  int64_t outer = 1, inner = 1;
  for (int64_t k = 0; k < axis; ++k) outer *= x.dims[k];
  for (int64_t k = axis + 1; k < r; ++k) inner *= x.dims[k];
  const size_t row = static_cast<size_t>(dim * inner) * es;
  size_t off = 0;
  for (int64_t i = 0; i < n_out; ++i) {
    Dims d = x.dims;
    d[axis] = sizes[i];
    Tensor t = make_tensor(x.dtype, d);
    const size_t chunk = static_cast<size_t>(sizes[i] * inner) * es;
    for (int64_t o = 0; o < outer; ++o)
      if (chunk) std::memcpy(t.bytes.data() + o * chunk, x.bytes.data() + o * row + off, chunk);
    off += chunk;
    ctx.output(i) = std::move(t);
  }
}

void slice_kernel(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  const int64_t r = static_cast<int64_t>(x.dims.size());
  std::vector<int64_t> starts, ends, axes, steps;
  if (ctx.opset < 10) {
    starts = ctx.node.attr_ints("starts");
    ends = ctx.node.attr_ints("ends");
    axes = ctx.node.attr_ints("axes");
  } else {
    starts = int_values(ctx.input(1));
    ends = int_values(ctx.input(2));
    if (ctx.has_input(3)) axes = int_values(ctx.input(3));
    if (ctx.has_input(4)) steps = int_values(ctx.input(4));
  }
  if (axes.empty())
    for (size_t i = 0; i < starts.size(); ++i) axes.push_back(static_cast<int64_t>(i));
  if (steps.empty()) steps.assign(starts.size(), 1);
  if (ends.size() != starts.size() || axes.size() != starts.size() || steps.size() != starts.size())
    bad_input(ctx, "starts/ends/axes/steps lengths differ");
  Dims is = strides_of(x.dims), od = x.dims, st = is;
  int64_t base = 0;
  for (size_t i = 0; i < starts.size(); ++i) {
    const int64_t a = norm_axis(ctx, axes[i], r), dim = x.dims[a], step = steps[i];
    if (step == 0) bad_input(ctx, "step 0");
    int64_t s = starts[i], e = ends[i];
    if (s < 0) s += dim;
    if (e < 0) e += dim;
    if (step > 0) {
      s = std::clamp<int64_t>(s, 0, dim);
      e = std::clamp<int64_t>(e, 0, dim);
    } else {
      s = std::clamp<int64_t>(s, 0, dim - 1);
      e = std::clamp<int64_t>(e, -1, dim - 1);
    }
    // Huge sentinel ends (INT64_MAX) were clamped above, so this division cannot overflow.
    int64_t count = step > 0 ? (e - s + step - 1) / step : (s - e - step - 1) / (-step);
    od[a] = std::max<int64_t>(0, count);
    st[a] = is[a] * step;
    if (od[a] > 0) base += s * is[a];
  }
  Tensor out = make_tensor(x.dtype, od);
  strided_copy(x.bytes.data(), base, st, out.bytes.data(), od, elem_size(ctx, x.dtype), ctx.num_threads);
  ctx.output(0) = std::move(out);
}

// ---- indexing ----

void gather_kernel(KernelContext& ctx) {
  const Tensor &x = ctx.input(0), &ind = ctx.input(1);
  const int64_t r = static_cast<int64_t>(x.dims.size());
  const int64_t axis = norm_axis(ctx, ctx.node.attr_int("axis", 0), r);
  auto idx = int_values(ind);
  const int64_t dim = x.dims[axis];
  Dims od(x.dims.begin(), x.dims.begin() + axis);
  od.insert(od.end(), ind.dims.begin(), ind.dims.end());
  od.insert(od.end(), x.dims.begin() + axis + 1, x.dims.end());
  int64_t outer = 1, inner = 1;
  for (int64_t k = 0; k < axis; ++k) outer *= x.dims[k];
  for (int64_t k = axis + 1; k < r; ++k) inner *= x.dims[k];
  const size_t es = elem_size(ctx, x.dtype), chunk = static_cast<size_t>(inner) * es;
  Tensor out = make_tensor(x.dtype, od);
  for (auto& i : idx) {
    if (i < -dim || i >= dim) bad_input(ctx, "index " + std::to_string(i) + " out of range for axis of size " + std::to_string(dim));
    if (i < 0) i += dim;
  }
  const int64_t n = static_cast<int64_t>(idx.size());
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t j = 0; j < n; ++j)
      std::memcpy(out.bytes.data() + (o * n + j) * chunk, x.bytes.data() + (o * dim + idx[j]) * chunk, chunk);
  ctx.output(0) = std::move(out);
}

void gather_elements_kernel(KernelContext& ctx) {
  const Tensor &x = ctx.input(0), &ind = ctx.input(1);
  const int64_t r = static_cast<int64_t>(x.dims.size());
  if (static_cast<int64_t>(ind.dims.size()) != r) bad_input(ctx, "indices rank differs from data rank");
  const int64_t axis = norm_axis(ctx, ctx.node.attr_int("axis", 0), r);
  auto idx = int_values(ind);
  const size_t es = elem_size(ctx, x.dtype);
  Dims xs = strides_of(x.dims), os = strides_of(ind.dims);
  Tensor out = make_tensor(x.dtype, ind.dims);
  for (int64_t i = 0; i < static_cast<int64_t>(idx.size()); ++i) {
    int64_t off = 0, rem = i;
    for (int64_t k = 0; k < r; ++k) {
      int64_t c = rem / os[k];
      rem %= os[k];
      if (k == axis) {
        c = idx[i] < 0 ? idx[i] + x.dims[k] : idx[i];
        if (c < 0 || c >= x.dims[k]) bad_input(ctx, "index " + std::to_string(idx[i]) + " out of range");
      }
      off += c * xs[k];
    }
    std::memcpy(out.bytes.data() + i * es, x.bytes.data() + off * es, es);
  }
  ctx.output(0) = std::move(out);
}

// ScatterND: out = data; out[indices[i]] (op)= updates[i] for each index tuple.
void scatter_nd_kernel(KernelContext& ctx) {
  const Tensor &x = ctx.input(0), &ind = ctx.input(1), &upd = ctx.input(2);
  std::string red = ctx.node.attr_string("reduction", "none");
  if (red != "none" && red != "add" && red != "mul") ctx.unsupported("reduction '" + red + "'");
  if (red != "none" && x.dtype != DType::Float) ctx.unsupported("reduction on " + dtype_name(x.dtype));
  auto idx = int_values(ind);
  const int64_t k = ind.dims.empty() ? 0 : ind.dims.back();
  if (k > static_cast<int64_t>(x.dims.size())) bad_input(ctx, "index tuples longer than data rank");
  const int64_t n = k ? static_cast<int64_t>(idx.size()) / k : 0;
  int64_t slice = 1;
  for (size_t d = static_cast<size_t>(k); d < x.dims.size(); ++d) slice *= x.dims[d];
  if (upd.numel() != n * slice) bad_input(ctx, "updates shape " + shape_str(upd.dims) + " does not match indices");
  Dims xs = strides_of(x.dims);
  const size_t es = elem_size(ctx, x.dtype);
  Tensor out = with_dims(x, x.dims);
  for (int64_t i = 0; i < n; ++i) {
    int64_t off = 0;
    for (int64_t j = 0; j < k; ++j) {
      int64_t v = idx[i * k + j], d = x.dims[j];
      if (v < 0) v += d;
      if (v < 0 || v >= d) bad_input(ctx, "index " + std::to_string(idx[i * k + j]) + " out of range");
      off += v * xs[j];
    }
    if (red == "none") {
      std::memcpy(out.bytes.data() + off * es, upd.bytes.data() + i * slice * es, static_cast<size_t>(slice) * es);
    } else {
      float* o = out.data<float>() + off;
      const float* u = upd.data<float>() + i * slice;
      for (int64_t e = 0; e < slice; ++e) o[e] = red == "add" ? o[e] + u[e] : o[e] * u[e];
    }
  }
  ctx.output(0) = std::move(out);
}

// ---- shape-producing ----

void shape_kernel(KernelContext& ctx) {
  const Dims& d = ctx.input(0).dims;
  const int64_t r = static_cast<int64_t>(d.size());
  int64_t s = ctx.node.attr_int("start", 0), e = ctx.node.attr_int("end", r);
  if (s < 0) s += r;
  if (e < 0) e += r;
  s = std::clamp<int64_t>(s, 0, r);
  e = std::clamp<int64_t>(e, 0, r);
  std::vector<int64_t> v(d.begin() + s, d.begin() + std::max(s, e));
  ctx.output(0) = Tensor::from_int64("", {static_cast<int64_t>(v.size())}, v);
}

void size_kernel(KernelContext& ctx) { ctx.output(0) = Tensor::from_int64("", {}, {ctx.input(0).numel()}); }

void constant_of_shape_kernel(KernelContext& ctx) {
  Dims d = int_values(ctx.input(0));
  const Attribute* v = ctx.node.attr("value");
  Tensor fill = v ? v->t : Tensor::from_float("", {1}, {0.f});
  Tensor out = make_tensor(fill.dtype, d);
  const size_t es = elem_size(ctx, fill.dtype);
  if (fill.bytes.size() < es) bad_input(ctx, "value attribute is empty");
  for (int64_t i = 0; i < out.numel(); ++i) std::memcpy(out.bytes.data() + i * es, fill.bytes.data(), es);
  ctx.output(0) = std::move(out);
}

void constant_kernel(KernelContext& ctx) {
  auto v = constant_node_value(ctx.node);
  if (!v) ctx.unsupported("Constant value kind (sparse or strings)");
  v->name.clear();
  ctx.output(0) = std::move(*v);
}

void expand_kernel(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  Dims shape = int_values(ctx.input(1));
  Dims od = broadcast_dims(ctx, {&x.dims, &shape});
  Tensor out = make_tensor(x.dtype, od);
  strided_copy(x.bytes.data(), 0, broadcast_strides(x.dims, od), out.bytes.data(), od, elem_size(ctx, x.dtype),
               ctx.num_threads);
  ctx.output(0) = std::move(out);
}

// Tile = a strided copy over [rep_0, d_0, rep_1, d_1, ...] with stride 0 on the rep axes.
void tile_kernel(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  auto reps = int_values(ctx.input(1));
  if (reps.size() != x.dims.size()) bad_input(ctx, "repeats length differs from input rank");
  Dims is = strides_of(x.dims), view, st, od;
  for (size_t i = 0; i < reps.size(); ++i) {
    if (reps[i] < 0) bad_input(ctx, "negative repeat");
    view.push_back(reps[i]);
    st.push_back(0);
    view.push_back(x.dims[i]);
    st.push_back(is[i]);
    od.push_back(reps[i] * x.dims[i]);
  }
  Tensor out = make_tensor(x.dtype, od);
  strided_copy(x.bytes.data(), 0, st, out.bytes.data(), view, elem_size(ctx, x.dtype), ctx.num_threads);
  ctx.output(0) = std::move(out);
}

// out[o] = in[Σ_k tables[k][o_k]] (tables hold element offsets; −1 = fill value).
Tensor gather_tables(const KernelContext& ctx, const Tensor& x, const Dims& od, const std::vector<Dims>& tables,
                     const std::vector<uint8_t>& fill) {
  const size_t es = elem_size(ctx, x.dtype);
  Tensor out = make_tensor(x.dtype, od);
  const int64_t n = numel(od), r = static_cast<int64_t>(od.size());
  if (n == 0) return out;
  if (r == 0) {
    out.bytes = x.bytes;
    return out;
  }
  const int64_t inner = od.back(), outer = n / inner;
  parallel_for(outer, ctx.num_threads, [&](int64_t b, int64_t e) {
    std::vector<int64_t> idx(static_cast<size_t>(r), 0);
    int64_t rem = b;
    for (int64_t k = r - 2; k >= 0; --k) {
      idx[k] = rem % od[k];
      rem /= od[k];
    }
    for (int64_t o = b; o < e; ++o) {
      int64_t base = 0;
      bool outside = false;
      for (int64_t k = 0; k + 1 < r; ++k) {
        int64_t t = tables[k][idx[k]];
        if (t < 0) outside = true;
        base += t;
      }
      uint8_t* dst = out.bytes.data() + o * inner * es;
      const Dims& last = tables[r - 1];
      for (int64_t j = 0; j < inner; ++j) {
        if (outside || last[j] < 0) std::memcpy(dst + j * es, fill.data(), es);
        else std::memcpy(dst + j * es, x.bytes.data() + (base + last[j]) * es, es);
      }
      for (int64_t k = r - 2; k >= 0; --k) {
        if (++idx[k] < od[k]) break;
        idx[k] = 0;
      }
    }
  }, 1024);
  return out;
}

void pad_kernel(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  const int64_t r = static_cast<int64_t>(x.dims.size());
  std::string mode = ctx.node.attr_string("mode", "constant");
  std::vector<int64_t> pads;
  std::vector<uint8_t> fill(8, 0);
  const size_t es = elem_size(ctx, x.dtype);
  if (ctx.opset < 11) {
    pads = ctx.node.attr_ints("pads");
    Tensor v = Tensor::from_float_as("", x.dtype == DType::Double ? DType::Double : DType::Float, {}, {ctx.node.attr_float("value", 0.f)});
    if (x.dtype != DType::Float && x.dtype != DType::Double) ctx.unsupported("pre-11 Pad of " + dtype_name(x.dtype));
    std::memcpy(fill.data(), v.bytes.data(), es);
  } else {
    pads = int_values(ctx.input(1));
    if (ctx.has_input(2) && ctx.input(2).numel() > 0) {
      const Tensor& v = ctx.input(2);
      if (v.dtype != x.dtype) bad_input(ctx, "constant_value type differs from the input");
      std::memcpy(fill.data(), v.bytes.data(), es);
    }
  }
  std::vector<int64_t> axes;
  if (ctx.has_input(3)) axes = int_values(ctx.input(3));
  else
    for (int64_t i = 0; i < r; ++i) axes.push_back(i);
  const int64_t na = static_cast<int64_t>(axes.size());
  if (static_cast<int64_t>(pads.size()) != 2 * na) bad_input(ctx, "pads has " + std::to_string(pads.size()) + " values for " + std::to_string(na) + " axes");
  std::vector<int64_t> pb(r, 0), pe(r, 0);
  for (int64_t i = 0; i < na; ++i) {
    int64_t a = norm_axis(ctx, axes[i], r);
    pb[a] = pads[i];
    pe[a] = pads[i + na];
  }
  Dims is = strides_of(x.dims), od(r);
  std::vector<Dims> tables(r);
  for (int64_t k = 0; k < r; ++k) {
    const int64_t d = x.dims[k];
    od[k] = d + pb[k] + pe[k];
    if (od[k] < 0) bad_input(ctx, "pads remove more than the axis holds");
    if (mode == "reflect" && d > 0 && (pb[k] >= d || pe[k] >= d) && d > 1)
      bad_input(ctx, "reflect pad larger than the axis");
    for (int64_t o = 0; o < od[k]; ++o) {
      int64_t i = o - pb[k];
      if (i < 0 || i >= d) {
        if (mode == "constant") i = -1;
        else if (mode == "edge") i = std::clamp<int64_t>(i, 0, d - 1);
        else if (mode == "reflect") {
          if (d == 1) i = 0;
          else {
            const int64_t period = 2 * (d - 1);
            i = ((i % period) + period) % period;
            if (i >= d) i = period - i;
          }
        } else if (mode == "wrap") {
          i = ((i % d) + d) % d;
        } else {
          ctx.unsupported("mode '" + mode + "'");
        }
      }
      tables[k].push_back(i < 0 ? -1 : i * is[k]);
    }
  }
  ctx.output(0) = gather_tables(ctx, x, od, tables, fill);
}

// ---- Resize / Upsample ----

// Input coordinate of output coordinate `o` along one axis (ONNX coordinate_transformation_mode).
double source_coord(const std::string& mode, int64_t o, double scale, int64_t in_len, int64_t out_len,
                    double roi_lo, double roi_hi, const KernelContext& ctx) {
  if (mode == "half_pixel") return (o + 0.5) / scale - 0.5;
  if (mode == "pytorch_half_pixel") return out_len > 1 ? (o + 0.5) / scale - 0.5 : 0.0;
  if (mode == "asymmetric") return o / scale;
  // The integer output length, as ONNX Runtime (the ONNX reference uses in_len·scale: 4 × 0.6 = 2.4
  // in test_resize_downsample_scales_linear_align_corners, where ORT and we give [1, 4]).
  if (mode == "align_corners") return out_len == 1 ? 0.0 : o * double(in_len - 1) / double(out_len - 1);
  if (mode == "tf_half_pixel_for_nn") return (o + 0.5) / scale;
  if (mode == "half_pixel_symmetric") {
    double adj = double(out_len) / (scale * in_len), center = in_len / 2.0;
    double offset = center * (1 - adj);
    return offset + (o + 0.5) / scale - 0.5;
  }
  if (mode == "tf_crop_and_resize")
    return out_len > 1 ? roi_lo * (in_len - 1) + o * (roi_hi - roi_lo) * (in_len - 1) / (out_len - 1)
                       : 0.5 * (roi_lo + roi_hi) * (in_len - 1);
  ctx.unsupported("coordinate_transformation_mode '" + mode + "'");
}

int64_t nearest_index(const std::string& mode, double x, const KernelContext& ctx) {
  if (mode == "round_prefer_floor") return (x == std::floor(x) + 0.5) ? int64_t(std::floor(x)) : int64_t(std::round(x));
  if (mode == "round_prefer_ceil") return int64_t(std::round(x));
  if (mode == "floor") return int64_t(std::floor(x));
  if (mode == "ceil") return int64_t(std::ceil(x));
  ctx.unsupported("nearest_mode '" + mode + "'");
}

// Cubic convolution weight at distance d (Keys; A = cubic_coeff_a, −0.75 by default as ONNX).
double cubic_weight(double d, double A) {
  d = std::fabs(d);
  if (d <= 1) return ((A + 2) * d - (A + 3)) * d * d + 1;
  if (d < 2) return ((A * d - 5 * A) * d + 8 * A) * d - 4 * A;
  return 0;
}

void resize_impl(KernelContext& ctx, const Tensor& x, std::vector<double> scales, Dims od, std::string mode,
                 const std::string& coord, const std::string& nearest, const std::vector<double>& roi,
                 float extrapolation = 0.f) {
  const int64_t r = static_cast<int64_t>(x.dims.size());
  if (mode != "nearest" && mode != "linear" && mode != "bilinear" && mode != "trilinear" && mode != "cubic")
    ctx.unsupported("mode '" + mode + "'");
  const bool linear = mode != "nearest";
  const bool cubic = mode == "cubic";
  // Taps per output coordinate and axis: 2 (linear: floor, floor+1) or 4 (cubic: floor−1 .. floor+2),
  // indices clamped to the input (edge padding, as ONNX's reference); with exclude_outside, cubic taps
  // outside the input get weight 0 and the others are renormalized.
  const int ntaps = cubic ? 4 : 2;
  const double A = ctx.node.attr_float("cubic_coeff_a", -0.75f);
  const bool exclude_outside = ctx.node.attr_int("exclude_outside", 0) != 0;
  Dims is = strides_of(x.dims);
  if (linear && x.dtype != DType::Float) ctx.unsupported(mode + " resize of " + dtype_name(x.dtype));
  struct Axis {
    std::vector<int64_t> idx;   // ntaps per output coordinate
    std::vector<float> w;       // weight of each tap
    std::vector<char> outside;  // tf_crop_and_resize: source coordinate outside the input
    bool identity = true;
  };
  std::vector<Axis> ax(r);
  std::vector<Dims> tables(r);
  for (int64_t k = 0; k < r; ++k) {
    const int64_t in = x.dims[k], out = od[k];
    const double rl = roi.size() == size_t(2 * r) ? roi[k] : 0.0, rh = roi.size() == size_t(2 * r) ? roi[k + r] : 1.0;
    ax[k].identity = in == out && scales[k] == 1.0 && coord != "tf_crop_and_resize";
    for (int64_t o = 0; o < out; ++o) {
      if (ax[k].identity) {
        tables[k].push_back(o * is[k]);
        for (int t = 0; t < ntaps; ++t) {
          ax[k].idx.push_back(o);
          ax[k].w.push_back(t == 0 ? 1.f : 0.f);
        }
        ax[k].outside.push_back(0);
        continue;
      }
      double c = source_coord(coord, o, scales[k], in, out, rl, rh, ctx);
      const bool outside = coord == "tf_crop_and_resize" && (c < 0 || c > double(in - 1));
      ax[k].outside.push_back(outside);
      if (outside && !linear) ctx.unsupported("nearest tf_crop_and_resize outside the input");
      if (!linear) {
        int64_t i = nearest_index(nearest, c, ctx);
        tables[k].push_back(std::clamp<int64_t>(i, 0, in - 1) * is[k]);
      } else if (!cubic) {
        c = std::clamp(c, 0.0, double(in - 1));
        int64_t lo = static_cast<int64_t>(std::floor(c)), hi = std::min(lo + 1, in - 1);
        const float w = static_cast<float>(c - lo);
        ax[k].idx.push_back(lo);
        ax[k].idx.push_back(hi);
        ax[k].w.push_back(1 - w);
        ax[k].w.push_back(w);
      } else {
        const double f = std::floor(c), t = c - f;
        double w[4], sum = 0;
        for (int j = 0; j < 4; ++j) {
          const int64_t i = static_cast<int64_t>(f) - 1 + j;
          w[j] = cubic_weight(t - (j - 1), A);
          if (exclude_outside && (i < 0 || i >= in)) w[j] = 0;
          sum += w[j];
          ax[k].idx.push_back(std::clamp<int64_t>(i, 0, in - 1));
        }
        for (double v : w) ax[k].w.push_back(static_cast<float>(exclude_outside && sum != 0 ? v / sum : v));
      }
    }
  }
  if (!linear) {
    ctx.output(0) = gather_tables(ctx, x, od, tables, std::vector<uint8_t>(8, 0));
    return;
  }
  std::vector<int64_t> moving;
  for (int64_t k = 0; k < r; ++k)
    if (!ax[k].identity) moving.push_back(k);
  Tensor out = make_tensor(x.dtype, od);
  const float* in = x.data<float>();
  float* o = out.data<float>();
  const int64_t n = numel(od);
  Dims os = strides_of(od);
  int64_t corners = 1;
  for (size_t m = 0; m < moving.size(); ++m) corners *= ntaps;
  parallel_for(n, ctx.num_threads, [&](int64_t b, int64_t e) {
    std::vector<int64_t> idx(r);
    for (int64_t i = b; i < e; ++i) {
      int64_t rem = i, base = 0;
      for (int64_t k = 0; k < r; ++k) {
        idx[k] = rem / os[k];
        rem %= os[k];
        if (ax[k].identity) base += idx[k] * is[k];
      }
      bool outside = false;
      for (int64_t k : moving) outside = outside || ax[k].outside[idx[k]];
      if (outside) {
        o[i] = extrapolation;
        continue;
      }
      float acc = 0;
      for (int64_t c = 0; c < corners; ++c) {
        float w = 1;
        int64_t off = base, code = c;
        for (size_t m = 0; m < moving.size(); ++m) {
          const Axis& a = ax[moving[m]];
          const int64_t tap = idx[moving[m]] * ntaps + code % ntaps;
          code /= ntaps;
          w *= a.w[tap];
          off += a.idx[tap] * is[moving[m]];
        }
        acc += w * in[off];
      }
      o[i] = acc;
    }
  }, 4096);
  ctx.output(0) = std::move(out);
}

void resize_kernel(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  const int64_t r = static_cast<int64_t>(x.dims.size());
  std::string mode = ctx.node.attr_string("mode", "nearest");
  std::string coord = ctx.node.attr_string("coordinate_transformation_mode", ctx.opset < 11 ? "asymmetric" : "half_pixel");
  std::string nearest = ctx.node.attr_string("nearest_mode", ctx.opset < 11 ? "floor" : "round_prefer_floor");
  if (ctx.node.has_attr("axes")) ctx.unsupported("axes attribute");
  if (ctx.node.attr_string("keep_aspect_ratio_policy", "stretch") != "stretch") ctx.unsupported("keep_aspect_ratio_policy");
  if (ctx.node.attr_int("antialias", 0)) ctx.unsupported("antialias");
  std::vector<double> scales, roi;
  Dims od(r);
  const Tensor* sc = nullptr;
  const Tensor* sz = nullptr;
  if (ctx.opset < 11) {
    sc = &ctx.input(1);
  } else {
    if (ctx.has_input(1)) {
      auto f = ctx.input(1).to_float();
      roi.assign(f.begin(), f.end());
    }
    if (ctx.has_input(2) && ctx.input(2).numel() > 0) sc = &ctx.input(2);
    if (ctx.has_input(3) && ctx.input(3).numel() > 0) sz = &ctx.input(3);
  }
  if (sc) {
    auto f = sc->to_float();
    if (static_cast<int64_t>(f.size()) != r) bad_input(ctx, "scales has " + std::to_string(f.size()) + " values for rank " + std::to_string(r));
    for (int64_t k = 0; k < r; ++k) {
      scales.push_back(f[k]);
      od[k] = static_cast<int64_t>(std::floor(x.dims[k] * double(f[k])));
    }
  } else if (sz) {
    od = int_values(*sz);
    if (static_cast<int64_t>(od.size()) != r) bad_input(ctx, "sizes length differs from rank");
    for (int64_t k = 0; k < r; ++k) scales.push_back(x.dims[k] ? double(od[k]) / double(x.dims[k]) : 1.0);
  } else {
    bad_input(ctx, "neither scales nor sizes given");
  }
  resize_impl(ctx, x, scales, od, mode, coord, nearest, roi, ctx.node.attr_float("extrapolation_value", 0.f));
}

void upsample_kernel(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  std::vector<double> scales;
  if (ctx.has_input(1)) {
    auto f = ctx.input(1).to_float();
    scales.assign(f.begin(), f.end());
  } else {
    auto f = ctx.node.attr_floats("scales");
    scales.assign(f.begin(), f.end());
  }
  if (scales.size() != x.dims.size()) bad_input(ctx, "scales length differs from rank");
  Dims od;
  for (size_t k = 0; k < scales.size(); ++k) od.push_back(static_cast<int64_t>(std::floor(x.dims[k] * scales[k])));
  resize_impl(ctx, x, scales, od, ctx.node.attr_string("mode", "nearest"), "asymmetric", "floor", {});
}

// ---- sequences and search ----

void range_kernel(KernelContext& ctx) {
  const Tensor &s = ctx.input(0), &l = ctx.input(1), &d = ctx.input(2);
  dispatch_numeric(ctx, s.dtype, [&](auto tag) {
    using T = decltype(tag);
    T start = *reinterpret_cast<const T*>(s.bytes.data()), limit = *reinterpret_cast<const T*>(l.bytes.data()),
      delta = *reinterpret_cast<const T*>(d.bytes.data());
    if (delta == T(0)) bad_input(ctx, "delta is 0");
    int64_t n = std::max<int64_t>(0, static_cast<int64_t>(std::ceil(double(limit - start) / double(delta))));
    Tensor out = make_tensor(s.dtype, {n});
    T* o = reinterpret_cast<T*>(out.bytes.data());
    for (int64_t i = 0; i < n; ++i) o[i] = static_cast<T>(start + static_cast<T>(i) * delta);
    ctx.output(0) = std::move(out);
  });
}

// Views x as [outer, len, inner] around `axis`.
struct AxisView {
  int64_t outer = 1, len = 1, inner = 1;
  AxisView(const Dims& d, int64_t axis) {
    for (int64_t k = 0; k < static_cast<int64_t>(d.size()); ++k) (k < axis ? outer : k == axis ? len : inner) *= d[k];
  }
};

void topk_kernel(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  const int64_t r = static_cast<int64_t>(x.dims.size());
  const int64_t axis = norm_axis(ctx, ctx.node.attr_int("axis", -1), r);
  const int64_t k = ctx.opset < 10 ? ctx.node.attr_int("k", 1) : int_values(ctx.input(1)).at(0);
  const bool largest = ctx.node.attr_int("largest", 1) != 0;
  if (k < 0 || k > x.dims[axis]) bad_input(ctx, "k=" + std::to_string(k) + " exceeds axis size " + std::to_string(x.dims[axis]));
  AxisView v(x.dims, axis);
  Dims od = x.dims;
  od[axis] = k;
  dispatch_numeric(ctx, x.dtype, [&](auto tag) {
    using T = decltype(tag);
    Tensor vals = make_tensor(x.dtype, od), inds = make_tensor(DType::Int64, od);
    const T* in = reinterpret_cast<const T*>(x.bytes.data());
    T* ov = reinterpret_cast<T*>(vals.bytes.data());
    int64_t* oi = inds.data<int64_t>();
    std::vector<int64_t> order(static_cast<size_t>(v.len));
    for (int64_t o = 0; o < v.outer; ++o)
      for (int64_t i = 0; i < v.inner; ++i) {
        const T* base = in + o * v.len * v.inner + i;
        std::iota(order.begin(), order.end(), 0);
        // Ties keep the lower index first, as ONNX Runtime does.
        std::partial_sort(order.begin(), order.begin() + k, order.end(), [&](int64_t a, int64_t b) {
          T x1 = base[a * v.inner], x2 = base[b * v.inner];
          if (x1 != x2) return largest ? x1 > x2 : x1 < x2;
          return a < b;
        });
        for (int64_t j = 0; j < k; ++j) {
          ov[(o * k + j) * v.inner + i] = base[order[j] * v.inner];
          oi[(o * k + j) * v.inner + i] = order[j];
        }
      }
    ctx.output(0) = std::move(vals);
    if (ctx.outputs.size() > 1) ctx.output(1) = std::move(inds);
  });
}

void arg_kernel(KernelContext& ctx, bool max) {
  const Tensor& x = ctx.input(0);
  const int64_t r = static_cast<int64_t>(x.dims.size());
  const int64_t axis = norm_axis(ctx, ctx.node.attr_int("axis", 0), r);
  const bool keep = ctx.node.attr_int("keepdims", 1) != 0, last = ctx.node.attr_int("select_last_index", 0) != 0;
  AxisView v(x.dims, axis);
  Dims od = x.dims;
  if (keep) od[axis] = 1;
  else od.erase(od.begin() + axis);
  if (v.len == 0) bad_input(ctx, "reduction over an empty axis");
  Tensor out = make_tensor(DType::Int64, od);
  int64_t* o = out.data<int64_t>();
  dispatch_numeric(ctx, x.dtype, [&](auto tag) {
    using T = decltype(tag);
    const T* in = reinterpret_cast<const T*>(x.bytes.data());
    for (int64_t a = 0; a < v.outer; ++a)
      for (int64_t i = 0; i < v.inner; ++i) {
        const T* b = in + a * v.len * v.inner + i;
        int64_t best = 0;
        for (int64_t j = 1; j < v.len; ++j) {
          T c = b[j * v.inner], cur = b[best * v.inner];
          bool better = max ? (c > cur || (last && c == cur)) : (c < cur || (last && c == cur));
          if (better) best = j;
        }
        o[a * v.inner + i] = best;
      }
  });
  ctx.output(0) = std::move(out);
}

void cumsum_kernel(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  const int64_t r = static_cast<int64_t>(x.dims.size());
  const int64_t axis = norm_axis(ctx, int_values(ctx.input(1)).at(0), r);
  const bool excl = ctx.node.attr_int("exclusive", 0) != 0, rev = ctx.node.attr_int("reverse", 0) != 0;
  AxisView v(x.dims, axis);
  Tensor out = make_tensor(x.dtype, x.dims);
  dispatch_numeric(ctx, x.dtype, [&](auto tag) {
    using T = decltype(tag);
    const T* in = reinterpret_cast<const T*>(x.bytes.data());
    T* o = reinterpret_cast<T*>(out.bytes.data());
    for (int64_t a = 0; a < v.outer; ++a)
      for (int64_t i = 0; i < v.inner; ++i) {
        T acc = 0;
        for (int64_t s = 0; s < v.len; ++s) {
          int64_t j = rev ? v.len - 1 - s : s;
          int64_t off = (a * v.len + j) * v.inner + i;
          if (excl) {
            o[off] = acc;
            acc = static_cast<T>(acc + in[off]);
          } else {
            acc = static_cast<T>(acc + in[off]);
            o[off] = acc;
          }
        }
      }
  });
  ctx.output(0) = std::move(out);
}

void nonzero_kernel(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  const size_t es = elem_size(ctx, x.dtype);
  const int64_t n = x.numel(), r = static_cast<int64_t>(x.dims.size());
  std::vector<int64_t> hits;
  static const uint8_t zeros[8] = {0};
  const bool is_float = x.dtype == DType::Float || x.dtype == DType::Double;
  std::vector<float> f;
  if (is_float || x.dtype == DType::Float16) f = x.to_float();  // -0.0 counts as zero
  for (int64_t i = 0; i < n; ++i) {
    bool nz = f.empty() ? std::memcmp(x.bytes.data() + i * es, zeros, es) != 0 : f[i] != 0.f;
    if (nz) hits.push_back(i);
  }
  const int64_t m = static_cast<int64_t>(hits.size());
  Dims xs = strides_of(x.dims);
  std::vector<int64_t> out(static_cast<size_t>(r * m));
  for (int64_t j = 0; j < m; ++j) {
    int64_t rem = hits[j];
    for (int64_t k = 0; k < r; ++k) {
      out[k * m + j] = rem / xs[k];
      rem %= xs[k];
    }
  }
  ctx.output(0) = Tensor::from_int64("", {r, m}, out);
}

void dropout_kernel(KernelContext& ctx) {
  copy_kernel(ctx);  // inference: identity
  if (ctx.outputs.size() > 1 && !ctx.node.outputs[1].empty()) {
    Tensor mask = make_tensor(DType::Bool, ctx.output(0).dims);
    std::fill(mask.bytes.begin(), mask.bytes.end(), uint8_t{1});
    ctx.output(1) = std::move(mask);
  }
}

}  // namespace

void register_tensor_kernels(KernelRegistry& r) {
  const std::pair<const char*, void (*)(KernelContext&)> table[] = {
    {"Identity", copy_kernel}, {"Dropout", dropout_kernel}, {"Cast", cast_kernel},
    {"Reshape", reshape_kernel}, {"Flatten", flatten_kernel}, {"Transpose", transpose_kernel},
    {"Squeeze", squeeze_kernel}, {"Unsqueeze", unsqueeze_kernel}, {"Concat", concat_kernel},
    {"Split", split_kernel}, {"Slice", slice_kernel}, {"Gather", gather_kernel},
    {"GatherElements", gather_elements_kernel}, {"ScatterND", scatter_nd_kernel}, {"Shape", shape_kernel},
    {"Size", size_kernel}, {"ConstantOfShape", constant_of_shape_kernel}, {"Constant", constant_kernel},
    {"Expand", expand_kernel}, {"Tile", tile_kernel}, {"Pad", pad_kernel}, {"Resize", resize_kernel},
    {"Upsample", upsample_kernel}, {"Range", range_kernel}, {"TopK", topk_kernel},
    {"ArgMax", [](KernelContext& c) { arg_kernel(c, true); }}, {"ArgMin", [](KernelContext& c) { arg_kernel(c, false); }},
    {"CumSum", cumsum_kernel}, {"NonZero", nonzero_kernel},
  };
  for (const auto& [op, fn] : table) r.add(op, fn);
}

}  // namespace oc
