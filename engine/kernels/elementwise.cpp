// Elementwise kernels: unary activations/math, numpy-broadcast binary arithmetic, comparisons,
// logic, Where, Clip, PRelu and the variadic Sum/Mean/Min/Max (Max/Min/Mod also on float16, in float32).
//
// y = f(x) per element; z[i] = g(a[bcast_a(i)], b[bcast_b(i)]) with numpy broadcasting
// (common.h). Integer Div truncates toward zero (as C++ and ONNX Runtime); Mod follows `fmod`:
// 0 = sign of the divisor (Python), 1 = sign of the dividend (C fmod).
#include <cmath>
#include <limits>
#include <type_traits>

#include "engine/kernels/common.h"
#include "engine/kernels/vecmath.h"

namespace oc {
namespace {

using namespace kern;

// ---- unary ----

// The output reuses x's storage when x is input 0 read here for the last time (same element size).
template <typename T, typename F>
Tensor map_unary(const KernelContext& ctx, const Tensor& x, DType out_dt, F f) {
  using TO = decltype(f(T{}));
  Tensor out;
  const T* in = reinterpret_cast<const T*>(x.bytes.data());
  if (Tensor* own = ctx.movable_input(0); own == &x && sizeof(TO) == sizeof(T)) {
    out = std::move(*own);
    out.name.clear();
    out.dtype = out_dt;
  } else {
    out = make_tensor(out_dt, x.dims);
  }
  TO* o = reinterpret_cast<TO*>(out.bytes.data());
  parallel_for(out.numel(), ctx.num_threads, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) o[i] = f(in[i]);
  });
  return out;
}

// Float-only math (float32 and float64).
template <typename F>
void unary_float(KernelContext& ctx, F f) {
  const Tensor& x = ctx.input(0);
  if (x.dtype == DType::Float) ctx.output(0) = map_unary<float>(ctx, x, x.dtype, [&](float v) { return static_cast<float>(f(v)); });
  else if (x.dtype == DType::Double) ctx.output(0) = map_unary<double>(ctx, x, x.dtype, [&](double v) { return static_cast<double>(f(v)); });
  else ctx.unsupported("element type " + dtype_name(x.dtype) + " (float/double only)");
}

// Float math with a vectorized float32 loop (vecmath.h); float64 through f.
template <typename F>
void unary_float_vec(KernelContext& ctx, void (*array_fn)(const float*, float*, int64_t), F f) {
  const Tensor& x = ctx.input(0);
  if (x.dtype != DType::Float) {
    unary_float(ctx, f);
    return;
  }
  const float* in = x.data<float>();
  Tensor out;
  if (Tensor* own = ctx.movable_input(0)) {
    out = std::move(*own);
    out.name.clear();
  } else {
    out = make_tensor(DType::Float, x.dims);
  }
  float* o = out.data<float>();
  parallel_for(out.numel(), ctx.num_threads, [&](int64_t b, int64_t e) { array_fn(in + b, o + b, e - b); });
  ctx.output(0) = std::move(out);
}

// Ops that make sense on integers too (Neg, Abs, Sign, Relu).
template <typename F>
void unary_numeric(KernelContext& ctx, F f) {
  const Tensor& x = ctx.input(0);
  dispatch_numeric(ctx, x.dtype, [&](auto tag) {
    using T = decltype(tag);
    ctx.output(0) = map_unary<T>(ctx, x, x.dtype, [&](T v) { return static_cast<T>(f(v)); });
  });
}

template <typename T> T sign_of(T v) {
  if constexpr (std::is_signed_v<T>) return static_cast<T>((v > T(0)) - (v < T(0)));
  else return static_cast<T>(v > T(0));
}

struct UnaryEntry {
  const char* op;
  void (*run)(KernelContext&);
};

#define FLOAT_OP(NAME, EXPR) {NAME, [](KernelContext& c) { unary_float(c, [](auto v) { using T = decltype(v); (void)sizeof(T); return EXPR; }); }}

