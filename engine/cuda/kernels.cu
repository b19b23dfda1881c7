// CUDA kernels: flat grid-stride loops over the layouts documented in launch.h. Indexing is
// 64-bit throughout (activations of real models exceed 2^31 bytes in a batch).
#include <cfloat>
#include <cmath>

#include "engine/cuda/launch.h"

namespace oc::cuda {
namespace {

constexpr int kThreads = 256;

inline unsigned blocks_for(int64_t n) {
  int64_t b = (n + kThreads - 1) / kThreads;
  if (b < 1) b = 1;
  return static_cast<unsigned>(b > 65535 * 16 ? 65535 * 16 : b);
}

#define GRID_STRIDE(i, n) \
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < (n); i += static_cast<int64_t>(blockDim.x) * gridDim.x)

__device__ float apply_unary(Unary op, float v, float a, float b) {
  switch (op) {
    case Unary::Relu: return v > 0.f ? v : 0.f;
    case Unary::LeakyRelu: return v >= 0.f ? v : a * v;
    case Unary::Sigmoid: return 1.f / (1.f + expf(-v));
    case Unary::Tanh: return tanhf(v);
    case Unary::Erf: return erff(v);
    case Unary::Gelu: return 0.5f * v * (1.f + erff(v * 0.70710678118654752f));
    case Unary::GeluTanh: return 0.5f * v * (1.f + tanhf(0.7978845608028654f * (v + 0.044715f * v * v * v)));
    case Unary::HardSigmoid: return fmaxf(0.f, fminf(1.f, a * v + b));
    case Unary::HardSwish: return v * fmaxf(0.f, fminf(1.f, v / 6.f + 0.5f));
    case Unary::Clip: return fminf(fmaxf(v, a), b);
    case Unary::Exp: return expf(v);
    case Unary::Log: return logf(v);
    case Unary::Sqrt: return sqrtf(v);
    case Unary::Neg: return -v;
    case Unary::Abs: return fabsf(v);
    case Unary::Reciprocal: return 1.f / v;
    case Unary::Softplus: return v > 0.f ? v + log1pf(expf(-v)) : log1pf(expf(v));
    case Unary::Elu: return v >= 0.f ? v : a * (expf(v) - 1.f);
    case Unary::Sin: return sinf(v);
    case Unary::Cos: return cosf(v);
    case Unary::Floor: return floorf(v);
    case Unary::Ceil: return ceilf(v);
    case Unary::Round: return rintf(v);
    case Unary::Sign: return v > 0.f ? 1.f : (v < 0.f ? -1.f : 0.f);
    case Unary::Softsign: return v / (1.f + fabsf(v));
    case Unary::Mish: return v * tanhf(v > 0.f ? v + log1pf(expf(-v)) : log1pf(expf(v)));
    case Unary::Copy: return v;
  }
  return v;
}

__global__ void unary_kernel(Unary op, const float* x, float* y, int64_t n, float a, float b) {
  GRID_STRIDE(i, n) y[i] = apply_unary(op, x[i], a, b);
}

__device__ float apply_binary(Binary op, float a, float b) {
  switch (op) {
    case Binary::Add: return a + b;
    case Binary::Sub: return a - b;
    case Binary::Mul: return a * b;
    case Binary::Div: return a / b;
    case Binary::Pow: return powf(a, b);
    case Binary::Max: return fmaxf(a, b);
    case Binary::Min: return fminf(a, b);
    case Binary::PRelu: return a < 0.f ? a * b : a;
    case Binary::Mod: return fmodf(a, b);
    case Binary::Second: return b;
  }
  return a;
}

__global__ void binary_kernel(Binary op, const float* a, const float* b, float* y, int64_t n, BroadcastGeometry g) {
  GRID_STRIDE(i, n) {
    int64_t rest = i, oa = 0, ob = 0;
    for (int k = g.rank - 1; k >= 0; --k) {
      const int64_t c = rest % g.dims[k];
      rest /= g.dims[k];
      oa += c * g.sa[k];
      ob += c * g.sb[k];
    }
    y[i] = apply_binary(op, a[oa], b[ob]);
  }
}

__global__ void gather_map_kernel(GatherParts x, const int32_t* map, float* y, int64_t n, float fill) {
  GRID_STRIDE(i, n) {
    const int64_t src = static_cast<int64_t>(map[i]) - 1;
    if (src < 0) {
      y[i] = fill;
      continue;
    }
    int k = 0;
    while (k + 1 < x.count && src >= x.offset[k + 1]) ++k;
    y[i] = x.data[k][src - x.offset[k]];
  }
}

// Block-wide sum/max of one value per thread (blockDim.x == kThreads).
template <bool kMax>
__device__ float block_reduce(float v, float* shared) {
  for (int o = 16; o > 0; o >>= 1) {
    const float other = __shfl_xor_sync(0xffffffffu, v, o);
    v = kMax ? fmaxf(v, other) : v + other;
  }
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  __syncthreads();  // `shared` may still be read from a previous reduction
  if (lane == 0) shared[warp] = v;
  __syncthreads();
  if (warp == 0) {
    v = lane < kThreads / 32 ? shared[lane] : (kMax ? -FLT_MAX : 0.f);
    for (int o = 16; o > 0; o >>= 1) {
      const float other = __shfl_xor_sync(0xffffffffu, v, o);
      v = kMax ? fmaxf(v, other) : v + other;
    }
    if (lane == 0) shared[0] = v;
  }
  __syncthreads();
  return shared[0];
}

__global__ void softmax_kernel(const float* x, float* y, int64_t cols, bool log) {
  __shared__ float shared[32];
  const float* row = x + blockIdx.x * cols;
  float* out = y + blockIdx.x * cols;
  float mx = -FLT_MAX;
  for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) mx = fmaxf(mx, row[j]);
  mx = block_reduce<true>(mx, shared);
  float sum = 0.f;
  for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) sum += expf(row[j] - mx);
  sum = block_reduce<false>(sum, shared);
  if (log) {
    const float lse = logf(sum);
    for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) out[j] = row[j] - mx - lse;
  } else {
    const float inv = 1.f / sum;
    for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) out[j] = expf(row[j] - mx) * inv;
  }
}

