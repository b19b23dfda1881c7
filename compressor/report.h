// Compression reports: one versioned JSON schema (docs/REPORT_SCHEMA.md) written by prune,
// quantize and compress; a terminal summary; a self-contained HTML page; and the per-layer rows,
// derived by diffing the model before and after so every step reports the same way.
#pragma once
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "graph/ir.h"

namespace oc {

inline constexpr int kReportSchemaVersion = 1;

struct ModelIdentity {
  std::string name;    // file name
  std::string path;
  std::string sha256;  // of the .onnx file (external data not included)
  uint64_t file_bytes = 0;
};

struct LayerRow {
  std::string name, op;
  std::vector<int64_t> weight_shape_before, weight_shape_after;
  int64_t params_before = 0, params_after = 0;
  int64_t macs_before = 0, macs_after = 0;
  double bits = 32;      // weight bits after compression (32 = float)
  double bits_before = 32;  // weight bits of the input (16 for a float16 weight)
  double sparsity = 0;   // fraction of the layer's weights removed by pruning
  std::map<std::string, double> scores;  // importance scores by criterion
};

struct Totals {
  int64_t params = 0;
  int64_t macs = 0;
  uint64_t file_bytes = 0;
  uint64_t weight_bytes = 0;
};

struct Report {
  int schema_version = kReportSchemaVersion;
  std::string tool_version = OC_VERSION;
  std::string command;   // prune | quantize | compress
  std::string created;   // ISO 8601 UTC
  ModelIdentity input, output;
  nlohmann::json settings = nlohmann::json::object();
  nlohmann::json steps = nlohmann::json::array();     // per recipe step: name, settings, seconds, details
  std::vector<LayerRow> layers;
  Totals before, after;
  nlohmann::json fidelity = nlohmann::json::object(); // per output: cosine, sqnr_db, max_abs, top1_agreement
  nlohmann::json accuracy = nlohmann::json::object(); // {"reference": x, "candidate": y} when labels given
  nlohmann::json latency_ms = nlohmann::json::object();
  double seconds = 0;
  uint64_t peak_rss_bytes = 0;
  nlohmann::json extra = nlohmann::json::object();    // step-specific details (groups, blocks, allocation)
  nlohmann::json deployment = nlohmann::json::object(); // quant::DeployCheck of the output (how ORT runs it)
};

nlohmann::json report_to_json(const Report& r);
// Throws InvalidArgument for documents that are not reports or have another schema version.
Report report_from_json(const nlohmann::json& j, const std::string& what = "report");
Report read_report(const std::filesystem::path& p);
void write_report(const Report& r, const std::filesystem::path& p);  // atomic

// Per weight layer (Conv, ConvTranspose, Gemm, MatMul with a constant weight, MatMulNBits):
// shapes, params, MACs and bits before/after, matched by node name.
std::vector<LayerRow> diff_layers(const Model& before, const Model& after,
                                  const std::map<std::string, std::vector<int64_t>>& input_shapes = {});
Totals model_totals(const Model& m, const std::map<std::string, std::vector<int64_t>>& input_shapes = {});
// Fills identity, layers and totals from the two models and their files.
void fill_report_models(Report& r, const Model& before, const std::filesystem::path& before_path, const Model& after,
                        const std::filesystem::path& after_path,
                        const std::map<std::string, std::vector<int64_t>>& input_shapes = {});

std::string report_summary(const Report& r);  // short Markdown table for the terminal
std::string report_html(const Report& r);     // one self-contained page, inline SVG, no scripts
std::string html_escape(const std::string& s);  // <, >, & and " as entities (text and attribute values)

std::string sha256_file(const std::filesystem::path& p);
uint64_t peak_rss_bytes();
std::string utc_now_iso();

}  // namespace oc