#define VEC_OP(NAME, ARRAY_FN, EXPR) {NAME, [](KernelContext& c) { unary_float_vec(c, ARRAY_FN, [](auto v) { using T = decltype(v); (void)sizeof(T); return EXPR; }); }}

const UnaryEntry kUnary[] = {
  VEC_OP("Sigmoid", sigmoid_array, T(1) / (T(1) + std::exp(-v))),
  VEC_OP("Tanh", tanh_array, std::tanh(v)),
  VEC_OP("Erf", erf_array, std::erf(v)),
  VEC_OP("Exp", exp_array, std::exp(v)),
  FLOAT_OP("Log", std::log(v)),
  FLOAT_OP("Sqrt", std::sqrt(v)),
  FLOAT_OP("Reciprocal", T(1) / v),
  FLOAT_OP("Floor", std::floor(v)),
  FLOAT_OP("Ceil", std::ceil(v)),
  FLOAT_OP("Round", std::nearbyint(v)),  // half to even (default rounding mode)
  FLOAT_OP("Sin", std::sin(v)),
  FLOAT_OP("Cos", std::cos(v)),
  FLOAT_OP("Tan", std::tan(v)),
  FLOAT_OP("Softsign", v / (T(1) + std::fabs(v))),
  FLOAT_OP("HardSwish", v * std::max(T(0), std::min(T(1), v / T(6) + T(0.5)))),
  // softplus(x) = log(1 + e^x), written to not overflow for large x
  FLOAT_OP("Softplus", v > T(0) ? v + std::log1p(std::exp(-v)) : std::log1p(std::exp(v))),
  {"Neg", [](KernelContext& c) { unary_numeric(c, [](auto v) { return -v; }); }},
  {"Abs", [](KernelContext& c) {
     unary_numeric(c, [](auto v) {
       if constexpr (std::is_signed_v<decltype(v)>) return v < 0 ? -v : v;
       else return v;
     });
   }},
  {"Sign", [](KernelContext& c) { unary_numeric(c, [](auto v) { return sign_of(v); }); }},
  {"Relu", [](KernelContext& c) { unary_numeric(c, [](auto v) { return v > decltype(v)(0) ? v : decltype(v)(0); }); }},
  {"LeakyRelu", [](KernelContext& c) {
     float a = c.node.attr_float("alpha", 0.01f);
     unary_float(c, [a](auto v) { return v < 0 ? v * a : v; });
   }},
  {"Elu", [](KernelContext& c) {
     float a = c.node.attr_float("alpha", 1.f);
     unary_float(c, [a](auto v) { return v < 0 ? a * (std::exp(v) - 1) : v; });
   }},
  {"Selu", [](KernelContext& c) {
     double a = c.node.attr_float("alpha", 1.67326319217681884765625f);
     double g = c.node.attr_float("gamma", 1.05070102214813232421875f);
     unary_float(c, [a, g](auto v) { return v <= 0 ? g * (a * std::exp(double(v)) - a) : g * double(v); });
   }},
  {"HardSigmoid", [](KernelContext& c) {
     float a = c.node.attr_float("alpha", 0.2f), b = c.node.attr_float("beta", 0.5f);
     unary_float(c, [a, b](auto v) { return std::max(decltype(v)(0), std::min(decltype(v)(1), a * v + b)); });
   }},
  {"Gelu", [](KernelContext& c) {
     std::string approx = c.node.attr_string("approximate", "none");
     if (approx == "tanh")
       unary_float(c, [](auto v) { return 0.5 * v * (1 + std::tanh(0.7978845608028654 * (v + 0.044715 * v * v * v))); });
     else if (approx == "none")
       unary_float(c, [](auto v) { return 0.5 * v * (1 + std::erf(v * 0.7071067811865476)); });
     else c.unsupported("approximate='" + approx + "'");
   }},
};

// ---- binary with broadcasting ----

