// Per-layer report rows and totals, derived by diffing the models before and after compression.
#include <filesystem>

#include "compressor/report.h"
#include "graph/cost.h"
#include "graph/onnx_io.h"
#include "engine/shape_eval.h"
#include "graph/shape_inference.h"

namespace oc {
namespace fs = std::filesystem;

// ---------------- layers from models ----------------
namespace {

struct StoredWeight {  // a layer node's weight as the model stores it
  std::string op;
  std::vector<int64_t> shape;
  int64_t params = 0;
  double bits = 32;
};

// Weight of a layer node: the constant feeding its weight input, looking through
// DequantizeLinear (QDQ export) and Cast (fp16). MatMulNBits carries K/N/bits attributes;
// MatMulInteger / ConvInteger (the dynamic int8 form of 8-bit layers) read their int8 weight directly.
std::optional<StoredWeight> stored_weight(const Graph& g, const Node& n) {
  static const std::map<std::string, size_t> weight_input = {
      {"Conv", 1}, {"ConvTranspose", 1}, {"Gemm", 1}, {"MatMul", 1}, {"MatMulNBits", 1}, {"MatMulInteger", 1}, {"ConvInteger", 1}};
  auto it = weight_input.find(n.op_type);
  if (it == weight_input.end()) return std::nullopt;
  StoredWeight w;
  w.op = n.op_type;
  if (n.op_type == "MatMulNBits") {
    int64_t K = n.attr_int("K", 0), N = n.attr_int("N", 0);
    w.shape = {K, N};
    w.params = K * N;
    w.bits = static_cast<double>(n.attr_int("bits", 4));
    return w;
  }
  std::string v = n.input(it->second);
  if (v.empty()) return std::nullopt;
  int p = g.producer(v);
  if (p >= 0 && g.nodes[static_cast<size_t>(p)].op_type == "DequantizeLinear") {
    const Node& dq = g.nodes[static_cast<size_t>(p)];
    const Tensor* q = g.initializer(dq.input(0));
    if (!q) return std::nullopt;
    w.shape = q->dims;
    w.params = q->numel();
    w.bits = dtype_bits(q->dtype);
    return w;
  }
  std::optional<Tensor> t = g.constant_value(v);
  if (!t) return std::nullopt;
  w.shape = t->dims;
  w.params = t->numel();
  const Tensor* raw = g.initializer(v);
  w.bits = raw ? dtype_bits(raw->dtype) : 32;
  return w;
}

std::map<std::string, int64_t> macs_by_node(const Model& m, const std::map<std::string, std::vector<int64_t>>& shapes) {
  Model copy = copy_without_weight_data(m);  // shapes and costs need no weight bytes
  infer_shapes_evaluated(copy, shapes);
  CostReport c = count_costs(copy);
  std::map<std::string, int64_t> out;
  for (const auto& n : c.per_node) out[n.node] = std::max<int64_t>(n.macs, 0);
  return out;
}

}  // namespace

Totals model_totals(const Model& m, const std::map<std::string, std::vector<int64_t>>& shapes) {
  Model copy = copy_without_weight_data(m);  // shapes and costs need no weight bytes
  infer_shapes_evaluated(copy, shapes);
  CostReport c = count_costs(copy);
  Totals t;
  t.params = c.params;
  t.macs = c.macs;
  t.weight_bytes = model_weight_bytes(m);
  return t;
}

std::vector<LayerRow> diff_layers(const Model& before, const Model& after,
                                  const std::map<std::string, std::vector<int64_t>>& shapes) {
  auto macs_b = macs_by_node(before, shapes), macs_a = macs_by_node(after, shapes);
  std::map<std::string, const Node*> after_nodes;
  for (const auto& n : after.graph.nodes) after_nodes[n.name] = &n;
  std::vector<LayerRow> rows;
  for (const auto& n : before.graph.nodes) {
    auto wb = stored_weight(before.graph, n);
    if (!wb) continue;
    LayerRow r;
    r.name = n.name;
    r.op = n.op_type;
    r.weight_shape_before = wb->shape;
    r.params_before = wb->params;
    r.bits_before = wb->bits;
    r.macs_before = macs_b.count(n.name) ? macs_b[n.name] : 0;
    auto it = after_nodes.find(n.name);
    if (it == after_nodes.end()) {  // removed entirely
      r.sparsity = 1;
      r.bits = 0;
      rows.push_back(r);
      continue;
    }
    auto wa = stored_weight(after.graph, *it->second);
    if (wa) {
      r.op = it->second->op_type == n.op_type ? n.op_type : n.op_type + "->" + it->second->op_type;
      r.weight_shape_after = wa->shape;
      r.params_after = wa->params;
      r.bits = wa->bits;
    } else {
      r.weight_shape_after = wb->shape;
      r.params_after = wb->params;
    }
    r.macs_after = macs_a.count(n.name) ? macs_a[n.name] : 0;
    r.sparsity = r.params_before ? 1.0 - static_cast<double>(r.params_after) / static_cast<double>(r.params_before) : 0;
    rows.push_back(r);
  }
  return rows;
}

void fill_report_models(Report& r, const Model& before, const fs::path& before_path, const Model& after,
                        const fs::path& after_path, const std::map<std::string, std::vector<int64_t>>& shapes) {
  auto ident = [](const fs::path& p) {
    ModelIdentity id;
    id.name = p.filename().string();
    id.path = p.string();
    std::error_code ec;
    id.file_bytes = fs::exists(p, ec) ? fs::file_size(p, ec) : 0;
    id.sha256 = sha256_file(p);
    return id;
  };
  r.input = ident(before_path);
  r.output = ident(after_path);
  if (r.created.empty()) r.created = utc_now_iso();
  r.layers = diff_layers(before, after, shapes);
  r.before = model_totals(before, shapes);
  r.after = model_totals(after, shapes);
  auto data_bytes = [](const fs::path& p) -> uint64_t {
    std::error_code ec;
    fs::path d = p;
    d += ".data";
    return fs::exists(d, ec) ? fs::file_size(d, ec) : 0;
  };
  r.before.file_bytes = r.input.file_bytes + data_bytes(before_path);
  r.after.file_bytes = r.output.file_bytes + data_bytes(after_path);
  r.peak_rss_bytes = peak_rss_bytes();
}

}  // namespace oc
