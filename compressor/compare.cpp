#include "compressor/compare.h"

#include <cmath>
#include <limits>
#include <map>
#include <sstream>

#include "graph/inspect.h"

namespace oc {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

double min_fidelity(const Report& r, const char* key) {
  double v = kNaN;
  for (auto it = r.fidelity.begin(); it != r.fidelity.end(); ++it)
    if (it->is_object() && it->contains(key)) {
      double x = (*it)[key].get<double>();
      v = std::isnan(v) ? x : std::min(v, x);
    }
  return v;
}

double number_or_nan(const nlohmann::json& j, const char* key) {
  return j.contains(key) && j[key].is_number() ? j[key].get<double>() : kNaN;
}

std::string cell(const std::string& key, double v) {
  if (std::isnan(v)) return "-";
  char buf[48];
  if (key == "file_bytes" || key == "peak_rss") return human_bytes(v);
  if (key == "params" || key == "macs") return human_count(v);
  if (key == "cosine") std::snprintf(buf, sizeof buf, "%.5f", v);
  else if (key == "accuracy" || key == "top1") std::snprintf(buf, sizeof buf, "%.2f%%", 100 * v);
  else std::snprintf(buf, sizeof buf, "%.2f", v);
  return buf;
}

}  // namespace

Comparison compare_reports(const std::vector<ComparedRun>& runs) {
  Comparison c;
  c.columns = {{"file_bytes", "size", true},     {"params", "params", true},        {"macs", "MACs", true},
               {"bits", "avg bits", true},       {"cosine", "min cosine", false},   {"sqnr_db", "min SQNR dB", false},
               {"top1", "top-1 agree", false},   {"accuracy", "accuracy", false},   {"latency", "latency ms", true},
               {"seconds", "time s", true},      {"peak_rss", "peak mem", true}};
  for (const auto& run : runs) {
    const Report& r = run.report;
    c.labels.push_back(run.label);
    double wbits = 0, wparams = 0;
    for (const auto& l : r.layers) { wbits += l.bits * static_cast<double>(l.params_after); wparams += static_cast<double>(l.params_after); }
    c.values.push_back({static_cast<double>(r.after.file_bytes), static_cast<double>(r.after.params),
                        static_cast<double>(r.after.macs), wparams > 0 ? wbits / wparams : kNaN,
                        min_fidelity(r, "cosine"), min_fidelity(r, "sqnr_db"), min_fidelity(r, "top1_agreement"),
                        number_or_nan(r.accuracy, "candidate"), number_or_nan(r.latency_ms, "candidate"), r.seconds,
                        r.peak_rss_bytes ? static_cast<double>(r.peak_rss_bytes) : kNaN});
    c.accuracy_reference.push_back(number_or_nan(r.accuracy, "reference"));
    c.latency_reference.push_back(number_or_nan(r.latency_ms, "reference"));
  }
  for (size_t k = 0; k < c.columns.size(); ++k) {
    int best = -1;
    for (size_t i = 0; i < c.values.size(); ++i) {
      double v = c.values[i][k];
      if (std::isnan(v)) continue;
      if (best < 0 || (c.columns[k].lower_is_better ? v < c.values[static_cast<size_t>(best)][k] : v > c.values[static_cast<size_t>(best)][k]))
        best = static_cast<int>(i);
    }
    c.best.push_back(runs.size() > 1 ? best : -1);
  }
  // Per-layer diff for the first pair of runs on the same input model.
  std::map<std::string, int> first_by_sha;
  for (size_t i = 0; i < runs.size() && c.diff_a < 0; ++i) {
    const std::string& sha = runs[i].report.input.sha256;
    auto it = first_by_sha.find(sha);
    if (it != first_by_sha.end() && !sha.empty()) { c.diff_a = it->second; c.diff_b = static_cast<int>(i); }
    else first_by_sha[sha] = static_cast<int>(i);
  }
  if (runs.size() > 1 && c.diff_a < 0) {
    std::string models;
    for (const auto& r : runs) models += (models.empty() ? "" : ", ") + r.report.input.name;
    c.notes.push_back("no per-layer diff: the runs compress different models (" + models +
                      "); totals are compared, layers only between runs of the same input file");
  }
  if (c.diff_a >= 0) {
    const Report& a = runs[static_cast<size_t>(c.diff_a)].report;
    const Report& b = runs[static_cast<size_t>(c.diff_b)].report;
    std::map<std::string, const LayerRow*> rb;
    for (const auto& l : b.layers) rb[l.name] = &l;
    for (const auto& l : a.layers) {
      auto it = rb.find(l.name);
      if (it == rb.end()) continue;
      c.layers.push_back({l.name, l.bits, it->second->bits, l.sparsity, it->second->sparsity, l.params_after, it->second->params_after});
    }
  }
  return c;
}

