// Structured OBS selection (prune/obs_select.h): the removal error it reports is the least-squares
// residual after optimal compensation, and its choices leave no more error than diagonal OBS.
#include <Eigen/Dense>
#include <catch2/catch.hpp>
#include <random>

#include "engine/calib_data.h"
#include "engine/calibrate.h"
#include "engine/dense_solve.h"
#include "engine/executor.h"
#include "engine/npy.h"
#include "graph/normalize.h"
#include "prune/obs_select.h"
#include "prune/prune.h"
#include "prune/sensitivity.h"
#include "support.h"

using namespace oc;
using namespace oc::test;

namespace {

using MatD = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

// A layer reading `units` channels of `per` features each, rows outputs, with strongly correlated
// inputs (X = Z·M for a random mixing M), so diag(H) misjudges what compensation can recover.
struct Case {
  ObsLayer layer;
  MatD X;  // samples × features
};
Case make_case(int units, int per, int rows, unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<double> n(0, 1);
  const int F = units * per, S = 400;
  MatD Z(S, F), M(F, F), W(rows, F);
  for (int i = 0; i < S; ++i) for (int j = 0; j < F; ++j) Z(i, j) = n(rng);
  for (int i = 0; i < F; ++i) for (int j = 0; j < F; ++j) M(i, j) = (i == j ? 1.0 : 0.0) + 1.5 * n(rng) / std::sqrt(F);
  for (int i = 0; i < rows; ++i) for (int j = 0; j < F; ++j) W(i, j) = n(rng) * (1 + (j % 3));
  Case c;
  c.X = Z * M;
  const MatD H = c.X.transpose() * c.X;
  c.layer.rows = rows;
  c.layer.features = F;
  c.layer.w.assign(W.data(), W.data() + W.size());
  c.layer.h.assign(H.data(), H.data() + H.size());
  c.layer.unit_features.resize(units);
  for (int u = 0; u < units; ++u)
    for (int k = 0; k < per; ++k) c.layer.unit_features[u].push_back(u * per + k);
  return c;
}

// ‖X Wᵀ − X_S W'ᵀ‖² with W' the (damped) least-squares fit on the kept features S.
double residual(const Case& c, const std::vector<int>& removed, double damping) {
  const ObsLayer& l = c.layer;
  const MatD W = Eigen::Map<const MatD>(l.w.data(), l.rows, l.features);
  std::vector<char> gone(l.features, 0);
  for (int u : removed) for (int64_t f : l.unit_features[u]) gone[f] = 1;
  std::vector<int> S;
  for (int f = 0; f < l.features; ++f) if (!gone[f]) S.push_back(f);
  MatD XS(c.X.rows(), S.size());
  for (size_t j = 0; j < S.size(); ++j) XS.col(j) = c.X.col(S[j]);
  const MatD H = c.X.transpose() * c.X;
  const double lambda = damping * H.diagonal().mean();
  MatD A = XS.transpose() * XS;
  A.diagonal().array() += lambda;
  // The damped fit is the exact fit of X augmented with sqrt(λ)·I rows (as H + λI is).
  MatD Xa(c.X.rows() + l.features, l.features);
  Xa << c.X, std::sqrt(lambda) * MatD::Identity(l.features, l.features);
  MatD XaS(Xa.rows(), S.size());
  for (size_t j = 0; j < S.size(); ++j) XaS.col(j) = Xa.col(S[j]);
  const MatD Wt = A.ldlt().solve(XaS.transpose() * Xa * W.transpose());
  return (Xa * W.transpose() - XaS * Wt).squaredNorm();
}

std::vector<int> diag_obs_lowest(const Case& c, int k) {
  const ObsLayer& l = c.layer;
  std::vector<std::pair<double, int>> s;
  for (size_t u = 0; u < l.unit_features.size(); ++u) {
    double v = 0;
    for (int64_t f : l.unit_features[u])
      for (int64_t r = 0; r < l.rows; ++r) v += l.w[r * l.features + f] * l.w[r * l.features + f] * l.h[f * l.features + f];
    s.push_back({v, static_cast<int>(u)});
  }
  std::sort(s.begin(), s.end());
  std::vector<int> out;
  for (int i = 0; i < k; ++i) out.push_back(s[i].second);
  return out;
}

}  // namespace

