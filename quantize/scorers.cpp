// Layer importance scorers (table in scorers.h).
//   ZD:  z = (w − μ)/σ over the layer's weights, score = −|{|z| > 1}| / n
//   LIM: score = mean over calibration samples of −cos(x_in, x_out)
#include "quantize/scorers.h"

#include <cmath>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <random>

#include "graph/errors.h"

namespace oc::quant {

double zd_score(const std::vector<float>& w) {
  if (w.empty()) return 0.0;
  double mean = 0, sq = 0;
  for (float x : w) mean += x;
  mean /= static_cast<double>(w.size());
  for (float x : w) sq += (x - mean) * (x - mean);
  const double sd = std::sqrt(sq / static_cast<double>(w.size()));
  if (sd == 0) return 0.0;
  size_t out = 0;
  for (float x : w) out += std::fabs((x - mean) / sd) > 1.0;
  return -static_cast<double>(out) / static_cast<double>(w.size());
}

namespace {

using Scorer = std::function<std::vector<double>(const Graph&, const std::vector<WeightLayer>&, const ScoreInputs&)>;

std::vector<double> score_zd(const Graph& g, const std::vector<WeightLayer>& layers, const ScoreInputs&) {
  std::vector<double> s;
  for (const auto& l : layers) s.push_back(zd_score(layer_graph(g, l).initializer(l.weight)->to_float()));
  return s;
}

std::vector<double> score_lim(const Graph&, const std::vector<WeightLayer>& layers, const ScoreInputs& in) {
  if (!in.stats) throw InvalidArgument("scorer lim needs calibration data (--calib)");
  // −cos(x_in, x_out) needs x_out in x_in's space: layers that change the shape have no angle of
  // their own and take the mean of the layers that do.
  std::vector<double> s(layers.size(), 0.0);
  std::vector<bool> have(layers.size(), false);
  double sum = 0;
  int n = 0;
  for (size_t i = 0; i < layers.size(); ++i) {
    auto it = in.stats->blocks.find(layers[i].node);
    if (it == in.stats->blocks.end() || it->second.count == 0) continue;
    s[i] = it->second.mean_neg_cos();
    have[i] = true;
    sum += s[i];
    ++n;
  }
  if (n == 0) throw InvalidArgument("scorer lim: no layer has input and output of the same shape (try sensitivity or zd)");
  for (size_t i = 0; i < layers.size(); ++i)
    if (!have[i]) s[i] = sum / n;
  return s;
}

std::vector<double> score_sensitivity(const Graph&, const std::vector<WeightLayer>& layers, const ScoreInputs& in) {
  if (!in.sensitivity) throw InvalidArgument("scorer sensitivity needs calibration data and the executor (--calib)");
  std::vector<double> s;
  for (const auto& l : layers) s.push_back(in.sensitivity(l));
  return s;
}

std::vector<double> score_random(const Graph&, const std::vector<WeightLayer>& layers, const ScoreInputs& in) {
  std::mt19937_64 rng(in.seed);
  std::uniform_real_distribution<double> d(0.0, 1.0);
  std::vector<double> s;
  for (size_t i = 0; i < layers.size(); ++i) s.push_back(d(rng));
  return s;
}

std::vector<double> score_file(const std::string& path, const std::vector<WeightLayer>& layers) {
  std::ifstream f(path);
  if (!f) throw InvalidArgument("cannot read scores file " + path);
  nlohmann::json j;
  try {
    f >> j;
  } catch (const std::exception& e) {
    throw InvalidArgument("scores file " + path + " is not JSON: " + std::string(e.what()).substr(0, 120));
  }
  if (!j.is_object()) throw InvalidArgument("scores file " + path + " must be an object {\"layer\": score}");
  std::vector<double> s;
  for (const auto& l : layers) {
    if (!j.contains(l.node) || !j[l.node].is_number())
      throw InvalidArgument("scores file " + path + " has no numeric score for layer " + l.node);
    s.push_back(j[l.node].get<double>());
  }
  return s;
}

}  // namespace

std::vector<double> score_layers(const Graph& g, const std::vector<WeightLayer>& layers, const std::string& scorer,
                                 const ScoreInputs& in) {
  static const std::map<std::string, Scorer> table = {
      {"zd", score_zd}, {"lim", score_lim}, {"sensitivity", score_sensitivity}, {"random", score_random}};
  auto it = table.find(scorer);
  if (it != table.end()) return it->second(g, layers, in);
  if (scorer.size() > 5 && scorer.substr(scorer.size() - 5) == ".json") return score_file(scorer, layers);
  throw InvalidArgument("unknown scorer '" + scorer + "' (expected zd, lim, sensitivity, random or FILE.json)");
}

}  // namespace oc::quant
