#include "compressor/report.h"

#include <openssl/evp.h>
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <ctime>
#include <fstream>
#include <sstream>

#include "graph/inspect.h"
#include "graph/onnx_io.h"
#include "graph/file_io.h"

namespace oc {
namespace fs = std::filesystem;
using nlohmann::json;

// ---------------- small utilities ----------------
std::string sha256_file(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  if (!f) return "";
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  EVP_DigestInit_ex(ctx, EVP_sha256(), nullptr);
  std::vector<char> buf(1 << 20);
  while (f) {
    f.read(buf.data(), static_cast<std::streamsize>(buf.size()));
    EVP_DigestUpdate(ctx, buf.data(), static_cast<size_t>(f.gcount()));
  }
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_DigestFinal_ex(ctx, md, &len);
  EVP_MD_CTX_free(ctx);
  static const char* hex = "0123456789abcdef";
  std::string out;
  for (unsigned i = 0; i < len; ++i) { out += hex[md[i] >> 4]; out += hex[md[i] & 15]; }
  return out;
}

uint64_t peak_rss_bytes() {
  struct rusage ru {};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<uint64_t>(ru.ru_maxrss) * 1024;
}

std::string utc_now_iso() {
  std::time_t t = std::time(nullptr);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&t));
  return buf;
}

// ---------------- JSON ----------------
static json identity_json(const ModelIdentity& m) {
  return {{"name", m.name}, {"path", m.path}, {"sha256", m.sha256}, {"file_bytes", m.file_bytes}};
}
static ModelIdentity identity_from(const json& j) {
  ModelIdentity m;
  m.name = j.value("name", "");
  m.path = j.value("path", "");
  m.sha256 = j.value("sha256", "");
  m.file_bytes = j.value("file_bytes", uint64_t{0});
  return m;
}
static json totals_json(const Totals& t) {
  return {{"params", t.params}, {"macs", t.macs}, {"file_bytes", t.file_bytes}, {"weight_bytes", t.weight_bytes}};
}
static Totals totals_from(const json& j) {
  Totals t;
  t.params = j.value("params", int64_t{0});
  t.macs = j.value("macs", int64_t{0});
  t.file_bytes = j.value("file_bytes", uint64_t{0});
  t.weight_bytes = j.value("weight_bytes", uint64_t{0});
  return t;
}

json report_to_json(const Report& r) {
  json layers = json::array();
  for (const auto& l : r.layers)
    layers.push_back({{"name", l.name}, {"op", l.op}, {"weight_shape_before", l.weight_shape_before},
                      {"weight_shape_after", l.weight_shape_after}, {"params_before", l.params_before},
                      {"params_after", l.params_after}, {"macs_before", l.macs_before}, {"macs_after", l.macs_after},
                      {"bits", l.bits}, {"bits_before", l.bits_before}, {"sparsity", l.sparsity}, {"scores", l.scores}});
  return {{"schema", "onnx-compress-report"}, {"schema_version", r.schema_version}, {"tool_version", r.tool_version},
          {"command", r.command}, {"created", r.created}, {"input", identity_json(r.input)},
          {"output", identity_json(r.output)}, {"settings", r.settings}, {"steps", r.steps}, {"layers", layers},
          {"totals", {{"before", totals_json(r.before)}, {"after", totals_json(r.after)}}},
          {"fidelity", r.fidelity}, {"accuracy", r.accuracy}, {"latency_ms", r.latency_ms}, {"seconds", r.seconds},
          {"peak_rss_bytes", r.peak_rss_bytes}, {"extra", r.extra}, {"deployment", r.deployment}};
}

