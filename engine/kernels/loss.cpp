// Loss ops used in inference graphs (and ONNX's conformance tests): NegativeLogLikelihoodLoss and
// SoftmaxCrossEntropyLoss.
//
// input (N, C, d1..dk), target (N, d1..dk) integer classes, optional weight (C):
//   loss[n,d] = −input[n, target[n,d], d] · w[target[n,d]]   (0 where target == ignore_index)
//   reduction none: loss; sum: Σ loss; mean: Σ loss / Σ w[target] over the non-ignored elements.
// SoftmaxCrossEntropyLoss is NLL of log_softmax(scores, axis 1); its optional second output is
// that log-probability tensor. Computed in double, written in the input's type (float/double).
#include <cmath>
#include <limits>

#include "engine/kernels/common.h"

namespace oc {
namespace {

using namespace kern;

std::vector<double> values_of(const Tensor& t) {
  if (t.dtype == DType::Double) return std::vector<double>(t.data<double>(), t.data<double>() + t.numel());
  auto f = t.to_float();
  return std::vector<double>(f.begin(), f.end());
}

Tensor tensor_of(DType dt, const Dims& dims, const std::vector<double>& v) {
  if (dt == DType::Double) {
    Tensor t = make_tensor(dt, dims);
    std::copy(v.begin(), v.end(), t.data<double>());
    return t;
  }
  return Tensor::from_float_as("", dt, dims, std::vector<float>(v.begin(), v.end()));
}

// NLL of `logp` (N, C, rest) → the loss tensor per the reduction.
Tensor nll(const KernelContext& ctx, const std::vector<double>& logp, const Dims& in_dims, DType dt,
           const Tensor& target, const Tensor* weight) {
  if (in_dims.size() < 2) bad_input(ctx, "input must have rank >= 2 (N, C, ...)");
  const int64_t N = in_dims[0], C = in_dims[1];
  int64_t D = 1;
  for (size_t i = 2; i < in_dims.size(); ++i) D *= in_dims[i];
  Dims tdims = {N};
  tdims.insert(tdims.end(), in_dims.begin() + 2, in_dims.end());
  if (target.dims != tdims) bad_input(ctx, "target shape " + shape_str(target.dims) + " does not match input " + shape_str(in_dims));
  const auto t = target.to_int64();
  std::vector<double> w;
  if (weight) {
    w = values_of(*weight);
    if (static_cast<int64_t>(w.size()) != C) bad_input(ctx, "weight must have C values");
  }
  const bool has_ignore = ctx.node.has_attr("ignore_index");
  const int64_t ignore = ctx.node.attr_int("ignore_index", 0);
  const std::string red = ctx.node.attr_string("reduction", "mean");
  if (red != "none" && red != "sum" && red != "mean") bad_input(ctx, "reduction '" + red + "'");
  std::vector<double> loss(N * D, 0.0);
  double wsum = 0;
  for (int64_t n = 0; n < N; ++n)
    for (int64_t d = 0; d < D; ++d) {
      const int64_t c = t[n * D + d];
      if (has_ignore && c == ignore) continue;
      if (c < 0 || c >= C) bad_input(ctx, "target " + std::to_string(c) + " outside [0, " + std::to_string(C) + ")");
      const double wc = weight ? w[c] : 1.0;
      loss[n * D + d] = -logp[(n * C + c) * D + d] * wc;
      wsum += wc;
    }
  if (red == "none") return tensor_of(dt, tdims, loss);
  double s = 0;
  for (double v : loss) s += v;
  if (red == "mean") s = wsum != 0 ? s / wsum : (s == 0 ? 0.0 : std::numeric_limits<double>::quiet_NaN());
  return tensor_of(dt, {}, {s});
}

void check_float(const KernelContext& ctx, const Tensor& x) {
  if (x.dtype != DType::Float && x.dtype != DType::Double && x.dtype != DType::Float16)
    ctx.unsupported("element type " + dtype_name(x.dtype));
}

void nll_kernel(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  check_float(ctx, x);
  ctx.output(0) = nll(ctx, values_of(x), x.dims, x.dtype, ctx.input(1), ctx.has_input(2) ? &ctx.input(2) : nullptr);
}

void sce_kernel(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  check_float(ctx, x);
  if (x.dims.size() < 2) bad_input(ctx, "scores must have rank >= 2 (N, C, ...)");
  const int64_t N = x.dims[0], C = x.dims[1];
  int64_t D = 1;
  for (size_t i = 2; i < x.dims.size(); ++i) D *= x.dims[i];
  std::vector<double> v = values_of(x);
  for (int64_t n = 0; n < N; ++n)
    for (int64_t d = 0; d < D; ++d) {
      double mx = -std::numeric_limits<double>::infinity();
      for (int64_t c = 0; c < C; ++c) mx = std::max(mx, v[(n * C + c) * D + d]);
      double s = 0;
      for (int64_t c = 0; c < C; ++c) s += std::exp(v[(n * C + c) * D + d] - mx);
      const double lse = mx + std::log(s);
      for (int64_t c = 0; c < C; ++c) v[(n * C + c) * D + d] -= lse;
    }
  ctx.output(0) = nll(ctx, v, x.dims, x.dtype, ctx.input(1), ctx.has_input(2) ? &ctx.input(2) : nullptr);
  if (ctx.outputs.size() > 1) ctx.output(1) = tensor_of(x.dtype, x.dims, v);
}

}  // namespace

void register_loss_kernels(KernelRegistry& r) {
  r.add("NegativeLogLikelihoodLoss", nll_kernel);
  r.add("SoftmaxCrossEntropyLoss", sce_kernel);
}

}  // namespace oc
