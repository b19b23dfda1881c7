// Statistics correction of re-solved layers (see stat_correct.h).
#include "prune/stat_correct.h"

#include <Eigen/Dense>
#include <algorithm>
#include <cmath>
#include <map>

#include "graph/channel_deps.h"

namespace oc {

RowMoments row_moments(const std::vector<double>& w, const std::vector<double>& b, int64_t rows, int64_t features,
                       const std::vector<double>& gram, const std::vector<double>& col_sum, double n) {
  using MatD = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  RowMoments r;
  r.mean.assign(static_cast<size_t>(rows), 0);
  r.var.assign(static_cast<size_t>(rows), 0);
  if (n <= 0) return r;
  const Eigen::Map<const MatD> W(w.data(), rows, features), G(gram.data(), features, features);
  const Eigen::Map<const Eigen::VectorXd> s(col_sum.data(), features);
  const Eigen::VectorXd ws = W * s;                               // Σ_samples W x
  const Eigen::VectorXd wgw = (W * G).cwiseProduct(W).rowwise().sum();  // Σ_samples (W x)²
  for (int64_t k = 0; k < rows; ++k) {
    const double bk = b.empty() ? 0.0 : b[static_cast<size_t>(k)];
    const double mean = ws(k) / n + bk;
    const double e2 = (wgw(k) + 2 * bk * ws(k)) / n + bk * bk;
    r.mean[static_cast<size_t>(k)] = mean;
    r.var[static_cast<size_t>(k)] = std::max(0.0, e2 - mean * mean);
  }
  return r;
}

int match_row_moments(std::vector<double>& w, std::vector<double>& b, int64_t rows, int64_t features,
                      const RowMoments& have, const RowMoments& want, double max_scale) {
  if (b.size() != static_cast<size_t>(rows)) return 0;
  int changed = 0;
  for (int64_t k = 0; k < rows; ++k) {
    const size_t i = static_cast<size_t>(k);
    const double vh = have.var[i], vw = want.var[i];
    if (!(vh > 0) || !(vw > 0)) continue;
    const double s = std::clamp(std::sqrt(vw / vh), 1.0, max_scale);
    if (s == 1.0 && std::fabs(want.mean[i] - have.mean[i]) < 1e-12) continue;
    for (int64_t f = 0; f < features; ++f) w[static_cast<size_t>(k * features + f)] *= s;
    b[i] = s * b[i] + want.mean[i] - s * have.mean[i];
    ++changed;
  }
  return changed;
}

int correct_output_statistics(const Model& original, Model& pruned, const std::vector<OutputCorrection>& layers,
                              CalibrationSource& source, const ExecutorOptions& exec, bool variance) {
  struct Target {
    const OutputCorrection* layer;
    int node = -1;        // in pruned
    std::string value;    // its output (same name in both models)
    int add = -1, add_input = -1;  // MatMul: the Add holding the bias
    bool rows_of_w = false;        // Conv / Gemm transB: rows of W are the output channels
  };
  Graph& g = pruned.graph;
  std::vector<Target> targets;
  CalibrationPlan plan;
  for (const auto& l : layers) {
    Target t;
    t.layer = &l;
    t.node = g.node_index(l.node);
    if (t.node < 0 || original.graph.node_index(l.node) < 0) continue;
    const Node& n = g.nodes[static_cast<size_t>(t.node)];
    t.value = n.outputs.at(0);
    if (n.op_type == "MatMul") {
      const auto& users = g.consumers(t.value);
      const Tensor* w = g.initializer(n.input(1));
      if (users.size() != 1 || !w || w->dims.size() != 2) continue;
      const Node& a = g.nodes[static_cast<size_t>(users[0])];
      if (a.op_type != "Add" || a.inputs.size() != 2) continue;
      const int bi = a.input(0) == t.value ? 1 : 0;
      const Tensor* b = g.initializer(a.input(bi));
      if (!b || b->dtype != DType::Float || b->numel() != w->dims[1]) continue;
      t.add = users[0];
      t.add_input = bi;
    } else if (variance && (n.op_type == "Conv" || (n.op_type == "Gemm" && n.attr_int("transB", 0) != 0))) {
      const Tensor* b = n.inputs.size() > 2 ? g.initializer(n.input(2)) : nullptr;
      if (!b || b->dtype != DType::Float) continue;
      if (n.op_type == "Conv" && n.attr_int("group", 1) != 1) continue;
      t.rows_of_w = true;
    } else {
      continue;
    }
    plan.channels[t.value] = n.op_type == "Conv" ? 1 : -1;
    targets.push_back(t);
  }
  if (targets.empty()) return 0;
  CalibrationStats s0 = calibrate(original, source, plan, nullptr, exec);
  CalibrationStats s1 = calibrate(pruned, source, plan, nullptr, exec);
  int changed = 0;
  for (const Target& t : targets) {
    auto a = s0.channels.find(t.value), b = s1.channels.find(t.value);
    if (a == s0.channels.end() || b == s1.channels.end()) continue;
    const ChannelStat &c0 = a->second, &c1 = b->second;
    const int64_t R = static_cast<int64_t>(c1.sum.size());
    std::vector<int64_t> rows = t.layer->rows;
    if (rows.empty())
      for (int64_t r = 0; r < R; ++r) rows.push_back(r);
    if (static_cast<int64_t>(rows.size()) != R) continue;
    bool ok = true;
    for (int64_t r : rows) ok = ok && r >= 0 && r < static_cast<int64_t>(c0.sum.size());
    if (!ok || c0.count <= 0 || c1.count <= 0) continue;
    auto var = [](const ChannelStat& c, size_t k) {
      const double m = c.mean(k);
      return std::max(0.0, c.sum_sq[k] / static_cast<double>(c.count) - m * m);
    };
    if (t.add >= 0) {
      const Node& an = g.nodes[static_cast<size_t>(t.add)];
      const Tensor* bt = g.initializer(an.input(t.add_input));
      std::vector<float> bv = bt->to_float();
      for (int64_t k = 0; k < R; ++k)
        bv[static_cast<size_t>(k)] += static_cast<float>(c0.mean(static_cast<size_t>(rows[k])) - c1.mean(static_cast<size_t>(k)));
      set_node_constant(g, t.add, t.add_input, Tensor::from_float(bt->name, bt->dims, bv));
      ++changed;
      continue;
    }
    // Conv / Gemm rows: scale about the mean to the original variance (the mean is fitted already).
    const Node& n = g.nodes[static_cast<size_t>(t.node)];
    const Tensor* wt = g.initializer(n.input(1));
    const Tensor* bt = g.initializer(n.input(2));
    if (!wt || !bt || wt->dims[0] != R || bt->numel() != R) continue;
    std::vector<float> wv = wt->to_float(), bv = bt->to_float();
    const int64_t per = wt->numel() / R;
    for (int64_t k = 0; k < R; ++k) {
      const double v1 = var(c1, static_cast<size_t>(k)), v0 = var(c0, static_cast<size_t>(rows[k]));
      if (!(v1 > 0) || !(v0 > 0)) continue;
      const double sc = std::clamp(std::sqrt(v0 / v1), 1.0, 2.0);
      const double m1 = c1.mean(static_cast<size_t>(k)), m0 = c0.mean(static_cast<size_t>(rows[k]));
      for (int64_t f = 0; f < per; ++f) wv[static_cast<size_t>(k * per + f)] *= static_cast<float>(sc);
      bv[static_cast<size_t>(k)] = static_cast<float>(sc * bv[static_cast<size_t>(k)] + m0 - sc * m1);
    }
    set_node_constant(g, t.node, 1, Tensor::from_float(wt->name, wt->dims, wv));
    set_node_constant(g, t.node, 2, Tensor::from_float(bt->name, bt->dims, bv));
    ++changed;
  }
  g.invalidate();
  return changed;
}

}  // namespace oc
