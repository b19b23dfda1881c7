#include "graph/inspect.h"

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
    s.op_counts[n.is_default_domain() ? n.op_type : n.domain + ":" + n.op_type]++;
    if (!top) ++s.subgraph_nodes;
    for (const auto& sg : n.subgraphs()) count_ops(*sg, s, false);
  }
}

static int64_t count_params(const Graph& g) {
  int64_t p = 0;
  for (const auto& t : g.initializers)
    if (dtype_is_float(t.dtype) || t.dtype == DType::Int8 || t.dtype == DType::UInt8 || t.dtype == DType::Int4 ||
        t.dtype == DType::UInt4)
      p += t.numel();
  for (const auto& n : g.nodes)
    for (const auto& sg : n.subgraphs()) p += count_params(*sg);
  return p;
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
  s.params = count_params(m.graph);
  s.weight_bytes = model_weight_bytes(m);
  return s;
}

ModelSummary inspect_model(const std::filesystem::path& path, const std::map<std::string, std::vector<int64_t>>& input_shapes) {
  Model m = load_model(path);
  NormalizeStats st = normalize(m);
  for (const auto& [name, dims] : input_shapes) {
    ValueInfo* vi = nullptr;
    for (auto& v : m.graph.inputs) if (v.name == name) vi = &v;
    if (!vi) throw InvalidArgument("--input-shape: the model has no input '" + name + "'");
    if (vi->has_shape && vi->shape.size() != dims.size())
      throw InvalidArgument("--input-shape: input '" + name + "' has rank " + std::to_string(vi->shape.size()) + ", got " +
                            std::to_string(dims.size()) + " dims");
    vi->has_shape = true;
    vi->shape = shape_of(dims);
  }
  ModelSummary s = summarize(m, path);
  s.constants_lifted = st.constants_lifted;
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
  o << "MACs       " << (s.macs >= 0 ? human_count(static_cast<double>(s.macs)) + " (" + std::to_string(s.macs) + ")" : "unknown") << "\n";
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
