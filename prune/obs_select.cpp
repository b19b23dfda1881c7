// Structured OBS selection (see obs_select.h).
#include "prune/obs_select.h"

#include <Eigen/Dense>
#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <set>

#include "engine/dense_solve.h"

namespace oc {

namespace {

using MatD = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

// (H + λI)⁻¹, λ = damping · mean diag (the compensation's damping).
MatD damped_inverse(const ObsLayer& l, double damping) {
  const int64_t F = l.features;
  MatD H = Eigen::Map<const MatD>(l.h.data(), F, F);
  double mean = F ? H.diagonal().mean() : 0;
  double lambda = damping * mean;
  if (!(lambda > 0)) lambda = 1e-8;
  H.diagonal().array() += lambda;
  return spd_inverse(H);
}

// From kSinglePrecisionSolveMin features on, the greedy's working W and H⁻¹ are single precision
// and their rank-k downdates run on oneDNN's sgemm (engine/dense_solve.h): in double, Eigen's
// products at the build's SSE2 width were most of a ResNet-50 selection's time (14.7 of 26 s). H⁻¹
// itself comes from a single-precision factor at those sizes (spd_inverse), so float storage loses
// little it had; the k × k blocks are solved in double. Smaller groups stay in double throughout.
using MatF = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

// E of removing features `u` given the current W and H⁻¹: tr(W_U (H⁻¹_UU)⁻¹ W_Uᵀ).
template <typename Mat>
double block_error(const Mat& W, const Mat& Hi, const std::vector<int64_t>& u) {
  const int64_t k = static_cast<int64_t>(u.size());
  if (k == 0) return 0;
  MatD A(k, k), WU(W.rows(), k);
  for (int64_t i = 0; i < k; ++i) {
    for (int64_t j = 0; j < k; ++j) A(i, j) = Hi(u[i], u[j]);
    WU.col(i) = W.col(u[i]).template cast<double>();
  }
  if (k == 1) {
    const double a = A(0, 0);
    return a > 0 ? WU.squaredNorm() / a : std::numeric_limits<double>::infinity();
  }
  Eigen::LDLT<MatD> ldlt(A);
  MatD X = ldlt.solve(WU.transpose());  // k × rows
  double e = (WU.transpose().cwiseProduct(X)).sum();
  return std::isfinite(e) ? e : std::numeric_limits<double>::infinity();
}

// Removes features `u`: W ← W − W_U A⁻¹ H⁻¹_U,: ; H⁻¹ ← H⁻¹ − H⁻¹_:,U A⁻¹ H⁻¹_U,: (A = H⁻¹_UU).
void remove_block(MatD& W, MatD& Hi, const std::vector<int64_t>& u) {
  const int64_t k = static_cast<int64_t>(u.size());
  if (k == 0) return;
  MatD A(k, k), HU(Hi.rows(), k), WU(W.rows(), k);
  for (int64_t i = 0; i < k; ++i) {
    for (int64_t j = 0; j < k; ++j) A(i, j) = Hi(u[i], u[j]);
    HU.col(i) = Hi.col(u[i]);
    WU.col(i) = W.col(u[i]);
  }
  Eigen::LDLT<MatD> ldlt(A);
  const MatD AinvHUt = ldlt.solve(HU.transpose());  // k × F
  W.noalias() -= WU * AinvHUt;
  Hi.noalias() -= HU * AinvHUt;
  for (int64_t i : u) {  // exactly removed (rounding leaves tiny values)
    W.col(i).setZero();
    Hi.row(i).setZero();
    Hi.col(i).setZero();
  }
}

// The same in single precision on sgemm.
void remove_block(MatF& W, MatF& Hi, const std::vector<int64_t>& u) {
  const int64_t k = static_cast<int64_t>(u.size());
  if (k == 0) return;
  const int64_t F = Hi.rows(), R = W.rows();
  MatD A(k, k), HUt(k, F);
  MatF HU(F, k), WU(R, k);
  for (int64_t i = 0; i < k; ++i) {
    for (int64_t j = 0; j < k; ++j) A(i, j) = Hi(u[i], u[j]);
    HU.col(i) = Hi.col(u[i]);
    HUt.row(i) = Hi.col(u[i]).cast<double>().transpose();
    WU.col(i) = W.col(u[i]);
  }
  Eigen::LDLT<MatD> ldlt(A);
  const MatF AinvHUt = ldlt.solve(HUt).cast<float>();  // k × F
  sgemm('N', 'N', R, F, k, -1.f, WU.data(), k, AinvHUt.data(), F, 1.f, W.data(), F, "structured OBS");
  sgemm('N', 'N', F, F, k, -1.f, HU.data(), k, AinvHUt.data(), F, 1.f, Hi.data(), F, "structured OBS");
  for (int64_t i : u) {  // exactly removed (rounding leaves tiny values)
    W.col(i).setZero();
    Hi.row(i).setZero();
    Hi.col(i).setZero();
  }
}

std::vector<int64_t> features_of(const std::vector<ObsLayer>& layers, size_t li, const std::vector<int>& units) {
  std::vector<int64_t> f;
  for (int u : units) {
    const auto& uf = layers[li].unit_features[static_cast<size_t>(u)];
    f.insert(f.end(), uf.begin(), uf.end());
  }
  return f;
}

}  // namespace

double obs_compensated_error(const std::vector<ObsLayer>& layers, const std::vector<int>& removed, double damping) {
  double e = 0;
  for (size_t li = 0; li < layers.size(); ++li) {
    const ObsLayer& l = layers[li];
    const MatD W = Eigen::Map<const MatD>(l.w.data(), l.rows, l.features);
    e += block_error(W, damped_inverse(l, damping), features_of(layers, li, removed));
  }
  return e;
}

namespace {

// tr(W H Wᵀ): the layer's output energy.
double output_energy(const ObsLayer& l, const MatD& W) {
  const MatD H = Eigen::Map<const MatD>(l.h.data(), l.features, l.features);
  return (W * H).cwiseProduct(W).sum();
}

// The same with W·H on sgemm, the sum in double.
double output_energy(const ObsLayer& l, const MatF& W) {
  const MatF H = Eigen::Map<const MatD>(l.h.data(), l.features, l.features).cast<float>();
  MatF WH(l.rows, l.features);
  sgemm('N', 'N', l.rows, l.features, l.features, 1.f, W.data(), l.features, H.data(), l.features, 0.f, WH.data(),
        l.features, "structured OBS");
  return WH.cast<double>().cwiseProduct(W.cast<double>()).sum();
}

template <typename Mat>
ObsGreedyResult greedy(const std::vector<ObsLayer>& layers, int num_units, const std::vector<char>& locked,
                       int max_remove, double damping, int batch) {
  using Scalar = typename Mat::Scalar;
  ObsGreedyResult r;
  std::vector<Mat> W, Hi;
  for (const auto& l : layers) {
    W.push_back(Eigen::Map<const MatD>(l.w.data(), l.rows, l.features).cast<Scalar>());
    Hi.push_back(damped_inverse(l, damping).cast<Scalar>());
    r.energy += output_energy(l, W.back());
  }
  std::vector<char> gone(static_cast<size_t>(num_units), 0);
  int candidates = 0;
  for (int u = 0; u < num_units; ++u) candidates += !(u < static_cast<int>(locked.size()) && locked[u]);
  max_remove = std::min(max_remove, candidates);
  if (batch <= 0) batch = std::max(1, (max_remove + 63) / 64);
  double total = 0;
  while (static_cast<int>(r.order.size()) < max_remove) {
    std::vector<std::pair<double, int>> cost;
    for (int u = 0; u < num_units; ++u) {
      if (gone[u] || (u < static_cast<int>(locked.size()) && locked[u])) continue;
      double e = 0;
      for (size_t li = 0; li < layers.size(); ++li) e += block_error(W[li], Hi[li], layers[li].unit_features[u]);
      cost.push_back({e, u});
    }
    if (cost.empty()) break;
    const int take = std::min<int>({batch, max_remove - static_cast<int>(r.order.size()), static_cast<int>(cost.size())});
    std::partial_sort(cost.begin(), cost.begin() + take, cost.end());
    std::vector<int> step;
    for (int i = 0; i < take; ++i) step.push_back(cost[i].second);
    // The error of the step's units removed together (exact; equals the single cost for one unit).
    double e = 0;
    for (size_t li = 0; li < layers.size(); ++li) {
      const auto f = features_of(layers, li, step);
      e += block_error(W[li], Hi[li], f);
      remove_block(W[li], Hi[li], f);
    }
    // Within a step, units go in the order of their own costs; the step's error is spread over them.
    double acc = 0, sum_single = 0;
    for (int i = 0; i < take; ++i) sum_single += cost[i].first;
    for (int i = 0; i < take; ++i) {
      acc += sum_single > 0 ? e * cost[i].first / sum_single : e / take;
      r.order.push_back(step[i]);
      r.error.push_back(total + acc);
      gone[step[i]] = 1;
    }
    total += e;
  }
  return r;
}

}  // namespace

ObsGreedyResult obs_greedy(const std::vector<ObsLayer>& layers, int num_units, const std::vector<char>& locked,
                           int max_remove, double damping, int batch) {
  int64_t widest = 0;
  for (const auto& l : layers) widest = std::max(widest, l.features);
  return widest >= kSinglePrecisionSolveMin ? greedy<MatF>(layers, num_units, locked, max_remove, damping, batch)
                                            : greedy<MatD>(layers, num_units, locked, max_remove, damping, batch);
}

std::vector<ObsLayer> obs_group_layers(const Model& m, const ChannelDeps& d, int g, const CalibrationStats& stats) {
  const Graph& graph = m.graph;
  const ChannelGroup& gr = d.groups[static_cast<size_t>(g)];
  std::vector<ObsLayer> out;
  std::set<int> seen;
  for (const auto& p : gr.params) {
    if (p.role != ParamSlice::Role::Consumer || p.input != 1 || !seen.insert(p.node).second) continue;
    const Node& n = graph.nodes[static_cast<size_t>(p.node)];
    const bool conv = n.op_type == "Conv";
    if (!conv && n.op_type != "Gemm" && n.op_type != "MatMul") continue;
    if (conv && n.attr_int("group", 1) != 1) continue;
    auto it = stats.grams.find(n.name);
    const Tensor* t = graph.initializer(n.input(1));
    if (it == stats.grams.end() || !t || t->dtype != DType::Float || it->second.groups != 1) continue;
    const GramStat& gs = it->second;
    int64_t per = 1;
    for (size_t i = 2; conv && i < t->dims.size(); ++i) per *= t->dims[i];
    const int64_t nidx = t->dims[static_cast<size_t>(p.axis)];
    const int64_t F = nidx * per;
    if (gs.features != F || static_cast<int64_t>(gs.xtx.size()) != F * F || gs.rows <= 0) continue;
    if (F > kObsMaxFeatures) continue;
    if (!conv && t->dims.size() != 2) continue;
    const int64_t rows = conv ? t->dims[0] : t->dims[static_cast<size_t>(1 - p.axis)];
    // A constant feature where the layer has a bias slot: the bias takes up a removed channel's mean.
    bool bias = conv || n.op_type == "Gemm";
    if (n.op_type == "Gemm" && (n.attr_float("alpha", 1) != 1.f || n.attr_float("beta", 1) != 1.f)) bias = false;
    if (bias && n.inputs.size() > 2 && !n.input(2).empty()) {
      const Tensor* b = graph.initializer(n.input(2));
      if (!b || b->numel() != rows) bias = false;
    }
    // Units of each weight index (all channels sharing an index must be one unit).
    const ChannelSpace& s = d.spaces.at(p.value);
    std::vector<int> unit_of_idx(static_cast<size_t>(nidx), -1);
    bool ok = true;
    for (int64_t c = 0; c < s.channels && ok; ++c) {
      const int64_t i = p.index(c);
      const int u = d.unit_of(p.value, c);
      if (i < 0 || i >= nidx) { ok = false; break; }
      if (unit_of_idx[static_cast<size_t>(i)] >= 0 && unit_of_idx[static_cast<size_t>(i)] != u) ok = false;
      unit_of_idx[static_cast<size_t>(i)] = u;
    }
    if (!ok) continue;
    ObsLayer l;
    l.rows = rows;
    l.features = F + (bias ? 1 : 0);
    const int64_t FA = l.features;
    l.h.assign(static_cast<size_t>(FA * FA), 0.0);
    for (int64_t i = 0; i < F; ++i)
      for (int64_t j = 0; j < F; ++j) l.h[static_cast<size_t>(i * FA + j)] = gs.xtx[static_cast<size_t>(i * F + j)];
    if (bias) {
      for (int64_t i = 0; i < F; ++i) {
        l.h[static_cast<size_t>(i * FA + F)] = gs.col_sum[static_cast<size_t>(i)];
        l.h[static_cast<size_t>(F * FA + i)] = gs.col_sum[static_cast<size_t>(i)];
      }
      l.h[static_cast<size_t>(F * FA + F)] = static_cast<double>(gs.rows);
    }
    const std::vector<float> v = t->to_float();
    l.w.assign(static_cast<size_t>(rows * FA), 0.0);
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c = 0; c < nidx; ++c)
        for (int64_t k = 0; k < per; ++k) {
          const int64_t f = c * per + k;
          const double w = conv ? v[static_cast<size_t>((r * nidx + c) * per + k)]
                                : (p.axis == 1 ? v[static_cast<size_t>(r * nidx + c)] : v[static_cast<size_t>(c * rows + r)]);
          l.w[static_cast<size_t>(r * FA + f)] = w;
        }
    // The bias column of W: the layer's output mean is kept by the constant feature; its own weight
    // (the bias) never goes, so its value does not enter any removal error except through H.
    l.unit_features.assign(static_cast<size_t>(gr.num_units), {});
    for (int64_t c = 0; c < nidx; ++c) {
      const int u = unit_of_idx[static_cast<size_t>(c)];
      if (u < 0) continue;
      for (int64_t k = 0; k < per; ++k) l.unit_features[static_cast<size_t>(u)].push_back(c * per + k);
    }
    out.push_back(std::move(l));
  }
  return out;
}

