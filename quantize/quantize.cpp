// The quantization plan and its execution (see quantize.h):
//   fixed widths (protected ends, --bits-for) -> widths for the rest (uniform, or the knapsack of
//   allocate.h under --avg-bits / --max-bytes) -> quantize each layer -> export.
#include "quantize/quantize.h"

#include <algorithm>
#include <cmath>
#include <iomanip>
#include <map>
#include <memory>
#include <regex>
#include <limits>
#include <set>
#include <sstream>

#include "engine/block_runner.h"
#include "engine/calibrate.h"
#include "graph/compact_constants.h"
#include "graph/errors.h"
#include "graph/onnx_io.h"
#include "graph/spill.h"
#include "graph/opset_convert.h"
#include "graph/subgraphs.h"
#include "quantize/allocate.h"
#include "quantize/awq.h"
#include "quantize/embeddings.h"
#include "quantize/export.h"
#include <cstdio>
#include <cstring>
#include <exception>
#include <mutex>
#include <thread>

namespace oc::quant {

namespace {

std::regex compile(const std::string& re, const std::string& flag) {
  try {
    return std::regex(re, std::regex::ECMAScript);
  } catch (const std::regex_error&) {
    throw InvalidArgument(flag + ": invalid regular expression '" + re + "'");
  }
}

bool matches(const std::regex& re, const WeightLayer& l) {
  return std::regex_search(l.node, re) || std::regex_search(l.weight, re);
}

QuantizedMatrix quantize_with(Method m, const std::vector<float>& w, const WeightLayer& l, const QuantLayout& lay,
                              const std::vector<double>* gram, const GptqOptions& gopt) {
  switch (m) {
    case Method::RTN: return quantize_rtn(w.data(), l.rows, l.cols, lay);
    case Method::MSE: return quantize_mse(w.data(), l.rows, l.cols, lay);
    case Method::GPTQ: return quantize_gptq(w.data(), l.rows, l.cols, lay, *gram, gopt);
  }
  throw InvalidArgument("unknown method");
}

// Work split over the machine's cores: fn(begin, end) on consecutive ranges of [0, n).
template <typename Fn>
void parallel_ranges(int64_t n, int64_t min_per_thread, Fn&& fn) {
  const int64_t hw = std::max<int64_t>(1, static_cast<int64_t>(std::thread::hardware_concurrency()));
  const int64_t t = std::min<int64_t>(hw, std::max<int64_t>(1, n / std::max<int64_t>(1, min_per_thread)));
  if (t <= 1) {
    fn(int64_t(0), n);
    return;
  }
  std::vector<std::thread> th;
  std::exception_ptr err;
  std::mutex mu;
  for (int64_t k = 0; k < t; ++k)
    th.emplace_back([&, k] {
      try {
        fn(n * k / t, n * (k + 1) / t);
      } catch (...) {
        std::lock_guard<std::mutex> lock(mu);
        err = std::current_exception();
      }
    });
  for (auto& x : th) x.join();
  if (err) std::rethrow_exception(err);
}

// The layer's weight as row-major [N, K] floats, like layer_matrix (same values), read from the
// (mapped) bytes in one pass: [K, N] weights are transposed in 64x64 tiles on all cores (the
// element-wise transpose was a fifth of an RTN run on a 671M-parameter model).
std::vector<float> read_layer_matrix(const Graph& root, const WeightLayer& l) {
  const Tensor* w = layer_graph(root, l).initializer(l.weight);
  if (!w || (w->dtype != DType::Float && w->dtype != DType::Float16 && w->dtype != DType::BFloat16) ||
      static_cast<int64_t>(w->nbytes()) != l.rows * l.cols * (w->dtype == DType::Float ? 4 : 2))
    return layer_matrix(root, l);
  const DType dt = w->dtype;
  std::vector<float> out(static_cast<size_t>(l.rows * l.cols));
  const int64_t N = l.rows, K = l.cols;
  // conv(p, i): element i of the stored tensor as float.
  auto fill = [&](const uint8_t* p, auto conv) {
    if (!l.transposed) {
      parallel_ranges(N * K, int64_t(1) << 20, [&](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; ++i) out[i] = conv(p, i);
      });
      return;
    }
    // Stored [K, N]: out[n, k] = src[k, n], in 64x64 tiles (both sides stay in L1).
    constexpr int64_t T = 64;
    parallel_ranges((K + T - 1) / T, 16, [&](int64_t tb, int64_t te) {
      float* o = out.data();
      for (int64_t k0 = tb * T; k0 < std::min(K, te * T); k0 += T)
        for (int64_t n0 = 0; n0 < N; n0 += T) {
          const int64_t k1 = std::min(K, k0 + T), n1 = std::min(N, n0 + T);
          for (int64_t k = k0; k < k1; ++k)
            for (int64_t n = n0; n < n1; ++n) o[n * K + k] = conv(p, k * N + n);
        }
    });
  };
  w->bytes.view([&](const uint8_t* p) {
    if (dt == DType::Float) {
      fill(p, [](const uint8_t* b, int64_t i) {
        float f;
        std::memcpy(&f, b + 4 * i, 4);
        return f;
      });
    } else if (dt == DType::Float16) {
      fill(p, [](const uint8_t* b, int64_t i) {
        uint16_t h;
        std::memcpy(&h, b + 2 * i, 2);
        return half_to_float(h);
      });
    } else {
      fill(p, [](const uint8_t* b, int64_t i) {
        uint16_t h;
        std::memcpy(&h, b + 2 * i, 2);
        const uint32_t u = static_cast<uint32_t>(h) << 16;
        float f;
        std::memcpy(&f, &u, 4);
        return f;
      });
    }
  });
  return out;
}

// relative_error(w, q.dequantize()) without the dequantized copy (same sums, same order).
double quantized_rel_error(const std::vector<float>& w, const QuantizedMatrix& q) {
  double num = 0, den = 0;
  const int64_t cols = q.cols;
  const int64_t gc = q.layout.granularity == Granularity::Tensor ? cols : q.layout.group_cols(cols);
  const int64_t nb = q.nblocks();
  for (int64_t r = 0; r < q.rows; ++r)
    for (int64_t c0 = 0; c0 < cols; c0 += gc) {
      const int64_t g = q.layout.granularity == Granularity::Tensor ? 0 : r * nb + c0 / gc;
      const float s = q.scales[g], z = static_cast<float>(q.zero_points[g]);
      for (int64_t c = c0; c < std::min(cols, c0 + gc); ++c) {
        const size_t i = static_cast<size_t>(r * cols + c);
        const float deq = s * (static_cast<float>(q.codes[i]) - z);
        const double d = static_cast<double>(w[i]) - deq;
        num += d * d;
        den += static_cast<double>(w[i]) * w[i];
      }
    }
  return den > 0 ? num / den : 0.0;
}

// ‖X(W − Ŵ)ᵀ‖² / ‖XWᵀ‖² for the report, on at most 512 evenly spaced rows of W: each row's term
// is a cols² product, which on an 8192-column layer cost as much as GPTQ itself.
double sampled_output_error(const std::vector<float>& w, const std::vector<float>& wq, int64_t rows, int64_t cols,
                            const std::vector<double>& xtx) {
  const int64_t step = std::max<int64_t>(1, rows / 512);
  const int64_t n = (rows + step - 1) / step;
  std::vector<float> ws(static_cast<size_t>(n * cols)), qs(ws.size()), zero(ws.size(), 0.f);
  for (int64_t r = 0, k = 0; r < rows; r += step, ++k)
    for (int64_t c = 0; c < cols; ++c) ws[k * cols + c] = w[r * cols + c], qs[k * cols + c] = wq[r * cols + c];
  const double ref = gram_error(ws, zero, n, cols, xtx);
  return gram_error(ws, qs, n, cols, xtx) / std::max(ref, 1e-30);
}

}  // namespace

