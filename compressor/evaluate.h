// evaluate: how close a compressed model's outputs are to the reference's on real data.
//   cosine  = Σ a·b / sqrt(Σa² · Σb²)            over all elements of an output
//   SQNR dB = 10·log10(Σ ref² / Σ (ref − cand)²)
//   top-1 agreement: fraction of rows (last axis = classes) whose argmax matches
//   accuracy: argmax of the first output's last axis vs integer labels (one per sample): the
//             labels file, or an image folder's class sub-folders (sorted names -> 0, 1, ...)
// Both models run on our executor over the same batches; statistics stream (no output is kept).
#pragma once
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "engine/image_data.h"
#include "graph/ir.h"

namespace oc {

struct EvaluateOptions {
  std::string data_spec;        // calibration-style SPEC (npy, npz, folder, random:N[:SEED])
  std::string labels_path;      // optional .npy of integer labels, one per sample
  int64_t batch_size = 16;
  int64_t max_samples = 0;      // 0 = all
  int threads = 0;
  std::map<std::string, std::vector<int64_t>> shapes;  // concrete dims for symbolic inputs (random data, images)
  ImageOptions image;           // image folders: normalization, channel order, resize
  bool skip_bad_samples = false;  // leave out samples with NaN/Inf instead of failing
  std::function<void(int64_t done, int64_t total)> progress;
};

struct OutputFidelity {
  double cosine = 0, sqnr_db = 0, max_abs = 0, top1_agreement = 0;
  int64_t rows = 0;  // rows counted for top-1 (0 = not a classification-shaped output)
};

struct EvaluateResult {
  std::map<std::string, OutputFidelity> outputs;
  std::optional<double> accuracy_reference, accuracy_candidate;
  double latency_reference_ms = 0, latency_candidate_ms = 0;  // median per batch on our executor
  int64_t samples = 0;
  int64_t skipped_samples = 0;  // NaN/Inf samples left out (skip_bad_samples)
  std::string labels_from;      // "labels file" | "class folders" | "" (no accuracy)
};

// Throws InvalidArgument when the models' inputs/outputs differ or the data does not fit.
EvaluateResult evaluate_models(const Model& reference, const Model& candidate, const EvaluateOptions& opt);
nlohmann::json fidelity_json(const EvaluateResult& r);
std::string evaluate_text(const EvaluateResult& r);

}  // namespace oc
