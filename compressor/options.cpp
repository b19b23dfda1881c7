#include "compressor/options.h"

#include "graph/errors.h"

namespace oc {

static std::vector<float> parse_floats(const std::string& s, const char* option) {
  std::vector<float> out;
  if (s.empty()) return out;
  size_t pos = 0;
  while (pos <= s.size()) {
    const size_t comma = std::min(s.find(',', pos), s.size());
    const std::string tok = s.substr(pos, comma - pos);
    try {
      size_t used = 0;
      out.push_back(std::stof(tok, &used));
      if (used != tok.size()) throw std::invalid_argument(tok);
    } catch (const std::exception&) {
      throw InvalidArgument(std::string("--") + option + " expects one number or one per channel (a,b,c), got '" + s + "'");
    }
    pos = comma + 1;
  }
  return out;
}

ImageOptions parse_image_options(const std::string& mean, const std::string& std, bool bgr, const std::string& resize) {
  ImageOptions o;
  o.mean = parse_floats(mean, "mean");
  o.std = parse_floats(std, "std");
  for (float v : o.std)
    if (!(v > 0)) throw InvalidArgument("--std values must be positive, got '" + std + "'");
  o.bgr = bgr;
  if (!resize.empty()) o.resize = parse_resize(resize);
  return o;
}

nlohmann::json image_options_json(const ImageOptions& o) {
  return {{"mean", o.mean}, {"std", o.std}, {"bgr", o.bgr}, {"resize", resize_name(o.resize)}};
}

OptionReader::OptionReader(const nlohmann::json& options, std::string step) : opts_(options), step_(std::move(step)) {
  if (opts_.is_null()) opts_ = nlohmann::json::object();
  if (!opts_.is_object()) throw InvalidArgument(step_ + ": options must be an object of option: value");
}

bool OptionReader::has(const std::string& key) const { return opts_.contains(key); }

std::optional<double> OptionReader::number(const std::string& key) {
  if (!opts_.contains(key)) return std::nullopt;
  used_.insert(key);
  const auto& v = opts_[key];
  if (v.is_number()) return v.get<double>();
  if (v.is_string()) {
    const std::string s = v.get<std::string>();
    try {
      size_t used = 0;
      double d = std::stod(s, &used);
      if (used == s.size()) return d;
    } catch (const std::exception&) {
    }
  }
  throw InvalidArgument(step_ + ": --" + key + " expects a number, got " + v.dump());
}

std::optional<int64_t> OptionReader::integer(const std::string& key) {
  auto d = number(key);
  if (!d) return std::nullopt;
  if (*d != static_cast<double>(static_cast<int64_t>(*d)))
    throw InvalidArgument(step_ + ": --" + key + " expects an integer, got " + opts_[key].dump());
  return static_cast<int64_t>(*d);
}

std::optional<std::string> OptionReader::text(const std::string& key) {
  if (!opts_.contains(key)) return std::nullopt;
  used_.insert(key);
  const auto& v = opts_[key];
  if (v.is_string()) return v.get<std::string>();
  if (v.is_number()) return v.dump();
  throw InvalidArgument(step_ + ": --" + key + " expects a string, got " + v.dump());
}

std::vector<std::string> OptionReader::texts(const std::string& key) {
  if (!opts_.contains(key)) return {};
  used_.insert(key);
  const auto& v = opts_[key];
  if (v.is_string()) return {v.get<std::string>()};
  std::vector<std::string> out;
  if (v.is_array()) {
    for (const auto& x : v) {
      if (!x.is_string()) throw InvalidArgument(step_ + ": --" + key + " expects strings, got " + x.dump());
      out.push_back(x.get<std::string>());
    }
    return out;
  }
  throw InvalidArgument(step_ + ": --" + key + " expects a string or a list of strings, got " + v.dump());
}

bool OptionReader::flag(const std::string& key) {
  if (!opts_.contains(key)) return false;
  used_.insert(key);
  const auto& v = opts_[key];
  if (v.is_boolean()) return v.get<bool>();
  if (v.is_null()) return true;
  if (v.is_string()) {
    std::string s = v.get<std::string>();
    if (s == "true" || s == "1" || s.empty()) return true;
    if (s == "false" || s == "0") return false;
  }
  throw InvalidArgument(step_ + ": --" + key + " is a switch (true/false), got " + v.dump());
}

void OptionReader::finish() const {
  std::string unknown;
  for (auto it = opts_.begin(); it != opts_.end(); ++it)
    if (!used_.count(it.key())) unknown += (unknown.empty() ? "" : ", ") + it.key();
  if (!unknown.empty()) throw InvalidArgument(step_ + ": unknown option(s) " + unknown);
}

}  // namespace oc