__global__ void layer_norm_kernel(const float* x, const float* scale, const float* bias, float* y, int64_t cols,
                                  float eps) {
  __shared__ float shared[32];
  const float* row = x + blockIdx.x * cols;
  float* out = y + blockIdx.x * cols;
  float s = 0.f;
  for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) s += row[j];
  const float mean = block_reduce<false>(s, shared) / static_cast<float>(cols);
  float q = 0.f;
  for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) {
    const float d = row[j] - mean;
    q += d * d;
  }
  const float inv = rsqrtf(block_reduce<false>(q, shared) / static_cast<float>(cols) + eps);
  for (int64_t j = threadIdx.x; j < cols; j += blockDim.x)
    out[j] = (row[j] - mean) * inv * scale[j] + (bias ? bias[j] : 0.f);
}

__global__ void batch_norm_kernel(const float* x, const float* scale, const float* bias, const float* mean,
                                  const float* var, float* y, int64_t n, int64_t channels, int64_t inner, float eps) {
  GRID_STRIDE(i, n) {
    const int64_t c = (i / inner) % channels;
    y[i] = (x[i] - mean[c]) * rsqrtf(var[c] + eps) * scale[c] + bias[c];
  }
}

__global__ void channel_bias_kernel(float* y, const float* bias, int64_t n, int64_t channels, int64_t inner) {
  GRID_STRIDE(i, n) y[i] += bias[(i / inner) % channels];
}

__device__ float reduce_init(Reduce op) {
  switch (op) {
    case Reduce::Max: return -FLT_MAX;
    case Reduce::Min: return FLT_MAX;
    case Reduce::Prod: return 1.f;
    default: return 0.f;
  }
}

__device__ float reduce_step(Reduce op, float acc, float v) {
  switch (op) {
    case Reduce::Max: return fmaxf(acc, v);
    case Reduce::Min: return fminf(acc, v);
    case Reduce::Prod: return acc * v;
    case Reduce::SumSquare:
    case Reduce::L2: return acc + v * v;
    case Reduce::L1: return acc + fabsf(v);
    default: return acc + v;
  }
}

