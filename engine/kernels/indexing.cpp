// Indexing and layout ops: GatherND, ScatterElements/Scatter, OneHot, Trilu, DepthToSpace,
// SpaceToDepth, CastLike, Compress, ReverseSequence, EyeLike, Unique.
//
// Unique: the slices of x along `axis` (the elements, without it) compared lexicographically in
// row-major order of the other axes (np.unique(x, axis)); Y holds the distinct ones sorted
// (sorted = 1) or in order of first occurrence, with indices (first occurrence), inverse_indices
// and counts.
// Element-size generic where the op only moves data (bytes per element from the dtype);
// negative indices count from the end of their axis and out-of-range ones are InvalidArgument.
#include <algorithm>
#include <cstring>
#include <numeric>

#include "engine/kernels/common.h"

namespace oc {
namespace {

using namespace kern;

int64_t fix_index(const KernelContext& ctx, int64_t i, int64_t n) {
  if (i < -n || i >= n) bad_input(ctx, "index " + std::to_string(i) + " out of range [" + std::to_string(-n) + ", " + std::to_string(n) + ")");
  return i < 0 ? i + n : i;
}

void gather_nd_kernel(KernelContext& ctx) {
  const Tensor& data = ctx.input(0);
  const Tensor& ind = ctx.input(1);
  const int64_t b = ctx.node.attr_int("batch_dims", 0);
  const auto idx = ind.to_int64();
  const int64_t r = static_cast<int64_t>(data.dims.size()), q = static_cast<int64_t>(ind.dims.size());
  if (q < 1) bad_input(ctx, "indices must have rank >= 1");
  const int64_t k = ind.dims.back();
  if (k < 1 || b + k > r) bad_input(ctx, "indices' last dimension " + std::to_string(k) + " does not fit data rank");
  Dims out_dims(ind.dims.begin(), ind.dims.end() - 1);
  for (int64_t i = b + k; i < r; ++i) out_dims.push_back(data.dims[i]);
  const size_t es = elem_size(ctx, data.dtype);
  Tensor out = make_tensor(data.dtype, out_dims);
  const Dims ds = strides_of(data.dims);
  int64_t batch = 1;
  for (int64_t i = 0; i < b; ++i) batch *= data.dims[i];
  int64_t slice = 1;
  for (int64_t i = b + k; i < r; ++i) slice *= data.dims[i];
  const int64_t data_batch = b ? ds[b - 1] : numel(data.dims);
  const int64_t tuples = numel(ind.dims) / k;
  const int64_t per_batch = tuples / std::max<int64_t>(batch, 1);
  for (int64_t t = 0; t < tuples; ++t) {
    int64_t off = (t / per_batch) * data_batch;
    for (int64_t j = 0; j < k; ++j) off += fix_index(ctx, idx[t * k + j], data.dims[b + j]) * ds[b + j];
    std::memcpy(out.bytes.data() + t * slice * es, data.bytes.data() + off * es, slice * es);
  }
  ctx.output(0) = std::move(out);
}

// Applies reduction `red` ("none", "add", "mul", "max", "min") of src into dst (type T).
template <typename T>
void reduce_into(T* dst, T src, const std::string& red) {
  if (red == "add") *dst = static_cast<T>(*dst + src);
  else if (red == "mul") *dst = static_cast<T>(*dst * src);
  else if (red == "max") *dst = std::max(*dst, src);
  else if (red == "min") *dst = std::min(*dst, src);
  else *dst = src;
}

void scatter_elements_kernel(KernelContext& ctx) {
  const Tensor& data = ctx.input(0);
  const Tensor& ind = ctx.input(1);
  const Tensor& upd = ctx.input(2);
  if (ind.dims != upd.dims) bad_input(ctx, "indices and updates shapes differ");
  if (ind.dims.size() != data.dims.size()) bad_input(ctx, "indices rank differs from data rank");
  const int64_t r = static_cast<int64_t>(data.dims.size());
  const int64_t axis = norm_axis(ctx, ctx.node.attr_int("axis", 0), r);
  const std::string red = ctx.node.attr_string("reduction", "none");
  if (red != "none" && red != "add" && red != "mul" && red != "max" && red != "min") ctx.unsupported("reduction '" + red + "'");
  Tensor out = data;
  out.name.clear();
  const auto idx = ind.to_int64();
  const Dims ds = strides_of(data.dims), is = strides_of(ind.dims);
  // Element offset in `data` that update e goes to: its own coordinates, with the index along `axis`.
  auto target = [&](int64_t e) {
    int64_t rem = e, off = 0;
    for (int64_t d = 0; d < r; ++d) {
      const int64_t c = rem / is[d];
      rem %= is[d];
      off += (d == axis ? fix_index(ctx, idx[e], data.dims[d]) : c) * ds[d];
    }
    return off;
  };
  auto run = [&](auto tag) {
    using T = decltype(tag);
    T* o = out.data<T>();
    const T* u = upd.data<T>();
    for (int64_t e = 0; e < static_cast<int64_t>(idx.size()); ++e) reduce_into(o + target(e), u[e], red);
  };
  if (red == "none") {
    const size_t es = elem_size(ctx, data.dtype);
    for (int64_t e = 0; e < static_cast<int64_t>(idx.size()); ++e)
      std::memcpy(out.bytes.data() + target(e) * es, upd.bytes.data() + e * es, es);
  } else {
    dispatch_numeric(ctx, data.dtype, run);
  }
  ctx.output(0) = std::move(out);
}

void one_hot_kernel(KernelContext& ctx) {
  const Tensor& ind = ctx.input(0);
  const Tensor& depth_t = ctx.input(1);
  const Tensor& values = ctx.input(2);
  const auto dv = depth_t.to_float();
  if (dv.size() != 1) bad_input(ctx, "depth must be a single value");
  const int64_t depth = static_cast<int64_t>(dv[0]);
  if (depth < 1) bad_input(ctx, "depth must be positive");
  if (values.numel() != 2) bad_input(ctx, "values must hold [off, on]");
  const int64_t r = static_cast<int64_t>(ind.dims.size());
  const int64_t axis = norm_axis(ctx, ctx.node.attr_int("axis", -1), r + 1);
  Dims out_dims = ind.dims;
  out_dims.insert(out_dims.begin() + axis, depth);
  const size_t es = elem_size(ctx, values.dtype);
  Tensor out = make_tensor(values.dtype, out_dims);
  const int64_t total = out.numel();
  for (int64_t i = 0; i < total; ++i) std::memcpy(out.bytes.data() + i * es, values.bytes.data(), es);
  const auto fv = ind.to_float();  // indices may be float
  int64_t outer = 1, inner = 1;
  for (int64_t d = 0; d < axis; ++d) outer *= ind.dims[d];
  for (int64_t d = axis; d < r; ++d) inner *= ind.dims[d];
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t in = 0; in < inner; ++in) {
      int64_t v = static_cast<int64_t>(fv[o * inner + in]);
      if (v < 0) v += depth;
      if (v < 0 || v >= depth) continue;  // out of range: all off
      std::memcpy(out.bytes.data() + ((o * depth + v) * inner + in) * es, values.bytes.data() + es, es);
    }
  ctx.output(0) = std::move(out);
}

void trilu_kernel(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  if (x.dims.size() < 2) bad_input(ctx, "input rank must be >= 2");
  int64_t k = 0;
  if (ctx.has_input(1)) {
    const auto kv = ctx.input(1).to_int64();
    if (kv.size() != 1) bad_input(ctx, "k must be a scalar");
    k = kv[0];
  }
  const bool upper = ctx.node.attr_int("upper", 1) != 0;
  const size_t es = elem_size(ctx, x.dtype);
  Tensor out = x;
  out.name.clear();
  const int64_t n = x.dims[x.dims.size() - 2], m = x.dims.back();
  const int64_t mats = (n > 0 && m > 0) ? x.numel() / (n * m) : 0;
  for (int64_t b = 0; b < mats; ++b)
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = 0; j < m; ++j) {
        const bool keep = upper ? j - i >= k : j - i <= k;
        if (!keep) std::memset(out.bytes.data() + ((b * n + i) * m + j) * es, 0, es);
      }
  ctx.output(0) = std::move(out);
}