double layer_bytes(const WeightLayer& l, const QuantLayout& layout, Format f) {
  const bool asym = layout.scheme == Scheme::Asym;
  if (f == Format::MatMulNBits && l.op != "Conv") {
    const int cb = matmulnbits_container_bits(layout.bits);
    const int64_t bs = layout.granularity == Granularity::Block ? layout.block_size : std::max<int64_t>(16, pow2_ceil(l.cols));
    const double nb = std::ceil(static_cast<double>(l.cols) / static_cast<double>(bs));
    return static_cast<double>(l.rows) * (nb * static_cast<double>(bs * cb) / 8 + nb * 4 + (asym ? std::ceil(nb * cb / 8) : 0));
  }
  // QDQ (and fake, planned as if it were QDQ: it is the simulation of that form).
  QuantLayout eff = effective_layout(l, f == Format::Fake ? Format::QDQ : f, layout);
  const int cb = qdq_container_bits(layout.bits);
  double groups = eff.granularity == Granularity::Tensor    ? 1
                  : eff.granularity == Granularity::Channel ? static_cast<double>(l.rows)
                                                            : static_cast<double>(l.rows) * std::ceil(static_cast<double>(l.cols) / static_cast<double>(eff.block_size));
  return std::ceil(static_cast<double>(l.params()) * cb / 8) + groups * 4 + (asym ? std::ceil(groups * cb / 8) : 0);
}

QuantLayout width_layout(QuantLayout l, int bits, const QuantizeOptions& opt, bool weight_only) {
  l.bits = bits == 8 && opt.reduces_range() && !weight_only ? 7 : bits;  // still the int8 container
  if (bits == 8 && opt.range() == QuantizeOptions::WeightRange::Pairs && !weight_only && l.pair_taps > 0) l.pair_limit = opt.pair_limit;
  if (opt.asym_2bit && bits <= 2) l.scheme = Scheme::Asym;
  if (opt.scale_blocks_to_width && l.granularity == Granularity::Block && bits < 4 && 4 % bits == 0) l.block_size *= 4 / bits;
  return l;
}

std::vector<int> stored_widths(Format f) { return f == Format::MatMulNBits ? std::vector<int>{2, 4, 8} : std::vector<int>{4, 8}; }

std::vector<int> stored_widths(const WeightLayer& l, Format f) {
  return f == Format::MatMulNBits && l.op == "Conv" ? stored_widths(Format::QDQ) : stored_widths(f);
}