std::vector<double> obs_greedy_scores(const Model& m, const ChannelDeps& d, int g, const CalibrationStats& stats,
                                      double damping, double max_ratio) {
  const ChannelGroup& gr = d.groups[static_cast<size_t>(g)];
  std::vector<ObsLayer> layers = obs_group_layers(m, d, g, stats);
  if (layers.empty()) return {};
  std::vector<char> locked(static_cast<size_t>(gr.num_units), 0);
  for (int u = 0; u < gr.num_units; ++u) locked[u] = d.unit_locked(g, u) ? 1 : 0;
  // Every unit the allocation may take: up to max_layer_ratio of the group (at least one kept).
  const int max_remove = std::max(0, std::min(gr.num_units - 1,
                                              static_cast<int>(std::ceil(max_ratio * gr.num_units))));
  ObsGreedyResult r = obs_greedy(layers, gr.num_units, locked, max_remove, damping);
  const double energy = r.energy > 0 ? r.energy : 1.0;
  std::vector<double> s(static_cast<size_t>(gr.num_units), -1);
  double last = 0;
  for (size_t i = 0; i < r.order.size(); ++i) {
    last = std::max(last, r.error[i] / energy);
    s[static_cast<size_t>(r.order[i])] = last + 1e-12 * static_cast<double>(i);  // ties keep the greedy order
  }
  // Units the greedy left (locked or beyond the cap) score above every removed one.
  const double top = std::max(last, 1e-9) * 2 + 1;
  for (int u = 0; u < gr.num_units; ++u)
    if (s[static_cast<size_t>(u)] < 0) s[static_cast<size_t>(u)] = top;
  return s;
}

}  // namespace oc
