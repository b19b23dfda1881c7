// Reductions: ReduceSum/Mean/Max/Min/Prod/L1/L2/SumSquare/LogSum/LogSumExp.
//
// The input is viewed as [outer, R, inner] (reduced axes contiguous) — or transposed so that the
// reduced axes come last — and y[o, i] = fin(⊕_r x[o, r, i]) with accumulation in double.
// LogSumExp = m + log Σ exp(x − m), m = max x (no overflow).
#include <cmath>
#include <limits>

#include "engine/kernels/common.h"

namespace oc {
namespace {

using namespace kern;

enum class Red { Sum, Mean, Max, Min, Prod, L1, L2, SumSquare, LogSum, LogSumExp };

double init_of(Red r) {
  switch (r) {
    case Red::Max: return -std::numeric_limits<double>::infinity();
    case Red::Min: return std::numeric_limits<double>::infinity();
    case Red::Prod: return 1.0;
    default: return 0.0;
  }
}

inline double step(Red r, double acc, double x) {
  switch (r) {
    case Red::Max: return (x > acc || std::isnan(x)) ? x : acc;
    case Red::Min: return (x < acc || std::isnan(x)) ? x : acc;
    case Red::Prod: return acc * x;
    case Red::L1: return acc + std::fabs(x);
    case Red::L2: case Red::SumSquare: return acc + x * x;
    default: return acc + x;
  }
}

inline double finish(Red r, double acc, int64_t n) {
  switch (r) {
    case Red::Mean: return acc / static_cast<double>(n);
    case Red::L2: return std::sqrt(acc);
    case Red::LogSum: return std::log(acc);
    default: return acc;
  }
}

void reduce_kernel(KernelContext& ctx, Red op) {
  const Tensor& x0 = ctx.input(0);
  const int64_t rank = static_cast<int64_t>(x0.dims.size());
  bool given = false;
  auto axes = axes_input_or_attr(ctx, 1, "axes", &given);
  const bool keep = ctx.node.attr_int("keepdims", 1) != 0;
  if (axes.empty() && ctx.node.attr_int("noop_with_empty_axes", 0)) {
    Tensor t = x0;
    t.name.clear();
    ctx.output(0) = std::move(t);
    return;
  }
  std::vector<bool> red(static_cast<size_t>(rank), axes.empty());
  for (int64_t a : axes) red[norm_axis(ctx, a, rank)] = true;
  Dims od;
  for (int64_t k = 0; k < rank; ++k) {
    if (!red[k]) od.push_back(x0.dims[k]);
    else if (keep) od.push_back(1);
  }
  // [outer, R, inner] when the reduced axes are one contiguous run; otherwise move them last.
  int64_t first = -1, last = -1;
  for (int64_t k = 0; k < rank; ++k)
    if (red[k] && x0.dims[k] != 1) {
      if (first < 0) first = k;
      last = k;
    }
  bool contiguous = true;
  for (int64_t k = first; first >= 0 && k <= last; ++k) contiguous = contiguous && (red[k] || x0.dims[k] == 1);
  Tensor moved;
  const Tensor* x = &x0;
  int64_t outer = 1, R = 1, inner = 1;
  if (first < 0) {
    outer = x0.numel();
  } else if (contiguous) {
    for (int64_t k = 0; k < rank; ++k) (k < first ? outer : k <= last ? R : inner) *= x0.dims[k];
  } else {
    std::vector<int64_t> perm;
    for (int64_t k = 0; k < rank; ++k)
      if (!red[k]) perm.push_back(k);
    for (int64_t k = 0; k < rank; ++k)
      if (red[k]) {
        perm.push_back(k);
        R *= x0.dims[k];
      }
    moved = transpose(ctx, x0, perm);
    x = &moved;
    outer = R ? x0.numel() / R : 0;
  }
  Tensor out = make_tensor(x0.dtype, od);
  dispatch_numeric(ctx, x0.dtype, [&](auto tag) {
    using T = decltype(tag);
    const T* in = reinterpret_cast<const T*>(x->bytes.data());
    T* o = reinterpret_cast<T*>(out.bytes.data());
    parallel_for(outer, ctx.num_threads, [&](int64_t b, int64_t e) {
      std::vector<double> acc(static_cast<size_t>(inner)), mx(static_cast<size_t>(inner));
      for (int64_t a = b; a < e; ++a) {
        const T* base = in + a * R * inner;
        if (op == Red::LogSumExp) {
          std::fill(mx.begin(), mx.end(), -std::numeric_limits<double>::infinity());
          for (int64_t r = 0; r < R; ++r)
            for (int64_t i = 0; i < inner; ++i) mx[i] = std::max(mx[i], static_cast<double>(base[r * inner + i]));
          std::fill(acc.begin(), acc.end(), 0.0);
          for (int64_t r = 0; r < R; ++r)
            for (int64_t i = 0; i < inner; ++i) acc[i] += std::exp(static_cast<double>(base[r * inner + i]) - mx[i]);
          for (int64_t i = 0; i < inner; ++i) o[a * inner + i] = static_cast<T>(mx[i] + std::log(acc[i]));
          continue;
        }
        std::fill(acc.begin(), acc.end(), init_of(op));
        for (int64_t r = 0; r < R; ++r)
          for (int64_t i = 0; i < inner; ++i) acc[i] = step(op, acc[i], static_cast<double>(base[r * inner + i]));
        for (int64_t i = 0; i < inner; ++i) o[a * inner + i] = static_cast<T>(finish(op, acc[i], R));
      }
    }, 64);
  });
  ctx.output(0) = std::move(out);
}

}  // namespace

void register_reduce_kernels(KernelRegistry& r) {
  const std::pair<const char*, Red> table[] = {
    {"ReduceSum", Red::Sum}, {"ReduceMean", Red::Mean}, {"ReduceMax", Red::Max}, {"ReduceMin", Red::Min},
    {"ReduceProd", Red::Prod}, {"ReduceL1", Red::L1}, {"ReduceL2", Red::L2}, {"ReduceSumSquare", Red::SumSquare},
    {"ReduceLogSum", Red::LogSum}, {"ReduceLogSumExp", Red::LogSumExp},
  };
  for (const auto& [op, kind] : table) {
    Red k = kind;
    r.add(op, [k](KernelContext& c) { reduce_kernel(c, k); });
  }
}

}  // namespace oc