namespace {

std::string list_widths(const std::vector<int>& w) {
  std::string s;
  for (size_t i = 0; i < w.size(); ++i) s += (i ? (i + 1 == w.size() ? " or " : ", ") : "") + std::to_string(w[i]);
  return s;
}

// A width the file cannot store is refused with the widths it can.
void check_width(int b, const std::string& what, Format f, const std::vector<WeightLayer>& layers) {
  const std::vector<int> ok = stored_widths(f);
  if (std::find(ok.begin(), ok.end(), b) == ok.end())
    throw InvalidArgument(what + " " + std::to_string(b) + ": --format " + format_name(f) + " stores " + list_widths(ok) +
                          " bits (the widths ONNX Runtime runs)");
  for (const auto& l : layers) {
    const std::vector<int> lw = stored_widths(l, f);
    if (std::find(lw.begin(), lw.end(), b) == lw.end())
      throw InvalidArgument(what + " " + std::to_string(b) + ": " + l.op + " layer " + l.node + " takes the QDQ path, which stores " +
                            list_widths(lw) + " bits");
  }
}

// Mean of the layer's input columns (GramStat col_sum / rows), empty without statistics.
std::vector<double> input_mean(const GramStat& gs) {
  std::vector<double> mu;
  if (gs.rows <= 0 || static_cast<int64_t>(gs.col_sum.size()) != gs.features) return mu;
  mu.resize(gs.col_sum.size());
  for (size_t j = 0; j < mu.size(); ++j) mu[j] = gs.col_sum[j] / static_cast<double>(gs.rows);
  return mu;
}

// A float initializer that only `node` reads (safe to rewrite in place).
Tensor* own_initializer(Graph& g, const std::string& name, const std::string& node) {
  Tensor* t = g.initializer(name);
  if (!t || t->dtype != DType::Float || g.is_graph_output(name)) return nullptr;
  for (const auto& c : g.consumers(name))
    if (g.nodes[c].name != node) return nullptr;
  return t;
}

// Divides the input of `group` (layers reading one activation) by s per channel: folded into a
// LayerNormalization's scale and bias when it writes the activation for these layers only, else a
// Mul by 1/s in front of them. Returns how it was applied.
std::string apply_input_scale(Graph& g, const std::vector<const WeightLayer*>& group, const std::vector<double>& s) {
  const int first = g.node_index(group.front()->node);
  const std::string x = g.nodes[first].input(0);
  std::set<std::string> names;
  for (const auto* l : group) names.insert(l->node);
  bool only_group = !g.is_graph_output(x);
  for (const auto& c : g.consumers(x)) only_group = only_group && names.count(g.nodes[c].name);
  const int p = g.producer(x);
  if (only_group && p >= 0 && g.nodes[p].op_type == "LayerNormalization" && g.nodes[p].outputs.size() >= 1 &&
      g.nodes[p].outputs[0] == x) {
    Node& ln = g.nodes[p];
    Tensor* gamma = ln.inputs.size() > 1 ? own_initializer(g, ln.input(1), ln.name) : nullptr;
    Tensor* beta = ln.inputs.size() > 2 && !ln.input(2).empty() ? own_initializer(g, ln.input(2), ln.name) : nullptr;
    const bool beta_ok = ln.inputs.size() <= 2 || ln.input(2).empty() || beta;
    if (gamma && beta_ok && gamma->numel() == static_cast<int64_t>(s.size()) && (!beta || beta->numel() == gamma->numel())) {
      for (Tensor* t : {gamma, beta}) {
        if (!t) continue;
        auto v = t->to_float();
        for (size_t c = 0; c < v.size(); ++c) v[c] = static_cast<float>(v[c] / s[c]);
        *t = Tensor::from_float(t->name, t->dims, v);
      }
      return "folded into " + ln.name;
    }
  }
  std::vector<float> inv(s.size());
  for (size_t c = 0; c < s.size(); ++c) inv[c] = static_cast<float>(1.0 / s[c]);
  const bool conv = group.front()->op == "Conv";
  const std::string sn = g.unique_name(x + "_awq_scale"), out = g.unique_name(x + "_awq");
  g.add_initializer(Tensor::from_float(sn, conv ? std::vector<int64_t>{static_cast<int64_t>(inv.size()), 1, 1}
                                                : std::vector<int64_t>{static_cast<int64_t>(inv.size())},
                                       inv));
  Node mul;
  mul.op_type = "Mul";
  mul.name = g.unique_name(group.front()->node + "_awq_Mul");
  mul.inputs = {x, sn};
  mul.outputs = {out};
  for (auto& n : g.nodes)
    if (names.count(n.name)) n.inputs[0] = out;
  int at = g.nodes.size();
  for (size_t i = 0; i < g.nodes.size(); ++i)
    if (names.count(g.nodes[i].name)) at = std::min(at, static_cast<int>(i));
  g.nodes.insert(g.nodes.begin() + at, mul);
  g.invalidate();
  return "Mul " + mul.name;
}

// b += δ: into the layer's bias (added when a Conv/Gemm has none), or the constant of the Add that
// alone reads a MatMul's output. False when there is nowhere to put it.
bool add_to_bias(Graph& g, const WeightLayer& l, const std::vector<double>& delta) {
  const int i = g.node_index(l.node);
  if (i < 0) return false;
  const int64_t N = l.rows;
  auto add = [&](Tensor* t) {
    auto v = t->to_float();
    for (int64_t n = 0; n < N; ++n) v[n] = static_cast<float>(v[n] + delta[n]);
    *t = Tensor::from_float(t->name, t->dims, v);
  };
  Node& n = g.nodes[i];
  if (n.op_type == "Conv" || (n.op_type == "Gemm" && n.attr_int("transA", 0) == 0)) {
    if (n.inputs.size() > 2 && !n.input(2).empty()) {
      Tensor* b = own_initializer(g, n.input(2), n.name);
      if (!b || b->numel() != N) return false;
      if (n.op_type == "Gemm" && n.attr_float("beta", 1.f) != 1.f) return false;
      add(b);
      return true;
    }
    // No bias: adding one would change the parameter count the plan predicted; left as is.
    return false;
  }
  if (n.op_type == "MatMul") {
    const auto cons = g.consumers(n.outputs[0]);
    if (cons.size() != 1 || g.is_graph_output(n.outputs[0])) return false;
    Node& a = g.nodes[cons[0]];
    if (a.op_type != "Add" || a.inputs.size() != 2) return false;
    const std::string other = a.input(0) == n.outputs[0] ? a.input(1) : a.input(0);
    Tensor* b = own_initializer(g, other, a.name);
    if (!b || b->numel() != N || b->dims.empty() || b->dims.back() != N) return false;
    add(b);
    return true;
  }
  return false;
}

// ---- float16 / bfloat16 weights (issue 18)
// A layer whose weight is float16 or bfloat16 is quantized like a float32 one: its weight is
// dequantized to float32 for that layer only (layer_matrix -> Tensor::to_float), and what the
// exporter writes as float32 next to it (scales, a MatMulNBits bias, a fake-quantized weight, the
// Cast+Mul form's zero point and Cast) is turned back into the layer's type, because the consumer
// computes in that type (MatMulNBits' scales are its T1, the activation's type; DequantizeLinear's
// output type is its scale's). Layers left unquantized keep their bytes untouched.

bool is_half(DType t) { return t == DType::Float16 || t == DType::BFloat16; }

// find_weight_layers (quantize/layers.cpp) takes float32 weights only. It reads an initializer's
// type and dims, never its bytes, so the 16-bit float initializers are presented as float32 for
// the call and restored afterwards; `half_type` gets each found layer's real weight type.
std::vector<WeightLayer> find_layers_any_float(Graph& root, std::vector<SkippedLayer>* skipped,
                                               std::map<std::string, DType>* half_type) {
  std::vector<std::pair<Tensor*, DType>> flipped;
  struct Restore {
    std::vector<std::pair<Tensor*, DType>>& f;
    ~Restore() {
      for (auto& [t, d] : f) t->dtype = d;
    }
  } restore{flipped};
  std::map<std::string, DType> by_scoped;
  for (const GraphScope& s : all_graphs(root))
    for (Tensor& t : s.graph->initializers)
      if (is_half(t.dtype)) {
        flipped.emplace_back(&t, t.dtype);
        by_scoped[scoped_value(s.path, t.name)] = t.dtype;
        t.dtype = DType::Float;
      }
  std::vector<WeightLayer> layers = find_weight_layers(root, skipped);
  for (const auto& l : layers) {
    auto it = by_scoped.find(scoped_value(l.graph, l.weight));
    if (it != by_scoped.end()) (*half_type)[l.node + "\n" + l.graph] = it->second;
  }
  return layers;
}

// A float32 initializer of `g` that only node `reader` reads, converted to `dt`.
void retype_initializer(Graph& g, const std::string& name, int reader, DType dt) {
  Tensor* t = name.empty() ? nullptr : g.initializer(name);
  if (!t || t->dtype != DType::Float) return;
  for (int c : g.consumers(name))
    if (c != reader) return;
  *t = Tensor::from_float_as(t->name, dt, t->dims, t->to_float());
}

// After export: the float32 tensors written for layer `l` become `dt` (see above).
void restore_weight_type(Graph& g, const WeightLayer& l, DType dt) {
  g.invalidate();
  const int mm = g.node_index(l.node);
  if (mm >= 0 && g.nodes[mm].op_type == "MatMulNBits") {
    // float16 scales behind a widening Cast (export.cpp): the layer's type reads them directly.
    const int cast = g.producer(g.nodes[mm].input(2));
    if (cast >= 0 && g.nodes[cast].op_type == "Cast" && g.consumers(g.nodes[cast].outputs[0]).size() == 1) {
      const Tensor* s16 = g.initializer(g.nodes[cast].input(0));
      if (s16 && s16->dtype == DType::Float16) {
        Tensor t = *s16;
        if (dt != DType::Float16) t = Tensor::from_float_as(t.name, dt, t.dims, t.to_float());
        g.add_initializer(t);
        g.nodes[mm].inputs[2] = t.name;
        g.remove_node(static_cast<size_t>(cast));
        g.invalidate();
        return restore_weight_type(g, l, dt);
      }
    }
    const int mm2 = g.node_index(l.node);
    const Node& n = g.nodes[mm2];
    retype_initializer(g, n.input(2), mm2, dt);                           // scales
    if (n.inputs.size() > 5) retype_initializer(g, n.input(5), mm2, dt);  // bias
    // A broadcast Gemm bias kept as an Add after it (scaled by beta into a new float32 tensor).
    for (int c : g.consumers(n.outputs[0]))
      if (g.nodes[c].op_type == "Add")
        for (const auto& in : g.nodes[c].inputs) retype_initializer(g, in, c, dt);
    return;
  }
  const int p = g.producer(l.weight);
  if (p < 0) {  // fake: the weight itself, rewritten as float32 values
    if (Tensor* t = g.initializer(l.weight); t && t->dtype == DType::Float)
      *t = Tensor::from_float_as(t->name, dt, t->dims, t->to_float());
    return;
  }
  Node& n = g.nodes[p];
  if (n.op_type == "DequantizeLinear") {
    retype_initializer(g, n.input(1), p, dt);
    return;
  }
  if (n.op_type == "Mul") {  // Cast(int -> float) [- z] * s
    retype_initializer(g, n.input(1), p, dt);
    int c = g.producer(n.input(0));
    if (c >= 0 && g.nodes[c].op_type == "Sub") {
      retype_initializer(g, g.nodes[c].input(1), c, dt);
      c = g.producer(g.nodes[c].input(0));
    }
    if (c >= 0 && g.nodes[c].op_type == "Cast") g.nodes[c].set_attr_int("to", static_cast<int64_t>(dt));
  }
}

}  // namespace