template <typename TO, typename TA, typename TB, typename F>
Tensor broadcast_binary(const KernelContext& ctx, const Tensor& a, const Tensor& b, DType out_dt, F f) {
  Dims od = broadcast_dims(ctx, {&a.dims, &b.dims});
  StridedPlan p = StridedPlan::make(od, {strides_of(od), broadcast_strides(a.dims, od), broadcast_strides(b.dims, od)});
  const TA* pa = reinterpret_cast<const TA*>(a.bytes.data());
  const TB* pb = reinterpret_cast<const TB*>(b.bytes.data());
  // An operand of the output's shape and type read here for the last time becomes the output:
  // each element is read before it is overwritten, at the same offset.
  Tensor out;
  auto reuse = [&](size_t i, const Tensor& t) {
    Tensor* own = ctx.movable_input(i);
    if (own != &t || t.dims != od || t.dtype != out_dt) return false;
    out = std::move(*own);
    out.name.clear();
    return true;
  };
  if (!reuse(0, a) && !reuse(1, b)) out = make_tensor(out_dt, od);
  if (numel(od) == 0) return out;
  TO* po = reinterpret_cast<TO*>(out.bytes.data());
  const int64_t sa = p.strides[1].back(), sb = p.strides[2].back();
  for_each_run(p, ctx.num_threads, [&](int64_t n, const int64_t* off) {
    TO* o = po + off[0];
    const TA* x = pa + off[1];
    const TB* y = pb + off[2];
    // Contiguous and scalar-operand loops (vectorized) for the types models compute in; the
    // others take the strided loop only: a quarter of the instantiations of this file, which
    // dominated the build (10 types x 20 ops x 4 loops).
    constexpr bool hot = std::is_same_v<TA, float> || std::is_same_v<TA, int64_t> || std::is_same_v<TA, int32_t>;
    if constexpr (!hot) {
      for (int64_t e = 0; e < n; ++e) o[e] = static_cast<TO>(f(x[e * sa], y[e * sb]));
    } else if (sa == 1 && sb == 1) {
      for (int64_t e = 0; e < n; ++e) o[e] = static_cast<TO>(f(x[e], y[e]));
    } else if (sa == 1 && sb == 0) {
      const TB yv = *y;
      for (int64_t e = 0; e < n; ++e) o[e] = static_cast<TO>(f(x[e], yv));
    } else if (sa == 0 && sb == 1) {
      const TA xv = *x;
      for (int64_t e = 0; e < n; ++e) o[e] = static_cast<TO>(f(xv, y[e]));
    } else {
      for (int64_t e = 0; e < n; ++e) o[e] = static_cast<TO>(f(x[e * sa], y[e * sb]));
    }
  });
  return out;
}

void same_type(const KernelContext& ctx, const Tensor& a, const Tensor& b) {
  if (a.dtype != b.dtype)
    bad_input(ctx, "operand types differ (" + dtype_name(a.dtype) + " and " + dtype_name(b.dtype) + ")");
}

// Same-type arithmetic: out = f(a, b), T in and out.
template <typename F>
Tensor arith(const KernelContext& ctx, const Tensor& a, const Tensor& b, F f) {
  same_type(ctx, a, b);
  Tensor out;
  dispatch_numeric(ctx, a.dtype, [&](auto tag) {
    using T = decltype(tag);
    out = broadcast_binary<T, T, T>(ctx, a, b, a.dtype, [&](T x, T y) { return static_cast<T>(f(x, y)); });
  });
  return out;
}

template <typename F>
void binary_op(KernelContext& ctx, F f) {
  ctx.output(0) = arith(ctx, ctx.input(0), ctx.input(1), f);
}

// Sum/Max/Min/Mean fold their inputs left to right.
template <typename F>
void variadic(KernelContext& ctx, F f, bool mean) {
  Tensor acc = ctx.input(0);
  for (size_t i = 1; i < ctx.num_inputs(); ++i) acc = arith(ctx, acc, ctx.input(i), f);
  if (mean && ctx.num_inputs() > 1) {
    if (acc.dtype == DType::Double) {
      acc = arith(ctx, acc, Tensor::from_float_as("", DType::Double, {}, {float(ctx.num_inputs())}),
                  [](auto x, auto y) { return x / y; });
    } else {
      if (acc.dtype != DType::Float) ctx.unsupported("Mean of " + dtype_name(acc.dtype));
      acc = arith(ctx, acc, Tensor::from_float("", {}, {float(ctx.num_inputs())}), [](auto x, auto y) { return x / y; });
    }
  }
  acc.name.clear();
  ctx.output(0) = std::move(acc);
}

