// Unit importance (see importance.h).
#include "prune/importance.h"

#include <cmath>
#include <functional>
#include <map>
#include <random>

#include "graph/errors.h"
#include "prune/obs_select.h"

namespace oc {

namespace {

// Per index along `axis`: (Σ|w|, Σw²) over the rest of the tensor, and the per-index row sums
// weighted by a per-feature factor for OBS (features = index·per + k in the trailing dims).
struct SliceSums {
  std::vector<double> l1, sq;
};
SliceSums slice_sums(const Tensor& t, int axis) {
  std::vector<float> v = t.to_float();
  int64_t outer = 1, inner = 1;
  for (int i = 0; i < axis; ++i) outer *= t.dims[i];
  for (size_t i = axis + 1; i < t.dims.size(); ++i) inner *= t.dims[i];
  int64_t n = t.dims[axis];
  SliceSums s{std::vector<double>(n, 0), std::vector<double>(n, 0)};
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t c = 0; c < n; ++c)
      for (int64_t k = 0; k < inner; ++k) {
        double x = v[(o * n + c) * inner + k];
        s.l1[c] += std::fabs(x);
        s.sq[c] += x * x;
      }
  return s;
}

// Σ_i Σ_{f∈c} W_if²·H_ff for a consumer weight (Conv [Cout, Cin, k..]: axis 1; Gemm/MatMul K axis).
// H_ff from the Gram, or from its diagonal alone (block-sequential calibration keeps only that of
// layers too wide for structured OBS: compressor/step_prune.cpp).
std::vector<double> obs_scores(const Tensor& t, int axis, int64_t features, const std::function<double(int64_t)>& h_diag) {
  std::vector<float> v = t.to_float();
  int64_t n = t.dims[axis];
  std::vector<double> s(n, 0);
  bool conv = t.dims.size() > 2;
  int64_t per = 1;
  for (size_t i = 2; conv && i < t.dims.size(); ++i) per *= t.dims[i];
  if (features != n * per) return {};
  int64_t rows = conv ? t.dims[0] : t.dims[1 - axis];
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < n; ++c)
      for (int64_t k = 0; k < per; ++k) {
        int64_t f = c * per + k;
        double w = conv ? v[(r * n + c) * per + k] : (axis == 1 ? v[r * n + c] : v[c * rows + r]);
        s[c] += w * w * h_diag(f);
      }
  return s;
}

}  // namespace

Criterion parse_criterion(const std::string& s) {
  static const std::map<std::string, Criterion> t = {{"l1", Criterion::L1},         {"l2", Criterion::L2},
                                                     {"bn", Criterion::BN},         {"random", Criterion::Random},
                                                     {"activation", Criterion::Activation}, {"obs", Criterion::OBS},
                                                     {"cfsp", Criterion::CFSP},     {"obs-diag", Criterion::OBSDiag}};
  auto it = t.find(s);
  if (it == t.end()) throw InvalidArgument("unknown criterion '" + s + "' (l1, l2, bn, random, activation, obs, obs-diag, cfsp)");
  return it->second;
}
Aggregate parse_aggregate(const std::string& s) {
  static const std::map<std::string, Aggregate> t = {{"mean", Aggregate::Mean}, {"sum", Aggregate::Sum}, {"max", Aggregate::Max}};
  auto it = t.find(s);
  if (it == t.end()) throw InvalidArgument("unknown aggregation '" + s + "' (mean, sum, max)");
  return it->second;
}
const char* criterion_name(Criterion c) {
  static const char* names[] = {"l1", "l2", "bn", "random", "activation", "obs", "cfsp", "obs-diag"};
  return names[static_cast<int>(c)];
}

bool criterion_uses_grams(Criterion c) { return c == Criterion::OBS || c == Criterion::OBSDiag; }