// One thread per output element, walking the reduced sub-space (counted in `inner_count`).
__global__ void reduce_kernel(Reduce op, const float* x, float* y, ReduceGeometry g, int64_t outputs,
                              int64_t inner_count) {
  int64_t stride[kMaxRank];
  int64_t s = 1;
  for (int k = g.rank - 1; k >= 0; --k) {
    stride[k] = s;
    s *= g.dims[k];
  }
  GRID_STRIDE(o, outputs) {
    // Base offset from the kept axes (output coordinates).
    int64_t rest = o, base = 0;
    for (int k = g.rank - 1; k >= 0; --k) {
      if (g.reduce[k]) continue;
      const int64_t c = rest % g.dims[k];
      rest /= g.dims[k];
      base += c * stride[k];
    }
    float acc = reduce_init(op);
    for (int64_t r = 0; r < inner_count; ++r) {
      int64_t rr = r, off = base;
      for (int k = g.rank - 1; k >= 0; --k) {
        if (!g.reduce[k]) continue;
        const int64_t c = rr % g.dims[k];
        rr /= g.dims[k];
        off += c * stride[k];
      }
      acc = reduce_step(op, acc, x[off]);
    }
    if (op == Reduce::Mean) acc /= static_cast<float>(inner_count);
    if (op == Reduce::L2) acc = sqrtf(acc);
    y[o] = acc;
  }
}

// Reduced axes form the contiguous tail: one block per output row.
__global__ void reduce_rows_kernel(Reduce op, const float* x, float* y, int64_t cols) {
  __shared__ float shared[32];
  const float* row = x + blockIdx.x * cols;
  const bool is_max = op == Reduce::Max, is_min = op == Reduce::Min;
  float acc = reduce_init(op);
  for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) acc = reduce_step(op, acc, row[j]);
  float r;
  if (is_max) r = block_reduce<true>(acc, shared);
  else if (is_min) r = -block_reduce<true>(-acc, shared);
  else r = block_reduce<false>(acc, shared);
  if (threadIdx.x == 0) {
    if (op == Reduce::Mean) r /= static_cast<float>(cols);
    if (op == Reduce::L2) r = sqrtf(r);
    y[blockIdx.x] = r;
  }
}

__global__ void max_pool_kernel(const float* x, float* y, PoolGeometry g, int64_t n) {
  GRID_STRIDE(i, n) {
    const int64_t ox = i % g.ow, oy = (i / g.ow) % g.oh, p = i / (g.ow * g.oh);
    const float* plane = x + p * g.h * g.w;
    float m = -FLT_MAX;
    for (int64_t ky = 0; ky < g.kh; ++ky) {
      const int64_t iy = oy * g.sh - g.ph + ky * g.dh;
      if (iy < 0 || iy >= g.h) continue;
      for (int64_t kx = 0; kx < g.kw; ++kx) {
        const int64_t ix = ox * g.sw - g.pw + kx * g.dw;
        if (ix < 0 || ix >= g.w) continue;
        m = fmaxf(m, plane[iy * g.w + ix]);
      }
    }
    y[i] = m;
  }
}

__global__ void avg_pool_kernel(const float* x, float* y, PoolGeometry g, int64_t n) {
  GRID_STRIDE(i, n) {
    const int64_t ox = i % g.ow, oy = (i / g.ow) % g.oh, p = i / (g.ow * g.oh);
    const float* plane = x + p * g.h * g.w;
    float s = 0.f;
    int64_t count = 0;
    for (int64_t ky = 0; ky < g.kh; ++ky) {
      const int64_t iy = oy * g.sh - g.ph + ky;
      for (int64_t kx = 0; kx < g.kw; ++kx) {
        const int64_t ix = ox * g.sw - g.pw + kx;
        const bool inside = iy >= 0 && iy < g.h && ix >= 0 && ix < g.w;
        // count_include_pad counts positions inside the padded input, not beyond it.
        const bool padded = iy >= -g.ph && iy < g.h + g.ph_end && ix >= -g.pw && ix < g.w + g.pw_end;
        if (inside) s += plane[iy * g.w + ix];
        if (inside || (g.count_include_pad && padded)) ++count;
      }
    }
    y[i] = count ? s / static_cast<float>(count) : 0.f;
  }
}

__global__ void im2col_kernel(const float* x, float* col, ConvGeometry g, int64_t c0, int64_t cg) {
  const int64_t positions = g.oh * g.ow;
  const int64_t n = cg * g.kh * g.kw * positions;
  GRID_STRIDE(i, n) {
    const int64_t pos = i % positions, f = i / positions;
    const int64_t kx = f % g.kw, ky = (f / g.kw) % g.kh, c = f / (g.kw * g.kh);
    const int64_t ox = pos % g.ow, oy = pos / g.ow;
    const int64_t iy = oy * g.sh - g.ph + ky * g.dh, ix = ox * g.sw - g.pw + kx * g.dw;
    col[i] = (iy >= 0 && iy < g.h && ix >= 0 && ix < g.w) ? x[((c0 + c) * g.h + iy) * g.w + ix] : 0.f;
  }
}