template <typename T> T mod_python(T a, T b) {
  if constexpr (std::is_floating_point_v<T>) {
    T r = std::fmod(a, b);
    return (r != 0 && ((r < 0) != (b < 0))) ? r + b : r;
  } else {
    if (b == 0) return 0;
    T r = static_cast<T>(a % b);
    if constexpr (std::is_signed_v<T>)
      if (r != 0 && ((r < 0) != (b < 0))) r = static_cast<T>(r + b);
    return r;
  }
}
template <typename T> T mod_c(T a, T b) {
  if constexpr (std::is_floating_point_v<T>) return std::fmod(a, b);
  else return b == 0 ? T(0) : static_cast<T>(a % b);
}

// Comparisons give bool; bool operands compare as uint8.
template <typename F>
void compare(KernelContext& ctx, F f) {
  const Tensor &a = ctx.input(0), &b = ctx.input(1);
  same_type(ctx, a, b);
  if (a.dtype == DType::Bool) {
    ctx.output(0) = broadcast_binary<uint8_t, uint8_t, uint8_t>(ctx, a, b, DType::Bool, f);
    return;
  }
  dispatch_numeric(ctx, a.dtype, [&](auto tag) {
    using T = decltype(tag);
    ctx.output(0) = broadcast_binary<uint8_t, T, T>(ctx, a, b, DType::Bool, f);
  });
}

template <typename F>
void logic(KernelContext& ctx, F f) {
  const Tensor &a = ctx.input(0), &b = ctx.input(1);
  if (a.dtype != DType::Bool || b.dtype != DType::Bool) ctx.unsupported("non-bool operands");
  ctx.output(0) = broadcast_binary<uint8_t, uint8_t, uint8_t>(ctx, a, b, DType::Bool,
                                                            [&](uint8_t x, uint8_t y) { return f(x != 0, y != 0); });
}

// Pow: the exponent may have another type; it is converted to the base's type first, except
// that an integer base with a float exponent computes in double.
void pow_kernel(KernelContext& ctx) {
  const Tensor &a = ctx.input(0), &b = ctx.input(1);
  auto as_base = [&](const Tensor& e) {
    if (e.dtype == a.dtype) return e;
    auto v = e.to_float();
    if (a.dtype == DType::Float || a.dtype == DType::Double) return Tensor::from_float_as("", a.dtype, e.dims, v);
    if (a.dtype == DType::Int64) return Tensor::from_int64("", e.dims, e.to_int64());
    if (a.dtype == DType::Int32) {
      auto i = e.to_int64();
      return Tensor::from_int32("", e.dims, std::vector<int32_t>(i.begin(), i.end()));
    }
    ctx.unsupported("Pow of " + dtype_name(a.dtype) + " by " + dtype_name(e.dtype));
  };
  Tensor e = as_base(b);
  // x^2 is common (decomposed LayerNorm variance): exact as x*x.
  bool square = e.numel() == 1 && e.to_float()[0] == 2.0f;
  if (square) {
    ctx.output(0) = arith(ctx, a, Tensor(e), [](auto x, auto) { return x * x; });
    return;
  }
  ctx.output(0) = arith(ctx, a, e, [](auto x, auto y) {
    using T = decltype(x);
    return static_cast<T>(std::pow(static_cast<double>(x), static_cast<double>(y)));
  });
}

