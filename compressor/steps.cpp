#include "compressor/steps.h"

namespace oc {

std::unique_ptr<Step> make_prune_step(const nlohmann::json& options);
std::unique_ptr<Step> make_quantize_step(const nlohmann::json& options);

namespace {
using Factory = std::unique_ptr<Step> (*)(const nlohmann::json&);
// A new technique is one entry here.
const std::map<std::string, Factory>& factories() {
  static const std::map<std::string, Factory> f = {{"prune", &make_prune_step}, {"quantize", &make_quantize_step}};
  return f;
}
}  // namespace

std::unique_ptr<Step> make_step(const std::string& kind, const nlohmann::json& options) {
  auto it = factories().find(kind);
  if (it == factories().end()) {
    std::string known;
    for (const auto& [k, f] : factories()) known += (known.empty() ? "" : ", ") + k;
    throw InvalidArgument("unknown step '" + kind + "' (known: " + known + ")");
  }
  return it->second(options);
}

std::vector<std::string> step_kinds() {
  std::vector<std::string> k;
  for (const auto& [name, f] : factories()) k.push_back(name);
  return k;
}

}  // namespace oc
