// Less common elementwise math: inverse and hyperbolic trigonometry, IsInf/IsNaN, Celu,
// ThresholdedRelu, Shrink, Mish, BitShift and the Bitwise* ops.
//
// y = f(x) per element for float/double inputs (Mish: x·tanh(softplus(x))); BitShift and
// Bitwise* take unsigned/signed integers with numpy broadcasting (common.h).
#include <cmath>
#include <limits>
#include <type_traits>

#include "engine/kernels/common.h"

namespace oc {
namespace {

using namespace kern;

template <typename T, typename F>
Tensor map_values(const Tensor& x, DType out_dt, int threads, F f) {
  using TO = decltype(f(T{}));
  Tensor out = make_tensor(out_dt, x.dims);
  const T* in = x.data<T>();
  TO* o = reinterpret_cast<TO*>(out.bytes.data());
  parallel_for(out.numel(), threads, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) o[i] = f(in[i]);
  });
  return out;
}

// Float math (float32 and float64; float16 through float32).
template <typename F>
void float_op(KernelContext& ctx, F f) {
  const Tensor& x = ctx.input(0);
  if (x.dtype == DType::Float) {
    ctx.output(0) = map_values<float>(x, x.dtype, ctx.num_threads, [&](float v) { return static_cast<float>(f(v)); });
  } else if (x.dtype == DType::Double) {
    ctx.output(0) = map_values<double>(x, x.dtype, ctx.num_threads, [&](double v) { return static_cast<double>(f(v)); });
  } else if (x.dtype == DType::Float16 || x.dtype == DType::BFloat16) {
    auto v = x.to_float();
    for (float& e : v) e = static_cast<float>(f(e));
    ctx.output(0) = Tensor::from_float_as("", x.dtype, x.dims, v);
  } else {
    ctx.unsupported("element type " + dtype_name(x.dtype) + " (float types only)");
  }
}

// Bool output from float input.
template <typename F>
void float_test(KernelContext& ctx, F f) {
  const Tensor& x = ctx.input(0);
  Tensor out = make_tensor(DType::Bool, x.dims);
  uint8_t* o = out.bytes.data();
  if (x.dtype == DType::Float) {
    const float* in = x.data<float>();
    for (int64_t i = 0; i < x.numel(); ++i) o[i] = f(static_cast<double>(in[i]));
  } else if (x.dtype == DType::Double) {
    const double* in = x.data<double>();
    for (int64_t i = 0; i < x.numel(); ++i) o[i] = f(in[i]);
  } else if (x.dtype == DType::Float16 || x.dtype == DType::BFloat16) {
    auto v = x.to_float();
    for (size_t i = 0; i < v.size(); ++i) o[i] = f(static_cast<double>(v[i]));
  } else {
    ctx.unsupported("element type " + dtype_name(x.dtype) + " (float types only)");
  }
  ctx.output(0) = std::move(out);
}

void is_inf_kernel(KernelContext& ctx) {
  const bool pos = ctx.node.attr_int("detect_positive", 1) != 0, neg = ctx.node.attr_int("detect_negative", 1) != 0;
  float_test(ctx, [&](double v) { return std::isinf(v) && ((v > 0 && pos) || (v < 0 && neg)); });
}

// Integer binary op with broadcasting; the element type must be an integer type.
template <typename F>
void int_binary(KernelContext& ctx, F f) {
  const Tensor& a = ctx.input(0);
  const Tensor& b = ctx.input(1);
  if (a.dtype != b.dtype) bad_input(ctx, "input types differ");
  const Dims out_dims = broadcast_dims(ctx, {&a.dims, &b.dims});
  auto run = [&](auto tag) {
    using T = decltype(tag);
    Tensor out = make_tensor(a.dtype, out_dims);
    auto plan = StridedPlan::make(out_dims, {strides_of(out_dims), broadcast_strides(a.dims, out_dims),
                                             broadcast_strides(b.dims, out_dims)});
    T* o = out.data<T>();
    const T* pa = a.data<T>();
    const T* pb = b.data<T>();
    const int64_t so = plan.strides[0].back(), sa = plan.strides[1].back(), sb = plan.strides[2].back();
    for_each_run(plan, 1, [&](int64_t n, const int64_t* off) {
      for (int64_t i = 0; i < n; ++i) o[off[0] + i * so] = static_cast<T>(f(pa[off[1] + i * sa], pb[off[2] + i * sb]));
    });
    ctx.output(0) = std::move(out);
  };
  switch (a.dtype) {
    case DType::UInt8: run(uint8_t{}); break;
    case DType::UInt16: run(uint16_t{}); break;
    case DType::UInt32: run(uint32_t{}); break;
    case DType::UInt64: run(uint64_t{}); break;
    case DType::Int8: run(int8_t{}); break;
    case DType::Int16: run(int16_t{}); break;
    case DType::Int32: run(int32_t{}); break;
    case DType::Int64: run(int64_t{}); break;
    default: ctx.unsupported("element type " + dtype_name(a.dtype) + " (integers only)");
  }
}