// Clip: bounds from attributes (opset < 11) or optional inputs 1 and 2.
void clip_kernel(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  dispatch_numeric(ctx, x.dtype, [&](auto tag) {
    using T = decltype(tag);
    T lo = std::numeric_limits<T>::lowest(), hi = std::numeric_limits<T>::max();
    if (ctx.opset < 11) {
      lo = static_cast<T>(ctx.node.attr_float("min", -std::numeric_limits<float>::max()));
      hi = static_cast<T>(ctx.node.attr_float("max", std::numeric_limits<float>::max()));
    } else {
      auto scalar = [&](size_t i, T def) {
        if (!ctx.has_input(i)) return def;
        const Tensor& t = ctx.input(i);
        if (t.numel() != 1 || t.dtype != x.dtype) bad_input(ctx, "min/max must be scalars of the input type");
        return *reinterpret_cast<const T*>(t.bytes.data());
      };
      lo = scalar(1, lo);
      hi = scalar(2, hi);
    }
    ctx.output(0) = map_unary<T>(ctx, x, x.dtype, [lo, hi](T v) { return std::min(hi, std::max(lo, v)); });
  });
}

// Where(cond, x, y): element size decides the copy; cond, x, y broadcast together.
void where_kernel(KernelContext& ctx) {
  const Tensor &c = ctx.input(0), &x = ctx.input(1), &y = ctx.input(2);
  if (c.dtype != DType::Bool) bad_input(ctx, "condition must be bool");
  same_type(ctx, x, y);
  Dims od = broadcast_dims(ctx, {&c.dims, &x.dims, &y.dims});
  Tensor out = make_tensor(x.dtype, od);
  if (numel(od) == 0) {
    ctx.output(0) = std::move(out);
    return;
  }
  StridedPlan p = StridedPlan::make(od, {strides_of(od), broadcast_strides(c.dims, od), broadcast_strides(x.dims, od),
                                         broadcast_strides(y.dims, od)});
  auto run = [&](auto tag) {
    using T = decltype(tag);
    const uint8_t* pc = c.bytes.data();
    const T* px = reinterpret_cast<const T*>(x.bytes.data());
    const T* py = reinterpret_cast<const T*>(y.bytes.data());
    T* po = reinterpret_cast<T*>(out.bytes.data());
    const int64_t sc = p.strides[1].back(), sx = p.strides[2].back(), sy = p.strides[3].back();
    for_each_run(p, ctx.num_threads, [&](int64_t n, const int64_t* off) {
      for (int64_t e = 0; e < n; ++e)
        po[off[0] + e] = pc[off[1] + e * sc] ? px[off[2] + e * sx] : py[off[3] + e * sy];
    });
  };
  switch (elem_size(ctx, x.dtype)) {
    case 1: run(uint8_t{}); break;
    case 2: run(uint16_t{}); break;
    case 4: run(uint32_t{}); break;
    case 8: run(uint64_t{}); break;
    default: ctx.unsupported("element type " + dtype_name(x.dtype));
  }
  ctx.output(0) = std::move(out);
}

// PRelu: y = x < 0 ? slope·x : x, slope broadcast to x (unidirectionally).
void prelu_kernel(KernelContext& ctx) {
  const Dims x_dims = ctx.input(0).dims;
  ctx.output(0) = arith(ctx, ctx.input(0), ctx.input(1), [](auto x, auto s) { return x < 0 ? x * s : x; });
  if (ctx.output(0).dims != x_dims) bad_input(ctx, "slope does not broadcast to the input shape");
}