Report report_from_json(const json& j, const std::string& what) {
  if (!j.is_object() || j.value("schema", "") != "onnx-compress-report")
    throw InvalidArgument(what + " is not an onnx-compress report (no \"schema\": \"onnx-compress-report\")");
  int v = j.value("schema_version", 0);
  if (v != kReportSchemaVersion)
    throw InvalidArgument(what + " has report schema version " + std::to_string(v) + "; this onnx-compress reads version " +
                          std::to_string(kReportSchemaVersion) + " (re-run the older tool's report through its own version)");
  Report r;
  try {
    r.tool_version = j.value("tool_version", "");
    r.command = j.value("command", "");
    r.created = j.value("created", "");
    r.input = identity_from(j.value("input", json::object()));
    r.output = identity_from(j.value("output", json::object()));
    r.settings = j.value("settings", json::object());
    r.steps = j.value("steps", json::array());
    for (const auto& l : j.value("layers", json::array())) {
      LayerRow row;
      row.name = l.value("name", "");
      row.op = l.value("op", "");
      row.weight_shape_before = l.value("weight_shape_before", std::vector<int64_t>{});
      row.weight_shape_after = l.value("weight_shape_after", std::vector<int64_t>{});
      row.params_before = l.value("params_before", int64_t{0});
      row.params_after = l.value("params_after", int64_t{0});
      row.macs_before = l.value("macs_before", int64_t{0});
      row.macs_after = l.value("macs_after", int64_t{0});
      row.bits = l.value("bits", 32.0);
      row.bits_before = l.value("bits_before", 32.0);
      row.sparsity = l.value("sparsity", 0.0);
      row.scores = l.value("scores", std::map<std::string, double>{});
      r.layers.push_back(std::move(row));
    }
    const json& tot = j.value("totals", json::object());
    r.before = totals_from(tot.value("before", json::object()));
    r.after = totals_from(tot.value("after", json::object()));
    r.fidelity = j.value("fidelity", json::object());
    r.accuracy = j.value("accuracy", json::object());
    r.latency_ms = j.value("latency_ms", json::object());
    r.seconds = j.value("seconds", 0.0);
    r.peak_rss_bytes = j.value("peak_rss_bytes", uint64_t{0});
    r.extra = j.value("extra", json::object());
    r.deployment = j.value("deployment", json::object());
  } catch (const json::exception& e) {
    throw InvalidArgument(what + ": malformed report field (" + std::string(e.what()) + ")");
  }
  return r;
}

Report read_report(const fs::path& p) {
  std::ifstream f(p);
  if (!f) throw InvalidArgument("cannot open report '" + p.string() + "'");
  json j;
  try {
    f >> j;
  } catch (const json::exception&) {
    throw InvalidArgument("'" + p.string() + "' is not JSON");
  }
  return report_from_json(j, "'" + p.string() + "'");
}

void write_report(const Report& r, const fs::path& p) { write_file_atomic(p, report_to_json(r).dump(2) + "\n"); }

// ---------------- text summary ----------------
static std::string pct_change(double before, double after) {
  if (before <= 0) return "";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2fx", after / before);
  return buf;
}

