// onnx-compress compare R1.json R2.json ... [--html FILE] [--json]
#include <iostream>

#include "cli/command.h"
#include "compressor/compare.h"
#include "graph/file_io.h"

namespace oc::cli {
namespace {

int run_compare(const std::vector<std::string>& args) {
  po::options_description opts("compare options");
  std::vector<std::string> files;
  std::string html;
  opts.add_options()
    ("reports", po::value(&files)->required()->multitoken(), "report JSON files (from prune, quantize, compress)")
    ("html", po::value(&html), "also write a self-contained HTML comparison")
    ("json", po::bool_switch(), "print JSON instead of tables");
  po::variables_map vm;
  if (!parse_args(args, "onnx-compress compare R1.json R2.json ... [--html FILE] [--json]", opts, {{"reports", -1}}, vm))
    return 0;
  std::vector<ComparedRun> runs;
  for (const auto& f : files) {
    Report r = read_report(f);
    std::string label = std::filesystem::path(f).stem().string();
    runs.push_back({label, std::move(r)});
  }
  Comparison c = compare_reports(runs);
  if (vm["json"].as<bool>()) std::cout << comparison_json(c).dump(2) << "\n";
  else std::cout << comparison_text(c);
  if (!html.empty()) write_file_atomic(html, comparison_html(c));
  return 0;
}

RegisterCommand reg({"compare", "compare compression reports side by side", run_compare});

}  // namespace
}  // namespace oc::cli