// float16 operands computed in float32 and rounded back (Max/Min exact; Mod as numpy's float16,
// which also computes in float): `fn` runs on float copies of the inputs.
KernelFn half_as_float(KernelFn fn) {
  return [fn](KernelContext& ctx) {
    bool half = false;
    for (size_t i = 0; i < ctx.num_inputs(); ++i) half = half || (ctx.has_input(i) && ctx.input(i).dtype == DType::Float16);
    if (!half) {
      fn(ctx);
      return;
    }
    std::vector<Tensor> f(ctx.num_inputs());
    std::vector<const Tensor*> in(ctx.num_inputs(), nullptr);
    for (size_t i = 0; i < ctx.num_inputs(); ++i) {
      if (!ctx.has_input(i)) continue;
      const Tensor& t = ctx.input(i);
      if (t.dtype != DType::Float16) ctx.unsupported("mixed element types " + dtype_name(t.dtype) + " and float16");
      f[i] = Tensor::from_float("", t.dims, t.to_float());
      in[i] = &f[i];
    }
    std::vector<Tensor> outs(ctx.outputs.size());
    KernelContext fc{ctx.node, in, outs, ctx.num_threads, ctx.opset, ctx.executor, ctx.lookup};
    fn(fc);
    for (size_t k = 0; k < outs.size(); ++k)
      ctx.output(k) = outs[k].dtype == DType::Float ? Tensor::from_float_as("", DType::Float16, outs[k].dims, outs[k].to_float())
                                                    : std::move(outs[k]);
  };
}

}  // namespace

void register_elementwise_kernels(KernelRegistry& r) {
  for (const UnaryEntry& e : kUnary) r.add(e.op, e.run);
  r.add("Add", [](KernelContext& c) { binary_op(c, [](auto x, auto y) { return x + y; }); });
  r.add("Sub", [](KernelContext& c) { binary_op(c, [](auto x, auto y) { return x - y; }); });
  r.add("Mul", [](KernelContext& c) { binary_op(c, [](auto x, auto y) { return x * y; }); });
  r.add("Div", [](KernelContext& c) {
    binary_op(c, [](auto x, auto y) {
      using T = decltype(x);
      if constexpr (std::is_integral_v<T>) return y == 0 ? T(0) : static_cast<T>(x / y);
      else return x / y;
    });
  });
  r.add("Mod", half_as_float([](KernelContext& c) {
    if (c.node.attr_int("fmod", 0)) binary_op(c, [](auto x, auto y) { return mod_c(x, y); });
    else binary_op(c, [](auto x, auto y) { return mod_python(x, y); });
  }));
  r.add("Pow", pow_kernel);
  r.add("Sum", [](KernelContext& c) { variadic(c, [](auto x, auto y) { return x + y; }, false); });
  r.add("Mean", [](KernelContext& c) { variadic(c, [](auto x, auto y) { return x + y; }, true); });
  // Max/Min propagate NaN as ONNX Runtime does.
  r.add("Max", half_as_float([](KernelContext& c) { variadic(c, [](auto x, auto y) { return (x != x || x > y) ? x : y; }, false); }));
  r.add("Min", half_as_float([](KernelContext& c) { variadic(c, [](auto x, auto y) { return (x != x || x < y) ? x : y; }, false); }));
  r.add("Equal", [](KernelContext& c) { compare(c, [](auto x, auto y) { return x == y; }); });
  r.add("Less", [](KernelContext& c) { compare(c, [](auto x, auto y) { return x < y; }); });
  r.add("Greater", [](KernelContext& c) { compare(c, [](auto x, auto y) { return x > y; }); });
  r.add("LessOrEqual", [](KernelContext& c) { compare(c, [](auto x, auto y) { return x <= y; }); });
  r.add("GreaterOrEqual", [](KernelContext& c) { compare(c, [](auto x, auto y) { return x >= y; }); });
  r.add("And", [](KernelContext& c) { logic(c, [](bool x, bool y) { return x && y; }); });
  r.add("Or", [](KernelContext& c) { logic(c, [](bool x, bool y) { return x || y; }); });
  r.add("Xor", [](KernelContext& c) { logic(c, [](bool x, bool y) { return x != y; }); });
  r.add("Not", [](KernelContext& c) {
    const Tensor& x = c.input(0);
    if (x.dtype != DType::Bool) c.unsupported("non-bool input");
    c.output(0) = map_unary<uint8_t>(c, x, DType::Bool, [](uint8_t v) { return static_cast<uint8_t>(v == 0); });
  });
  r.add("Where", where_kernel);
  r.add("Clip", clip_kernel);
  r.add("PRelu", prelu_kernel);
}

}  // namespace oc