TEST_CASE("structured OBS error is the residual after optimal compensation", "[prune][obs]") {
  const Case c = make_case(6, 3, 5, 7);
  for (const std::vector<int>& rm : {std::vector<int>{2}, std::vector<int>{0, 4}, std::vector<int>{1, 3, 5}}) {
    const double e = obs_compensated_error({c.layer}, rm, 0.01), r = residual(c, rm, 0.01);
    CHECK(e == Approx(r).epsilon(1e-6));
  }
  // The greedy's cumulative error after k exact steps is the error of removing its k units at once.
  const ObsGreedyResult g = obs_greedy({c.layer}, 6, {}, 4, 0.01, 1);
  REQUIRE(g.order.size() == 4);
  for (size_t k = 1; k <= 4; ++k) {
    std::vector<int> first(g.order.begin(), g.order.begin() + k);
    CHECK(g.error[k - 1] == Approx(obs_compensated_error({c.layer}, first, 0.01)).epsilon(1e-6));
  }
}

TEST_CASE("structured OBS leaves no more error than diagonal OBS", "[prune][obs]") {
  int strictly = 0;
  for (unsigned seed : {1u, 2u, 3u, 4u, 5u}) {
    const Case c = make_case(12, 4, 6, seed);
    // One unit: the greedy's first pick is the exact optimum over all single removals.
    const ObsGreedyResult g = obs_greedy({c.layer}, 12, {}, 6, 0.01, 1);
    double best = 1e300;
    for (int u = 0; u < 12; ++u) best = std::min(best, obs_compensated_error({c.layer}, {u}, 0.01));
    CHECK(g.error[0] == Approx(best).epsilon(1e-9));
    CHECK(g.error[0] <= obs_compensated_error({c.layer}, diag_obs_lowest(c, 1), 0.01) * (1 + 1e-9));
    // Half the units: the greedy's set against diag OBS's lowest half, both optimally compensated.
    std::vector<int> greedy(g.order.begin(), g.order.begin() + 6);
    const double eg = obs_compensated_error({c.layer}, greedy, 0.01);
    const double ed = obs_compensated_error({c.layer}, diag_obs_lowest(c, 6), 0.01);
    CHECK(eg <= ed * (1 + 1e-9));
    INFO("seed " << seed << ": structured " << eg << ", diagonal " << ed);
    strictly += eg < 0.95 * ed;
  }
  CHECK(strictly >= 2);  // and clearly less on correlated inputs (measured: 11% and 14% less on seeds 2, 3; 3-4% on 4, 5; tie on 1)
}

TEST_CASE("structured OBS in single precision (576 features): the errors it reports are the double-precision ones", "[prune][obs]") {
  // From kSinglePrecisionSolveMin features the greedy's W and H⁻¹ are float and downdated on sgemm;
  // its cumulative errors must still be the compensated errors of its sets, computed in double.
  const Case c = make_case(64, 9, 16, 21);
  REQUIRE(c.layer.features >= kSinglePrecisionSolveMin);
  const ObsGreedyResult g = obs_greedy({c.layer}, 64, {}, 32, 0.01, 1);
  REQUIRE(g.order.size() == 32);
  for (size_t k : {size_t{1}, size_t{8}, size_t{32}}) {
    std::vector<int> first(g.order.begin(), g.order.begin() + k);
    CHECK(g.error[k - 1] == Approx(obs_compensated_error({c.layer}, first, 0.01)).epsilon(1e-3));
  }
  double best = 1e300;
  for (int u = 0; u < 64; ++u) best = std::min(best, obs_compensated_error({c.layer}, {u}, 0.01));
  CHECK(g.error[0] == Approx(best).epsilon(1e-3));
  std::vector<int> half(g.order.begin(), g.order.begin() + 32);
  CHECK(obs_compensated_error({c.layer}, half, 0.01) < obs_compensated_error({c.layer}, diag_obs_lowest(c, 32), 0.01));
}

TEST_CASE("structured OBS never removes locked units and sums over consumers", "[prune][obs]") {
  const Case a = make_case(8, 2, 4, 11), b = make_case(8, 2, 3, 12);
  std::vector<char> locked(8, 0);
  locked[0] = locked[5] = 1;
  const ObsGreedyResult g = obs_greedy({a.layer, b.layer}, 8, locked, 8, 0.01, 1);
  CHECK(g.order.size() == 6);
  for (int u : g.order) CHECK((u != 0 && u != 5));
  std::vector<int> first(g.order.begin(), g.order.begin() + 3);
  CHECK(g.error[2] == Approx(obs_compensated_error({a.layer}, first) + obs_compensated_error({b.layer}, first)).epsilon(1e-6));
}

// ---- End to end through prune_model ----


