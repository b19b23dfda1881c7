// Quantized-format kernels: the operators our exporters write (QDQ, MatMulNBits) and the integer
// operators ONNX Runtime's quantizer emits, so calibration can run already-quantized models.
//
//   QuantizeLinear:    q = saturate(round_half_even(x / s) + z)
//   DequantizeLinear:  x = (q − z) · s       s, z per tensor, per `axis`, or per `block_size` block
//   GatherBlockQuantized: Y = rows idx of the table, (code − z) · s per block of the last axis
//   MatMulNBits:       Y = A · Wᵀ + bias,    W[n,k] = (code[n,k] − z[n,k/bs]) · s[n,k/bs]
//                      (codes packed low bits first along K, `bits` per code; default z = 2^(bits−1))
//   DynamicQuantizeLinear: s = (max(x,0) − min(x,0)) / 255, z = round(−min/s), q = uint8 quantize
//   MatMulInteger:     Y = (A − za) · (B − zb) in int32
//   QLinearMatMul / QLinearConv: requantize(int32 product, sa·sb / sy, zy)
#include <Eigen/Core>

#include <algorithm>
#include <cmath>
#include <map>
#include <numeric>

#include "engine/kernel.h"
#include "engine/kernels/common.h"
#include "engine/kernels/dnnl_util.h"

