// A model summary for `inspect` and for reports: structure, sizes and costs.
#pragma once
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "graph/cost.h"
#include "graph/ir.h"
#include "graph/onnx_io.h"
#include "graph/shape_inference.h"

namespace oc {

struct ModelSummary {
  std::string path;
  uint64_t file_bytes = 0;
  int64_t ir_version = 0;
  std::vector<OpsetImport> opsets;
  std::string producer;
  std::vector<ValueInfo> inputs, outputs;  // runtime inputs only
  size_t nodes = 0;                        // main graph after normalize
  size_t subgraph_nodes = 0;
  std::map<std::string, int> op_counts;    // "domain:Op" for non-default domains
  int constants_lifted = 0;
  int64_t params = 0;          // elements of float weight tensors
  size_t weight_bytes = 0;     // bytes of all constant tensors
  int64_t macs = -1;           // -1 when shapes could not be resolved
  int64_t macs_counted = 0;    // sum over the MAC nodes whose shapes resolved (== macs when complete)
  std::map<std::string, int64_t> macs_by_op;
  std::vector<NodeCost> per_node;          // see graph/cost.h for what counts
  std::vector<std::string> inputs_needing_shape;  // runtime inputs with symbolic dims when MACs are unknown
  std::vector<std::string> unknown_ops;    // operators shape inference has no rule for
  std::vector<std::string> notes;  // e.g. why MACs are partial
  // Constant tensors (initializers and Constant nodes, subgraphs included) per element type.
  struct DTypeWeights { int tensors = 0; int64_t elements = 0; uint64_t bytes = 0; };
  std::map<std::string, DTypeWeights> weights_by_dtype;  // dtype name -> totals
  std::vector<NodeCost> heaviest;  // up to 5 nodes with the most MACs, largest first
  ExternalDataStats external;      // filled by inspect_model from the loader
};

// Costs read the shapes already in the model: run infer_shapes on it first (inspect_model does).
ModelSummary summarize(const Model& normalized, const std::filesystem::path& path = {});
// `evaluate` folds shape computations on constant values (engine/shape_eval.h; the CLI passes it).
ModelSummary inspect_model(const std::filesystem::path& path,
                           const std::map<std::string, std::vector<int64_t>>& input_shapes = {},
                           const ValueEvaluator& evaluate = nullptr);
nlohmann::json summary_to_json(const ModelSummary& s);
std::string summary_to_text(const ModelSummary& s);
std::string human_count(double v);   // 1.82G, 11.7M, 512
std::string human_bytes(double v);   // 4.5 MiB

}  // namespace oc