namespace {

// x [N,16] -> Gemm (h0 wide) -> Relu -> Gemm (h1 wide) -> Relu -> Gemm -> y [N,8]. `dup0`: the
// second half of the first hidden layer's filters copies the first half (times 1.5, a little
// noise), so half its channels are redundant given the rest: compensation can take them up.
Model mlp2(bool dup0, uint64_t seed) {
  Model m = new_model(13);
  Graph& g = m.graph;
  g.inputs.push_back(tensor_value("x", {-1, 16}));
  const int64_t dims[4] = {16, 32, 32, 8};
  std::string in = "x";
  for (int l = 0; l < 3; ++l) {
    const int64_t n = dims[l + 1], k = dims[l];
    Tensor w = random_tensor("w" + std::to_string(l), {n, k}, seed++, -0.5f, 0.5f);
    if (l == 0 && dup0) {
      auto v = w.to_float();
      auto noise = random_floats(static_cast<size_t>(n * k), seed++, -0.01f, 0.01f);
      for (int64_t r = n / 2; r < n; ++r)
        for (int64_t c = 0; c < k; ++c) v[r * k + c] = 1.5f * v[(r - n / 2) * k + c] + noise[r * k + c];
      w = Tensor::from_float(w.name, w.dims, v);
    }
    g.add_initializer(w);
    g.add_initializer(random_tensor("b" + std::to_string(l), {n}, seed++, 0.f, 0.2f));
    const bool last = l == 2;
    const std::string out = last ? "y" : "h" + std::to_string(l);
    Node fc = make_node("Gemm", {in, w.name, "b" + std::to_string(l)}, {last ? out : out + "_pre"}, "fc" + std::to_string(l));
    fc.set_attr_int("transB", 1);
    g.add_node(fc);
    if (!last) g.add_node(make_node("Relu", {out + "_pre"}, {out}, "relu" + std::to_string(l)));
    in = out;
  }
  g.outputs.push_back(tensor_value("y", {-1, 8}));
  normalize(m);
  return m;
}

double output_mse(const Model& a, const Model& ref, const std::map<std::string, Tensor>& in) {
  Executor ea(a), er(ref);
  auto x = ea.run(in).at("y").to_float(), r = er.run(in).at("y").to_float();
  double s = 0;
  for (size_t i = 0; i < x.size(); ++i) s += (x[i] - r[i]) * (x[i] - r[i]);
  return s / static_cast<double>(x.size());
}

PruneReport prune_with(Model& m, PruneOptions o, const fs::path& calib, bool sensitivity = false) {
  CalibrationSource src(calib.string(), m);
  CalibrationStats stats = calibrate(m, src, prune_calibration_plan(m, o));
  if (sensitivity)
    o.sensitivity = [&](const Model& mm, const ChannelDeps& d, const std::vector<std::vector<double>>& s,
                        const AllocationRules& rules) {
      SensitivityOptions so;
      so.stats = &stats;
      return measure_group_sensitivity(mm, d, s, rules, src, so);
    };
  return prune_model(m, o, &stats);
}

}  // namespace

TEST_CASE("structured OBS keeps the pruned model closer to the original than diagonal OBS", "[prune][obs]") {
  fs::path dir = temp_dir("obs_e2e");
  const Model m = mlp2(true, 21);
  write_npy(dir / "calib.npy", random_inputs(m, 5, 256).at("x"));
  PruneOptions o;
  o.ratio = 0.5;
  o.round_to = 1;
  o.ignore = {"fc2"};  // only the redundant first hidden group (the second one touches fc2)
  auto run = [&](Criterion c) {
    Model p = m;
    o.criterion = c;
    PruneReport r = prune_with(p, o, dir / "calib.npy");
    CHECK(r.layers_compensated >= 1);
    return output_mse(p, m, random_inputs(m, 99, 256));
  };
  const double greedy = run(Criterion::OBS), diag = run(Criterion::OBSDiag);
  INFO("held-out output mse: structured obs " << greedy << ", diagonal obs " << diag);
  CHECK(greedy < 0.5 * diag);
}