namespace oc {
namespace {

using namespace oc::dnnl_util;

using kern::numel;

struct IntRange { int64_t lo, hi; };
const std::map<DType, IntRange>& int_ranges() {
  static const std::map<DType, IntRange> t = {
      {DType::UInt8, {0, 255}},       {DType::Int8, {-128, 127}}, {DType::UInt16, {0, 65535}},
      {DType::Int16, {-32768, 32767}}, {DType::UInt4, {0, 15}},   {DType::Int4, {-8, 7}},
      {DType::Int32, {INT32_MIN, INT32_MAX}}};
  return t;
}
IntRange range_of(const KernelContext& ctx, DType t) {
  auto it = int_ranges().find(t);
  if (it == int_ranges().end()) ctx.unsupported("quantized type " + dtype_name(t));
  return it->second;
}

// Integer tensor of `t` from values already in range (4-bit types packed).
Tensor make_int_tensor(const std::string& name, DType t, const std::vector<int64_t>& dims, const std::vector<int64_t>& v) {
  if (t == DType::Int4 || t == DType::UInt4) {
    std::vector<int8_t> b(v.begin(), v.end());
    return Tensor::from_4bit(name, t, dims, b);
  }
  Tensor out;
  out.name = name;
  out.dtype = t;
  out.dims = dims;
  out.bytes.resize(dtype_storage_bytes(t, numel(dims)));
  auto store = [&](auto* p) {
    for (size_t i = 0; i < v.size(); ++i) p[i] = static_cast<std::remove_pointer_t<decltype(p)>>(v[i]);
  };
  switch (t) {
    case DType::UInt8: store(reinterpret_cast<uint8_t*>(out.bytes.data())); break;
    case DType::Int8: store(reinterpret_cast<int8_t*>(out.bytes.data())); break;
    case DType::UInt16: store(reinterpret_cast<uint16_t*>(out.bytes.data())); break;
    case DType::Int16: store(reinterpret_cast<int16_t*>(out.bytes.data())); break;
    case DType::Int32: store(reinterpret_cast<int32_t*>(out.bytes.data())); break;
    default: throw UnsupportedError("integer tensor of type " + dtype_name(t));
  }
  return out;
}

int64_t quantize_one(float x, float scale, int64_t zp, IntRange r) {
  // x / scale in float32, as the ONNX reference and ONNX Runtime: in double, 0.5 / (2/102) is
  // 25.4999991 and rounds to 25 where float32 gives 25.5 -> 26 (onnx test_dynamicquantizelinear).
  double q = static_cast<double>(std::nearbyint(x / scale)) + static_cast<double>(zp);
  if (std::isnan(q)) q = static_cast<double>(zp);  // NaN input (or 0/0): casting NaN to int is undefined
  return static_cast<int64_t>(std::clamp(q, static_cast<double>(r.lo), static_cast<double>(r.hi)));
}

// Where each element of x finds its scale / zero point: per tensor, per `axis`, or per block of
// `block_size` along `axis` (scale then has x's rank with that dim = ceil(dim / block_size)).
struct QuantLayout {
  int64_t outer = 1, len = 1, inner = 1, block = 0, nblocks = 1;
  bool per_tensor = true;
  // Calls f(element_index, param_index) for every element.
  template <typename F>
  void for_each(F f) const {
    int64_t e = 0;
    for (int64_t o = 0; o < outer; ++o)
      for (int64_t a = 0; a < len; ++a) {
        const int64_t p0 = per_tensor ? 0 : block > 0 ? (o * nblocks + a / block) * inner : a;
        for (int64_t i = 0; i < inner; ++i, ++e) f(e, per_tensor ? 0 : block > 0 ? p0 + i : p0);
      }
  }
};

QuantLayout quant_layout(const KernelContext& ctx, const std::vector<int64_t>& xd, const Tensor& scale) {
  QuantLayout L;
  L.outer = numel(xd);
  const int64_t block = ctx.node.attr_int("block_size", 0);
  if (block <= 0 && scale.numel() == 1 && scale.dims.size() <= 1) return L;
  const int64_t r = static_cast<int64_t>(xd.size());
  int64_t axis = ctx.node.attr_int("axis", 1);
  if (axis < 0) axis += r;
  if (axis < 0 || axis >= r) ctx.unsupported("axis out of range for " + shape_str(xd));
  L.per_tensor = false;
  L.outer = numel({xd.begin(), xd.begin() + axis});
  L.len = xd[axis];
  L.inner = numel({xd.begin() + axis + 1, xd.end()});
  if (block > 0) {
    L.block = block;
    L.nblocks = (L.len + block - 1) / block;
    std::vector<int64_t> want = xd;
    want[axis] = L.nblocks;
    if (scale.dims != want) ctx.unsupported("blocked scale " + shape_str(scale.dims) + ", expected " + shape_str(want));
  } else {
    if (scale.dims.size() != 1 || scale.dims[0] != L.len)
      ctx.unsupported("per-axis scale " + shape_str(scale.dims) + " for axis " + std::to_string(axis) + " of " + shape_str(xd));
  }
  return L;
}

std::vector<int64_t> zero_points(const KernelContext& ctx, size_t i, const Tensor& scale) {
  if (!ctx.has_input(i)) return std::vector<int64_t>(static_cast<size_t>(scale.numel()), 0);
  const Tensor& z = ctx.input(i);
  if (!dtype_is_integer(z.dtype)) ctx.unsupported("zero point of type " + dtype_name(z.dtype));
  if (z.numel() != scale.numel()) ctx.unsupported("zero point " + shape_str(z.dims) + " does not match scale " + shape_str(scale.dims));
  return z.to_int64();
}

const Tensor& scale_input(const KernelContext& ctx, size_t i) {
  const Tensor& s = ctx.input(i);
  if (!dtype_is_float(s.dtype)) ctx.unsupported("scale of type " + dtype_name(s.dtype));
  return s;
}

void quantize_linear(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  if (!dtype_is_float(x.dtype)) ctx.unsupported("input of type " + dtype_name(x.dtype));
  const Tensor& scale = scale_input(ctx, 1);
  DType out_t = DType::UInt8;
  if (ctx.has_input(2)) out_t = ctx.input(2).dtype;
  else if (ctx.node.attr_int("output_dtype", 0) != 0) out_t = static_cast<DType>(ctx.node.attr_int("output_dtype", 0));
  const IntRange r = range_of(ctx, out_t);
  if (out_t == DType::Int32) ctx.unsupported("int32 output");
  const QuantLayout L = quant_layout(ctx, x.dims, scale);
  const std::vector<float> xv = x.to_float(), sv = scale.to_float();
  const std::vector<int64_t> zv = zero_points(ctx, 2, scale);
  std::vector<int64_t> q(xv.size());
  L.for_each([&](int64_t e, int64_t p) { q[e] = quantize_one(xv[e], sv[p], zv[p], r); });
  ctx.output(0) = make_int_tensor(ctx.node.outputs[0], out_t, x.dims, q);
}

void dequantize_linear(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  range_of(ctx, x.dtype);  // integer types only (float8 inputs are not handled)
  const Tensor& scale = scale_input(ctx, 1);
  const QuantLayout L = quant_layout(ctx, x.dims, scale);
  const std::vector<int64_t> xv = x.to_int64(), zv = zero_points(ctx, 2, scale);
  const std::vector<float> sv = scale.to_float();
  std::vector<float> y(xv.size());
  // (q − z) is exact in int64; ONNX Runtime converts that difference, not q and z separately.
  L.for_each([&](int64_t e, int64_t p) { y[e] = static_cast<float>(xv[e] - zv[p]) * sv[p]; });
  ctx.output(0) = Tensor::from_float_as(ctx.node.outputs[0], scale.dtype, x.dims, y);
}

void dynamic_quantize_linear(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  if (x.dtype != DType::Float) ctx.unsupported("input of type " + dtype_name(x.dtype));
  const std::vector<float> xv = x.to_float();
  float lo = 0.f, hi = 0.f;  // the range always includes 0 so that 0 is exact
  for (float v : xv) { lo = std::min(lo, v); hi = std::max(hi, v); }
  const float scale = (hi - lo) / 255.f;
  const IntRange r = {0, 255};
  const int64_t zp = scale == 0.f ? 0 : static_cast<int64_t>(std::clamp(std::nearbyint(-lo / scale), 0.f, 255.f));
  std::vector<int64_t> q(xv.size(), zp);
  if (scale != 0.f)
    for (size_t i = 0; i < xv.size(); ++i) q[i] = quantize_one(xv[i], scale, zp, r);
  ctx.output(0) = make_int_tensor(ctx.node.outputs[0], DType::UInt8, x.dims, q);
  ctx.output(1) = Tensor::from_float(ctx.node.outputs[1], {}, {scale});
  ctx.output(2) = make_int_tensor(ctx.node.outputs[2], DType::UInt8, {}, {zp});
}

// ---------------------------------------------------------------- MatMulNBits

// Code `idx` of a little-endian bit stream of `bits`-wide codes.
inline uint32_t unpack_code(const uint8_t* p, int64_t idx, int bits) {
  const int64_t bit = idx * bits;
  uint32_t v = p[bit >> 3] >> (bit & 7);
  const int got = 8 - static_cast<int>(bit & 7);
  if (got < bits) v |= static_cast<uint32_t>(p[(bit >> 3) + 1]) << got;
  return v & ((1u << bits) - 1);
}

void matmul_nbits(KernelContext& ctx) {
  const Tensor& A = ctx.input(0);
  const Tensor& B = ctx.input(1);
  const Tensor& S = scale_input(ctx, 2);
  if (A.dtype != DType::Float) ctx.unsupported("A of type " + dtype_name(A.dtype) + " (float32 only)");
  if (ctx.has_input(4)) ctx.unsupported("g_idx input");
  const int64_t K = ctx.node.attr_int("K", 0), N = ctx.node.attr_int("N", 0);
  const int bits = static_cast<int>(ctx.node.attr_int("bits", 4));
  const int64_t bs = ctx.node.attr_int("block_size", 0);
  if (K <= 0 || N <= 0 || bits < 2 || bits > 8 || bs < 16 || (bs & (bs - 1)) != 0)
    ctx.unsupported("attributes K/N/bits/block_size (K=" + std::to_string(K) + " N=" + std::to_string(N) + " bits=" +
                    std::to_string(bits) + " block_size=" + std::to_string(bs) + ")");
  const int64_t nb = (K + bs - 1) / bs, blob = bs * bits / 8;
  if (B.dtype != DType::UInt8 || numel(B.dims) != N * nb * blob)
    ctx.unsupported("B must be uint8 [N, ceil(K/block_size), block_size*bits/8] = [" + std::to_string(N) + "," +
                    std::to_string(nb) + "," + std::to_string(blob) + "], got " + shape_str(B.dims));
  if (S.numel() != N * nb) ctx.unsupported("scales " + shape_str(S.dims) + ", expected N*ceil(K/block_size) values");
  if (A.dims.empty() || A.dims.back() != K) ctx.unsupported("A " + shape_str(A.dims) + " does not end in K=" + std::to_string(K));
  const std::vector<float> sv = S.to_float();

  // Zero point per (n, block): packed uint8 codes (each row of N padded to whole bytes), or plain
  // values of the scales' type; absent means the mid code.
  std::vector<float> zp(static_cast<size_t>(N * nb), static_cast<float>(1 << (bits - 1)));
  if (ctx.has_input(3)) {
    const Tensor& Z = ctx.input(3);
    if (Z.dtype == DType::UInt8) {
      const int64_t row = (nb * bits + 7) / 8;
      if (Z.numel() != N * row) ctx.unsupported("packed zero_points " + shape_str(Z.dims) + ", expected " + std::to_string(N * row) + " bytes");
      for (int64_t n = 0; n < N; ++n)
        for (int64_t b = 0; b < nb; ++b) zp[n * nb + b] = static_cast<float>(unpack_code(Z.bytes.data() + n * row, b, bits));
    } else if (Z.dtype == S.dtype && Z.numel() == N * nb) {
      zp = Z.to_float();
    } else {
      ctx.unsupported("zero_points " + dtype_name(Z.dtype) + " " + shape_str(Z.dims));
    }
  }

  // W stored [N, K]; the matmul reads it transposed through strides.
  std::vector<float> W(static_cast<size_t>(N * K));
  const uint8_t* bp = B.bytes.data();
  for (int64_t n = 0; n < N; ++n)
    for (int64_t b = 0; b < nb; ++b) {
      const uint8_t* blk = bp + (n * nb + b) * blob;
      const float s = sv[n * nb + b], z = zp[n * nb + b];
      const int64_t k0 = b * bs, kn = std::min(bs, K - k0);
      for (int64_t t = 0; t < kn; ++t) W[n * K + k0 + t] = (static_cast<float>(unpack_code(blk, t, bits)) - z) * s;
    }

  std::vector<int64_t> ydims = A.dims;
  ydims.back() = N;
  const int64_t M = A.numel() / K;
  Tensor& Y = ctx.output(0);
  Y = Tensor::from_float(ctx.node.outputs[0], ydims, std::vector<float>(static_cast<size_t>(M * N), 0.f));
  if (M > 0) {
    const auto a_md = plain_desc({M, K}), w_md = permuted_desc({K, N}, {1, 0}), y_md = plain_desc({M, N});
    dnnl::primitive p = cached(key("nbits", M, K, N), [&] {
      dnnl::matmul::desc d(a_md, w_md, y_md);
      return dnnl::matmul(dnnl::matmul::primitive_desc(d, engine()));
    });
    run(p, {{DNNL_ARG_SRC, wrap(a_md, A.bytes.data())}, {DNNL_ARG_WEIGHTS, wrap(w_md, W.data())},
            {DNNL_ARG_DST, wrap(y_md, Y.bytes.data())}});
  }
  if (ctx.has_input(5)) {
    const std::vector<float> bias = ctx.input(5).to_float();
    if (static_cast<int64_t>(bias.size()) != N) ctx.unsupported("bias must have N values");
    Eigen::Map<Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>> y(Y.data<float>(), M, N);
    y.rowwise() += Eigen::Map<const Eigen::RowVectorXf>(bias.data(), N);
  }
}

// ---------------------------------------------------------------- integer matmul / conv

// Batched int32 product of integer matrices with zero points: per-tensor or per-row (A) /
// per-column (B). Batch dims broadcast as in MatMul. Returns the product and its dims.
struct IntProduct {
  std::vector<int64_t> dims;
  std::vector<int32_t> v;
  int64_t N = 0;
};

IntProduct int_matmul(const KernelContext& ctx, const Tensor& A, const Tensor& B, const Tensor* za, const Tensor* zb) {
  using IMat = Eigen::Matrix<int32_t, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  if (A.dims.size() < 2 || B.dims.size() < 2) ctx.unsupported("operands of rank < 2");
  for (const Tensor* t : {&A, &B})
    if (t->dtype != DType::UInt8 && t->dtype != DType::Int8) ctx.unsupported("operand of type " + dtype_name(t->dtype));
  std::vector<int64_t> ad = A.dims, bd = B.dims;
  const size_t r = std::max(ad.size(), bd.size());
  ad.insert(ad.begin(), r - ad.size(), 1);
  bd.insert(bd.begin(), r - bd.size(), 1);
  const int64_t M = ad[r - 2], K = ad[r - 1], N = bd[r - 1];
  if (bd[r - 2] != K) ctx.unsupported("inner dims differ");
  std::vector<int64_t> batch(r - 2);
  for (size_t i = 0; i + 2 < r; ++i) {
    if (ad[i] != bd[i] && ad[i] != 1 && bd[i] != 1) ctx.unsupported("batch dims do not broadcast");
    batch[i] = std::max(ad[i], bd[i]);
  }
  const std::vector<int64_t> av = A.to_int64(), bv = B.to_int64();
  std::vector<int64_t> zav = za ? za->to_int64() : std::vector<int64_t>{0}, zbv = zb ? zb->to_int64() : std::vector<int64_t>{0};
  if (zav.size() != 1 && static_cast<int64_t>(zav.size()) != M) ctx.unsupported("A zero point must be scalar or per row");
  if (zbv.size() != 1 && static_cast<int64_t>(zbv.size()) != N) ctx.unsupported("B zero point must be scalar or per column");
  IntProduct out;
  out.dims = batch;
  out.dims.push_back(M);
  out.dims.push_back(N);
  out.N = N;
  const int64_t nbatch = numel(batch);
  out.v.resize(static_cast<size_t>(nbatch * M * N));
  IMat a(M, K), b(K, N);
  std::vector<int64_t> idx(batch.size(), 0);
  for (int64_t bi = 0; bi < nbatch; ++bi) {
    int64_t ao = 0, bo = 0, as = 1, bs = 1;
    for (size_t i = batch.size(); i-- > 0;) {
      ao += (ad[i] == 1 ? 0 : idx[i]) * as;
      bo += (bd[i] == 1 ? 0 : idx[i]) * bs;
      as *= ad[i];
      bs *= bd[i];
    }
    for (int64_t m = 0; m < M; ++m)
      for (int64_t k = 0; k < K; ++k) a(m, k) = static_cast<int32_t>(av[(ao * M + m) * K + k] - zav[zav.size() == 1 ? 0 : m]);
    for (int64_t k = 0; k < K; ++k)
      for (int64_t n = 0; n < N; ++n) b(k, n) = static_cast<int32_t>(bv[(bo * K + k) * N + n] - zbv[zbv.size() == 1 ? 0 : n]);
    Eigen::Map<IMat>(out.v.data() + bi * M * N, M, N).noalias() = a * b;
    for (size_t i = batch.size(); i-- > 0;) {
      if (++idx[i] < batch[i]) break;
      idx[i] = 0;
    }
  }
  return out;
}

void matmul_integer(KernelContext& ctx) {
  IntProduct p = int_matmul(ctx, ctx.input(0), ctx.input(1), ctx.has_input(2) ? &ctx.input(2) : nullptr,
                            ctx.has_input(3) ? &ctx.input(3) : nullptr);
  ctx.output(0) = Tensor::from_int32(ctx.node.outputs[0], p.dims, p.v);
}

// Requantizes int32 accumulators: q = saturate(round(acc · sa·sb[col] / sy) + zy).
void requantize(KernelContext& ctx, const std::vector<int32_t>& acc, const std::vector<int64_t>& dims, float sa,
                const std::vector<float>& sb, int64_t col_stride, int64_t ncols, size_t sy_i, size_t zy_i) {
  const float sy = ctx.input(sy_i).to_float().at(0);
  DType out_t = ctx.has_input(zy_i) ? ctx.input(zy_i).dtype : DType::UInt8;
  const int64_t zy = ctx.has_input(zy_i) ? ctx.input(zy_i).to_int64().at(0) : 0;
  const IntRange r = range_of(ctx, out_t);
  std::vector<float> mult(sb.size());
  for (size_t i = 0; i < sb.size(); ++i) mult[i] = sa * sb[i] / sy;
  std::vector<int64_t> q(acc.size());
  for (size_t e = 0; e < acc.size(); ++e) {
    const float m = mult.size() == 1 ? mult[0] : mult[(static_cast<int64_t>(e) / col_stride) % ncols];
    const double v = std::nearbyint(static_cast<double>(static_cast<float>(acc[e]) * m)) + static_cast<double>(zy);
    q[e] = static_cast<int64_t>(std::clamp(v, static_cast<double>(r.lo), static_cast<double>(r.hi)));
  }
  ctx.output(0) = make_int_tensor(ctx.node.outputs[0], out_t, dims, q);
}

void qlinear_matmul(KernelContext& ctx) {
  const Tensor& bs = scale_input(ctx, 4);
  IntProduct p = int_matmul(ctx, ctx.input(0), ctx.input(3), &ctx.input(2), &ctx.input(5));
  const float sa = scale_input(ctx, 1).to_float().at(0);
  if (bs.numel() != 1 && bs.numel() != p.N) ctx.unsupported("b_scale must be scalar or per column");
  requantize(ctx, p.v, p.dims, sa, bs.to_float(), 1, p.N, 6, 7);
}

// Integer convolution through the float Conv kernel: (x − zx) and (w − zw) are small integers,
// exact in float; sums stay exact while |acc| < 2^24.
std::vector<int32_t> int_conv(KernelContext& ctx, const Tensor& x, const Tensor* zx, const Tensor& w, const Tensor* zw,
                              std::vector<int64_t>& ydims) {
  for (const Tensor* t : {&x, &w})
    if (t->dtype != DType::UInt8 && t->dtype != DType::Int8) ctx.unsupported("operand of type " + dtype_name(t->dtype));
  const std::vector<int64_t> xv = x.to_int64(), wv = w.to_int64();
  const std::vector<int64_t> zxv = zx ? zx->to_int64() : std::vector<int64_t>{0}, zwv = zw ? zw->to_int64() : std::vector<int64_t>{0};
  if (zxv.size() != 1) ctx.unsupported("per-channel input zero point");
  const int64_t M = w.dims.at(0), per = w.numel() / std::max<int64_t>(M, 1);
  if (zwv.size() != 1 && static_cast<int64_t>(zwv.size()) != M) ctx.unsupported("weight zero point must be scalar or per output channel");
  std::vector<float> xf(xv.size()), wf(wv.size());
  for (size_t i = 0; i < xv.size(); ++i) xf[i] = static_cast<float>(xv[i] - zxv[0]);
  for (size_t i = 0; i < wv.size(); ++i) wf[i] = static_cast<float>(wv[i] - zwv[zwv.size() == 1 ? 0 : i / per]);
  Tensor xt = Tensor::from_float("x", x.dims, xf), wt = Tensor::from_float("w", w.dims, wf);
  std::vector<Tensor> outs(1);
  KernelContext sub{ctx.node, {&xt, &wt}, outs};
  sub.opset = ctx.opset;
  const KernelFn* conv = KernelRegistry::instance().find("Conv");
  if (!conv) ctx.unsupported("no Conv kernel");
  (*conv)(sub);
  ydims = outs[0].dims;
  const float* y = outs[0].data<float>();
  std::vector<int32_t> acc(static_cast<size_t>(outs[0].numel()));
  for (size_t i = 0; i < acc.size(); ++i) acc[i] = static_cast<int32_t>(std::nearbyint(y[i]));
  return acc;
}

void conv_integer(KernelContext& ctx) {
  std::vector<int64_t> ydims;
  std::vector<int32_t> acc = int_conv(ctx, ctx.input(0), ctx.has_input(2) ? &ctx.input(2) : nullptr, ctx.input(1),
                                      ctx.has_input(3) ? &ctx.input(3) : nullptr, ydims);
  ctx.output(0) = Tensor::from_int32(ctx.node.outputs[0], ydims, acc);
}

void qlinear_conv(KernelContext& ctx) {
  std::vector<int64_t> ydims;
  std::vector<int32_t> acc = int_conv(ctx, ctx.input(0), &ctx.input(2), ctx.input(3), &ctx.input(5), ydims);
  const int64_t M = ydims.at(1), S = numel({ydims.begin() + 2, ydims.end()});
  if (ctx.has_input(8)) {
    const std::vector<int64_t> b = ctx.input(8).to_int64();
    if (static_cast<int64_t>(b.size()) != M) ctx.unsupported("bias must have one value per output channel");
    for (size_t e = 0; e < acc.size(); ++e) acc[e] += static_cast<int32_t>(b[(static_cast<int64_t>(e) / S) % M]);
  }
  const Tensor& ws = scale_input(ctx, 4);
  if (ws.numel() != 1 && ws.numel() != M) ctx.unsupported("w_scale must be scalar or per output channel");
  requantize(ctx, acc, ydims, scale_input(ctx, 1).to_float().at(0), ws.to_float(), S, M, 6, 7);
}

// ---------------------------------------------------------------- GatherBlockQuantized
// ONNX Runtime's quantized lookup (uint8 data, the form quantize/embeddings.h writes):
//   Y[idx..., rest..., c] = (code[i, rest..., c] − z[i, rest..., c/bs]) · s[i, rest..., c/bs],  i = idx
// codes `bits` wide, low bits first along the last axis; z packed the same way, default 2^(bits−1).
void gather_block_quantized(KernelContext& ctx) {
  const Tensor& D = ctx.input(0);
  const Tensor& I = ctx.input(1);
  const Tensor& S = scale_input(ctx, 2);
  const int bits = static_cast<int>(ctx.node.attr_int("bits", 4));
  const int64_t bs = ctx.node.attr_int("block_size", 128);
  const int64_t rank = static_cast<int64_t>(D.dims.size());
  int64_t qaxis = ctx.node.attr_int("quantize_axis", 1), gaxis = ctx.node.attr_int("gather_axis", 0);
  if (qaxis < 0) qaxis += rank;
  if (gaxis < 0) gaxis += rank;
  if (D.dtype != DType::UInt8) ctx.unsupported("data of type " + dtype_name(D.dtype) + " (uint8 only)");
  if (rank < 2 || gaxis != 0 || qaxis != rank - 1) ctx.unsupported("gather_axis must be 0 and quantize_axis the last axis");
  if ((bits != 2 && bits != 4 && bits != 8) || bs < 16 || (bs & (bs - 1)) != 0)
    ctx.unsupported("bits " + std::to_string(bits) + " / block_size " + std::to_string(bs));
  const int64_t rows = D.dims[0], C = D.dims.back() * (8 / bits), inner = D.numel() / rows / D.dims.back();
  const int64_t nb = (C + bs - 1) / bs, zrow = (nb * bits + 7) / 8;
  if (S.numel() != rows * inner * nb) ctx.unsupported("scales " + shape_str(S.dims) + " do not match the data blocks");
  const bool has_z = ctx.has_input(3);
  if (has_z && (ctx.input(3).dtype != DType::UInt8 || ctx.input(3).numel() != rows * inner * zrow))
    ctx.unsupported("zero_points " + shape_str(ctx.input(3).dims));
  const std::vector<float> sv = S.to_float();
  const std::vector<int64_t> idx = I.to_int64();
  std::vector<int64_t> ydims = I.dims;
  ydims.insert(ydims.end(), D.dims.begin() + 1, D.dims.end());
  ydims.back() = C;
  std::vector<float> y(static_cast<size_t>(numel(ydims)));
  const int64_t row_bytes = inner * D.dims.back();
  for (size_t n = 0; n < idx.size(); ++n) {
    int64_t r = idx[n] < 0 ? idx[n] + rows : idx[n];
    if (r < 0 || r >= rows) ctx.unsupported("index " + std::to_string(idx[n]) + " out of range [" + std::to_string(-rows) + ", " + std::to_string(rows) + ")");
    for (int64_t in = 0; in < inner; ++in) {
      const uint8_t* codes = D.bytes.data() + r * row_bytes + in * D.dims.back();
      const int64_t g = (r * inner + in) * nb;
      const uint8_t* zp = has_z ? ctx.input(3).bytes.data() + (r * inner + in) * zrow : nullptr;
      float* out = y.data() + (static_cast<int64_t>(n) * inner + in) * C;
      for (int64_t c = 0; c < C; ++c) {
        const int64_t b = c / bs;
        const float z = zp ? static_cast<float>(unpack_code(zp, b, bits)) : static_cast<float>(1 << (bits - 1));
        out[c] = (static_cast<float>(unpack_code(codes, c, bits)) - z) * sv[g + b];
      }
    }
  }
  ctx.output(0) = Tensor::from_float(ctx.node.outputs[0], ydims, y);
}

using dnnl_util::guarded;

}  // namespace

void register_quant_kernels(KernelRegistry& r) {
  struct Entry { const char* op; const char* domain; void (*fn)(KernelContext&); };
  static const Entry table[] = {
      {"QuantizeLinear", "", quantize_linear},
      {"DequantizeLinear", "", dequantize_linear},
      {"DynamicQuantizeLinear", "", dynamic_quantize_linear},
      {"MatMulInteger", "", matmul_integer},
      {"QLinearMatMul", "", qlinear_matmul},
      {"ConvInteger", "", conv_integer},
      {"QLinearConv", "", qlinear_conv},
      {"MatMulNBits", "com.microsoft", matmul_nbits},
      {"GatherBlockQuantized", "com.microsoft", gather_block_quantized},
      // ONNX Runtime's quantizer also writes Q/DQ in its own domain with the same semantics.
      {"QuantizeLinear", "com.microsoft", quantize_linear},
      {"DequantizeLinear", "com.microsoft", dequantize_linear},
  };
  for (const Entry& e : table) r.add(e.op, guarded(e.fn), e.domain);
}

}  // namespace oc