// DepthToSpace (DCR/CRD) and SpaceToDepth as a reshape-transpose-reshape.
void depth_space_kernel(KernelContext& ctx, bool to_space) {
  const Tensor& x = ctx.input(0);
  if (x.dims.size() != 4) bad_input(ctx, "input must be rank 4 (NCHW)");
  const int64_t bs = ctx.node.attr_int("blocksize", 0);
  if (bs < 1) bad_input(ctx, "blocksize must be positive");
  const int64_t N = x.dims[0], C = x.dims[1], H = x.dims[2], W = x.dims[3];
  Tensor tmp = x;
  Tensor out;
  if (to_space) {
    if (C % (bs * bs)) bad_input(ctx, "channels not divisible by blocksize^2");
    const bool crd = ctx.node.attr_string("mode", "DCR") == "CRD";
    const int64_t c = C / (bs * bs);
    if (crd) {
      tmp.dims = {N, c, bs, bs, H, W};
      out = transpose(ctx, tmp, {0, 1, 4, 2, 5, 3});
    } else {
      tmp.dims = {N, bs, bs, c, H, W};
      out = transpose(ctx, tmp, {0, 3, 4, 1, 5, 2});
    }
    out.dims = {N, c, H * bs, W * bs};
  } else {
    if (H % bs || W % bs) bad_input(ctx, "spatial dims not divisible by blocksize");
    tmp.dims = {N, C, H / bs, bs, W / bs, bs};
    out = transpose(ctx, tmp, {0, 3, 5, 1, 2, 4});
    out.dims = {N, C * bs * bs, H / bs, W / bs};
  }
  out.name.clear();
  ctx.output(0) = std::move(out);
}