__global__ void col2im_kernel(const float* col, float* y, ConvGeometry g, int64_t mg) {
  const int64_t n = mg * g.oh * g.ow, positions = g.h * g.w;
  GRID_STRIDE(i, n) {
    const int64_t ox = i % g.ow, oy = (i / g.ow) % g.oh, m = i / (g.ow * g.oh);
    float s = 0.f;
    for (int64_t ky = 0; ky < g.kh; ++ky) {
      const int64_t ty = oy + g.ph - ky * g.dh;
      if (ty < 0 || ty % g.sh) continue;
      const int64_t iy = ty / g.sh;
      if (iy >= g.h) continue;
      for (int64_t kx = 0; kx < g.kw; ++kx) {
        const int64_t tx = ox + g.pw - kx * g.dw;
        if (tx < 0 || tx % g.sw) continue;
        const int64_t ix = tx / g.sw;
        if (ix >= g.w) continue;
        s += col[((m * g.kh + ky) * g.kw + kx) * positions + iy * g.w + ix];
      }
    }
    y[i] = s;
  }
}

__global__ void depthwise_kernel(const float* x, const float* w, const float* bias, float* y, int64_t total,
                                 ConvGeometry g) {
  const int64_t mult = g.m / g.c;
  GRID_STRIDE(i, total) {
    const int64_t ox = i % g.ow, oy = (i / g.ow) % g.oh, m = (i / (g.ow * g.oh)) % g.m, img = i / (g.ow * g.oh * g.m);
    const int64_t c = m / mult;
    const float* plane = x + (img * g.c + c) * g.h * g.w;
    const float* k = w + m * g.kh * g.kw;
    float s = bias ? bias[m] : 0.f;
    for (int64_t ky = 0; ky < g.kh; ++ky) {
      const int64_t iy = oy * g.sh - g.ph + ky * g.dh;
      if (iy < 0 || iy >= g.h) continue;
      for (int64_t kx = 0; kx < g.kw; ++kx) {
        const int64_t ix = ox * g.sw - g.pw + kx * g.dw;
        if (ix < 0 || ix >= g.w) continue;
        s += plane[iy * g.w + ix] * k[ky * g.kw + kx];
      }
    }
    y[i] = s;
  }
}

__global__ void minmax_kernel(const float* x, int64_t n, float* mm) {
  __shared__ float shared[32];
  float lo = FLT_MAX, hi = -FLT_MAX;
  GRID_STRIDE(i, n) {
    const float v = x[i];
    if (isfinite(v)) {
      lo = fminf(lo, v);
      hi = fmaxf(hi, v);
    }
  }
  lo = -block_reduce<true>(-lo, shared);
  hi = block_reduce<true>(hi, shared);
  if (threadIdx.x == 0) {
    // Float atomics through the ordered-int trick do not hold for negatives; a CAS loop does.
    int* plo = reinterpret_cast<int*>(mm);
    int old = *plo, assumed;
    do {
      assumed = old;
      if (__int_as_float(assumed) <= lo) break;
      old = atomicCAS(plo, assumed, __float_as_int(lo));
    } while (old != assumed);
    int* phi = reinterpret_cast<int*>(mm + 1);
    old = *phi;
    do {
      assumed = old;
      if (__int_as_float(assumed) >= hi) break;
      old = atomicCAS(phi, assumed, __float_as_int(hi));
    } while (old != assumed);
  }
}

__global__ void to_double_kernel(const float* x, double* y, int64_t n) {
  GRID_STRIDE(i, n) y[i] = static_cast<double>(x[i]);
}

__global__ void fill_double_kernel(double* y, int64_t n, double v) {
  GRID_STRIDE(i, n) y[i] = v;
}

}  // namespace

void unary(cudaStream_t s, Unary op, const float* x, float* y, int64_t n, float a, float b) {
  if (n > 0) unary_kernel<<<blocks_for(n), kThreads, 0, s>>>(op, x, y, n, a, b);
}

void binary(cudaStream_t s, Binary op, const float* a, const float* b, float* y, int64_t n, const BroadcastGeometry& g) {
  if (n > 0) binary_kernel<<<blocks_for(n), kThreads, 0, s>>>(op, a, b, y, n, g);
}

void gather_map(cudaStream_t s, const GatherParts& x, const int32_t* map, float* y, int64_t n, float fill) {
  if (n > 0) gather_map_kernel<<<blocks_for(n), kThreads, 0, s>>>(x, map, y, n, fill);
}

