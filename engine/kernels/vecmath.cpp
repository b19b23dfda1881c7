// Array loops of vecmath.h, one clone per ISA (GCC target_clones, resolved once at load time).
#include "engine/kernels/vecmath.h"

#include <algorithm>
#include <cmath>

namespace oc::kern {

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define OC_VEC_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define OC_VEC_CLONES
#endif

OC_VEC_CLONES void exp_array(const float* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = vexp(x[i]);
}

OC_VEC_CLONES void erf_array(const float* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = verf(x[i]);
}

OC_VEC_CLONES void clamp_affine_array(const float* x, float* y, int64_t n, float alpha, float beta, float lo,
                                      float hi, bool gated) {
  if (gated) {
    for (int64_t i = 0; i < n; ++i) {
      const float v = alpha * x[i] + beta;
      y[i] = x[i] * (v < lo ? lo : v > hi ? hi : v);
    }
  } else {
    for (int64_t i = 0; i < n; ++i) {
      const float v = alpha * x[i] + beta;
      y[i] = v < lo ? lo : v > hi ? hi : v;
    }
  }
}

OC_VEC_CLONES void gram_rows_add(const double* rows, int64_t F, int64_t n, double* lower, double* sums) {
  for (int64_t j = 0; j < F; ++j) {
    const double* tj = rows + j * n;
    double sj = 0;
#pragma omp simd reduction(+ : sj)
    for (int64_t r = 0; r < n; ++r) sj += tj[r];
    sums[j] += sj;
    for (int64_t i = j; i < F; ++i) {
      const double* ti = rows + i * n;
      double acc = 0;
#pragma omp simd reduction(+ : acc)
      for (int64_t r = 0; r < n; ++r) acc += ti[r] * tj[r];
      lower[j * F + i] += acc;
    }
  }
}

OC_VEC_CLONES void min_max_array(const float* x, int64_t n, float* min, float* max, int64_t* nans) {
  // GCC vector types: sixteen lanes whatever the clone's width (the compiler does not vectorize
  // the scalar form of this reduction). Comparisons with NaN are false, so a NaN never replaces
  // a lane's min or max; v != v is -1 in the NaN lanes.
  typedef float F16 __attribute__((vector_size(64)));
  typedef int32_t I16 __attribute__((vector_size(64)));
  constexpr int64_t kLanes = 16;
  F16 lo, hi;
  for (int l = 0; l < kLanes; ++l) lo[l] = __builtin_inff(), hi[l] = -__builtin_inff();
  int64_t total_bad = 0, i = 0;
  constexpr int64_t kChunk = int64_t{1} << 24;  // NaN counts per chunk fit 32 bits
  while (i + kLanes <= n) {
    I16 bad = {};
    const int64_t end = i + std::min<int64_t>(kChunk, (n - i) / kLanes * kLanes);
    for (; i < end; i += kLanes) {
      F16 v;
      std::memcpy(&v, x + i, sizeof v);
      lo = v < lo ? v : lo;
      hi = v > hi ? v : hi;
      bad -= (v != v);
    }
    for (int l = 0; l < kLanes; ++l) total_bad += bad[l];
  }
  float mn = __builtin_inff(), mx = -__builtin_inff();
  for (int l = 0; l < kLanes; ++l) mn = lo[l] < mn ? lo[l] : mn, mx = hi[l] > mx ? hi[l] : mx;
  for (; i < n; ++i) {
    const float v = x[i];
    mn = v < mn ? v : mn;
    mx = v > mx ? v : mx;
    total_bad += v != v;
  }
  *min = mn, *max = mx, *nans = total_bad;
}

OC_VEC_CLONES void leaky_relu_array(const float* x, float* y, int64_t n, float alpha) {
  for (int64_t i = 0; i < n; ++i) y[i] = x[i] > 0 ? x[i] : alpha * x[i];
}

OC_VEC_CLONES void gelu_erf_array(const float* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = 0.5f * x[i] * (1.f + verf(x[i] * 0.70710678118654752f));
}

OC_VEC_CLONES void gelu_tanh_array(const float* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const float v = x[i];
    y[i] = 0.5f * v * (1.f + vtanh(0.79788456080286536f * (v + 0.044715f * v * v * v)));
  }
}

OC_VEC_CLONES void tanh_array(const float* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = vtanh(x[i]);
}

OC_VEC_CLONES void sigmoid_array(const float* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = vsigmoid(x[i]);
}

OC_VEC_CLONES void axpy_strided(float* y, const float* x, int64_t n, int64_t stride, float a) {
  if (stride == 1) {
    for (int64_t i = 0; i < n; ++i) y[i] += a * x[i];
  } else {
    for (int64_t i = 0; i < n; ++i) y[i] += a * x[i * stride];
  }
}

OC_VEC_CLONES float layer_norm_row(const float* x, float* y, int64_t n, const float* scale, const float* bias,
                                    float eps, float* mean) {
  double sum = 0;
  for (int64_t i = 0; i < n; ++i) sum += x[i];
  const double mu = sum / static_cast<double>(n);
  double sq = 0;
  for (int64_t i = 0; i < n; ++i) {
    const double d = x[i] - mu;
    sq += d * d;
  }
  const float inv = static_cast<float>(1.0 / std::sqrt(sq / static_cast<double>(n) + eps));
  const float m = static_cast<float>(mu);
  if (bias) {
    for (int64_t i = 0; i < n; ++i) y[i] = (x[i] - m) * inv * scale[i] + bias[i];
  } else {
    for (int64_t i = 0; i < n; ++i) y[i] = (x[i] - m) * inv * scale[i];
  }
  *mean = m;
  return inv;
}

OC_VEC_CLONES void softmax_row(const float* x, float* y, int64_t n, bool log) {
  float mx = -INFINITY;
#pragma omp simd reduction(max : mx)
  for (int64_t i = 0; i < n; ++i) mx = x[i] > mx ? x[i] : mx;
  float sum = 0.f;
  if (log) {
#pragma omp simd reduction(+ : sum)
    for (int64_t i = 0; i < n; ++i) sum += vexp(x[i] - mx);
    const float lsum = std::log(sum);
    for (int64_t i = 0; i < n; ++i) y[i] = x[i] - mx - lsum;
    return;
  }
#pragma omp simd reduction(+ : sum)
  for (int64_t i = 0; i < n; ++i) {
    y[i] = vexp(x[i] - mx);
    sum += y[i];
  }
  const float inv = 1.f / sum;
  for (int64_t i = 0; i < n; ++i) y[i] *= inv;
}

}  // namespace oc::kern