void compress_kernel(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  const auto cond = ctx.input(1).to_int64();
  const size_t es = elem_size(ctx, x.dtype);
  Tensor src = x;
  bool flat = !ctx.node.has_attr("axis");
  int64_t axis = 0;
  if (flat) src.dims = {x.numel()};
  else axis = norm_axis(ctx, ctx.node.attr_int("axis", 0), static_cast<int64_t>(x.dims.size()));
  const int64_t n = src.dims[axis];
  std::vector<int64_t> keep;
  for (int64_t i = 0; i < n && i < static_cast<int64_t>(cond.size()); ++i)
    if (cond[i]) keep.push_back(i);
  int64_t outer = 1, inner = 1;
  for (int64_t d = 0; d < axis; ++d) outer *= src.dims[d];
  for (size_t d = axis + 1; d < src.dims.size(); ++d) inner *= src.dims[d];
  Dims od = src.dims;
  od[axis] = static_cast<int64_t>(keep.size());
  Tensor out = make_tensor(x.dtype, od);
  for (int64_t o = 0; o < outer; ++o)
    for (size_t j = 0; j < keep.size(); ++j)
      std::memcpy(out.bytes.data() + ((o * keep.size() + j) * inner) * es,
                  src.bytes.data() + ((o * n + keep[j]) * inner) * es, inner * es);
  ctx.output(0) = std::move(out);
}

void reverse_sequence_kernel(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  const auto lens = ctx.input(1).to_int64();
  if (x.dims.size() < 2) bad_input(ctx, "input rank must be >= 2");
  const int64_t ba = ctx.node.attr_int("batch_axis", 1), ta = ctx.node.attr_int("time_axis", 0);
  if (!((ba == 0 && ta == 1) || (ba == 1 && ta == 0))) ctx.unsupported("batch_axis/time_axis other than 0/1");
  const size_t es = elem_size(ctx, x.dtype);
  const Dims s = strides_of(x.dims);
  const int64_t B = x.dims[ba], T = x.dims[ta], inner = s[1];
  if (static_cast<int64_t>(lens.size()) != B) bad_input(ctx, "sequence_lens size differs from the batch");
  Tensor out = x;
  out.name.clear();
  for (int64_t b = 0; b < B; ++b) {
    const int64_t len = std::min(lens[b], T);
    for (int64_t t = 0; t < len; ++t) {
      const int64_t src = b * s[ba] + (len - 1 - t) * s[ta], dst = b * s[ba] + t * s[ta];
      std::memcpy(out.bytes.data() + dst * es, x.bytes.data() + src * es, inner * es);
    }
  }
  ctx.output(0) = std::move(out);
}

void eye_like_kernel(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  if (x.dims.size() != 2) bad_input(ctx, "input must be rank 2");
  DType dt = ctx.node.has_attr("dtype") ? static_cast<DType>(ctx.node.attr_int("dtype", 1)) : x.dtype;
  const int64_t k = ctx.node.attr_int("k", 0);
  Tensor out = make_tensor(dt, x.dims);
  dispatch_numeric(ctx, dt, [&](auto tag) {
    using T = decltype(tag);
    T* o = out.data<T>();
    for (int64_t i = 0; i < x.dims[0]; ++i) {
      const int64_t j = i + k;
      if (j >= 0 && j < x.dims[1]) o[i * x.dims[1] + j] = T(1);
    }
  });
  ctx.output(0) = std::move(out);
}