QuantizeReport quantize_model(Model& m, const QuantizeOptions& opt) {
  Graph& g = m.graph;
  QuantizeReport rep;
  rep.format = format_name(opt.format);
  // Weights a branch or loop body reads from the enclosing graph move into that body, so each
  // layer's node and weight live in one graph (WeightLayer::graph).
  localize_subgraph_weights(g);
  // Lossless first (node positions move): duplicate and two-valued constants (attention masks).
  if (opt.format == Format::MatMulNBits && opt.tables) {
    const CompactResult cr = compact_constants(m);
    if (!cr.summary().empty()) rep.notes.push_back(cr.summary());
  }
  std::map<std::string, DType> half_type;  // node "\n" graph -> float16 / bfloat16
  std::vector<WeightLayer> all = find_layers_any_float(g, &rep.skipped, &half_type);
  auto half_of = [&](const WeightLayer& l) {
    auto it = half_type.find(l.node + "\n" + l.graph);
    return it == half_type.end() ? DType::Float : it->second;
  };

  // --keep-float removes layers from the plan entirely.
  std::vector<std::regex> keep;
  for (const auto& r : opt.keep_float) keep.push_back(compile(r, "--keep-float"));
  std::vector<WeightLayer> layers;
  for (auto& l : all) {
    bool k = std::any_of(keep.begin(), keep.end(), [&](const std::regex& re) { return matches(re, l); });
    if (k) rep.skipped.push_back({l.node, "--keep-float"});
    else layers.push_back(l);
  }
  // Embedding tables (and the constant masks beside them) are stored compactly in MatMulNBits files:
  // the floats no layer quantizer touches were most of a 2.5-bit gpt_tiny file (docs/QUANTIZATION.md).
  std::vector<EmbeddingTable> tables;
  if (opt.format == Format::MatMulNBits && opt.tables) {
    for (auto& t : find_embedding_tables(g)) {
      const bool k = std::any_of(keep.begin(), keep.end(), [&](const std::regex& re) { return std::regex_search(t.name, re) || std::regex_search(t.reader, re); });
      if (k) rep.skipped.push_back({t.reader, "--keep-float (table " + t.name + ")"});
      else if (!table_widths(t).empty()) tables.push_back(t);
    }
  }
  // Bits are what the file stores: only the widths the format's containers hold are offered.
  if (opt.target == QuantizeOptions::Target::Uniform) check_width(opt.bits, "--bits", opt.format, {});
  for (int b : opt.widths) check_width(b, "--widths: width", opt.format, {});
  if (layers.empty()) throw InvalidArgument("no quantizable Conv/MatMul/Gemm weights in the model");

  // Fixed widths: --bits-for first, then the protected first/last layers.
  std::vector<int> fixed(layers.size(), 0);
  std::vector<std::string> why(layers.size());
  std::vector<std::pair<std::regex, int>> bits_for;
  for (const auto& [re, b] : opt.bits_for) {
    check_width(b, "--bits-for width", opt.format, {});
    bits_for.emplace_back(compile(re, "--bits-for"), b);
  }
  for (size_t i = 0; i < layers.size(); ++i)
    for (const auto& [re, b] : bits_for)
      if (!fixed[i] && matches(re, layers[i])) {
        check_width(b, "--bits-for width", opt.format, {layers[i]});
        fixed[i] = b, why[i] = "bits-for";
      }
  // The first layer sees raw inputs and the last one writes the outputs: their errors are not
  // averaged away by later layers, so they hurt most (see docs/QUANTIZATION.md).
  // Each graph holding layers (main graph, If branch, loop body) has its own first and last layer:
  // the two branches of an If each read the raw input and write the output.
  if (opt.protect_ends && all.size() >= 3) {
    std::map<std::string, std::pair<std::string, std::string>> ends;  // graph -> first, last node
    for (const auto& l : all) {
      auto [it, fresh] = ends.emplace(l.graph, std::make_pair(l.node, l.node));
      if (!fresh) it->second.second = l.node;
    }
    for (size_t i = 0; i < layers.size(); ++i) {
      const auto& e = ends.at(layers[i].graph);
      bool end = layers[i].node == e.first || layers[i].node == e.second;
      if (end && !fixed[i]) fixed[i] = std::max(opt.protect_bits, opt.target == QuantizeOptions::Target::Uniform ? opt.bits : 0), why[i] = "protected";
    }
  }
  if (opt.target == QuantizeOptions::Target::Uniform)
    for (size_t i = 0; i < layers.size(); ++i)
      if (!fixed[i]) check_width(opt.bits, "--bits", opt.format, {layers[i]});

  std::vector<QuantLayout> lay(layers.size());
  for (size_t i = 0; i < layers.size(); ++i) lay[i] = effective_layout(layers[i], opt.format, opt.layout);

  // Gram matrices, when calibration produced them for the layer (GPTQ, AWQ, bias correction and
  // the allocator's output error). Grouped/depthwise convs have one Gram per group; these layers
  // use none (GPTQ falls back to MSE, said in the report's method).
  const bool need_grams = opt.method == Method::GPTQ || opt.awq || opt.bias_correction;
  const bool sequential = need_grams && !opt.score_inputs.stats && opt.sequential_calib;
  if (sequential && (opt.awq || opt.target != QuantizeOptions::Target::Uniform))
    throw InvalidArgument("block-sequential calibration quantizes uniform widths without AWQ (--bits N, no --awq)");
  if (need_grams && !opt.score_inputs.stats && !sequential)
    throw InvalidArgument(std::string("method ") + (opt.method == Method::GPTQ ? "gptq" : opt.awq ? "awq" : "bias correction") +
                          " needs calibration data (--calib)");
  std::vector<std::vector<double>> grams(layers.size());
  std::vector<std::vector<double>> means(layers.size());
  std::vector<int64_t> gram_rows(layers.size(), 0);
  if (opt.score_inputs.stats) {
    for (size_t i = 0; i < layers.size(); ++i) {
      auto it = opt.score_inputs.stats->grams.find(layers[i].node);
      if (it != opt.score_inputs.stats->grams.end() && it->second.features == layers[i].cols && it->second.rows > 0 &&
          it->second.groups <= 1) {
        grams[i] = it->second.xtx;
        means[i] = input_mean(it->second);
        gram_rows[i] = it->second.rows;
      }
    }
  }
  auto has_gram = [&](size_t i) { return !grams[i].empty(); };

  // Block-sequential calibration: segments of the main graph, each holding layers whose Grams fit
  // the budget, built on the float graph before any layer is exported; run lazily in order.
  struct Segment {
    std::unique_ptr<BlockRunner> runner;
    std::vector<size_t> layers;  // indices into `layers`
  };
  std::vector<Segment> segments;
  std::vector<int> segment_of(layers.size(), -1);
  size_t next_segment = 0;
  BoundaryCache boundary;
  if (sequential) {
    const std::vector<size_t> order = execution_order(g);
    std::map<std::string, size_t> pos;
    for (size_t p = 0; p < order.size(); ++p) pos[g.nodes[order[p]].name] = p;
    std::vector<std::pair<size_t, size_t>> by_pos;  // (position, layer) of main-graph layers
    for (size_t i = 0; i < layers.size(); ++i)
      if (layers[i].graph.empty() && layers[i].group == 1 && pos.count(layers[i].node)) by_pos.emplace_back(pos[layers[i].node], i);
    std::sort(by_pos.begin(), by_pos.end());
    std::vector<size_t> cuts;
    std::vector<std::vector<size_t>> members(1);
    int64_t bytes = 0;
    for (const auto& [p, i] : by_pos) {
      const int64_t gb = layers[i].cols * layers[i].cols * 8;
      if (!members.back().empty() && bytes + gb > opt.sequential_gram_bytes) {
        cuts.push_back(p);
        members.emplace_back();
        bytes = 0;
      }
      members.back().push_back(i);
      bytes += gb;
    }
    if (!by_pos.empty()) cuts.push_back(by_pos.back().first + 1);  // the tail after the last layer never runs
    std::vector<GraphSegment> parts = split_graph(g, cuts);
    for (size_t s = 0; s < members.size() && s < parts.size(); ++s) {
      segments.push_back({std::make_unique<BlockRunner>(m, parts[s], opt.sequential_exec), members[s]});
      for (size_t i : members[s]) segment_of[i] = static_cast<int>(s);
    }
    boundary = cache_source(*opt.sequential_calib, opt.sequential_cache_bytes);
  }
  // Runs segments up to the one holding layer i, keeping the Grams of the last one run.
  auto ensure_gram = [&](size_t i) {
    if (!sequential || segment_of[i] < 0) return;
    while (next_segment <= static_cast<size_t>(segment_of[i])) {
      Segment& sg = segments[next_segment++];
      CalibrationPlan plan;
      for (size_t l : sg.layers) plan.grams.push_back(layers[l].node);
      ObserverSet set(sg.runner->model(), plan);
      boundary = sg.runner->run(boundary, set.hook(), set.watch(), [&] { set.end_batch(); },
                                opt.sequential_cache_bytes);
      sg.runner.reset();  // its copies of the segment's weights (and their mappings) go
      if (trace_memory()) std::fprintf(stderr, "[memory] segment %zu calibrated: %s\n", next_segment - 1, memory_status_line().c_str());
      CalibrationStats st = set.store();
      for (size_t l : sg.layers) {
        auto it = st.grams.find(layers[l].node);
        if (it == st.grams.end() || it->second.features != layers[l].cols || it->second.rows <= 0 || it->second.groups > 1) continue;
        means[l] = input_mean(it->second);
        gram_rows[l] = it->second.rows;
        grams[l] = std::move(it->second.xtx);
      }
    }
  };

  // Float [rows, cols] weights, read when a search or the quantizer first needs them and freed
  // once the layer is quantized: a uniform-width run holds one layer's floats at a time (issue 18:
  // models larger than memory; the weights themselves stay in their mapped external-data file).
  std::vector<std::vector<float>> weights(layers.size());
  auto weight = [&](size_t i) -> std::vector<float>& {
    if (weights[i].empty()) weights[i] = read_layer_matrix(g, layers[i]);
    return weights[i];
  };
  // The proxy quantizer for AWQ's search without GPTQ and for layers without a Gram (the allocator
  // measures GPTQ layers with GPTQ itself).
  const Method proxy = opt.method == Method::GPTQ ? Method::MSE : opt.method;
  std::vector<int> bits(layers.size());
  std::vector<double> scores(layers.size(), 0.0);
  // Tables: their float rows, and the quantizer they take (no Gram: the clipping search, which the
  // layers' searches use as GPTQ's proxy; RTN when RTN was asked for).
  std::vector<std::vector<float>> table_weights;
  for (const auto& t : tables) table_weights.push_back(table_matrix(g, t));
  auto quantize_table = [&](const std::vector<float>& w, const EmbeddingTable& t, const QuantLayout& lb) {
    return opt.method == Method::RTN ? quantize_rtn(w.data(), t.rows, t.cols, lb) : quantize_mse(w.data(), t.rows, t.cols, lb);
  };
  std::vector<int> table_bits(tables.size(), 0);
  if (opt.target == QuantizeOptions::Target::Uniform) {
    rep.target = "bits=" + std::to_string(opt.bits);
    // Under --bits N a table takes N too (the widths it stores are the MatMulNBits ones).
    for (size_t t = 0; t < tables.size(); ++t) table_bits[t] = opt.bits;
    for (size_t i = 0; i < layers.size(); ++i) {
      bits[i] = fixed[i] ? fixed[i] : opt.bits;
      if (!fixed[i]) why[i] = "uniform";
    }
  } else {
    rep.scorer = opt.scorer;
    const bool measured = opt.scorer == "sensitivity" && opt.score_inputs.sensitivity_at;
    if (!measured) scores = score_layers(g, layers, opt.scorer, opt.score_inputs);
    std::vector<AllocItem> items(layers.size());
    double budget = 0, params = 0;
    std::vector<int> offered = opt.widths.empty() ? stored_widths(opt.format) : opt.widths;
    for (size_t i = 0; i < layers.size(); ++i) {
      items[i].name = layers[i].node;
      items[i].fixed_bits = fixed[i];
      params += static_cast<double>(layers[i].params());
      const std::vector<int> lw = stored_widths(layers[i], opt.format);
      std::set<int> ws;
      for (int b : offered)
        if (std::find(lw.begin(), lw.end(), b) != lw.end()) ws.insert(b);
      if (fixed[i]) ws = {fixed[i]};
      if (ws.empty()) throw InvalidArgument("layer " + layers[i].node + " (" + layers[i].op + ") stores " + list_widths(lw) + " bits, none of --widths");
      for (int b : ws) {
        QuantLayout lb = width_layout(lay[i], b, opt);
        if (!fixed[i]) {
          // err_l(b) measured at every width: the model-output error with only this layer at b
          // (sensitivity), else the layer's own output error on the calibration Gram, else its
          // weight error.
          if (measured) {
            items[i].error[b] = opt.score_inputs.sensitivity_at(layers[i], b);
          } else {
            // With the method that will run: GPTQ's 2-bit output error is a fraction of MSE's, so an
            // MSE proxy made every layer look as costly to narrow as an embedding table (gpt_tiny:
            // the token table went to 2 bits, perplexity 7.07; measured with GPTQ it stays at 4).
            const Method err_method = opt.method == Method::GPTQ && has_gram(i) ? Method::GPTQ : proxy;
            QuantizedMatrix q = quantize_with(err_method, weight(i), layers[i], lb, &grams[i], opt.gptq);
            std::vector<float> deq = q.dequantize();
            if (has_gram(i)) {
              const double ref = gram_error(weights[i], std::vector<float>(weights[i].size(), 0.f), layers[i].rows, layers[i].cols, grams[i]);
              items[i].error[b] = gram_error(weights[i], deq, layers[i].rows, layers[i].cols, grams[i]) / std::max(ref, 1e-30);
            } else {
              items[i].error[b] = relative_error(weights[i], deq);
            }
          }
        }
        items[i].cost[b] = opt.target == QuantizeOptions::Target::AvgBits
                               ? static_cast<double>(b) * static_cast<double>(layers[i].params())
                               : layer_bytes(layers[i], lb, opt.format);
      }
      // Reported score: the measured error at the narrowest width (fixed layers too).
      if (measured) scores[i] = fixed[i] ? opt.score_inputs.sensitivity_at(layers[i], lw.front()) : items[i].error.begin()->second;
      items[i].score = measured ? 0.0 : scores[i];  // measured errors are compared as they are
    }
    // Tables: err(b) the table's own relative error (each looked-up row enters the residual stream
    // as it is), scored as an average layer (w = 1).
    double mean_score = 0;
    for (const auto& it : items) mean_score += it.score / static_cast<double>(std::max<size_t>(1, items.size()));
    for (size_t t = 0; t < tables.size(); ++t) {
      AllocItem it;
      it.name = tables[t].name;
      it.score = mean_score;
      params += static_cast<double>(tables[t].params());
      for (int b : table_widths(tables[t])) {
        if (std::find(offered.begin(), offered.end(), b) == offered.end()) continue;
        QuantLayout lb = width_layout(table_layout(tables[t], opt.layout), b, opt, true);
        it.error[b] = relative_error(table_weights[t], quantize_table(table_weights[t], tables[t], lb).dequantize());
        it.cost[b] = opt.target == QuantizeOptions::Target::AvgBits ? static_cast<double>(b) * static_cast<double>(tables[t].params())
                                                                    : table_bytes(tables[t], lb);
      }
      if (it.error.empty()) throw InvalidArgument("table " + tables[t].name + " stores none of the allowed widths");
      items.push_back(it);
    }
    if (opt.target == QuantizeOptions::Target::AvgBits) {
      rep.target = "avg-bits=" + std::to_string(opt.avg_bits);
      budget = opt.avg_bits * params;
    } else {
      rep.target = "max-bytes=" + std::to_string(opt.max_bytes);
      // Weights that stay float count against the budget too.
      double float_bytes = static_cast<double>(model_weight_bytes(m));
      for (const auto& l : layers) float_bytes -= 4.0 * static_cast<double>(l.params());
      for (const auto& t : tables) float_bytes -= 4.0 * static_cast<double>(t.params());
      budget = static_cast<double>(opt.max_bytes) - float_bytes;
    }
    std::vector<int> wl = offered;
    for (int f : fixed)
      if (f) wl.push_back(f);
    // The narrowest plan, in the target's own unit, for a one-line error a user can act on.
    double floor_cost = 0;
    int fixed_layers = 0;
    for (const auto& it : items) {
      if (it.fixed_bits > 0) ++fixed_layers;
      floor_cost += it.fixed_bits > 0 && it.cost.count(it.fixed_bits) ? it.cost.at(it.fixed_bits) : it.cost.begin()->second;
    }
    if (floor_cost > budget * (1 + 1e-12)) {
      std::ostringstream e;
      std::string ws;
      for (int b : offered) ws += (ws.empty() ? "" : ",") + std::to_string(b);
      if (opt.target == QuantizeOptions::Target::AvgBits)
        e << "--avg-bits " << opt.avg_bits << " cannot be met: the narrowest plan stores " << std::fixed << std::setprecision(2)
          << floor_cost / params << " bits on average";
      else
        e << "--max-bytes " << opt.max_bytes << " cannot be met: the narrowest plan needs "
          << static_cast<int64_t>(std::ceil(floor_cost + static_cast<double>(opt.max_bytes) - budget)) << " bytes";
      e << " (widths " << ws << " offered by --format " << format_name(opt.format);
      if (fixed_layers) e << "; " << fixed_layers << " layers at fixed widths: --no-protect, --bits-for";
      e << ")";
      if (std::find(offered.begin(), offered.end(), 2) == offered.end() && opt.widths.empty())
        e << "; --format matmulnbits also stores 2 bits";
      throw InvalidArgument(e.str());
    }
    bits = allocate_bits(items, wl, budget);
    table_bits.assign(bits.begin() + static_cast<std::ptrdiff_t>(layers.size()), bits.end());
    bits.resize(layers.size());
    for (size_t i = 0; i < layers.size(); ++i)
      if (!fixed[i]) why[i] = "allocation";
  }

  // AWQ: layers reading one activation share per-channel scales, searched on their shared Gram.
  std::vector<bool> awq_done(layers.size(), false);
  if (opt.awq) {
    std::map<std::string, std::vector<size_t>> by_input;
    for (size_t i = 0; i < layers.size(); ++i) {
      const Graph& lg = layer_graph(g, layers[i]);
      const int ni = lg.node_index(layers[i].node);
      if (ni >= 0) by_input[scoped_value(layers[i].graph, lg.nodes[ni].input(0))].push_back(i);
    }
    // The search runs the method that will quantize (GPTQ on the Gram of x / s), on a coarser α
    // grid for GPTQ (one solve per point).
    const bool gptq_search = opt.method == Method::GPTQ;
    const std::vector<double>* search_gram = nullptr;
    int64_t search_per = 1;
    const DequantFn dq = [&](const std::vector<float>& w, int64_t rows, int64_t cols, const QuantLayout& l,
                             const std::vector<double>& s) {
      if (gptq_search && search_gram) {
        const std::vector<double> hs = scale_gram(*search_gram, cols, search_per, s);
        return quantize_gptq(w.data(), rows, cols, l, hs, opt.gptq).dequantize();
      }
      return (proxy == Method::MSE ? quantize_mse(w.data(), rows, cols, l) : quantize_rtn(w.data(), rows, cols, l)).dequantize();
    };
    for (const auto& [scoped_x, idx] : by_input) {
      Graph& xg = layer_graph(g, layers[idx[0]]);
      const std::string x = xg.nodes[xg.node_index(layers[idx[0]].node)].input(0);
      bool ok = true, low = false;
      for (size_t i : idx) {
        // (a float16 input would need its Mul in float16: those layers keep plain scales)
        ok = ok && has_gram(i) && !is_half(half_of(layers[i])) && layers[i].group == 1 && layers[i].op == layers[idx[0]].op && layers[i].cols == layers[idx[0]].cols &&
             layers[i].weight_dims == layers[idx[0]].weight_dims;
        low = low || bits[i] <= opt.awq_max_bits;
      }
      // Every layer reading x must be in the plan (a float or skipped reader would see x / s).
      int planned_readers = 0;
      for (const auto& c : xg.consumers(x)) {
        const std::string& op = xg.nodes[c].op_type;
        if (op == "Conv" || op == "MatMul" || op == "Gemm") ++planned_readers;
      }
      (void)planned_readers;
      if (!ok || !low) continue;
      const WeightLayer& l0 = layers[idx[0]];
      const int64_t per = l0.op == "Conv" ? l0.cols / l0.weight_dims[1] : 1;
      std::vector<AwqMember> members;
      for (size_t i : idx) {
        QuantLayout lb = width_layout(lay[i], bits[i], opt);
        members.push_back({&weight(i), layers[i].rows, lb});
      }
      search_gram = &grams[idx[0]];
      search_per = per;
      AwqResult a = awq_search(members, l0.cols, per, grams[idx[0]], gram_rows[idx[0]], dq, gptq_search ? 10 : 20);
      if (a.alpha == 0) continue;
      std::vector<const WeightLayer*> group;
      for (size_t i : idx) group.push_back(&layers[i]);
      const std::string how = apply_input_scale(xg, group, a.channel_scale);
      const std::vector<double> hs = scale_gram(grams[idx[0]], l0.cols, per, a.channel_scale);
      for (size_t i : idx) {
        weights[i] = scale_columns(weight(i), layers[i].rows, layers[i].cols, per, a.channel_scale);
        grams[i] = hs;
        for (size_t j = 0; j < means[i].size(); ++j) means[i][j] /= a.channel_scale[j / per];
        awq_done[i] = true;
      }
      char buf[256];
      std::snprintf(buf, sizeof buf, "awq %s: alpha %.2f, calibration output error %.4g -> %.4g (%s)", l0.node.c_str(), a.alpha,
                    a.error_plain, a.error_scaled, how.c_str());
      rep.notes.push_back(buf);
    }
  }

  // Layers were found before AWQ/bias edits (and exports of earlier layers) moved node positions:
  // look them up again by name.
  auto refresh = [&](QuantizedLayer& ql) {
    const Graph& lg = layer_graph(g, ql.layer);
    const int ni = lg.node_index(ql.layer.node);
    if (ni < 0) return;
    ql.layer.index = ni;
    if (ql.layer.op != "MatMul") {
      const Node& n = lg.nodes[ni];
      ql.layer.bias = n.inputs.size() > 2 ? n.input(2) : "";
    }
  };
  std::vector<QuantizedLayer> out;
  std::unique_ptr<SpillFile> spill;
  if (opt.format == Format::MatMulNBits && opt.spill_model_bytes >= 0 &&
      static_cast<int64_t>(model_weight_bytes(m)) > opt.spill_model_bytes)
    spill = std::make_unique<SpillFile>();
  double bit_sum = 0;
  int n_awq = 0, n_bias = 0, n_gptq = 0;
  for (size_t i = 0; i < layers.size(); ++i) {
    QuantLayout lb = width_layout(lay[i], bits[i], opt);
    Method meth = opt.method;
    std::string meth_name = method_name(meth);
    if (meth == Method::GPTQ && opt.gptq.act_order) meth_name = "gptq act-order";
    ensure_gram(i);
    if (meth == Method::GPTQ && !has_gram(i)) meth = Method::MSE, meth_name = "mse (no Gram statistics for gptq)";
    QuantizedMatrix q = quantize_with(meth, weight(i), layers[i], lb, &grams[i], opt.gptq);
    // MatMulNBits stores 2/4-bit scales as float16 (export.h). Below 8 bits every format takes
    // float16 values (a relative change of at most 2^-11 per scale), so report, bias correction,
    // file and a fake or QDQ export of the same plan all hold the same weights.
    if (bits[i] < 8 && scales_fit_half(q.scales))
      for (float& s : q.scales) s = half_to_float(float_to_half(s));
    n_gptq += meth == Method::GPTQ;
    if (opt.progress) opt.progress(static_cast<int64_t>(i + 1), static_cast<int64_t>(layers.size()));
    LayerReport r;
    r.node = layers[i].node;
    r.op = layers[i].op;
    r.weight = layers[i].weight;
    r.rows = layers[i].rows;
    r.cols = layers[i].cols;
    r.score = scores[i];
    r.bits = bits[i];
    r.storage_bits = opt.format == Format::Fake ? 32
                     : (opt.format == Format::MatMulNBits && layers[i].op != "Conv") ? matmulnbits_container_bits(bits[i])
                                                                                     : qdq_container_bits(bits[i]);
    r.decided_by = why[i];
    r.method = meth_name;
    r.awq = awq_done[i];
    n_awq += awq_done[i];
    r.scheme = scheme_name(lb.scheme);
    r.granularity = granularity_name(lb.granularity);
    r.block_size = lb.granularity == Granularity::Block ? lb.block_size : 0;
    r.rel_error = quantized_rel_error(weights[i], q);
    r.sqnr_db = r.rel_error > 0 ? -10.0 * std::log10(r.rel_error) : std::numeric_limits<double>::infinity();
    std::vector<float> deq;
    if (has_gram(i) || (opt.bias_correction && !means[i].empty())) deq = q.dequantize();
    if (has_gram(i)) r.output_rel_error = sampled_output_error(weights[i], deq, layers[i].rows, layers[i].cols, grams[i]);
    // Bias correction: the calibration mean of the output stays exact, E[Ŵx + b'] = E[Wx + b].
    if (opt.bias_correction && !means[i].empty()) {
      std::vector<double> delta(static_cast<size_t>(layers[i].rows), 0.0);
      for (int64_t n = 0; n < layers[i].rows; ++n)
        for (int64_t k = 0; k < layers[i].cols; ++k)
          delta[n] += (static_cast<double>(weights[i][n * layers[i].cols + k]) - deq[n * layers[i].cols + k]) * means[i][k];
      r.bias_corrected = add_to_bias(layer_graph(g, layers[i]), layers[i], delta);
      n_bias += r.bias_corrected;
    }
    rep.layers.push_back(r);
    bit_sum += static_cast<double>(bits[i]) * static_cast<double>(layers[i].params());
    rep.quantized_params += layers[i].params();
    out.push_back({layers[i], std::move(q)});
    std::vector<float>().swap(weights[i]);
    std::vector<double>().swap(grams[i]);
    // The float weight's mapped pages (read by the quantizer or a calibration segment) leave the
    // resident set even though the caller's copy of the input model still shares the range.
    if (const Tensor* wt = layer_graph(g, layers[i]).initializer(layers[i].weight)) release_pages(wt->bytes);
    if (trace_memory()) std::fprintf(stderr, "[memory] layer %s done: %s\n", layers[i].node.c_str(), memory_status_line().c_str());
    // MatMulNBits layers are exported as they are quantized (no opset decision depends on the
    // others), so their codes and the float weight they replace are released layer by layer.
    if (opt.format == Format::MatMulNBits && layers[i].op != "Conv") {
      refresh(out.back());
      export_quantized(m, {out.back()}, opt.format);
      if (is_half(half_of(layers[i]))) restore_weight_type(layer_graph(g, layers[i]), layers[i], half_of(layers[i]));
      out.pop_back();
      if (spill) spill_owned_tensors(layer_graph(g, layers[i]), *spill, size_t(64) << 10);
    }
  }
  for (size_t t = 0; t < tables.size(); ++t) {
    QuantLayout lb = width_layout(table_layout(tables[t], opt.layout), table_bits[t], opt, true);
    QuantizedMatrix q = quantize_table(table_weights[t], tables[t], lb);
    LayerReport r;
    r.node = tables[t].reader;
    r.op = tables[t].gathered ? "Gather" : "Add";
    r.weight = tables[t].name;
    r.rows = tables[t].rows;
    r.cols = tables[t].cols;
    r.bits = r.storage_bits = table_bits[t];
    r.decided_by = opt.target == QuantizeOptions::Target::Uniform ? "uniform" : "allocation";
    r.method = std::string(opt.method == Method::RTN ? "rtn" : "mse") + " (table)";
    r.scheme = scheme_name(lb.scheme);
    r.granularity = granularity_name(lb.granularity);
    r.block_size = lb.block_size;
    r.rel_error = quantized_rel_error(table_weights[t], q);
    r.sqnr_db = r.rel_error > 0 ? -10.0 * std::log10(r.rel_error) : std::numeric_limits<double>::infinity();
    rep.layers.push_back(r);
    bit_sum += static_cast<double>(table_bits[t]) * static_cast<double>(tables[t].params());
    rep.quantized_params += tables[t].params();
    export_embedding_table(m, tables[t], q);
  }
  rep.avg_bits = bit_sum / static_cast<double>(rep.quantized_params);
  {
    std::string s = opt.method == Method::GPTQ ? (opt.gptq.act_order ? "gptq with act-order" : "gptq") : method_name(opt.method);
    if (opt.method == Method::GPTQ && n_gptq < static_cast<int>(layers.size()))
      s += " (" + std::to_string(n_gptq) + " of " + std::to_string(layers.size()) + " layers; the rest mse)";
    if (opt.awq) s += ", awq scales on " + std::to_string(n_awq) + " layers";
    if (opt.bias_correction) s += ", bias correction on " + std::to_string(n_bias) + " layers";
    if (sequential) s += "; Grams gathered block by block (" + std::to_string(segments.size()) + " segments)";
    rep.method_summary = s;
    if (opt.reduces_range() && std::count(bits.begin(), bits.end(), 8) > 0)
      rep.notes.push_back("8-bit weights in [-64, 63] (--weight-range reduced: exact in ONNX Runtime's x86 AVX2 integer kernels)");
    if (opt.range() == QuantizeOptions::WeightRange::Pairs && opt.format != Format::Fake && std::count(bits.begin(), bits.end(), 8) > 0)
      rep.notes.push_back("8-bit weights in [-128, 127] with each same-sign pair that ONNX Runtime's x86 AVX2 integer kernels add in 16 bits within |q1|+|q2| <= " +
                          std::to_string(opt.pair_limit) + " (--weight-range pairs: exact there; full: VNNI/ARM targets only)" +
                          (opt.pair_limit < 128 ? "; 2 below the int16 bound so the AMX route's code shift keeps it" : ""));
  }
  for (auto& ql : out) refresh(ql);
  // DequantizeLinear computes in its scale's type; float16/bfloat16 scales need opset 19.
  const bool half_qdq = opt.format != Format::Fake && std::any_of(out.begin(), out.end(), [&](const QuantizedLayer& ql) {
    return is_half(half_of(ql.layer));
  });
  if (half_qdq && m.opset() < 19) {
    try {
      convert_opset(m, 19);
    } catch (const UnsupportedError& e) {
      throw UnsupportedError(std::string("float16/bfloat16 weights in DequantizeLinear need opset 19 but the model cannot be raised: ") +
                             e.what() + "; use --format matmulnbits (MatMul/Gemm) or --keep-float for the Conv layers");
    }
  }
  ExportInfo info = export_quantized(m, out, opt.format);
  for (const auto& ql : out)
    if (is_half(half_of(ql.layer))) restore_weight_type(layer_graph(g, ql.layer), ql.layer, half_of(ql.layer));
  rep.opset = info.opset;
  rep.dequantize_form = info.dequantize_form;
  return rep;
}