std::string comparison_text(const Comparison& c) {
  std::ostringstream o;
  o << "| run |";
  for (const auto& col : c.columns) o << " " << col.title << " |";
  o << "\n|---|";
  for (size_t k = 0; k < c.columns.size(); ++k) o << "---:|";
  o << "\n";
  for (size_t i = 0; i < c.labels.size(); ++i) {
    o << "| " << c.labels[i] << " |";
    for (size_t k = 0; k < c.columns.size(); ++k)
      o << " " << cell(c.columns[k].key, c.values[i][k]) << (c.best[k] == static_cast<int>(i) ? " *" : "") << " |";
    o << "\n";
  }
  o << "\n* best in column\n";
  for (const auto& n : c.notes) o << "\nnote: " << n << "\n";
  if (c.diff_a >= 0) {
    o << "\n### per-layer: " << c.labels[static_cast<size_t>(c.diff_a)] << " vs " << c.labels[static_cast<size_t>(c.diff_b)]
      << "\n\n| layer | bits A | bits B | sparsity A | sparsity B | params A | params B |\n|---|---:|---:|---:|---:|---:|---:|\n";
    for (const auto& l : c.layers) {
      char buf[256];
      std::snprintf(buf, sizeof buf, "| %s | %.0f | %.0f | %.1f%% | %.1f%% | %s | %s |\n", l.name.c_str(), l.bits_a, l.bits_b,
                    100 * l.sparsity_a, 100 * l.sparsity_b, human_count(static_cast<double>(l.params_a)).c_str(),
                    human_count(static_cast<double>(l.params_b)).c_str());
      o << buf;
    }
  }
  return o.str();
}

std::string comparison_html(const Comparison& c) {
  std::ostringstream o;
  o << "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>onnx-compress comparison</title><style>"
       "body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#222}table{border-collapse:collapse;margin:8px 0 20px}"
       "td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}th{background:#f2f2f2}"
       "td:first-child{text-align:left}.best{background:#dff0d8;font-weight:600}</style></head><body>"
       "<h1>onnx-compress: runs side by side</h1><table><tr><th>run</th>";
  for (const auto& col : c.columns) o << "<th>" << html_escape(col.title) << (col.lower_is_better ? " &darr;" : " &uarr;") << "</th>";
  o << "</tr>";
  for (size_t i = 0; i < c.labels.size(); ++i) {
    o << "<tr><td>" << html_escape(c.labels[i]) << "</td>";
    for (size_t k = 0; k < c.columns.size(); ++k) {
      const std::string& key = c.columns[k].key;
      const double v = c.values[i][k];
      std::string extra;
      char buf[64];
      // Accuracy and latency: the change from the run's own input model beside the value.
      if (key == "accuracy" && !std::isnan(v) && i < c.accuracy_reference.size() && !std::isnan(c.accuracy_reference[i])) {
        std::snprintf(buf, sizeof buf, " (%+.2f pt)", 100 * (v - c.accuracy_reference[i]));
        extra = buf;
      } else if (key == "latency" && !std::isnan(v) && v > 0 && i < c.latency_reference.size() &&
                 !std::isnan(c.latency_reference[i]) && c.latency_reference[i] > 0) {
        std::snprintf(buf, sizeof buf, " (%.2fx of %.2f)", v / c.latency_reference[i], c.latency_reference[i]);
        extra = buf;
      }
      o << "<td" << (c.best[k] == static_cast<int>(i) ? " class='best'" : "") << ">" << html_escape(cell(key, v) + extra) << "</td>";
    }
    o << "</tr>";
  }
  o << "</table><p>Highlighted: best in column (&darr; lower is better, &uarr; higher is better). Accuracy: change in points from "
       "the run's input model; latency: median ms per batch on our executor, as a ratio of the input model's.</p>";
  for (const auto& n : c.notes) o << "<p>" << html_escape(n) << "</p>";
  if (c.diff_a >= 0) {
    o << "<h2>Per layer: " << html_escape(c.labels[static_cast<size_t>(c.diff_a)]) << " vs " << html_escape(c.labels[static_cast<size_t>(c.diff_b)])
      << "</h2><table><tr><th>layer</th><th>bits A</th><th>bits B</th><th>sparsity A</th><th>sparsity B</th></tr>";
    for (const auto& l : c.layers) {
      char buf[128];
      std::snprintf(buf, sizeof buf, "<td>%.0f</td><td>%.0f</td><td>%.1f%%</td><td>%.1f%%</td>", l.bits_a, l.bits_b,
                    100 * l.sparsity_a, 100 * l.sparsity_b);
      o << "<tr><td>" << html_escape(l.name) << "</td>" << buf << "</tr>";
    }
    o << "</table>";
  }
  o << "</body></html>\n";
  return o.str();
}

nlohmann::json comparison_json(const Comparison& c) {
  nlohmann::json runs = nlohmann::json::array();
  for (size_t i = 0; i < c.labels.size(); ++i) {
    nlohmann::json row = {{"label", c.labels[i]}};
    for (size_t k = 0; k < c.columns.size(); ++k)
      row[c.columns[k].key] = std::isnan(c.values[i][k]) ? nlohmann::json(nullptr) : nlohmann::json(c.values[i][k]);
    runs.push_back(row);
  }
  nlohmann::json best = nlohmann::json::object();
  for (size_t k = 0; k < c.columns.size(); ++k)
    if (c.best[k] >= 0) best[c.columns[k].key] = c.labels[static_cast<size_t>(c.best[k])];
  return {{"runs", runs}, {"best", best}, {"notes", c.notes}};
}

}  // namespace oc
