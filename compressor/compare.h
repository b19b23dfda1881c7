// Side-by-side comparison of compression reports: one row per run, the best value per column
// marked, and a per-layer diff for runs of the same input model (same sha256).
#pragma once
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "compressor/report.h"

namespace oc {

struct ComparedRun {
  std::string label;
  Report report;
};

struct Comparison {
  struct Column {
    std::string key, title;
    bool lower_is_better = true;
  };
  std::vector<Column> columns;
  std::vector<std::string> labels;
  std::vector<std::vector<double>> values;  // [run][column], NaN = not measured
  std::vector<int> best;                    // per column: index of the best run, -1 if none
  // Per run, the reference (input) model's accuracy and latency, NaN = not measured: the HTML shows
  // the change beside the candidate's value.
  std::vector<double> accuracy_reference, latency_reference;
  std::vector<std::string> notes;           // e.g. why no per-layer diff
  // Per-layer diff of the first two runs that share an input model.
  int diff_a = -1, diff_b = -1;
  struct LayerDiff { std::string name; double bits_a, bits_b, sparsity_a, sparsity_b; int64_t params_a, params_b; };
  std::vector<LayerDiff> layers;
};

Comparison compare_reports(const std::vector<ComparedRun>& runs);
std::string comparison_text(const Comparison& c);   // Markdown tables
std::string comparison_html(const Comparison& c);   // self-contained page
nlohmann::json comparison_json(const Comparison& c);

}  // namespace oc