nlohmann::json QuantizeReport::to_json() const {
  nlohmann::json j;
  j["format"] = format;
  j["target"] = target;
  if (!scorer.empty()) j["scorer"] = scorer;
  j["avg_bits"] = avg_bits;
  j["opset"] = opset;
  if (!dequantize_form.empty()) j["dequantize_form"] = dequantize_form;
  j["quantized_params"] = quantized_params;
  if (!method_summary.empty()) j["method_summary"] = method_summary;
  for (const auto& n : notes) j["notes"].push_back(n);
  j["layers"] = nlohmann::json::array();
  for (const auto& l : layers) {
    nlohmann::json e = {{"node", l.node}, {"op", l.op}, {"weight", l.weight}, {"shape", {l.rows, l.cols}},
                        {"score", l.score}, {"bits", l.bits}, {"storage_bits", l.storage_bits},
                        {"decided_by", l.decided_by}, {"method", l.method}, {"scheme", l.scheme},
                        {"granularity", l.granularity}, {"rel_error", l.rel_error}, {"sqnr_db", l.sqnr_db}};
    if (l.block_size) e["block_size"] = l.block_size;
    if (l.output_rel_error >= 0) e["output_rel_error"] = l.output_rel_error;
    if (l.awq) e["awq"] = true;
    if (l.bias_corrected) e["bias_corrected"] = true;
    j["layers"].push_back(e);
  }
  j["skipped"] = nlohmann::json::array();
  for (const auto& s : skipped) j["skipped"].push_back({{"node", s.node}, {"reason", s.reason}});
  return j;
}

}  // namespace oc::quant
