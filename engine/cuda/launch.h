// Launchers of the CUDA kernels (kernels.cu): plain C++ declarations, so host code that plans
// the work (ops.cpp) needs no device compiler. Every pointer is device memory; every launch is
// asynchronous on `s`. Layouts are row-major; "rank ≤ kMaxRank" applies to broadcasting,
// reductions and pooling geometry.
#pragma once
#include <cstdint>

#include <cuda_runtime.h>

namespace oc::cuda {

constexpr int kMaxRank = 8;

// out[i] = f(x[i]) — the unary activations of ONNX; a and b are the op's parameters
// (LeakyRelu alpha, HardSigmoid alpha/beta, Clip min/max, Elu alpha, Gelu approximate flag).
enum class Unary {
  Relu, LeakyRelu, Sigmoid, Tanh, Erf, Gelu, GeluTanh, HardSigmoid, HardSwish, Clip, Exp, Log, Sqrt,
  Neg, Abs, Reciprocal, Softplus, Elu, Sin, Cos, Floor, Ceil, Round, Sign, Softsign, Mish, Copy
};
void unary(cudaStream_t s, Unary op, const float* x, float* y, int64_t n, float a, float b);

// out[idx] = f(a[Σ idx_k·sa_k], b[Σ idx_k·sb_k]) over out's dims (stride 0 on stretched axes).
enum class Binary { Add, Sub, Mul, Div, Pow, Max, Min, PRelu, Mod, Second };  // Second: y = b (broadcast copy)
struct BroadcastGeometry {
  int rank = 0;
  int64_t dims[kMaxRank] = {};
  int64_t sa[kMaxRank] = {}, sb[kMaxRank] = {};
};
void binary(cudaStream_t s, Binary op, const float* a, const float* b, float* y, int64_t n, const BroadcastGeometry& g);

// y[i] = x[map[i] − 1] (map[i] == 0: y[i] = fill); x is the virtual concatenation of `parts` buffers
// (part k holds indices [offset_k, offset_{k+1})).
constexpr int kMaxParts = 16;
struct GatherParts {
  int count = 0;
  const float* data[kMaxParts] = {};
  int64_t offset[kMaxParts + 1] = {};
};
void gather_map(cudaStream_t s, const GatherParts& x, const int32_t* map, float* y, int64_t n, float fill);

// Rows of length `cols`: y = softmax(x) (log_softmax when `log`), one block per row.
void softmax_rows(cudaStream_t s, const float* x, float* y, int64_t rows, int64_t cols, bool log);
// y = (x − mean)/sqrt(var + eps)·scale + bias over rows of length `cols`; scale/bias of length cols
// (bias may be null).
void layer_norm_rows(cudaStream_t s, const float* x, const float* scale, const float* bias, float* y, int64_t rows,
                     int64_t cols, float eps);
// Inference BatchNormalization: channel c = (i / inner) % channels.
void batch_norm(cudaStream_t s, const float* x, const float* scale, const float* bias, const float* mean,
                const float* var, float* y, int64_t n, int64_t channels, int64_t inner, float eps);
// y[c] += bias[c] for y of [outer, channels, inner].
void add_channel_bias(cudaStream_t s, float* y, const float* bias, int64_t outer, int64_t channels, int64_t inner);

// Reduction of x over the axes with reduce[k] = 1; y has x's dims with those axes set to 1.
enum class Reduce { Sum, Mean, Max, Min, SumSquare, L2, L1, Prod };
struct ReduceGeometry {
  int rank = 0;
  int64_t dims[kMaxRank] = {};
  bool reduce[kMaxRank] = {};
};
void reduce(cudaStream_t s, Reduce op, const float* x, float* y, const ReduceGeometry& g);

// 2-D pooling over [N·C, H, W] planes.
struct PoolGeometry {
  int64_t planes = 0, h = 0, w = 0, oh = 0, ow = 0;
  int64_t kh = 1, kw = 1, sh = 1, sw = 1, ph = 0, pw = 0, dh = 1, dw = 1;
  int64_t ph_end = 0, pw_end = 0;  // explicit end pads (count_include_pad counts up to them)
  bool count_include_pad = false;
};
void max_pool(cudaStream_t s, const float* x, float* y, const PoolGeometry& g);
void avg_pool(cudaStream_t s, const float* x, float* y, const PoolGeometry& g);

// Convolution geometry of one image (2-D; 1-D convs use h = kh = 1).
struct ConvGeometry {
  int64_t c = 0, h = 0, w = 0;          // input channels (all groups), spatial size
  int64_t m = 0, oh = 0, ow = 0;        // output channels (all groups), spatial size
  int64_t groups = 1;
  int64_t kh = 1, kw = 1, sh = 1, sw = 1, ph = 0, pw = 0, dh = 1, dw = 1;
};
// col[(c·kh + ky)·kw + kx][oy·ow + ox] for the channels [c0, c0 + cg) of one image x [C, H, W].
void im2col(cudaStream_t s, const float* x, float* col, const ConvGeometry& g, int64_t c0, int64_t cg);
// ConvTranspose's scatter as a gather: y[m, oy, ox] = Σ col[(m·kh + ky)·kw + kx][iy·w + ix] over the
// taps with oy + ph − ky·dh = iy·sh (and likewise for x), for `mg` output channels of one image;
// here (h, w) is the input size and (oh, ow) the output size.
void col2im(cudaStream_t s, const float* col, float* y, const ConvGeometry& g, int64_t mg);
// Depthwise (groups == C, M = C·mult) convolution of `n` images, bias optional.
void depthwise_conv(cudaStream_t s, const float* x, const float* w, const float* bias, float* y, int64_t n,
                    const ConvGeometry& g);

// Device observers: running min/max of x into mm[0], mm[1] (mm initialised by the caller).
void minmax_update(cudaStream_t s, const float* x, int64_t n, float* mm);
// Widens float to double (for the double-precision Gram update).
void to_double(cudaStream_t s, const float* x, double* y, int64_t n);
void fill_double(cudaStream_t s, double* y, int64_t n, double v);

}  // namespace oc::cuda
