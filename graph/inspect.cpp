#include "graph/inspect.h"

#include <algorithm>
#include <cstdio>
#include <sstream>

#include "graph/normalize.h"
#include "graph/onnx_io.h"

namespace oc {

std::string human_count(double v) {
  char buf[32];
  if (v >= 1e9) std::snprintf(buf, sizeof buf, "%.2fG", v / 1e9);
  else if (v >= 1e6) std::snprintf(buf, sizeof buf, "%.2fM", v / 1e6);
  else if (v >= 1e3) std::snprintf(buf, sizeof buf, "%.1fK", v / 1e3);
  else std::snprintf(buf, sizeof buf, "%.0f", v);
  return buf;
}

std::string human_bytes(double v) {
  char buf[32];
  if (v >= 1024.0 * 1024 * 1024) std::snprintf(buf, sizeof buf, "%.2f GiB", v / (1024.0 * 1024 * 1024));
  else if (v >= 1024.0 * 1024) std::snprintf(buf, sizeof buf, "%.2f MiB", v / (1024.0 * 1024));
  else if (v >= 1024.0) std::snprintf(buf, sizeof buf, "%.1f KiB", v / 1024.0);
  else std::snprintf(buf, sizeof buf, "%.0f B", v);
  return buf;
}

static void count_ops(const Graph& g, ModelSummary& s, bool top) {
  for (const auto& n : g.nodes) {
    s.op_counts[n.key()]++;
    if (!top) ++s.subgraph_nodes;
    for (const auto& sg : n.subgraphs()) count_ops(*sg, s, false);
  }
}

static void count_weights(const Graph& g, ModelSummary& s) {
  auto add = [&](const Tensor& t) {
    auto& w = s.weights_by_dtype[dtype_name(t.dtype)];
    ++w.tensors;
    w.elements += t.numel();
    w.bytes += t.nbytes();
  };
  for (const auto& t : g.initializers) add(t);
  // Same scope as model_weight_bytes: every tensor attribute (Constant, ConstantOfShape, ...).
  for (const auto& n : g.nodes) {
    for (const auto& a : n.attributes)
      if (a.kind == Attribute::Kind::Tensor) add(a.t);
    for (const auto& sg : n.subgraphs()) count_weights(*sg, s);
  }
}

ModelSummary summarize(const Model& m, const std::filesystem::path& path) {
  ModelSummary s;
  s.path = path.string();
  std::error_code ec;
  if (!path.empty()) s.file_bytes = std::filesystem::file_size(path, ec);
  s.ir_version = m.ir_version;
  s.opsets = m.opset_imports;
  s.producer = m.producer_name + (m.producer_version.empty() ? "" : " " + m.producer_version);
  for (const auto* v : m.graph.runtime_inputs()) s.inputs.push_back(*v);
  s.outputs = m.graph.outputs;
  s.nodes = m.graph.nodes.size();
  count_ops(m.graph, s, true);
  s.weight_bytes = model_weight_bytes(m);
  CostReport cost = count_costs(m);
  s.params = cost.params;
  s.macs_counted = cost.macs;
  s.macs = cost.macs_complete ? cost.macs : -1;
  s.macs_by_op = cost.macs_by_op;
  s.per_node = std::move(cost.per_node);
  count_weights(m.graph, s);
  // Heaviest layers: top 5 by MACs (ties keep graph order).
  for (const auto& r : s.per_node)
    if (r.macs > 0) s.heaviest.push_back(r);
  std::stable_sort(s.heaviest.begin(), s.heaviest.end(), [](const NodeCost& a, const NodeCost& b) { return a.macs > b.macs; });
  if (s.heaviest.size() > 5) s.heaviest.resize(5);
  if (!cost.macs_complete) {
    for (const ValueInfo& v : s.inputs)
      if (!v.has_shape || !shape_known(v.shape)) s.inputs_needing_shape.push_back(v.name);
    std::string first = cost.uncounted.front();
    for (const auto& row : s.per_node)
      if (row.node == first && !row.why.empty()) first += " (" + row.why + ")";
    s.notes.push_back(std::to_string(cost.uncounted.size()) + " MAC nodes could not be counted, first " + first);
    if (!s.inputs_needing_shape.empty()) {
      std::string msg = "MACs need concrete input shapes: pass";
      for (const ValueInfo& v : s.inputs) {
        if (v.has_shape && shape_known(v.shape)) continue;
        std::string dims;
        for (const Dim& d : v.shape) dims += (dims.empty() ? "" : ",") + (d.known() ? std::to_string(d.value) : std::string("?"));
        msg += " --input-shape " + v.name + "=" + (v.has_shape ? dims : std::string("D0,D1,...")) ;
      }
      s.notes.push_back(msg);
    }
  }
  return s;
}

ModelSummary inspect_model(const std::filesystem::path& path, const std::map<std::string, std::vector<int64_t>>& input_shapes,
                           const ValueEvaluator& evaluate) {
  ExternalDataStats ext;
  LoadOptions lo;
  lo.external_stats = &ext;
  Model m = load_model(path, lo);
  NormalizeStats st = normalize(m);
  ShapeInferenceResult shapes;
  try {
    shapes = infer_shapes(m, input_shapes, evaluate);
  } catch (const InvalidArgument& e) {
    throw InvalidArgument(std::string("--input-shape: ") + e.what());
  }
  ModelSummary s = summarize(m, path);
  s.constants_lifted = st.constants_lifted;
  s.external = std::move(ext);
  s.unknown_ops = shapes.unknown_ops;
  if (!shapes.unknown_ops.empty()) {
    std::string msg = "no shape rule for";
    for (const auto& op : shapes.unknown_ops) msg += " " + op;
    s.notes.push_back(msg + " (their outputs have unknown shapes)");
  }
  return s;
}

static nlohmann::json value_json(const ValueInfo& v) {
  nlohmann::json dims = nlohmann::json::array();
  for (const Dim& d : v.shape) {
    if (d.known()) dims.push_back(d.value);
    else dims.push_back(d.param.empty() ? "?" : d.param);
  }
  return {{"name", v.name}, {"dtype", dtype_name(v.dtype)}, {"shape", v.has_shape ? dims : nlohmann::json(nullptr)}};
}

nlohmann::json summary_to_json(const ModelSummary& s) {
  nlohmann::json j;
  j["path"] = s.path;
  j["file_bytes"] = s.file_bytes;
  j["ir_version"] = s.ir_version;
  j["opsets"] = nlohmann::json::object();
  for (const auto& o : s.opsets) j["opsets"][o.domain.empty() ? "ai.onnx" : o.domain] = o.version;
  j["producer"] = s.producer;
  j["inputs"] = nlohmann::json::array();
  for (const auto& v : s.inputs) j["inputs"].push_back(value_json(v));
  j["outputs"] = nlohmann::json::array();
  for (const auto& v : s.outputs) j["outputs"].push_back(value_json(v));
  j["nodes"] = s.nodes;
  j["subgraph_nodes"] = s.subgraph_nodes;
  j["op_counts"] = s.op_counts;
  j["constants_lifted"] = s.constants_lifted;
  j["params"] = s.params;
  j["weight_bytes"] = s.weight_bytes;
  j["macs"] = s.macs >= 0 ? nlohmann::json(s.macs) : nlohmann::json(nullptr);
  j["macs_counted"] = s.macs_counted;
  j["macs_by_op"] = s.macs_by_op;
  j["per_node"] = nlohmann::json::array();
  for (const auto& r : s.per_node) {
    nlohmann::json row = {{"node", r.node}, {"op", r.op_type}, {"params", r.params},
                          {"macs", r.macs >= 0 ? nlohmann::json(r.macs) : nlohmann::json(nullptr)}};
    if (!r.why.empty()) row["why"] = r.why;
    j["per_node"].push_back(row);
  }
  j["weights_by_dtype"] = nlohmann::json::object();
  for (const auto& [dt, w] : s.weights_by_dtype)
    j["weights_by_dtype"][dt] = {{"tensors", w.tensors}, {"elements", w.elements}, {"bytes", w.bytes}};
  j["heaviest"] = nlohmann::json::array();
  for (const auto& r : s.heaviest)
    j["heaviest"].push_back({{"node", r.node}, {"op", r.op_type}, {"macs", r.macs}, {"params", r.params},
                             {"share", s.macs_counted > 0 ? static_cast<double>(r.macs) / static_cast<double>(s.macs_counted) : 0.0}});
  nlohmann::json files = nlohmann::json::object();
  for (const auto& [loc, b] : s.external.file_bytes) files[loc] = b;
  j["external_data"] = {{"used", s.external.external_tensors > 0},
                        {"external_tensors", s.external.external_tensors},
                        {"inline_tensors", s.external.inline_tensors},
                        {"external_bytes", s.external.external_bytes},
                        {"files", files}};
  j["inputs_needing_shape"] = s.inputs_needing_shape;
  j["unknown_ops"] = s.unknown_ops;
  j["notes"] = s.notes;
  return j;
}

std::string summary_to_text(const ModelSummary& s) {
  std::ostringstream o;
  o << "model      " << s.path << " (" << human_bytes(static_cast<double>(s.file_bytes)) << ")\n";
  o << "format     IR " << s.ir_version << ", opsets";
  for (const auto& op : s.opsets) o << " " << (op.domain.empty() ? "ai.onnx" : op.domain) << ":" << op.version;
  o << (s.producer.empty() ? "" : ", from " + s.producer) << "\n";
  auto io = [&](const char* label, const std::vector<ValueInfo>& vs) {
    for (const auto& v : vs) o << label << v.name << "  " << dtype_name(v.dtype) << (v.has_shape ? shape_str(v.shape) : "[?]") << "\n";
  };
  io("input      ", s.inputs);
  io("output     ", s.outputs);
  o << "nodes      " << s.nodes;
  if (s.subgraph_nodes) o << " (+" << s.subgraph_nodes << " in subgraphs)";
  if (s.constants_lifted) o << ", " << s.constants_lifted << " Constant weights lifted";
  o << "\nparams     " << human_count(static_cast<double>(s.params)) << " (" << s.params << "), weights "
    << human_bytes(static_cast<double>(s.weight_bytes)) << "\n";
  o << "MACs       ";
  if (s.macs >= 0) o << human_count(static_cast<double>(s.macs)) << " (" << s.macs << ")";
  else if (s.macs_counted > 0) o << "unknown (" << human_count(static_cast<double>(s.macs_counted)) << " counted)";
  else o << "unknown";
  // Top operator types by MACs, largest first.
  std::vector<std::pair<int64_t, std::string>> top;
  for (const auto& [op, v] : s.macs_by_op) top.push_back({v, op});
  std::sort(top.rbegin(), top.rend());
  for (size_t i = 0; i < top.size() && i < 4; ++i)
    o << (i ? ", " : "  = ") << top[i].second << " " << human_count(static_cast<double>(top[i].first));
  o << "\n";
  for (const auto& [dt, w] : s.weights_by_dtype)
    o << "weights    " << dt << ": " << w.tensors << " tensors, " << human_count(static_cast<double>(w.elements))
      << " elements, " << human_bytes(static_cast<double>(w.bytes)) << "\n";
  for (size_t i = 0; i < s.heaviest.size(); ++i) {
    const NodeCost& r = s.heaviest[i];
    char share[16];
    std::snprintf(share, sizeof share, "%.1f%%", s.macs_counted > 0 ? 100.0 * static_cast<double>(r.macs) / static_cast<double>(s.macs_counted) : 0.0);
    o << (i ? "           " : "heaviest   ") << r.node << " (" << r.op_type << ") " << human_count(static_cast<double>(r.macs))
      << " MACs, " << share << "\n";
  }
  o << "external   ";
  if (s.external.external_tensors == 0) o << "none (" << s.external.inline_tensors << " tensors inline)\n";
  else {
    o << s.external.external_tensors << " tensors, " << human_bytes(static_cast<double>(s.external.external_bytes)) << " in";
    for (const auto& [loc, b] : s.external.file_bytes) o << " " << loc << " (" << human_bytes(static_cast<double>(b)) << ")";
    o << "\n";
  }
  o << "operators ";
  int col = 0;
  for (const auto& [op, c] : s.op_counts) {
    o << (col++ % 6 == 0 ? "\n  " : "  ") << op << " " << c;
  }
  o << "\n";
  for (const auto& n : s.notes) o << "note       " << n << "\n";
  return o.str();
}

}  // namespace oc
