// Float math written so that the compiler vectorizes loops over it (no library calls, no
// branches), and array loops compiled once per ISA (AVX-512, AVX2, baseline) and picked at load
// time: the project builds for the baseline x86-64, so plain loops would run 4 lanes wide.
//
//   exp(x) = 2^k · e^r,  k = round(x / ln2),  r = x − k·ln2 ∈ [−ln2/2, ln2/2],
//            e^r by its Taylor series to r^7 (truncation < 2e-8 relative); beyond the float
//            range the result is 0 or +inf.
//   erf(x) = sign(x) · (1 − (a1·t + a2·t² + a3·t³ + a4·t⁴ + a5·t⁵) · e^{−x²}),  t = 1 / (1 + p·|x|)
//            (Abramowitz & Stegun 7.1.26, |error| < 1.5e-7)
//   tanh(x) = 1 − 2 / (e^{2x} + 1),  sigmoid(x) = 1 / (1 + e^{−x})
#pragma once
#include <cstdint>
#include <cstring>

namespace oc::kern {

inline float vexp(float x_in) {
  const float x = x_in < -87.3f ? -87.3f : (x_in > 88.7f ? 88.7f : x_in);
  const float k = __builtin_nearbyintf(x * 1.44269504088896341f);
  // ln2 split in a part exact in float and the rest, so r keeps its low bits
  const float r = (x - k * 0.693145751953125f) - k * 1.428606765330187e-06f;
  float p = 1.f / 5040.f;
  p = p * r + 1.f / 720.f;
  p = p * r + 1.f / 120.f;
  p = p * r + 1.f / 24.f;
  p = p * r + 1.f / 6.f;
  p = p * r + 0.5f;
  p = p * r + 1.f;
  p = p * r + 1.f;
  const int32_t bits = (static_cast<int32_t>(k) + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof scale);
  const float y = p * scale;
  return x_in > 88.7f ? __builtin_inff() : (x_in < -87.3f ? 0.f : y);  // overflow to inf, underflow to 0
}

inline float verf(float x) {
  const float a = x < 0 ? -x : x;
  const float t = 1.f / (1.f + 0.3275911f * a);
  const float poly = t * (0.254829592f + t * (-0.284496736f + t * (1.421413741f + t * (-1.453152027f + t * 1.061405429f))));
  const float y = 1.f - poly * vexp(-a * a);
  return x < 0 ? -y : y;
}

inline float vtanh(float x) { return 1.f - 2.f / (vexp(2.f * x) + 1.f); }
inline float vsigmoid(float x) { return 1.f / (1.f + vexp(-x)); }

// y[i] = f(x[i]) for n elements (y may equal x).
void exp_array(const float* x, float* y, int64_t n);
void erf_array(const float* x, float* y, int64_t n);
void tanh_array(const float* x, float* y, int64_t n);
// y = clamp(α·x + β, lo, hi), times x when `gated` (Relu, Clip, HardSigmoid, HardSwish, affine).
void clamp_affine_array(const float* x, float* y, int64_t n, float alpha, float beta, float lo, float hi, bool gated);
// Min and max of the non-NaN values of x[0..n) (±inf included: +inf, −inf when all are NaN or
// n = 0), and how many are NaN. Sixteen independent lanes, so it runs at vector width.
void min_max_array(const float* x, int64_t n, float* min, float* max, int64_t* nans);
// F rows of n doubles (row f at rows + f·n): sums[f] += Σ row f, and for i ≥ j
// lower[j·F + i] += row i · row j (an F × F column-major lower triangle). Depthwise Conv Grams.
void gram_rows_add(const double* rows, int64_t F, int64_t n, double* lower, double* sums);
// y = x > 0 ? x : α·x
void leaky_relu_array(const float* x, float* y, int64_t n, float alpha);
// GELU: ½x(1 + erf(x/√2)), and its tanh approximation ½x(1 + tanh(√(2/π)(x + 0.044715x³))).
void gelu_erf_array(const float* x, float* y, int64_t n);
void gelu_tanh_array(const float* x, float* y, int64_t n);
void sigmoid_array(const float* x, float* y, int64_t n);
// y[i] += a · x[i·stride] for n elements (a row of a depthwise convolution).
void axpy_strided(float* y, const float* x, int64_t n, int64_t stride, float a);
// One row of a layer normalization: μ, σ² of x over n values (accumulated in double: inputs can
// have large offsets), y = (x − μ)/√(σ² + ε) · scale + bias (bias may be null); returns 1/√(σ² + ε)
// and writes μ to *mean.
float layer_norm_row(const float* x, float* y, int64_t n, const float* scale, const float* bias, float eps, float* mean);
// Softmax of one contiguous row: y = e^{x − max} / Σ e^{x − max}; log = true: x − max − log Σ.
void softmax_row(const float* x, float* y, int64_t n, bool log);

}  // namespace oc::kern