void softmax_rows(cudaStream_t s, const float* x, float* y, int64_t rows, int64_t cols, bool log) {
  if (rows > 0) softmax_kernel<<<static_cast<unsigned>(rows), kThreads, 0, s>>>(x, y, cols, log);
}

void layer_norm_rows(cudaStream_t s, const float* x, const float* scale, const float* bias, float* y, int64_t rows,
                     int64_t cols, float eps) {
  if (rows > 0) layer_norm_kernel<<<static_cast<unsigned>(rows), kThreads, 0, s>>>(x, scale, bias, y, cols, eps);
}

void batch_norm(cudaStream_t s, const float* x, const float* scale, const float* bias, const float* mean,
                const float* var, float* y, int64_t n, int64_t channels, int64_t inner, float eps) {
  if (n > 0)
    batch_norm_kernel<<<blocks_for(n), kThreads, 0, s>>>(x, scale, bias, mean, var, y, n, channels, inner, eps);
}

void add_channel_bias(cudaStream_t s, float* y, const float* bias, int64_t outer, int64_t channels, int64_t inner) {
  const int64_t n = outer * channels * inner;
  if (n > 0) channel_bias_kernel<<<blocks_for(n), kThreads, 0, s>>>(y, bias, n, channels, inner);
}

void reduce(cudaStream_t s, Reduce op, const float* x, float* y, const ReduceGeometry& g) {
  int64_t outputs = 1, inner = 1;
  int first_reduced = g.rank;
  bool tail = true;  // reduced axes are exactly a contiguous tail
  for (int k = 0; k < g.rank; ++k) {
    if (g.reduce[k]) {
      inner *= g.dims[k];
      if (first_reduced == g.rank) first_reduced = k;
    } else {
      outputs *= g.dims[k];
      if (first_reduced != g.rank) tail = false;
    }
  }
  if (outputs <= 0) return;
  if (tail && inner >= 64 && outputs < (int64_t(1) << 31))
    reduce_rows_kernel<<<static_cast<unsigned>(outputs), kThreads, 0, s>>>(op, x, y, inner);
  else
    reduce_kernel<<<blocks_for(outputs), kThreads, 0, s>>>(op, x, y, g, outputs, inner);
}

void max_pool(cudaStream_t s, const float* x, float* y, const PoolGeometry& g) {
  const int64_t n = g.planes * g.oh * g.ow;
  if (n > 0) max_pool_kernel<<<blocks_for(n), kThreads, 0, s>>>(x, y, g, n);
}

void avg_pool(cudaStream_t s, const float* x, float* y, const PoolGeometry& g) {
  const int64_t n = g.planes * g.oh * g.ow;
  if (n > 0) avg_pool_kernel<<<blocks_for(n), kThreads, 0, s>>>(x, y, g, n);
}

void im2col(cudaStream_t s, const float* x, float* col, const ConvGeometry& g, int64_t c0, int64_t cg) {
  const int64_t n = cg * g.kh * g.kw * g.oh * g.ow;
  if (n > 0) im2col_kernel<<<blocks_for(n), kThreads, 0, s>>>(x, col, g, c0, cg);
}

void col2im(cudaStream_t s, const float* col, float* y, const ConvGeometry& g, int64_t mg) {
  const int64_t n = mg * g.oh * g.ow;
  if (n > 0) col2im_kernel<<<blocks_for(n), kThreads, 0, s>>>(col, y, g, mg);
}

void depthwise_conv(cudaStream_t s, const float* x, const float* w, const float* bias, float* y, int64_t n,
                    const ConvGeometry& g) {
  const int64_t total = n * g.m * g.oh * g.ow;
  if (total > 0) depthwise_kernel<<<blocks_for(total), kThreads, 0, s>>>(x, w, bias, y, total, g);
}

void minmax_update(cudaStream_t s, const float* x, int64_t n, float* mm) {
  if (n > 0) minmax_kernel<<<blocks_for(n) > 1024 ? 1024 : blocks_for(n), kThreads, 0, s>>>(x, n, mm);
}

void to_double(cudaStream_t s, const float* x, double* y, int64_t n) {
  if (n > 0) to_double_kernel<<<blocks_for(n), kThreads, 0, s>>>(x, y, n);
}

void fill_double(cudaStream_t s, double* y, int64_t n, double v) {
  if (n > 0) fill_double_kernel<<<blocks_for(n), kThreads, 0, s>>>(y, n, v);
}

}  // namespace oc::cuda
