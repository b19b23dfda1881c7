// Reading and writing ONNX files: protobuf <-> IR, external data, atomic saves.
#pragma once
#include <cstdint>
#include <filesystem>
#include <map>
#include <string>

#include "graph/ir.h"

namespace oc {

// What the loader saw of external data (for inspect); filled when LoadOptions::external_stats is set.
struct ExternalDataStats {
  int external_tensors = 0;                     // tensors whose data lives outside the .onnx file
  int inline_tensors = 0;                       // tensors stored inside it (raw or typed fields)
  uint64_t external_bytes = 0;                  // bytes those external tensors reference
  std::map<std::string, uint64_t> file_bytes;   // location -> size of the data file
};

struct LoadOptions {
  bool load_external_data = true;  // false: external tensors stay empty (inspect of huge models)
  ExternalDataStats* external_stats = nullptr;  // optional out-parameter
};

// Throws LoadError with a one-line reason for anything that is not a loadable ONNX model.
Model load_model(const std::filesystem::path& path, const LoadOptions& opt = {});
// `base_dir` resolves external-data locations; empty means external data is refused.
Model load_model_from_bytes(const std::string& bytes, const std::filesystem::path& base_dir,
                            const LoadOptions& opt = {});

// One serialized TensorProto (ONNX test data: input_0.pb, output_0.pb); LoadError if it is not one.
Tensor load_tensor_file(const std::filesystem::path& path);

struct SaveOptions {
  enum class ExternalData { Auto, Always, Never };
  ExternalData external = ExternalData::Auto;
  size_t external_min_bytes = 1024;  // smaller tensors stay inside the .onnx file
  std::string external_file;         // default: <model file name>.data, beside the model
};

// Writes to a temporary file in the same folder and renames it into place, so a failure never
// leaves a partial output. Auto switches to external data when the file would pass 2 GiB.
void save_model(const Model& m, const std::filesystem::path& path, const SaveOptions& opt = {});
// Serialized model with all tensors inline (throws SaveError past protobuf's 2 GiB limit).
std::string serialize_model(const Model& m);

// Total bytes of initializer and Constant-node data (subgraphs included).
size_t model_weight_bytes(const Model& m);

}  // namespace oc