std::string report_summary(const Report& r) {
  std::ostringstream o;
  o << "## onnx-compress " << r.command << ": " << r.input.name << " -> " << r.output.name << "\n\n";
  o << "| | before | after | ratio |\n|---|---:|---:|---:|\n";
  o << "| file size | " << human_bytes(static_cast<double>(r.before.file_bytes)) << " | "
    << human_bytes(static_cast<double>(r.after.file_bytes)) << " | " << pct_change(static_cast<double>(r.before.file_bytes), static_cast<double>(r.after.file_bytes)) << " |\n";
  o << "| params | " << human_count(static_cast<double>(r.before.params)) << " | " << human_count(static_cast<double>(r.after.params))
    << " | " << pct_change(static_cast<double>(r.before.params), static_cast<double>(r.after.params)) << " |\n";
  o << "| MACs | " << human_count(static_cast<double>(r.before.macs)) << " | " << human_count(static_cast<double>(r.after.macs))
    << " | " << pct_change(static_cast<double>(r.before.macs), static_cast<double>(r.after.macs)) << " |\n";
  if (!r.layers.empty()) {
    double wbits = 0, wparams = 0, bbits = 0, bparams = 0;
    for (const auto& l : r.layers) {
      wbits += l.bits * static_cast<double>(l.params_after), wparams += static_cast<double>(l.params_after);
      bbits += l.bits_before * static_cast<double>(l.params_before), bparams += static_cast<double>(l.params_before);
    }
    // The input's bits from its stored weights (16 for a float16 model), params-weighted like the output's.
    char buf[64], before[64];
    std::snprintf(buf, sizeof buf, "%.2f", wparams > 0 ? wbits / wparams : 0.0);
    std::snprintf(before, sizeof before, "%.4g", bparams > 0 ? bbits / bparams : 32.0);
    o << "| avg weight bits | " << before << " | " << buf << " | |\n";
  }
  for (auto it = r.fidelity.begin(); it != r.fidelity.end(); ++it) {
    if (!it->is_object()) continue;
    char buf[160];
    std::snprintf(buf, sizeof buf, "| fidelity `%s` | cos %.5f | SQNR %.1f dB | top-1 %.1f%% |\n", it.key().c_str(),
                  it->value("cosine", 0.0), it->value("sqnr_db", 0.0), 100.0 * it->value("top1_agreement", 0.0));
    o << buf;
  }
  if (r.accuracy.contains("reference")) {
    char buf[128];
    std::snprintf(buf, sizeof buf, "| accuracy | %.2f%% | %.2f%% | %+.2f pt |\n", 100 * r.accuracy.value("reference", 0.0),
                  100 * r.accuracy.value("candidate", 0.0),
                  100 * (r.accuracy.value("candidate", 0.0) - r.accuracy.value("reference", 0.0)));
    o << buf;
  }
  if (r.deployment.contains("compute_layers")) {
    const json& d = r.deployment;
    o << "\nONNX Runtime (CPU): " << d.value("integer_layers", 0) << " of " << d.value("compute_layers", 0)
      << " Conv/MatMul/Gemm layers run as integer kernels";
    const size_t wo = d.value("weight_only", json::array()).size(), uf = d.value("unfused", json::array()).size();
    if (wo) o << "; " << wo << " weight-only DequantizeLinear (dequantized on every run: smaller, not faster)";
    if (uf) o << "; " << uf << " QDQ layers left float, first " << d["unfused"][0].value("node", "") << " ("
              << d["unfused"][0].value("why", "") << ")";
    // --act16: which tensors got 16 bits (ORT runs their layers in float, counted in `unfused`).
    const json wide = d.value("activations_16bit", json::array());
    if (!wide.empty()) {
      o << "; " << wide.size() << " activations at 16 bits:";
      for (const auto& v : wide) o << " " << v.get<std::string>();
    }
    o << "\n";
  }
  // A pruning target that was overshot or (with --best-effort) missed is said here, not only in the JSON.
  for (const auto& st : r.steps) {
    if (!st.is_object() || !st.contains("details") || !st["details"].is_object()) continue;
    const json& d = st["details"];
    if (!d.contains("target") || !d["target"].is_object()) continue;
    const json& t = d["target"];
    if (t.value("status", std::string("met")) != "met") o << "\nnote: " << t.value("note", std::string()) << "\n";
  }
  char buf[128];
  std::snprintf(buf, sizeof buf, "\ntime %.2f s, peak memory %s\n", r.seconds, human_bytes(static_cast<double>(r.peak_rss_bytes)).c_str());
  o << buf;
  return o.str();
}

std::string html_escape(const std::string& s) {
  std::string o;
  for (char c : s) {
    switch (c) {
      case '<': o += "&lt;"; break;
      case '>': o += "&gt;"; break;
      case '&': o += "&amp;"; break;
      case '"': o += "&quot;"; break;
      default: o += c;
    }
  }
  return o;
}

// ---------------- HTML ----------------
namespace {

std::string fmt(double v, int prec = 2) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", prec, v);
  return buf;
}