UnitScores score_units(const Model& m, const ChannelDeps& d, Criterion crit, Aggregate agg, uint64_t seed,
                       const CalibrationStats* stats, double damping, double max_ratio) {
  const Graph& g = m.graph;
  UnitScores out;
  out.score.resize(d.groups.size());
  if ((crit == Criterion::Activation || criterion_uses_grams(crit) || crit == Criterion::CFSP) && !stats)
    throw InvalidArgument(std::string("criterion ") + criterion_name(crit) + " needs calibration data (--calib)");
  for (size_t gi = 0; gi < d.groups.size(); ++gi) {
    const ChannelGroup& gr = d.groups[gi];
    auto& sc = out.score[gi];
    sc.assign(gr.num_units, 0.0);
    if (gr.num_units == 0) continue;
    if (crit == Criterion::Random) {
      std::mt19937_64 rng(seed * 1000003u + gi);
      std::uniform_real_distribution<double> u(0.0, 1.0);
      for (auto& x : sc) x = u(rng);
      continue;
    }
    if (crit == Criterion::OBS) {
      // Structured OBS (prune/obs_select.h): relative output error after optimal compensation,
      // comparable across groups as it is (not divided by the group mean).
      auto s = obs_greedy_scores(m, d, static_cast<int>(gi), *stats, damping, max_ratio);
      if (!s.empty()) { sc = std::move(s); continue; }
      bool wide = false;  // consumers with Grams, all too wide for the greedy: diagonal OBS below
      for (const auto& p : gr.params) {
        if (p.role != ParamSlice::Role::Consumer) continue;
        const std::string& ln = g.nodes[p.node].name;
        wide = wide || (stats->grams.count(ln) && stats->grams.at(ln).features > kObsMaxFeatures) ||
               (!stats->grams.count(ln) && stats->columns.count(ln) && stats->columns.at(ln).features > kObsMaxFeatures);
      }
      if (wide)
        out.notes.push_back("group " + std::to_string(gi) + ": consumers wider than " + std::to_string(kObsMaxFeatures) +
                            " features, scored by obs-diag");
    }
    // Which members score under this criterion; fall back to magnitude when none applies.
    auto member_scores = [&](const ParamSlice& p, Criterion c) -> std::vector<double> {
      const Node& n = g.nodes[p.node];
      const Tensor* t = g.initializer(n.input(p.input));
      if (!t) return {};
      switch (c) {
        case Criterion::L1: return slice_sums(*t, p.axis).l1;
        case Criterion::L2: { auto s = slice_sums(*t, p.axis).sq; for (auto& x : s) x = std::sqrt(x); return s; }
        case Criterion::BN: {
          if (p.role != ParamSlice::Role::Norm || n.op_type != "BatchNormalization") return {};
          auto v = t->to_float();
          return std::vector<double>(v.begin(), v.end());
        }
        case Criterion::Activation:
        case Criterion::CFSP: {
          auto it = stats->channels.find(p.value);
          if (p.role != ParamSlice::Role::Consumer || it == stats->channels.end()) return {};
          auto s = slice_sums(*t, p.axis).l1;
          if (it->second.sum_sq.size() != s.size()) return {};
          for (size_t c = 0; c < s.size(); ++c) s[c] *= it->second.l2(c);
          return s;
        }
        case Criterion::OBS:
        case Criterion::OBSDiag: {
          if (p.role != ParamSlice::Role::Consumer) return {};
          if (auto it = stats->grams.find(n.name); it != stats->grams.end()) {
            const GramStat& gs = it->second;
            return obs_scores(*t, p.axis, gs.features, [&](int64_t f) { return gs.xtx[f * gs.features + f]; });
          }
          if (auto it = stats->columns.find(n.name); it != stats->columns.end() && it->second.groups == 1) {
            const ColumnStat& cs = it->second;
            return obs_scores(*t, p.axis, cs.features, [&](int64_t f) { return cs.sum_sq[static_cast<size_t>(f)]; });
          }
          return {};
        }
        default: return {};
      }
    };
    std::vector<std::vector<double>> per_member;  // [member][unit]
    auto collect = [&](Criterion c) {
      per_member.clear();
      for (const auto& p : gr.params) {
        auto s = member_scores(p, c);
        if (s.empty()) continue;
        std::vector<double> mu(gr.num_units, 0.0);
        for (size_t ch = 0; ch < s.size(); ++ch) mu[d.unit_of(p.value, static_cast<int64_t>(ch))] += std::fabs(s[ch]);
        per_member.push_back(std::move(mu));
      }
    };
    collect(crit);
    if (per_member.empty() && crit != Criterion::L1) {
      Criterion fb = crit == Criterion::Activation || crit == Criterion::CFSP ? Criterion::L1 : Criterion::L2;
      out.notes.push_back("group " + std::to_string(gi) + ": no " + criterion_name(crit) + " member, scored by " +
                          criterion_name(fb));
      collect(fb);
    }
    for (int u = 0; u < gr.num_units; ++u) {
      double a = 0;
      for (const auto& mu : per_member) a = agg == Aggregate::Max ? std::max(a, mu[u]) : a + mu[u];
      if (agg == Aggregate::Mean && !per_member.empty()) a /= static_cast<double>(per_member.size());
      sc[u] = a;
    }
    double mean = 0;
    for (double x : sc) mean += x;
    mean /= static_cast<double>(sc.size());
    if (mean > 0) for (auto& x : sc) x /= mean;
  }
  return out;
}

}  // namespace oc