void bit_shift_kernel(KernelContext& ctx) {
  const std::string dir = ctx.node.attr_string("direction", "");
  if (dir != "LEFT" && dir != "RIGHT") bad_input(ctx, "direction must be LEFT or RIGHT");
  const bool left = dir == "LEFT";
  int_binary(ctx, [left](auto x, auto y) {
    using T = decltype(x);
    constexpr int bits = sizeof(T) * 8;
    if (y < 0 || y >= bits) return T(0);
    return left ? static_cast<T>(x << y) : static_cast<T>(x >> y);
  });
}

void bitwise_not_kernel(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  if (x.dtype == DType::Bool || dtype_bits(x.dtype) < 8 || dtype_is_float(x.dtype))
    ctx.unsupported("element type " + dtype_name(x.dtype) + " (integers only)");
  Tensor out = x;
  out.name.clear();
  for (auto& b : out.bytes) b = static_cast<uint8_t>(~b);
  ctx.output(0) = std::move(out);
}

}  // namespace

void register_math_kernels(KernelRegistry& r) {
  r.add("Asin", [](KernelContext& c) { float_op(c, [](auto v) { return std::asin(v); }); });
  r.add("Acos", [](KernelContext& c) { float_op(c, [](auto v) { return std::acos(v); }); });
  r.add("Atan", [](KernelContext& c) { float_op(c, [](auto v) { return std::atan(v); }); });
  r.add("Sinh", [](KernelContext& c) { float_op(c, [](auto v) { return std::sinh(v); }); });
  r.add("Cosh", [](KernelContext& c) { float_op(c, [](auto v) { return std::cosh(v); }); });
  r.add("Asinh", [](KernelContext& c) { float_op(c, [](auto v) { return std::asinh(v); }); });
  r.add("Acosh", [](KernelContext& c) { float_op(c, [](auto v) { return std::acosh(v); }); });
  r.add("Atanh", [](KernelContext& c) { float_op(c, [](auto v) { return std::atanh(v); }); });
  r.add("Mish", [](KernelContext& c) {
    float_op(c, [](auto v) {
      using T = decltype(v);
      const T sp = v > T(0) ? v + std::log1p(std::exp(-v)) : std::log1p(std::exp(v));
      return v * std::tanh(sp);
    });
  });
  r.add("Celu", [](KernelContext& c) {
    const double a = c.node.attr_float("alpha", 1.0f);
    float_op(c, [a](auto v) {
      using T = decltype(v);
      return std::max(T(0), v) + std::min(T(0), static_cast<T>(a * std::expm1(v / a)));
    });
  });
  r.add("ThresholdedRelu", [](KernelContext& c) {
    const double a = c.node.attr_float("alpha", 1.0f);
    float_op(c, [a](auto v) { return v > a ? v : decltype(v)(0); });
  });
  r.add("Shrink", [](KernelContext& c) {
    const double lambd = c.node.attr_float("lambd", 0.5f), bias = c.node.attr_float("bias", 0.0f);
    const Tensor& x = c.input(0);
    if (dtype_is_float(x.dtype)) {
      float_op(c, [=](auto v) {
        using T = decltype(v);
        return v < -lambd ? static_cast<T>(v + bias) : v > lambd ? static_cast<T>(v - bias) : T(0);
      });
      return;
    }
    dispatch_numeric(c, x.dtype, [&](auto tag) {
      using T = decltype(tag);
      c.output(0) = map_values<T>(x, x.dtype, c.num_threads, [=](T v) {
        const double d = static_cast<double>(v);
        return static_cast<T>(d < -lambd ? d + bias : d > lambd ? d - bias : 0.0);
      });
    });
  });
  r.add("IsNaN", [](KernelContext& c) { float_test(c, [](double v) { return std::isnan(v); }); });
  r.add("IsInf", is_inf_kernel);
  r.add("BitShift", bit_shift_kernel);
  r.add("BitwiseAnd", [](KernelContext& c) { int_binary(c, [](auto x, auto y) { return x & y; }); });
  r.add("BitwiseOr", [](KernelContext& c) { int_binary(c, [](auto x, auto y) { return x | y; }); });
  r.add("BitwiseXor", [](KernelContext& c) { int_binary(c, [](auto x, auto y) { return x ^ y; }); });
  r.add("BitwiseNot", bitwise_not_kernel);
}

}  // namespace oc