// Horizontal bar chart: one row per label, values scaled to the max; inline SVG.
std::string bar_chart(const std::string& title, const std::vector<std::pair<std::string, double>>& rows,
                      const std::string& unit, const std::string& color) {
  // A chart of all zeros (no pruning in a quantize-only run) says nothing: leave it out.
  if (std::all_of(rows.begin(), rows.end(), [](const auto& r) { return r.second == 0; })) return "";
  double maxv = 0;
  for (const auto& r : rows) maxv = std::max(maxv, r.second);
  if (maxv <= 0) maxv = 1;
  const int row_h = 16, label_w = 260, bar_w = 420;
  int h = static_cast<int>(rows.size()) * row_h + 28;
  std::ostringstream o;
  o << "<figure><figcaption>" << html_escape(title) << "</figcaption><svg xmlns='http://www.w3.org/2000/svg' width='"
    << label_w + bar_w + 90 << "' height='" << h << "' role='img' aria-label='" << html_escape(title) << "'>";
  int y = 4;
  for (const auto& [label, v] : rows) {
    double w = std::max(0.0, v) / maxv * bar_w;
    std::string lab = label.size() > 40 ? "…" + label.substr(label.size() - 39) : label;
    o << "<text x='" << label_w - 6 << "' y='" << y + 12 << "' text-anchor='end' font-size='11'>" << html_escape(lab) << "</text>"
      << "<rect x='" << label_w << "' y='" << y + 2 << "' width='" << fmt(w, 1) << "' height='" << row_h - 4
      << "' fill='" << color << "'><title>" << html_escape(label) << ": " << fmt(v, 3) << unit << "</title></rect>"
      << "<text x='" << label_w + w + 4 << "' y='" << y + 12 << "' font-size='10' fill='#444'>" << fmt(v, v < 10 ? 2 : 0)
      << html_escape(unit) << "</text>";
    y += row_h;
  }
  o << "</svg></figure>\n";
  return o.str();
}

// Task metric before/after (accuracy from labels today; "metric" names another one).
std::string accuracy_html(const Report& r) {
  if (!r.accuracy.contains("reference") || !r.accuracy["reference"].is_number()) return "";
  const std::string name = r.accuracy.value("metric", std::string("accuracy"));
  const double a = r.accuracy.value("reference", 0.0), b = r.accuracy.value("candidate", 0.0);
  std::ostringstream o;
  o << "<h2>Accuracy</h2><table><tr><th>metric</th><th>before</th><th>after</th><th>change</th></tr><tr><td>" << html_escape(name)
    << "</td><td>" << fmt(100 * a, 2) << "%</td><td>" << fmt(100 * b, 2) << "%</td><td>" << (b >= a ? "+" : "")
    << fmt(100 * (b - a), 2) << " pt</td></tr></table>";
  const std::string from = r.accuracy.value("labels_from", std::string());
  if (!from.empty()) o << "<p class='muted'>labels from the " << html_escape(from) << "</p>";
  if (r.latency_ms.contains("reference") && r.latency_ms["reference"].is_number()) {
    const double lr = r.latency_ms.value("reference", 0.0), lc = r.latency_ms.value("candidate", 0.0);
    o << "<p class='muted'>latency per batch on our executor: " << fmt(lr, 2) << " ms before, " << fmt(lc, 2) << " ms after</p>";
  }
  o << "\n";
  return o.str();
}

// Per-layer error the steps measured (quantize: relative weight error and SQNR per layer).
std::string layer_error_html(const Report& r) {
  std::ostringstream rows;
  std::vector<std::pair<std::string, double>> sqnr;
  for (const auto& st : r.steps) {
    const json d = st.value("details", json::object());
    if (!d.is_object() || !d.contains("layers") || !d["layers"].is_array()) continue;
    for (const auto& l : d["layers"]) {
      if (!l.is_object() || !l.contains("rel_error")) continue;
      const std::string node = l.value("node", std::string());
      rows << "<tr><td>" << html_escape(node) << "</td><td>" << html_escape(st.value("kind", std::string())) << "</td><td>" << l.value("bits", 0)
           << "</td><td>" << html_escape(l.value("method", std::string())) << "</td><td>" << fmt(l.value("rel_error", 0.0), 6) << "</td><td>"
           << fmt(l.value("sqnr_db", 0.0), 1) << "</td></tr>";
      sqnr.push_back({node, std::max(0.0, l.value("sqnr_db", 0.0))});
    }
  }
  if (sqnr.empty()) return "";
  return "<h2>Per-layer error</h2><table><tr><th>layer</th><th>step</th><th>bits</th><th>method</th>"
         "<th>weight rel. error ‖W−Ŵ‖²/‖W‖²</th><th>weight SQNR dB</th></tr>" + rows.str() + "</table>\n" +
         bar_chart("Weight SQNR per layer (dB, higher is closer to the original)", sqnr, " dB", "#4a7fb5");
}

}  // namespace