// CastLike(x, like) = Cast(x, to = like's element type), through the registered Cast kernel.
void cast_like_kernel(KernelContext& ctx) {
  Node cast = ctx.node;
  cast.op_type = "Cast";
  cast.domain.clear();
  cast.set_attr_int("to", static_cast<int64_t>(ctx.input(1).dtype));
  const KernelFn* fn = KernelRegistry::instance().find(cast);
  if (!fn) ctx.unsupported("no Cast kernel");
  KernelContext c{cast, {ctx.inputs.at(0)}, ctx.outputs, ctx.num_threads, ctx.opset, ctx.executor, ctx.lookup};
  (*fn)(c);
}

void unique_kernel(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  const bool sorted = ctx.node.attr_int("sorted", 1) != 0;
  const bool has_axis = ctx.node.has_attr("axis");
  const int64_t r = static_cast<int64_t>(x.dims.size());
  const int64_t axis = has_axis ? norm_axis(ctx, ctx.node.attr_int("axis", 0), r) : 0;
  int64_t outer = 1, n = x.numel(), inner = 1;
  if (has_axis) {
    n = x.dims[axis];
    for (int64_t k = 0; k < axis; ++k) outer *= x.dims[k];
    for (int64_t k = axis + 1; k < r; ++k) inner *= x.dims[k];
  }
  const int64_t len = outer * inner;  // elements per slice
  dispatch_numeric(ctx, x.dtype, [&](auto tag) {
    using T = decltype(tag);
    const T* p = x.data<T>();
    auto at = [&](int64_t slice, int64_t e) { return p[((e / inner) * n + slice) * inner + e % inner]; };
    auto less = [&](int64_t a, int64_t b) {
      for (int64_t e = 0; e < len; ++e) {
        const T u = at(a, e), v = at(b, e);
        if (u < v) return true;
        if (v < u) return false;
      }
      return false;
    };
    std::vector<int64_t> order(n);
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), less);
    // Groups of equal slices in sorted order; the first of each is its first occurrence.
    std::vector<int64_t> first, count, group_of(n);
    for (int64_t i = 0; i < n; ++i) {
      if (i == 0 || less(order[i - 1], order[i])) {
        first.push_back(order[i]);
        count.push_back(0);
      }
      group_of[order[i]] = static_cast<int64_t>(first.size()) - 1;
      ++count.back();
    }
    const int64_t u = static_cast<int64_t>(first.size());
    std::vector<int64_t> rank(u);  // group -> position in Y
    std::iota(rank.begin(), rank.end(), 0);
    if (!sorted) {
      std::vector<int64_t> by_first(u);
      std::iota(by_first.begin(), by_first.end(), 0);
      std::sort(by_first.begin(), by_first.end(), [&](int64_t a, int64_t b) { return first[a] < first[b]; });
      for (int64_t k = 0; k < u; ++k) rank[by_first[k]] = k;
    }
    Dims yd = has_axis ? x.dims : Dims{u};
    if (has_axis) yd[axis] = u;
    Tensor y = make_tensor(x.dtype, yd);
    T* o = y.data<T>();
    std::vector<int64_t> indices(u), counts(u), inverse(n);
    for (int64_t g = 0; g < u; ++g) {
      const int64_t k = rank[g];
      indices[k] = first[g];
      counts[k] = count[g];
      for (int64_t e = 0; e < len; ++e) o[((e / inner) * u + k) * inner + e % inner] = at(first[g], e);
    }
    for (int64_t i = 0; i < n; ++i) inverse[i] = rank[group_of[i]];
    const size_t outs = ctx.outputs.size();
    ctx.output(0) = std::move(y);
    if (outs > 1) ctx.output(1) = Tensor::from_int64("", {u}, indices);
    if (outs > 2) ctx.output(2) = Tensor::from_int64("", {n}, inverse);
    if (outs > 3) ctx.output(3) = Tensor::from_int64("", {u}, counts);
  });
}

}  // namespace

void register_indexing_kernels(KernelRegistry& r) {
  r.add("GatherND", gather_nd_kernel);
  r.add("ScatterElements", scatter_elements_kernel);
  r.add("Scatter", scatter_elements_kernel);  // opset 9-10 spelling of ScatterElements
  r.add("OneHot", one_hot_kernel);
  r.add("Trilu", trilu_kernel);
  r.add("DepthToSpace", [](KernelContext& c) { depth_space_kernel(c, true); });
  r.add("SpaceToDepth", [](KernelContext& c) { depth_space_kernel(c, false); });
  r.add("Compress", compress_kernel);
  r.add("ReverseSequence", reverse_sequence_kernel);
  r.add("EyeLike", eye_like_kernel);
  r.add("CastLike", cast_like_kernel);
  r.add("Unique", unique_kernel);
}

}  // namespace oc
