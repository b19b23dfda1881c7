// Step options as a JSON object keyed by the command-line long option names ("avg-bits",
// "target-macs", ...). Recipes and the subcommands both go through this reader, so a recipe step
// takes options exactly as the subcommand does. Numbers may be JSON numbers or numeric strings;
// unknown keys are an error naming the step.
#pragma once
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "engine/image_data.h"

namespace oc {

// Image preprocessing from the command line: --mean and --std as one number or a comma list (one
// per channel), --bgr, --resize shorter|exact|none. Throws InvalidArgument naming the option.
ImageOptions parse_image_options(const std::string& mean, const std::string& std, bool bgr, const std::string& resize);
nlohmann::json image_options_json(const ImageOptions& o);

class OptionReader {
 public:
  OptionReader(const nlohmann::json& options, std::string step);
  bool has(const std::string& key) const;
  std::optional<double> number(const std::string& key);
  std::optional<int64_t> integer(const std::string& key);
  std::optional<std::string> text(const std::string& key);
  std::vector<std::string> texts(const std::string& key);  // a string or an array of strings
  bool flag(const std::string& key);                       // true, "true", "1", or present as null
  // Throws InvalidArgument naming every key that was never read.
  void finish() const;
  const std::string& step() const { return step_; }

 private:
  nlohmann::json opts_;
  std::string step_;
  std::set<std::string> used_;
};

}  // namespace oc
