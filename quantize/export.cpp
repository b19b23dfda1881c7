// Exporters: fake (dequantized floats), QDQ DequantizeLinear, com.microsoft.MatMulNBits.
//   DequantizeLinear:  W = (x − zp) · scale, per tensor / per axis / per block along an axis
//   MatMulNBits:       Y = A · dequant(B)ᵀ (+ bias), B uint8 [N, ceil(K/bs), bs·bits/8]
#include "quantize/export.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <map>

#include "graph/errors.h"
#include "graph/opset_convert.h"
#include "graph/subgraphs.h"
#include "quantize/quantizers.h"

namespace oc::quant {

std::string format_name(Format f) {
  switch (f) {
    case Format::QDQ: return "qdq";
    case Format::MatMulNBits: return "matmulnbits";
    case Format::Fake: return "fake";
  }
  return "?";
}

Format parse_format(const std::string& s) {
  if (s == "qdq") return Format::QDQ;
  if (s == "matmulnbits") return Format::MatMulNBits;
  if (s == "fake") return Format::Fake;
  throw InvalidArgument("unknown output format '" + s + "' (expected qdq, matmulnbits or fake)");
}

int qdq_container_bits(int bits) { return bits <= 4 ? 4 : 8; }
// ONNX Runtime 1.30's CPU MatMulNBits kernel runs 2, 4 and 8 bits.
int matmulnbits_container_bits(int bits) { return bits <= 2 ? 2 : bits <= 4 ? 4 : 8; }

bool scales_fit_half(const std::vector<float>& scales) {
  return std::all_of(scales.begin(), scales.end(), [](float v) {
    const float a = std::fabs(v);
    return a == 0.f || (a >= 6.2e-5f && a <= 65504.f);
  });
}

bool matmulnbits_dynamic_int8(int bits) { return matmulnbits_container_bits(bits) == 8; }

namespace {

bool is_pow2(int64_t v) { return v > 0 && (v & (v - 1)) == 0; }
bool uses_matmulnbits(const WeightLayer& l, Format f) { return f == Format::MatMulNBits && l.op != "Conv"; }

// Removes a weight that nothing reads any more (and its stale graph-input entry).
void drop_if_unused(Graph& g, const std::string& name) {
  if (!g.consumers(name).empty() || g.is_graph_output(name)) return;
  g.remove_initializer(name);
  auto& in = g.inputs;
  in.erase(std::remove_if(in.begin(), in.end(), [&](const ValueInfo& v) { return v.name == name; }), in.end());
  g.invalidate();
}

// [N, K] row-major -> ONNX orientation, for any element type.
template <typename T>
std::vector<T> orient(const WeightLayer& l, const std::vector<T>& nk) {
  if (!l.transposed) return nk;
  std::vector<T> kn(nk.size());
  for (int64_t n = 0; n < l.rows; ++n)
    for (int64_t k = 0; k < l.cols; ++k) kn[k * l.rows + n] = nk[n * l.cols + k];
  return kn;
}

Tensor int_tensor(const std::string& name, DType t, std::vector<int64_t> dims, const std::vector<int>& v) {
  if (t == DType::Int4 || t == DType::UInt4) {
    std::vector<int8_t> b(v.begin(), v.end());
    return Tensor::from_4bit(name, t, std::move(dims), b);
  }
  Tensor out;
  out.name = name;
  out.dtype = t;
  out.dims = std::move(dims);
  out.bytes.resize(v.size());
  for (size_t i = 0; i < v.size(); ++i) out.bytes[i] = static_cast<uint8_t>(static_cast<int8_t>(v[i]));
  if (t == DType::UInt8)
    for (size_t i = 0; i < v.size(); ++i) out.bytes[i] = static_cast<uint8_t>(v[i]);
  return out;
}

// Opset a QDQ weight needs: per-tensor 10, per-axis 13, 4-bit types and blocks 21.
int64_t qdq_opset(const QuantizedMatrix& q) {
  if (qdq_container_bits(q.layout.bits) == 4 || q.layout.granularity == Granularity::Block) return 21;
  return q.layout.granularity == Granularity::Channel ? 13 : 10;
}

void export_fake(Model& m, const QuantizedLayer& ql) { set_layer_matrix(m.graph, ql.layer, ql.q.dequantize()); }

void export_qdq(Model& m, const QuantizedLayer& ql) {
  Graph& g = layer_graph(m.graph, ql.layer);
  const WeightLayer& l = ql.layer;
  const QuantizedMatrix& q = ql.q;
  const bool sym = q.layout.scheme == Scheme::Sym;
  const int cb = qdq_container_bits(q.layout.bits);
  const DType dt = cb == 4 ? (sym ? DType::Int4 : DType::UInt4) : (sym ? DType::Int8 : DType::UInt8);
  // Symmetric codes are stored signed (q − 2^(b−1)) with zero point 0, which the type implies.
  std::vector<int> vals(q.codes.size());
  for (size_t i = 0; i < vals.size(); ++i) vals[i] = sym ? q.codes[i] - q.layout.sym_zero() : q.codes[i];
  std::vector<int> zps(q.zero_points.begin(), q.zero_points.end());

  std::vector<int64_t> sdims;
  std::vector<float> scales = q.scales;
  Node dq;
  dq.op_type = "DequantizeLinear";
  switch (q.layout.granularity) {
    case Granularity::Tensor: break;
    case Granularity::Channel:
      sdims = {l.rows};
      dq.set_attr_int("axis", l.n_axis());
      break;
    case Granularity::Block: {
      const int64_t nb = q.nblocks();
      sdims = l.weight_dims;
      sdims[l.k_axis()] = nb;
      if (l.transposed) {  // scale grid [N, nb] -> [nb, N]
        WeightLayer grid = l;
        grid.cols = nb;
        scales = orient(grid, scales);
        zps = orient(grid, zps);
      }
      dq.set_attr_int("axis", l.k_axis());
      dq.set_attr_int("block_size", q.layout.block_size);
      break;
    }
  }
  const std::string base = l.weight;
  std::string qn = g.unique_name(base + "_quantized"), sn = g.unique_name(base + "_scale");
  g.add_initializer(int_tensor(qn, dt, l.weight_dims, orient(l, vals)));
  g.add_initializer(Tensor::from_float(sn, sdims, scales));
  dq.inputs = {qn, sn};
  if (!sym) {
    std::string zn = g.unique_name(base + "_zero_point");
    g.add_initializer(int_tensor(zn, dt, sdims, zps));
    dq.inputs.push_back(zn);
  }
  g.remove_initializer(base);
  auto& in = g.inputs;
  in.erase(std::remove_if(in.begin(), in.end(), [&](const ValueInfo& v) { return v.name == base; }), in.end());
  dq.outputs = {base};
  dq.name = g.unique_name(base + "_DequantizeLinear");
  g.insert_node(0, dq);  // before every consumer: keeps topological order
}

// W = (float(x) − z) · s with z, s shaped to broadcast along the N axis: the per-channel
// dequantization spelled with operators of every opset (Cast 6, Sub/Mul 7).
void export_cast_mul(Model& m, const QuantizedLayer& ql) {
  Graph& g = layer_graph(m.graph, ql.layer);
  const WeightLayer& l = ql.layer;
  const QuantizedMatrix& q = ql.q;
  const bool sym = q.layout.scheme == Scheme::Sym;
  if (qdq_container_bits(q.layout.bits) != 8 || q.layout.granularity == Granularity::Block)
    throw UnsupportedError("layer " + l.node + ": only 8-bit per-channel weights have a Cast+Mul form");
  std::vector<int> vals(q.codes.size());
  for (size_t i = 0; i < vals.size(); ++i) vals[i] = sym ? q.codes[i] - q.layout.sym_zero() : q.codes[i];
  // Scale shape: [N, 1, ...] when N is axis 0, [N] (last axis) for [K, N] weights; scalar per tensor.
  std::vector<int64_t> sdims;
  if (q.layout.granularity == Granularity::Channel) {
    sdims.assign(l.weight_dims.size(), 1);
    if (l.transposed) sdims = {l.rows};
    else sdims[0] = l.rows;
  }
  const std::string base = l.weight;
  std::string qn = g.unique_name(base + "_quantized"), sn = g.unique_name(base + "_scale");
  std::string fl = g.unique_name(base + "_int_as_float");
  g.add_initializer(int_tensor(qn, sym ? DType::Int8 : DType::UInt8, l.weight_dims, orient(l, vals)));
  g.add_initializer(Tensor::from_float(sn, sdims, q.scales));
  std::vector<Node> nodes;
  auto add_node = [&](const std::string& op, std::vector<std::string> inputs, const std::string& output) -> Node& {
    Node n;
    n.op_type = op;
    n.name = g.unique_name(base + "_" + op);
    n.inputs = std::move(inputs);
    n.outputs = {output};
    nodes.push_back(std::move(n));
    return nodes.back();
  };
  add_node("Cast", {qn}, fl).set_attr_int("to", static_cast<int64_t>(DType::Float));
  std::string centered = fl;
  if (!sym) {
    std::vector<float> z(q.zero_points.begin(), q.zero_points.end());
    std::string zn = g.unique_name(base + "_zero_point");
    g.add_initializer(Tensor::from_float(zn, sdims, z));
    centered = g.unique_name(base + "_centered");
    add_node("Sub", {fl, zn}, centered);
  }
  add_node("Mul", {centered, sn}, base);
  g.remove_initializer(base);
  auto& in = g.inputs;
  in.erase(std::remove_if(in.begin(), in.end(), [&](const ValueInfo& v) { return v.name == base; }), in.end());
  for (size_t i = 0; i < nodes.size(); ++i) g.insert_node(i, nodes[i]);
}

// Index of layer `l`'s node in `g` (the last of that name, as the rewrites always took).
int layer_node_index(const Graph& g, const WeightLayer& l) {
  int idx = -1;
  for (size_t i = 0; i < g.nodes.size(); ++i)
    if (g.nodes[i].name == l.node) idx = static_cast<int>(i);
  if (idx < 0) throw InvalidArgument("layer " + l.node + " not found in the graph");
  return idx;
}

// Gemm's C input scaled by β for an Add after the rewritten product: C itself when β = 1, else a
// new initializer β·C (named after `base`); a runtime C with β != 1 is refused.
std::string beta_scaled_c(Graph& g, const Node& orig, const std::string& c_input, float beta, const std::string& base) {
  if (beta == 1.f) return c_input;
  auto c = g.constant_value(c_input);
  if (!c) throw UnsupportedError("Gemm " + orig.name + ": beta != 1 with a runtime C input");
  std::vector<float> v = c->to_float();
  for (float& x : v) x *= beta;
  const std::string name = g.unique_name(base + "_bias");
  g.add_initializer(Tensor::from_float(name, c->dims, v));
  return name;
}

void export_matmulnbits(Model& m, const QuantizedLayer& ql) {
  Graph& g = layer_graph(m.graph, ql.layer);
  const WeightLayer& l = ql.layer;
  const QuantizedMatrix& q = ql.q;
  const int64_t N = l.rows, K = l.cols;
  const int64_t bs = q.layout.granularity == Granularity::Block ? q.layout.block_size : std::max<int64_t>(16, pow2_ceil(K));
  const int64_t nb = (K + bs - 1) / bs;
  const int bits = matmulnbits_container_bits(q.layout.bits);
  const bool sym = q.layout.scheme == Scheme::Sym;
  // Symmetric codes move to the container's implicit zero point 2^(bits−1).
  const int shift = sym ? (1 << (bits - 1)) - q.layout.sym_zero() : 0;
  const int idx = layer_node_index(g, l);
  const Node orig = g.nodes[idx];
  const float alpha = orig.op_type == "Gemm" ? orig.attr_float("alpha", 1.f) : 1.f;
  const float beta = orig.op_type == "Gemm" ? orig.attr_float("beta", 1.f) : 1.f;

  const int64_t blob = bs * bits / 8;
  std::vector<uint8_t> B(static_cast<size_t>(N * nb * blob));
  std::vector<float> scales(static_cast<size_t>(N * nb));
  std::vector<uint8_t> zps(static_cast<size_t>(N * nb));
  std::vector<uint8_t> block(static_cast<size_t>(bs));
  for (int64_t n = 0; n < N; ++n)
    for (int64_t b = 0; b < nb; ++b) {
      const int64_t g0 = q.group_of(n, b * bs);
      const uint8_t zp = static_cast<uint8_t>(q.zero_points[g0] + shift);
      for (int64_t j = 0; j < bs; ++j) {
        const int64_t k = b * bs + j;
        // Padding past K takes the zero point: it dequantizes to exactly 0.
        block[j] = k < K ? static_cast<uint8_t>(q.codes[n * K + k] + shift) : zp;
      }
      auto packed = pack_bits(block.data(), block.size(), bits);
      std::copy(packed.begin(), packed.end(), B.begin() + (n * nb + b) * blob);
      scales[n * nb + b] = q.scales[g0] * alpha;
      zps[n * nb + b] = zp;
    }
  Node mm;
  mm.op_type = "MatMulNBits";
  mm.domain = "com.microsoft";
  mm.name = orig.name;
  mm.outputs = orig.outputs;
  mm.set_attr_int("K", K);
  mm.set_attr_int("N", N);
  mm.set_attr_int("bits", bits);
  mm.set_attr_int("block_size", bs);
  // fp32 compute on dequantized blocks: at 128 tokens ORT 1.30's int8-activation path (level 4)
  // is slower for 4 bits (0.90-0.96x of float vs 1.00-1.02x, docs/BENCHMARKS.md); written out so
  // the file says which path it asks for.
  mm.set_attr_int("accuracy_level", 1);
  const std::string base = l.weight;
  std::string bn = g.unique_name(base + "_nbits"), sn = g.unique_name(base + "_scales");
  Tensor tb;
  tb.name = bn;
  tb.dtype = DType::UInt8;
  tb.dims = {N, nb, blob};
  tb.bytes = std::move(B);
  g.add_initializer(std::move(tb));
  // Scales stored as float16 and widened by a Cast, which ONNX Runtime folds into a float
  // initializer at load (MatMulNBits still prepacks them): half the bytes, 0.5 bit per weight at
  // blocks of 32, the difference between a 2.5-bit file at 0.70x of the 4-bit one and 0.68x. Values
  // outside float16's normal range keep float32.
  const bool half_scales = scales_fit_half(scales);
  std::vector<Node> before;
  if (half_scales) {
    const std::string s16 = g.unique_name(base + "_scales_fp16");
    g.add_initializer(Tensor::from_float_as(s16, DType::Float16, {N, nb}, scales));
    Node cast;
    cast.op_type = "Cast";
    cast.name = g.unique_name(orig.name + "_scales_Cast");
    cast.inputs = {s16};
    cast.outputs = {sn};
    cast.set_attr_int("to", static_cast<int64_t>(DType::Float));
    before.push_back(cast);
  } else {
    g.add_initializer(Tensor::from_float(sn, {N, nb}, scales));
  }
  mm.inputs = {orig.input(0), bn, sn};
  if (!sym) {
    std::string zn = g.unique_name(base + "_zero_points");
    Tensor tz;
    tz.name = zn;
    tz.dtype = DType::UInt8;
    const int64_t zrow = static_cast<int64_t>(packed_size(static_cast<size_t>(nb), bits));
    tz.dims = {N, zrow};
    for (int64_t n = 0; n < N; ++n) {
      auto p = pack_bits(zps.data() + n * nb, static_cast<size_t>(nb), bits);
      tz.bytes.insert(tz.bytes.end(), p.begin(), p.end());
    }
    g.add_initializer(std::move(tz));
    mm.inputs.push_back(zn);
  }
  // Gemm's bias: β·C when it is one value per output column, else a separate Add.
  std::string bias = orig.op_type == "Gemm" ? orig.input(2) : "";
  std::string add_input;
  if (!bias.empty()) {
    auto c = g.constant_value(bias);
    if (c && c->numel() == N) {
      std::vector<float> v = c->to_float();
      for (float& x : v) x *= beta;
      std::string cn = g.unique_name(base + "_bias");
      g.add_initializer(Tensor::from_float(cn, {N}, v));
      mm.inputs.resize(5);  // zero_points and g_idx may be omitted ("")
      mm.inputs.push_back(cn);
    } else {
      add_input = bias;
    }
  }
  std::vector<std::string> dropped = {base};
  if (!bias.empty() && add_input.empty()) dropped.push_back(bias);
  if (!add_input.empty()) {
    // Y = A·B + β·C with C broadcast: keep it as an Add after the MatMulNBits.
    std::string mid = g.unique_name(orig.outputs[0] + "_matmul");
    mm.outputs = {mid};
    const std::string cin = beta_scaled_c(g, orig, add_input, beta, base);
    Node add;
    add.op_type = "Add";
    add.name = g.unique_name(orig.name + "_bias");
    add.inputs = {mid, cin};
    add.outputs = orig.outputs;
    g.nodes[idx] = mm;
    g.insert_node(static_cast<size_t>(idx) + 1, add);
  } else {
    g.nodes[idx] = mm;
  }
  for (const Node& b : before) g.insert_node(static_cast<size_t>(idx), b);
  g.invalidate();
  for (const auto& d : dropped) drop_if_unused(g, d);
}

// An 8-bit layer of the MatMulNBits format as ORT's dynamic W8A8 pattern (ORT fuses it into
// DynamicQuantizeMatMul, u8·s8 VNNI GEMM): 8-bit MatMulNBits runs dequantize-then-fp32 (0.71x of
// float on gpt_tiny) or, at accuracy_level 4, no faster than float (0.96x).
//   DynamicQuantizeLinear(x) -> xq, xs, xz;  MatMulInteger(xq, Wq[K,N] int8, xz) -> int32
//   Cast -> float;  Mul(xs, ws[N]) -> m;  y = Mul(cast, m) (+ bias Add)
// Wq/ws: symmetric per output channel, re-quantized from the layer's planned 8-bit codes (ŵ), so the
// file's weights are the int8 grid nearest to ŵ (the extra error is below half a step). The grid keeps
// the planned range: 7-bit codes or the pair limit (QuantizeOptions::weight_range) stay exact in
// ORT's AVX2 u8·s8 kernel, whose int16 pair sums saturate at full range.
void export_dynamic_int8(Model& m, const QuantizedLayer& ql) {
  Graph& g = layer_graph(m.graph, ql.layer);
  const WeightLayer& l = ql.layer;
  const int64_t N = l.rows, K = l.cols;
  const int idx = layer_node_index(g, l);
  const Node orig = g.nodes[idx];
  const float alpha = orig.op_type == "Gemm" ? orig.attr_float("alpha", 1.f) : 1.f;
  const float beta = orig.op_type == "Gemm" ? orig.attr_float("beta", 1.f) : 1.f;
  const std::vector<float> w = ql.q.dequantize();  // [N, K]
  // Per output channel, symmetric, at the planned width and pair limit (quantize_rtn: amax/qmax,
  // widened where a pair needs it).
  QuantLayout per_channel;
  per_channel.bits = ql.q.layout.bits;
  per_channel.pair_limit = ql.q.layout.pair_limit;
  per_channel.pair_taps = 1;
  const QuantizedMatrix pc = quantize_rtn(w.data(), N, K, per_channel);
  std::vector<float> ws(static_cast<size_t>(N));
  std::vector<int> codes(static_cast<size_t>(N * K));  // [K, N]
  for (int64_t n = 0; n < N; ++n) {
    ws[n] = pc.scales[n] * alpha;
    for (int64_t k = 0; k < K; ++k) codes[k * N + n] = pc.codes[n * K + k] - pc.zero_points[n];
  }
  const std::string base = l.weight, y = orig.outputs[0];
  auto name = [&](const std::string& suffix) { return g.unique_name(y + suffix); };
  const std::string wq = g.unique_name(base + "_int8"), wsn = g.unique_name(base + "_scale");
  g.add_initializer(int_tensor(wq, DType::Int8, {K, N}, codes));
  g.add_initializer(Tensor::from_float(wsn, {N}, ws));
  const std::string xq = name("_xq"), xs = name("_xs"), xz = name("_xz"), acc = name("_int32"), accf = name("_int32_float"),
                    mult = name("_rescale");
  std::vector<Node> nodes(5);
  nodes[0].op_type = "DynamicQuantizeLinear", nodes[0].inputs = {orig.input(0)}, nodes[0].outputs = {xq, xs, xz};
  nodes[1].op_type = "MatMulInteger", nodes[1].inputs = {xq, wq, xz}, nodes[1].outputs = {acc};
  nodes[2].op_type = "Cast", nodes[2].inputs = {acc}, nodes[2].outputs = {accf};
  nodes[2].set_attr_int("to", static_cast<int64_t>(DType::Float));
  nodes[3].op_type = "Mul", nodes[3].inputs = {xs, wsn}, nodes[3].outputs = {mult};
  nodes[4].op_type = "Mul", nodes[4].inputs = {accf, mult}, nodes[4].outputs = {y};
  const char* tags[] = {"_DynamicQuantizeLinear", "_MatMulInteger", "_Cast", "_scale_Mul", "_Mul"};
  for (int i = 0; i < 5; ++i) nodes[i].name = i == 1 ? orig.name : g.unique_name(orig.name + tags[i]);  // the layer keeps its name
  std::vector<std::string> dropped = {base};
  const std::string bias = orig.op_type == "Gemm" ? orig.input(2) : "";
  if (!bias.empty()) {
    const std::string cin = beta_scaled_c(g, orig, bias, beta, base);
    if (cin != bias) dropped.push_back(bias);
    const std::string mid = name("_matmul");
    nodes[4].outputs = {mid};
    Node add;
    add.op_type = "Add";
    add.name = g.unique_name(orig.name + "_bias");
    add.inputs = {mid, cin};
    add.outputs = {y};
    nodes.push_back(add);
  }
  g.nodes.erase(g.nodes.begin() + idx);
  for (size_t i = 0; i < nodes.size(); ++i) g.insert_node(static_cast<size_t>(idx) + i, nodes[i]);
  g.invalidate();
  for (const auto& d : dropped) drop_if_unused(g, d);
}

// DynamicQuantizeLinear reads float32 only: float16/bfloat16 layers stay MatMulNBits.
bool float_weight(Model& m, const WeightLayer& l) {
  const Tensor* t = layer_graph(m.graph, l).initializer(l.weight);
  return t && t->dtype == DType::Float;
}

}  // namespace

QuantLayout effective_layout(const WeightLayer& l, Format f, const QuantLayout& requested) {
  QuantLayout out = requested;
  // Kernel taps per input channel fix which columns ORT's AVX2 kernels pair (QuantLayout::pair_taps);
  // a depthwise Conv (one input channel per group, one output per group) runs unpaired.
  out.pair_taps = 1;
  if (l.op == "Conv" && l.weight_dims.size() > 2) {
    out.pair_taps = l.cols / std::max<int64_t>(1, l.weight_dims[1]);
    if (l.weight_dims[1] == 1 && l.group > 1 && l.rows == l.group) out.pair_taps = 0;
  }
  if (uses_matmulnbits(l, f)) {
    if (out.granularity == Granularity::Block && (!is_pow2(out.block_size) || out.block_size < 16))
      throw InvalidArgument("MatMulNBits block size must be a power of two >= 16, got " + std::to_string(out.block_size));
    return out;
  }
  if (f != Format::Fake && out.granularity == Granularity::Block && !l.k_is_single_axis())
    out.granularity = Granularity::Channel;  // DequantizeLinear blocks run along one axis only
  return out;
}

ExportInfo export_quantized(Model& m, const std::vector<QuantizedLayer>& layers, Format f) {
  // Raise the default opset once, to what the most demanding QDQ weight needs.
  int64_t need = 0;
  bool any_qdq = false, needs_new_types = false;
  for (const auto& ql : layers)
    if (f != Format::Fake && !uses_matmulnbits(ql.layer, f)) {
      any_qdq = true;
      need = std::max(need, qdq_opset(ql.q));
      needs_new_types |= qdq_opset(ql.q) >= 21;
    }
  bool legacy = false;
  if (need > m.opset()) {
    try {
      convert_opset(m, need);
    } catch (const UnsupportedError& e) {
      if (needs_new_types)
        throw UnsupportedError(std::string("4-bit or blocked DequantizeLinear needs opset 21 but the model cannot be raised: ") +
                               e.what() + "; use 8-bit per-channel widths, --format matmulnbits or --format fake");
      legacy = true;
    }
  }
  bool nbits = false;
  for (const auto& ql : layers) {
    if (f == Format::Fake) export_fake(m, ql);
    else if (uses_matmulnbits(ql.layer, f) && matmulnbits_dynamic_int8(ql.q.layout.bits) && float_weight(m, ql.layer))
      export_dynamic_int8(m, ql);
    else if (uses_matmulnbits(ql.layer, f)) export_matmulnbits(m, ql), nbits = true;
    else if (legacy) export_cast_mul(m, ql);
    else export_qdq(m, ql);
  }
  if (nbits && m.opset("com.microsoft") < 1) m.set_opset("com.microsoft", 1);
  for (const auto& s : all_graphs(m.graph)) s.graph->invalidate();
  ExportInfo info;
  info.opset = m.opset();
  if (any_qdq) info.dequantize_form = legacy ? "Cast+Mul" : "DequantizeLinear";
  return info;
}

}  // namespace oc::quant