TEST_CASE("allocation by measured sensitivity meets the target and beats uniform where groups differ", "[prune][obs][sensitivity]") {
  fs::path dir = temp_dir("obs_sens");
  const Model m = mlp2(true, 31);
  write_npy(dir / "calib.npy", random_inputs(m, 6, 256).at("x"));
  PruneOptions o;
  o.criterion = Criterion::OBS;
  o.target_params = 0.6;
  o.round_to = 1;
  Model u = m, s = m;
  PruneReport ru = prune_with(u, o, dir / "calib.npy"), rs = prune_with(s, o, dir / "calib.npy", true);
  CHECK(ru.allocation == "uniform");
  REQUIRE(rs.allocation == "sensitivity");
  CHECK(rs.target.value("status", "") == "met");
  CHECK(std::fabs(rs.target.value("reached", 0.0) - 0.6) <= kPruneTargetTolerance + 1e-9);
  // The redundant first group measures less sensitive than the second and loses more units.
  REQUIRE(rs.sensitivity.size() >= 2);
  CHECK(rs.sensitivity[0][1] < rs.sensitivity[1][1]);
  CHECK(rs.groups[0].units_after < rs.groups[1].units_after);
  const auto held = random_inputs(m, 77, 256);
  const double eu = output_mse(u, m, held), es = output_mse(s, m, held);
  INFO("held-out output mse: uniform " << eu << ", sensitivity " << es);
  CHECK(es < eu);
}

TEST_CASE("sensitivity allocation on outputs that no probe changes falls back to uniform and meets the target",
          "[prune][obs][sensitivity]") {
  // torchvision's ViT with random weights: a zero-initialized classifier, logits 0 for every input.
  // Every probe measured S_g = 0, every group was free at any λ > 0 and the plan jumped from all to
  // as far as the rules allow (vit_b_16 --heads --target-macs 0.5 was refused at 0.436 / 1.000).
  fs::path dir = temp_dir("obs_sens_flat");
  Model m = mlp2(false, 41);
  for (const char* name : {"w2", "b2"}) {
    Tensor* t = m.graph.initializer(name);
    REQUIRE(t);
    *t = Tensor::from_float(t->name, t->dims, std::vector<float>(static_cast<size_t>(t->numel()), 0.f));
  }
  write_npy(dir / "calib.npy", random_inputs(m, 6, 64).at("x"));
  PruneOptions o;
  o.criterion = Criterion::OBS;
  o.target_params = 0.6;
  o.round_to = 1;
  PruneReport r = prune_with(m, o, dir / "calib.npy", true);
  REQUIRE(!r.sensitivity.empty());
  for (const auto& row : r.sensitivity)
    for (double v : row) CHECK(v == 0.0);
  CHECK(r.allocation == "uniform");
  bool noted = false;
  for (const auto& n : r.notes) noted = noted || n.find("no probe changed the outputs") != std::string::npos;
  CHECK(noted);
  CHECK(r.target.value("status", "") == "met");
  CHECK(std::fabs(r.target.value("reached", 0.0) - 0.6) <= kPruneTargetTolerance + 1e-9);
  // Uniform: both hidden groups lose units.
  REQUIRE(r.groups.size() >= 2);
  CHECK(r.groups[0].units_after < r.groups[0].units_before);
  CHECK(r.groups[1].units_after < r.groups[1].units_before);
}

TEST_CASE("sensitivity probes from the cached cut measure what full runs measure", "[prune][obs][sensitivity]") {
  fs::path dir = temp_dir("obs_sens_cut");
  const Model m = mlp2(true, 41);
  write_npy(dir / "calib.npy", random_inputs(m, 8, 96).at("x"));
  PruneOptions o;
  o.criterion = Criterion::OBS;
  o.ratio = 0.5;
  CalibrationSource src((dir / "calib.npy").string(), m);
  CalibrationStats stats = calibrate(m, src, prune_calibration_plan(m, o));
  ChannelDeps d = build_channel_deps(m, {});
  UnitScores us = score_units(m, d, Criterion::OBS, Aggregate::Mean, 0, &stats, 0.01, 0.9);
  AllocationRules rules;
  rules.round_to = 1;
  rules.skip.assign(d.groups.size(), 0);
  for (SensitivityLoss loss : {SensitivityLoss::MSE, SensitivityLoss::KL}) {
    SensitivityOptions cached, full;
    cached.stats = full.stats = &stats;
    cached.loss = full.loss = loss;
    full.cache_bytes = 0;
    const auto a = measure_group_sensitivity(m, d, us.score, rules, src, cached);
    const auto b = measure_group_sensitivity(m, d, us.score, rules, src, full);
    REQUIRE(a.size() == b.size());
    int measured = 0;
    for (size_t g = 0; g < a.size(); ++g)
      for (size_t r = 0; r < a[g].size(); ++r) {
        INFO("group " << g << " ratio " << r << " loss " << static_cast<int>(loss));
        CHECK(a[g][r] == Approx(b[g][r]).epsilon(1e-5).margin(1e-12));
        measured += a[g][r] > 0;
      }
    CHECK(measured >= 4);  // both hidden groups at every ratio
    // More removed, more loss, in the redundant group too.
    CHECK(a[0][2] > a[0][0]);
  }
}
