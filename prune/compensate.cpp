// Least-squares re-solve of a layer's kept weights and bias (see compensate.h).
#include "prune/compensate.h"

#include "engine/dense_solve.h"
#include "graph/channel_deps.h"

namespace oc {

bool compensate_layer(Graph& g, int node, int weight_input, int in_axis, const std::vector<int64_t>& kept_in,
                      const CalibrationStats& stats, double damping) {
  const Node& n = g.nodes[node];
  auto gs_it = stats.grams.find(n.name);
  const Tensor* wt = g.initializer(n.input(weight_input));
  if (gs_it == stats.grams.end() || !wt || wt->dtype != DType::Float || weight_input != 1) return false;
  const GramStat& gs = gs_it->second;
  bool conv = n.op_type == "Conv";
  if (conv && n.attr_int("group", 1) != 1) return false;
  if (!conv && n.op_type != "Gemm" && n.op_type != "MatMul") return false;
  // W as rows (outputs) x features (inputs): Conv [Cout, Cin·K]; [N,K] when the input axis is 1.
  int64_t rows = 0, cin = wt->dims[in_axis], per = 1;
  if (conv) {
    rows = wt->dims[0];
    for (size_t i = 2; i < wt->dims.size(); ++i) per *= wt->dims[i];
  } else {
    rows = wt->dims[1 - in_axis];
  }
  int64_t F = cin * per;
  if (gs.features != F || gs.rows <= 0 || static_cast<int64_t>(gs.xtx.size()) != F * F) return false;
  std::vector<float> wv = wt->to_float();
  using Mat = RowMatrixD;
  Mat W(rows, F + 1);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t f = 0; f < F; ++f)
      W(r, f) = (conv || in_axis == 1) ? wv[r * F + f] : wv[f * rows + r];
  // Bias: Conv input 2 / Gemm C of shape [N]; MatMul has none (no constant feature then).
  bool has_bias_slot = conv || n.op_type == "Gemm";
  const Tensor* bt = has_bias_slot ? g.initializer(n.input(2)) : nullptr;
  if (bt && (bt->numel() != rows || bt->dtype != DType::Float)) has_bias_slot = false;
  std::vector<float> bv = bt ? bt->to_float() : std::vector<float>(rows, 0.f);
  for (int64_t r = 0; r < rows; ++r) W(r, F) = has_bias_slot ? bv[r] : 0.0;

  std::vector<int64_t> S;  // kept features, then the constant feature F
  for (int64_t c : kept_in)
    for (int64_t k = 0; k < per; ++k) S.push_back(c * per + k);
  if (has_bias_slot) S.push_back(F);
  auto H = [&](int64_t i, int64_t j) -> double {
    if (i == F && j == F) return static_cast<double>(gs.rows);
    if (i == F) return gs.col_sum[j];
    if (j == F) return gs.col_sum[i];
    return gs.xtx[i * F + j];
  };
  double mean_diag = 0;
  for (int64_t f = 0; f < F; ++f) mean_diag += gs.xtx[f * F + f];
  mean_diag /= static_cast<double>(F);
  double lambda = damping * mean_diag;
  if (lambda <= 0) lambda = 1e-8;
  int64_t ns = static_cast<int64_t>(S.size());
  int64_t nall = has_bias_slot ? F + 1 : F;
  Mat A(ns, ns), B(ns, nall);
  for (int64_t i = 0; i < ns; ++i) {
    for (int64_t j = 0; j < ns; ++j) A(i, j) = H(S[i], S[j]);
    A(i, i) += lambda;
    for (int64_t j = 0; j < nall; ++j) B(i, j) = H(S[i], j);
  }
  // W'ᵀ = A⁻¹ · H[S, :] · Wᵀ  (A is symmetric positive definite after damping).
  const Mat sol = spd_solve_product(A, B, W.leftCols(nall));  // ns x rows
  for (int64_t i = 0; i < ns; ++i)
    for (int64_t r = 0; r < rows; ++r) W(r, S[i]) = sol(i, r);

  std::vector<float> out(wv.size());
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t f = 0; f < F; ++f)
      out[(conv || in_axis == 1) ? r * F + f : f * rows + r] = static_cast<float>(W(r, f));
  set_node_constant(g, node, weight_input, Tensor::from_float(wt->name, wt->dims, out));
  if (has_bias_slot) {
    std::vector<float> nb(rows);
    for (int64_t r = 0; r < rows; ++r) nb[r] = static_cast<float>(W(r, F));
    if (bt) {
      set_node_constant(g, node, 2, Tensor::from_float(bt->name, bt->dims, nb));
    } else {
      Node& nn = g.nodes[node];
      std::string name = g.unique_name(nn.name + ".bias");
      g.add_initializer(Tensor::from_float(name, {rows}, nb));
      nn.inputs.resize(3);
      nn.inputs[2] = name;
      g.invalidate();
    }
  }
  return true;
}

}  // namespace oc