std::string report_html(const Report& r) {
  std::ostringstream o;
  o << "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>onnx-compress report: " << html_escape(r.input.name)
    << "</title><style>body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#222;max-width:1100px}"
       "table{border-collapse:collapse;margin:8px 0 20px}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}"
       "th{background:#f2f2f2}td:first-child,th:first-child{text-align:left}figure{margin:12px 0}"
       "figcaption{font-weight:600;margin-bottom:4px}h1{font-size:20px}h2{font-size:16px;margin-top:28px}"
       ".muted{color:#666}</style></head><body>\n";
  o << "<h1>onnx-compress " << html_escape(r.command) << ": " << html_escape(r.input.name) << " &rarr; " << html_escape(r.output.name) << "</h1>\n";
  o << "<p class='muted'>onnx-compress " << html_escape(r.tool_version) << ", " << html_escape(r.created) << ", input sha256 "
    << html_escape(r.input.sha256.substr(0, 16)) << "…, " << fmt(r.seconds) << " s, peak memory "
    << html_escape(human_bytes(static_cast<double>(r.peak_rss_bytes))) << "</p>\n";
  o << "<h2>Totals</h2><table><tr><th></th><th>before</th><th>after</th><th>ratio</th></tr>";
  auto row = [&](const std::string& k, double b, double a, bool bytes) {
    o << "<tr><td>" << k << "</td><td>" << html_escape(bytes ? human_bytes(b) : human_count(b)) << "</td><td>"
      << html_escape(bytes ? human_bytes(a) : human_count(a)) << "</td><td>" << (b > 0 ? fmt(a / b, 3) + "x" : "") << "</td></tr>";
  };
  row("file size", static_cast<double>(r.before.file_bytes), static_cast<double>(r.after.file_bytes), true);
  row("weights", static_cast<double>(r.before.weight_bytes), static_cast<double>(r.after.weight_bytes), true);
  row("params", static_cast<double>(r.before.params), static_cast<double>(r.after.params), false);
  row("MACs", static_cast<double>(r.before.macs), static_cast<double>(r.after.macs), false);
  o << "</table>\n";
  o << accuracy_html(r);
  if (!r.fidelity.empty()) {
    o << "<h2>Fidelity</h2><table><tr><th>output</th><th>cosine</th><th>SQNR dB</th><th>max abs err</th><th>top-1 agreement</th></tr>";
    for (auto it = r.fidelity.begin(); it != r.fidelity.end(); ++it)
      if (it->is_object())
        o << "<tr><td>" << html_escape(it.key()) << "</td><td>" << fmt(it->value("cosine", 0.0), 5) << "</td><td>"
          << fmt(it->value("sqnr_db", 0.0), 1) << "</td><td>" << fmt(it->value("max_abs", 0.0), 4) << "</td><td>"
          << fmt(100 * it->value("top1_agreement", 0.0), 1) << "%</td></tr>";
    o << "</table>\n";
  }
  if (r.deployment.contains("compute_layers")) {
    const json& d = r.deployment;
    o << "<h2>Deployment check</h2><p>" << html_escape(d.value("runtime", std::string())) << ": <b>" << d.value("integer_layers", 0)
      << " of " << d.value("compute_layers", 0) << "</b> Conv/MatMul/Gemm layers run as integer kernels";
    const json ops = d.value("integer_ops", json::object());
    for (auto it = ops.begin(); it != ops.end(); ++it) o << " · " << it.value().get<int>() << " " << html_escape(it.key());
    o << "</p>";
    bool any = false;
    for (const char* kind : {"weight_only", "unfused", "unaligned"})
      for (const auto& f : d.value(kind, json::array())) {
        if (!any) o << "<table><tr><th>finding</th><th>node</th><th>op</th><th>why</th></tr>", any = true;
        o << "<tr><td>" << kind << "</td><td>" << html_escape(f.value("node", "")) << "</td><td>" << html_escape(f.value("op", ""))
          << "</td><td>" << html_escape(f.value("why", "")) << "</td></tr>";
      }
    if (any) o << "</table>";
    if (!d.value("float_ops", json::object()).empty()) {
      o << "<p>Float operators between integer layers:";
      for (auto it = d["float_ops"].begin(); it != d["float_ops"].end(); ++it)
        o << " " << html_escape(it.key()) << " " << it.value().get<int>();
      o << "</p>";
    }
  }
  o << layer_error_html(r);
  // Size breakdown by op type.
  std::map<std::string, double> size_before, size_after;
  for (const auto& l : r.layers) {
    size_before[l.op] += static_cast<double>(l.params_before) * 4;
    size_after[l.op] += static_cast<double>(l.params_after) * l.bits / 8;
  }
  std::vector<std::pair<std::string, double>> sizes;
  for (const auto& [op, b] : size_before) {
    sizes.push_back({op + " before", b / 1024});
    sizes.push_back({op + " after", size_after[op] / 1024});
  }
  o << "<h2>Charts</h2>\n" << bar_chart("Weight size by layer type (KiB)", sizes, " KiB", "#4a7fb5");
  std::vector<std::pair<std::string, double>> bits, sparsity;
  std::map<std::string, std::vector<std::pair<std::string, double>>> scores;
  for (const auto& l : r.layers) {
    bits.push_back({l.name, l.bits});
    sparsity.push_back({l.name, 100 * l.sparsity});
    for (const auto& [k, v] : l.scores) scores[k].push_back({l.name, v});
  }
  o << bar_chart("Weight bits per layer", bits, " b", "#5b9e5b");
  o << bar_chart("Sparsity per layer (% of weights removed)", sparsity, "%", "#c9743c");
  for (const auto& [k, rows] : scores) o << bar_chart("Importance score: " + k, rows, "", "#8a63b8");
  if (r.extra.contains("blocks") && r.extra["blocks"].is_array()) {
    std::vector<std::pair<std::string, double>> imp, ratio, kept;
    for (const auto& b : r.extra["blocks"]) {
      imp.push_back({b.value("name", ""), b.value("importance", 0.0)});
      ratio.push_back({b.value("name", ""), 100 * b.value("ratio", 0.0)});
      const double before = b.value("units_before", 0.0);
      if (before > 0) kept.push_back({b.value("name", ""), 100 * b.value("units_after", 0.0) / before});
    }
    o << bar_chart("Block importance (CFSP)", imp, "", "#b55a7a") << bar_chart("Block pruning ratio (CFSP)", ratio, "%", "#c9743c");
    if (!kept.empty()) o << bar_chart("Channels/heads kept per block (CFSP, % of units)", kept, "%", "#5b9e5b");
  }
  o << "<h2>Layers</h2><table><tr><th>layer</th><th>op</th><th>weight before</th><th>weight after</th><th>params</th>"
       "<th>MACs</th><th>bits</th><th>sparsity</th></tr>";
  auto dims = [](const std::vector<int64_t>& d) {
    std::string s;
    for (size_t i = 0; i < d.size(); ++i) s += (i ? "×" : "") + std::to_string(d[i]);
    return s;
  };
  for (const auto& l : r.layers)
    o << "<tr><td>" << html_escape(l.name) << "</td><td>" << html_escape(l.op) << "</td><td>" << dims(l.weight_shape_before) << "</td><td>"
      << dims(l.weight_shape_after) << "</td><td>" << html_escape(human_count(static_cast<double>(l.params_after))) << "</td><td>"
      << html_escape(human_count(static_cast<double>(l.macs_after))) << "</td><td>" << fmt(l.bits, 0) << "</td><td>"
      << fmt(100 * l.sparsity, 1) << "%</td></tr>";
  o << "</table>\n<h2>Settings</h2><pre>" << html_escape(r.settings.dump(2)) << "</pre>\n</body></html>\n";
  return o.str();
}

}  // namespace oc
