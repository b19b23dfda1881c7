// Moment propagation from BatchNormalization statistics (see moments.h).
#include "prune/moments.h"

#include <algorithm>
#include <Eigen/Dense>
#include <cmath>
#include <functional>
#include <set>

#include "graph/channel_deps.h"

#include "graph/shape_inference.h"

namespace oc {

namespace {

constexpr double kPi = 3.14159265358979323846;

double phi(double a) { return std::exp(-0.5 * a * a) / std::sqrt(2 * kPi); }
double Phi(double a) { return 0.5 * std::erfc(-a / std::sqrt(2.0)); }

// Gauss–Hermite nodes and weights for E[f(Z)], Z ~ N(0, 1) (Golub–Welsch on the probabilists' form).
struct Quadrature {
  std::vector<double> x, w;
  Quadrature() {
    const int n = 32;
    Eigen::MatrixXd J = Eigen::MatrixXd::Zero(n, n);
    for (int i = 1; i < n; ++i) J(i, i - 1) = J(i - 1, i) = std::sqrt(static_cast<double>(i));
    Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> es(J);
    for (int i = 0; i < n; ++i) {
      x.push_back(es.eigenvalues()(i));
      double v = es.eigenvectors()(0, i);
      w.push_back(v * v);
    }
  }
};
const Quadrature& quadrature() {
  static const Quadrature q;
  return q;
}

std::pair<double, double> quad_moments(double mean, double var, const std::function<double(double)>& f) {
  const Quadrature& q = quadrature();
  double s = std::sqrt(std::max(var, 0.0)), e1 = 0, e2 = 0;
  for (size_t i = 0; i < q.x.size(); ++i) {
    double y = f(mean + s * q.x[i]);
    e1 += q.w[i] * y;
    e2 += q.w[i] * y * y;
  }
  return {e1, e2};
}

// The elementwise activation of node `n` as a scalar function; empty when not one we model.
std::function<double(double)> activation_fn(const Graph& g, const Node& n) {
  const std::string& op = n.op_type;
  if (op == "Sigmoid") return [](double x) { return 1.0 / (1.0 + std::exp(-x)); };
  if (op == "Tanh") return [](double x) { return std::tanh(x); };
  if (op == "LeakyRelu") {
    double a = n.attr_float("alpha", 0.01f);
    return [a](double x) { return x >= 0 ? x : a * x; };
  }
  if (op == "HardSigmoid") {
    double a = n.attr_float("alpha", 0.2f), b = n.attr_float("beta", 0.5f);
    return [a, b](double x) { return std::clamp(a * x + b, 0.0, 1.0); };
  }
  if (op == "HardSwish") return [](double x) { return x * std::clamp(x / 6.0 + 0.5, 0.0, 1.0); };
  if (op == "Clip") {
    double lo = -INFINITY, hi = INFINITY;
    auto scalar = [&](int i, double& out) {
      if (n.input(i).empty()) return true;
      const Tensor* t = g.initializer(n.input(i));
      if (!t || t->numel() != 1) return false;
      out = t->to_float()[0];
      return true;
    };
    if (n.inputs.size() > 1) {
      if (!scalar(1, lo) || !scalar(2, hi)) return {};
    } else {
      lo = n.attr_float("min", -INFINITY);
      hi = n.attr_float("max", INFINITY);
    }
    return [lo, hi](double x) { return std::clamp(x, lo, hi); };
  }
  return {};
}

}  // namespace

std::pair<double, double> relu_moments(double mean, double var) {
  double s = std::sqrt(std::max(var, 0.0));
  if (s < 1e-12) return {std::max(mean, 0.0), mean > 0 ? mean * mean : 0.0};
  double a = mean / s;
  double e1 = mean * Phi(a) + s * phi(a);
  double e2 = (mean * mean + var) * Phi(a) + mean * s * phi(a);
  return {e1, e2};
}

namespace {

// Channel covariance kept for values up to this many channels (C² doubles); wider ones keep the diagonal.
constexpr int64_t kMaxCovChannels = 1024;

struct Moments {
  std::vector<double> mean, var;
  Eigen::MatrixXd cov;  // C x C (diagonal = var) when known, else empty
};

// E[f'(u)] for u ~ N(mean, var) by Stein's lemma, Cov(f(u), u) / var: the gain that carries the
// covariance between channels through an elementwise function (first order).
double stein_gain(double mean, double var, const std::function<double(double)>& f) {
  if (var <= 1e-12) return 0.0;
  const Quadrature& q = quadrature();
  double s = std::sqrt(var), e = 0;
  for (size_t i = 0; i < q.x.size(); ++i) e += q.w[i] * f(mean + s * q.x[i]) * q.x[i];
  return e / s;
}

// Propagates moments through the main graph in node order; `on_value` sees each value's moments.
void propagate(const Model& m, const std::map<std::string, std::vector<int64_t>>& input_shapes,
               const std::function<void(const std::string&, const Moments&)>& on_value) {
  const Graph& g = m.graph;
  bool any_bn = false;
  for (const auto& n : g.nodes) any_bn |= n.op_type == "BatchNormalization";
  if (!any_bn) return;
  Model shapes = copy_without_weight_data(m);
  try {
    infer_shapes(shapes, input_shapes);
  } catch (const std::exception&) {
  }
  auto rank = [&](const std::string& v) -> int {
    const ValueInfo* vi = shapes.graph.find_value_info(v);
    return vi && vi->has_shape ? static_cast<int>(vi->shape.size()) : -1;
  };
  auto spatial_ones = [&](const std::string& v) {
    const ValueInfo* vi = shapes.graph.find_value_info(v);
    if (!vi || !vi->has_shape || vi->shape.size() < 2) return false;
    for (size_t i = 2; i < vi->shape.size(); ++i)
      if (vi->shape[i].value != 1) return false;
    return true;
  };
  auto floats = [&](const std::string& name) -> std::vector<float> {
    const Tensor* t = name.empty() ? nullptr : g.initializer(name);
    return t && t->dtype == DType::Float ? t->to_float() : std::vector<float>{};
  };
  std::map<std::string, int> uses;  // readers left, to drop moments nothing reads any more
  for (const auto& n : g.nodes)
    for (const auto& i : n.inputs) ++uses[i];
  std::map<std::string, Moments> mo;
  auto get = [&](const std::string& v) -> const Moments* {
    auto it = mo.find(v);
    return it == mo.end() ? nullptr : &it->second;
  };
  auto elementwise = [&](const Moments& in, const std::function<std::pair<double, double>(double, double)>& mom,
                         const std::function<double(double, double)>& gain) {
    Moments c;
    std::vector<double> gains;
    for (size_t i = 0; i < in.mean.size(); ++i) {
      auto [e1, e2] = mom(in.mean[i], in.var[i]);
      c.mean.push_back(e1);
      c.var.push_back(std::max(e2 - e1 * e1, 0.0));
      gains.push_back(gain(in.mean[i], in.var[i]));
    }
    if (in.cov.size()) {
      Eigen::VectorXd gv = Eigen::Map<Eigen::VectorXd>(gains.data(), static_cast<Eigen::Index>(gains.size()));
      c.cov = gv.asDiagonal() * in.cov * gv.asDiagonal();
    }
    return c;
  };

  for (const auto& n : g.nodes) {
    if (n.outputs.empty() || n.outputs[0].empty()) continue;
    const std::string& op = n.op_type;
    const Moments* in = n.inputs.empty() ? nullptr : get(n.input(0));
    bool made = true;
    Moments c;
    if (op == "BatchNormalization") {
      auto s = floats(n.input(1)), b = floats(n.input(2)), rv = floats(n.input(4));
      if (s.empty() || s.size() != b.size()) {
        made = false;
      } else {
        for (size_t i = 0; i < s.size(); ++i) {
          c.mean.push_back(b[i]);
          c.var.push_back(static_cast<double>(s[i]) * s[i]);
        }
        // The running statistics set each channel's scale; the correlations come from the input's
        // predicted covariance where there is one.
        if (in && in->cov.size() && in->cov.rows() == static_cast<Eigen::Index>(s.size())) {
          Eigen::VectorXd d(s.size());
          for (size_t i = 0; i < s.size(); ++i) d(i) = in->var[i] > 1e-12 ? s[i] / std::sqrt(in->var[i]) : 0.0;
          c.cov = d.asDiagonal() * in->cov * d.asDiagonal();
        }
      }
    } else if (!in) {
      // A dense Conv reading a graph input: nothing known but the input's normalization, so
      // channels are unit-variance, zero-mean, neighbouring taps correlated 0.5 — enough for the
      // correlations between the filters' responses (BatchNorm after it sets the scale).
      const Tensor* wt = op == "Conv" ? g.initializer(n.input(1)) : nullptr;
      bool graph_input = false;
      for (const auto& gi : g.inputs) graph_input |= gi.name == n.input(0);
      if (!wt || !graph_input || wt->dtype != DType::Float || wt->dims.size() < 3 || n.attr_int("group", 1) != 1) {
        made = false;
      } else {
        int64_t co = wt->dims[0], ci = wt->dims[1], per = 1;
        for (size_t i = 2; i < wt->dims.size(); ++i) per *= wt->dims[i];
        auto w = wt->to_float();
        Eigen::MatrixXd W(co, ci * per), T = Eigen::MatrixXd::Constant(ci * per, ci * per, 0.0);
        for (int64_t o = 0; o < co; ++o)
          for (int64_t f = 0; f < ci * per; ++f) W(o, f) = w[o * ci * per + f];
        for (int64_t f = 0; f < ci * per; ++f)
          for (int64_t h = 0; h < ci * per; ++h) T(f, h) = f == h ? 1.0 : (f / per == h / per ? 0.5 : 0.0);
        c.cov = W * T * W.transpose();
        auto bias = floats(n.input(2));
        for (int64_t o = 0; o < co; ++o) {
          c.mean.push_back(bias.size() == static_cast<size_t>(co) ? bias[o] : 0.0);
          c.var.push_back(c.cov(o, o));
        }
      }
    } else if (op == "Relu") {
      c = elementwise(*in, relu_moments, [](double mu, double v) { return v > 1e-12 ? Phi(mu / std::sqrt(v)) : (mu > 0); });
    } else if (auto f = activation_fn(g, n)) {
      c = elementwise(*in, [&](double mu, double v) { return quad_moments(mu, v, f); },
                      [&](double mu, double v) { return stein_gain(mu, v, f); });
    } else if (op == "Identity" || op == "Dropout" || op == "MaxPool" || op == "AveragePool" ||
               op == "GlobalAveragePool" || op == "GlobalMaxPool") {
      c = *in;
    } else if (op == "Flatten") {
      if (n.attr_int("axis", 1) == 1 && (rank(n.input(0)) == 2 || spatial_ones(n.input(0)))) c = *in;
      else made = false;
    } else if (op == "Add" || op == "Mul") {
      const Moments* b = get(n.input(1));
      if (!b || b->mean.size() != in->mean.size() || rank(n.input(0)) < 2 || rank(n.input(1)) < 2) {
        made = false;
      } else {
        for (size_t i = 0; i < in->mean.size(); ++i) {
          if (op == "Add") {
            c.mean.push_back(in->mean[i] + b->mean[i]);
            c.var.push_back(in->var[i] + b->var[i]);
          } else {
            double ea2 = in->var[i] + in->mean[i] * in->mean[i], eb2 = b->var[i] + b->mean[i] * b->mean[i];
            double e1 = in->mean[i] * b->mean[i];
            c.mean.push_back(e1);
            c.var.push_back(std::max(ea2 * eb2 - e1 * e1, 0.0));
          }
        }
        // Branches taken as independent: covariances add; a product scales by the other's means.
        if (op == "Add" && (in->cov.size() || b->cov.size())) {
          c.cov = in->cov.size() ? in->cov : Eigen::MatrixXd(Eigen::VectorXd::Map(in->var.data(), in->var.size()).asDiagonal());
          if (b->cov.size()) c.cov += b->cov;
          else c.cov += Eigen::MatrixXd(Eigen::VectorXd::Map(b->var.data(), b->var.size()).asDiagonal());
        } else if (op == "Mul" && (in->cov.size() || b->cov.size())) {
          Eigen::VectorXd ma = Eigen::VectorXd::Map(in->mean.data(), in->mean.size()),
                          mb = Eigen::VectorXd::Map(b->mean.data(), b->mean.size());
          c.cov = Eigen::MatrixXd::Zero(ma.size(), ma.size());
          if (in->cov.size()) c.cov += mb.asDiagonal() * in->cov * mb.asDiagonal();
          if (b->cov.size()) c.cov += ma.asDiagonal() * b->cov * ma.asDiagonal();
        }
      }
    } else if (op == "Conv") {
      const Tensor* wt = g.initializer(n.input(1));
      int64_t groups = n.attr_int("group", 1);
      if (!wt || wt->dtype != DType::Float || wt->dims.size() < 3 || wt->dims[1] * groups != static_cast<int64_t>(in->mean.size()) ||
          wt->dims[0] % groups) {
        made = false;
      } else {
        int64_t cout = wt->dims[0], cpg = wt->dims[1], per = 1, opg = cout / groups;
        for (size_t i = 2; i < wt->dims.size(); ++i) per *= wt->dims[i];
        auto w = wt->to_float();
        auto bias = floats(n.input(2));
        for (int64_t o = 0; o < cout; ++o) {
          double mu = bias.size() == static_cast<size_t>(cout) ? bias[o] : 0.0, v = 0;
          for (int64_t j = 0; j < cpg; ++j) {
            int64_t ci = (o / opg) * cpg + j;
            double s1 = 0, s2 = 0;
            for (int64_t k = 0; k < per; ++k) {
              double x = w[(o * cpg + j) * per + k];
              s1 += x;
              s2 += x * x;
            }
            mu += s1 * in->mean[ci];
            v += s2 * in->var[ci];
          }
          c.mean.push_back(mu);
          c.var.push_back(v);
        }
        // Output covariance Σ_k W_k Σ W_kᵀ (taps taken as independent positions).
        if (in->cov.size() && (groups == 1 || (cpg == 1 && opg == 1))) {
          int64_t cin = static_cast<int64_t>(in->mean.size());
          c.cov = Eigen::MatrixXd::Zero(cout, cout);
          for (int64_t k = 0; k < per; ++k) {
            Eigen::MatrixXd Wk = Eigen::MatrixXd::Zero(cout, cin);
            for (int64_t o = 0; o < cout; ++o)
              for (int64_t j = 0; j < cpg; ++j) Wk(o, groups == 1 ? j : o) = w[(o * cpg + j) * per + k];
            c.cov += Wk * in->cov * Wk.transpose();
          }
          for (int64_t o = 0; o < cout; ++o) c.var[o] = c.cov(o, o);
        }
      }
    } else if (op == "Gemm" || op == "MatMul") {
      const Tensor* wt = g.initializer(n.input(1));
      bool tb = op == "Gemm" && n.attr_int("transB", 0);
      if (!wt || wt->dtype != DType::Float || wt->dims.size() != 2 || rank(n.input(0)) != 2 ||
          (op == "Gemm" && n.attr_int("transA", 0)) || (tb ? wt->dims[1] : wt->dims[0]) != static_cast<int64_t>(in->mean.size())) {
        made = false;
      } else {
        int64_t K = tb ? wt->dims[1] : wt->dims[0], N = tb ? wt->dims[0] : wt->dims[1];
        double alpha = op == "Gemm" ? n.attr_float("alpha", 1.f) : 1.0, beta = op == "Gemm" ? n.attr_float("beta", 1.f) : 1.0;
        auto w = wt->to_float();
        auto bias = op == "Gemm" ? floats(n.input(2)) : std::vector<float>{};
        Eigen::MatrixXd W(N, K);
        for (int64_t o = 0; o < N; ++o)
          for (int64_t k = 0; k < K; ++k) W(o, k) = alpha * (tb ? w[o * K + k] : w[k * N + o]);
        for (int64_t o = 0; o < N; ++o) {
          double mu = bias.size() == static_cast<size_t>(N) ? beta * bias[o] : 0.0, v = 0;
          for (int64_t k = 0; k < K; ++k) {
            mu += W(o, k) * in->mean[k];
            v += W(o, k) * W(o, k) * in->var[k];
          }
          c.mean.push_back(mu);
          c.var.push_back(v);
        }
        if (in->cov.size()) {
          c.cov = W * in->cov * W.transpose();
          for (int64_t o = 0; o < N; ++o) c.var[o] = c.cov(o, o);
        }
      }
    } else {
      made = false;
    }
    for (const auto& i : n.inputs)
      if (--uses[i] <= 0) mo.erase(i);
    if (!made) continue;
    if (c.cov.size() && static_cast<int64_t>(c.mean.size()) > kMaxCovChannels) c.cov.resize(0, 0);
    if (c.cov.size())
      for (size_t i = 0; i < c.var.size(); ++i) c.cov(i, i) = c.var[i];
    on_value(n.outputs[0], c);
    mo[n.outputs[0]] = std::move(c);
  }
}

}  // namespace

std::map<std::string, ChannelMoments> predict_channel_moments(const Model& m,
                                                             const std::map<std::string, std::vector<int64_t>>& input_shapes) {
  std::map<std::string, ChannelMoments> out;
  propagate(m, input_shapes, [&](const std::string& v, const Moments& c) { out[v] = {c.mean, c.var}; });
  return out;
}

CalibrationStats moment_statistics(const Model& m, const CalibrationPlan& plan,
                                   const std::map<std::string, std::vector<int64_t>>& input_shapes,
                                   std::pair<int, int>* covered) {
  CalibrationStats st;
  const Graph& g = m.graph;
  // Which gram layers read each value.
  std::map<std::string, std::vector<int>> readers;
  for (const auto& name : plan.grams)
    for (size_t i = 0; i < g.nodes.size(); ++i)
      if (g.nodes[i].name == name) readers[g.nodes[i].input(0)].push_back(static_cast<int>(i));
  int filled = 0;
  propagate(m, input_shapes, [&](const std::string& v, const Moments& c) {
    if (plan.channels.count(v)) {
      ChannelStat cs;
      cs.axis = 1;
      cs.count = 1;
      for (size_t i = 0; i < c.mean.size(); ++i) {
        double mu = c.mean[i], e2 = c.var[i] + mu * mu;
        cs.sum.push_back(mu);
        cs.sum_sq.push_back(e2);
        cs.sum_abs.push_back(std::max(std::fabs(mu), std::sqrt(e2) * 0.8));  // |mu| <= E|x| <= sqrt(E x²)
      }
      st.channels[v] = std::move(cs);
    }
    auto it = readers.find(v);
    if (it == readers.end()) return;
    for (int idx : it->second) {
      const Node& n = g.nodes[idx];
      const Tensor* wt = g.initializer(n.input(1));
      if (!wt) continue;
      int64_t C = static_cast<int64_t>(c.mean.size()), per = 1;
      if (n.op_type == "Conv") {
        if (n.attr_int("group", 1) != 1 || wt->dims.size() < 3 || wt->dims[1] != C) continue;
        for (size_t i = 2; i < wt->dims.size(); ++i) per *= wt->dims[i];
      }
      int64_t F = C * per;
      GramStat gs;
      gs.features = F;
      gs.rows = 1;
      gs.xtx.assign(static_cast<size_t>(F * F), 0.0);
      gs.col_sum.resize(static_cast<size_t>(F));
      // E[x xᵀ] = μμᵀ + Σ, with the channel covariance between features at the same kernel tap.
      for (int64_t i = 0; i < F; ++i) {
        int64_t ci = i / per, ki = i % per;
        gs.col_sum[i] = c.mean[ci];
        for (int64_t j = 0; j < F; ++j) {
          int64_t cj = j / per;
          double cov = 0;
          if (j % per == ki) cov = c.cov.size() ? c.cov(ci, cj) : (ci == cj ? c.var[ci] : 0.0);
          gs.xtx[i * F + j] = c.mean[ci] * c.mean[cj] + cov;
        }
      }
      st.grams[n.name] = std::move(gs);
      ++filled;
    }
  });
  if (covered) *covered = {filled, static_cast<int>(plan.grams.size())};
  return st;
}

int correct_batchnorm_statistics(Model& pruned, const Model& original,
                                 const std::map<std::string, std::vector<int64_t>>& input_shapes) {
  std::set<std::string> bn_inputs;
  for (const auto& n : pruned.graph.nodes)
    if (n.op_type == "BatchNormalization" && n.inputs.size() >= 5) bn_inputs.insert(n.input(0));
  std::map<std::string, Moments> before, after;
  propagate(original, input_shapes, [&](const std::string& v, const Moments& c) {
    if (bn_inputs.count(v)) before[v] = {c.mean, c.var, {}};
  });
  propagate(pruned, input_shapes, [&](const std::string& v, const Moments& c) {
    if (bn_inputs.count(v)) after[v] = {c.mean, c.var, {}};
  });
  // Kept channels of each BatchNormalization: its scale's entries matched by value to the original's.
  int changed = 0;
  Graph& g = pruned.graph;
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    const Node& n = g.nodes[i];
    if (n.op_type != "BatchNormalization" || n.inputs.size() < 5) continue;
    auto b = before.find(n.input(0)), a = after.find(n.input(0));
    const Tensor* mt = g.initializer(n.input(3));
    const Tensor* vt = g.initializer(n.input(4));
    int on = -1;
    for (size_t j = 0; j < original.graph.nodes.size(); ++j)
      if (original.graph.nodes[j].name == n.name) on = static_cast<int>(j);
    if (b == before.end() || a == after.end() || !mt || !vt || on < 0) continue;
    const Tensor* os = original.graph.initializer(original.graph.nodes[on].input(1));
    const Tensor* ps = g.initializer(n.input(1));
    if (!os || !ps) continue;
    auto sv = os->to_float(), pv = ps->to_float();
    // Map pruned channel -> original channel (the rewrite keeps order; match scales in order).
    std::vector<int64_t> map;
    size_t k = 0;
    for (size_t c = 0; c < pv.size(); ++c) {
      while (k < sv.size() && sv[k] != pv[c]) ++k;
      if (k == sv.size()) break;
      map.push_back(static_cast<int64_t>(k++));
    }
    if (map.size() != pv.size() || a->second.mean.size() != pv.size() || b->second.mean.size() != sv.size()) continue;
    auto mean = mt->to_float(), var = vt->to_float();
    for (size_t c = 0; c < pv.size(); ++c) {
      double vb = b->second.var[map[c]], va = a->second.var[c];
      mean[c] += static_cast<float>(a->second.mean[c] - b->second.mean[map[c]]);
      if (vb > 1e-12 && va > 1e-12) var[c] = static_cast<float>(var[c] * va / vb);
    }
    set_node_constant(g, static_cast<int>(i), 3, Tensor::from_float(mt->name, mt->dims, mean));
    set_node_constant(g, static_cast<int>(i), 4, Tensor::from_float(vt->name, vt->dims, var));
    ++changed;
  }
  return changed;
}

}  // namespace oc
