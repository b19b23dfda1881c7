// Helpers shared by the kernels: tensor allocation, axis handling, dtype dispatch, numpy
// broadcasting and strided copies.
//
// Broadcasting: out_dims[i] = max over inputs of dims aligned to the right (1 stretches);
// an input's stride on a stretched axis is 0, so out[idx] = f(a[idx·sa], b[idx·sb]).
// Adjacent axes whose strides are contiguous for every operand are merged first, so the inner
// loop is as long as possible (per-channel [1,C,1,1] against [N,C,H,W] runs H·W at a time).
#pragma once
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "engine/kernel.h"
#include "graph/errors.h"
#include "graph/tensor.h"

namespace oc::kern {

using Dims = std::vector<int64_t>;

inline int64_t numel(const Dims& d) {
  int64_t n = 1;
  for (int64_t v : d) n *= v;
  return n;
}

// Row-major element strides.
inline Dims strides_of(const Dims& d) {
  Dims s(d.size(), 1);
  for (int64_t i = static_cast<int64_t>(d.size()) - 2; i >= 0; --i) s[i] = s[i + 1] * d[i + 1];
  return s;
}

// A tensor of `dt` and `dims` with zeroed storage.
inline Tensor make_tensor(DType dt, const Dims& dims) {
  Tensor t;
  t.dtype = dt;
  t.dims = dims;
  t.bytes.assign(dtype_storage_bytes(dt, numel(dims)), 0);
  return t;
}

inline size_t elem_size(const KernelContext& ctx, DType dt) {
  int bits = dtype_bits(dt);
  if (bits < 8 || bits % 8) ctx.unsupported("element type " + dtype_name(dt));
  return static_cast<size_t>(bits / 8);
}

// axis in [-rank, rank) -> [0, rank)
inline int64_t norm_axis(const KernelContext& ctx, int64_t axis, int64_t rank) {
  if (axis < -rank || axis >= rank)
    throw InvalidArgument("node '" + ctx.node.name + "' (" + ctx.node.op_type + "): axis " + std::to_string(axis) +
                          " out of range for rank " + std::to_string(rank));
  return axis < 0 ? axis + rank : axis;
}

// Integer values of an (int32/int64) input, e.g. shapes, axes, pads.
inline std::vector<int64_t> int_values(const Tensor& t) { return t.to_int64(); }

[[noreturn]] inline void bad_input(const KernelContext& ctx, const std::string& what) {
  throw InvalidArgument("node '" + ctx.node.name + "' (" + ctx.node.op_type + "): " + what);
}

// Calls fn(T{}) with T the C++ type of dt for the numeric types kernels compute on.
template <typename Fn>
void dispatch_numeric(const KernelContext& ctx, DType dt, Fn&& fn) {
  switch (dt) {
    case DType::Float: fn(float{}); break;
    case DType::Double: fn(double{}); break;
    case DType::Int64: fn(int64_t{}); break;
    case DType::Int32: fn(int32_t{}); break;
    case DType::Int16: fn(int16_t{}); break;
    case DType::Int8: fn(int8_t{}); break;
    case DType::UInt8: fn(uint8_t{}); break;
    case DType::UInt16: fn(uint16_t{}); break;
    case DType::UInt32: fn(uint32_t{}); break;
    case DType::UInt64: fn(uint64_t{}); break;
    default: ctx.unsupported("element type " + dtype_name(dt));
  }
}

// Loops over fewer elements than this run on one thread: below it, waking and joining threads
// costs more than the work (much more on a loaded machine, where a woken thread may wait a slice).
constexpr int64_t kParallelGrain = 1 << 17;
// Parallel loops split their work in up to this many chunks per thread, claimed dynamically.
constexpr int kChunksPerThread = 4;

// ---- broadcasting ----
Dims broadcast_dims(const KernelContext& ctx, const std::vector<const Dims*>& shapes);

// Iteration plan over `out` dims for several operands, each with its own element strides
// (aligned to `out`; 0 on broadcast axes), after merging contiguous axes.
struct StridedPlan {
  Dims dims;                          // merged output dims (at least one)
  std::vector<Dims> strides;          // per operand, same length as dims
  static StridedPlan make(const Dims& out, std::vector<Dims> operand_strides);
};

// Strides of an input of `in` dims broadcast to `out` dims (right-aligned).
Dims broadcast_strides(const Dims& in, const Dims& out);

// Calls body(count, off[0..k)) for each run of `count` consecutive output elements along the
// innermost merged axis; off are element offsets of each operand at the start of the run,
// advancing by plan.strides[j].back() per element. Output is operand 0. Parallel over runs.
template <typename Body>
void for_each_run(const StridedPlan& p, int threads, Body&& body) {
  const size_t k = p.strides.size();
  const size_t r = p.dims.size();
  const int64_t inner = p.dims.back();
  int64_t outer = 1;
  for (size_t i = 0; i + 1 < r; ++i) outer *= p.dims[i];
  auto run_range = [&](int64_t begin, int64_t end) {
    std::vector<int64_t> idx(r, 0), off(k, 0);
    int64_t rem = begin;
    for (int64_t i = static_cast<int64_t>(r) - 2; i >= 0; --i) {
      idx[i] = rem % p.dims[i];
      rem /= p.dims[i];
    }
    for (size_t j = 0; j < k; ++j)
      for (size_t i = 0; i + 1 < r; ++i) off[j] += idx[i] * p.strides[j][i];
    for (int64_t o = begin; o < end; ++o) {
      body(inner, off.data());
      for (int64_t i = static_cast<int64_t>(r) - 2; i >= 0; --i) {
        for (size_t j = 0; j < k; ++j) off[j] += p.strides[j][i];
        if (++idx[i] < p.dims[i]) break;
        for (size_t j = 0; j < k; ++j) off[j] -= p.strides[j][i] * p.dims[i];
        idx[i] = 0;
      }
    }
  };
  const int64_t total = outer * inner;
  int nt = total < kParallelGrain ? 1 : threads;
  if (nt <= 1) {
    run_range(0, outer);
    return;
  }
  if (outer >= nt) {
    // More chunks than threads, handed out dynamically: a descheduled thread holds up one small
    // chunk, not a 1/nt share, while the others (the caller included) take what is left.
    const int64_t chunks = std::clamp<int64_t>(std::min<int64_t>(outer, total / (kParallelGrain / 4)), nt,
                                               int64_t{kChunksPerThread} * nt);
#pragma omp parallel for num_threads(nt) schedule(dynamic, 1)
    for (int64_t t = 0; t < chunks; ++t) run_range(outer * t / chunks, outer * (t + 1) / chunks);
    return;
  }
  // Fewer runs than threads (same-shape operands merge into one run): split each run in parts.
  const int64_t parts = (int64_t{kChunksPerThread} * nt + outer - 1) / outer;
#pragma omp parallel for num_threads(nt) schedule(dynamic, 1)
  for (int64_t u = 0; u < outer * parts; ++u) {
    int64_t rem = u / parts;
    std::vector<int64_t> off(k, 0);
    for (int64_t i = static_cast<int64_t>(r) - 2; i >= 0; --i) {
      const int64_t idx = rem % p.dims[i];
      rem /= p.dims[i];
      for (size_t j = 0; j < k; ++j) off[j] += idx * p.strides[j][i];
    }
    const int64_t begin = inner * (u % parts) / parts, end = inner * (u % parts + 1) / parts;
    for (size_t j = 0; j < k; ++j) off[j] += begin * p.strides[j].back();
    if (end > begin) body(end - begin, off.data());
  }
}

// fn(begin, end) over [0, n) split across threads when n is large enough to pay for them.
template <typename Fn>
void parallel_for(int64_t n, int threads, Fn&& fn, int64_t grain = kParallelGrain) {
  int nt = n < grain ? 1 : static_cast<int>(std::min<int64_t>(threads, n / (grain / 2)));
  if (nt <= 1) {
    fn(int64_t{0}, n);
    return;
  }
  // Dynamic chunks (see for_each_run), each at least grain/4 elements.
  const int64_t chunks = std::clamp<int64_t>(n / std::max<int64_t>(grain / 4, 1), nt, int64_t{kChunksPerThread} * nt);
#pragma omp parallel for num_threads(nt) schedule(dynamic, 1)
  for (int64_t t = 0; t < chunks; ++t) fn(n * t / chunks, n * (t + 1) / chunks);
}

// out (contiguous, `out_dims`) = in[base + Σ idx_i · in_strides_i] for elements of `es` bytes.
// Strides may be 0 (broadcast) or negative (reversed slices).
void strided_copy(const uint8_t* in, int64_t base, const Dims& in_strides, uint8_t* out, const Dims& out_dims,
                  size_t es, int threads);

// Transposed copy: out dims = in dims permuted by perm.
Tensor transpose(const KernelContext& ctx, const Tensor& in, const std::vector<int64_t>& perm);

// Input `i` read as axes (int list), or the attribute `name` when the input is absent.
// `present` tells whether either was given.
std::vector<int64_t> axes_input_or_attr(const KernelContext& ctx, size_t i, const std::string& name, bool* present);

}  // namespace oc::kern
