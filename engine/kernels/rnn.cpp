// Recurrent layers: RNN, LSTM and GRU (forward, reverse, bidirectional; initial states; peepholes).
//
// RNN:  H_t = f(X_t·Wᵀ + H_{t-1}·Rᵀ + Wb + Rb)                       (f = Tanh by default)
// LSTM (gates i,o,f,c):  g = X_t·Wᵀ + H_{t-1}·Rᵀ + Wb + Rb
//   i = f(g_i + P_i⊙C_{t-1}), f = f(g_f + P_f⊙C_{t-1}), c = g(g_c),
//   C_t = f⊙C_{t-1} + i⊙c,  o = f(g_o + P_o⊙C_t),  H_t = o⊙h(C_t)
// GRU (gates z,r,h):  z = f(X·Wzᵀ + H·Rzᵀ + b), r = f(X·Wrᵀ + H·Rrᵀ + b)
//   ĥ = g(X·Whᵀ + (r⊙H)·Rhᵀ + Rbh + Wbh)            (linear_before_reset = 0)
//   ĥ = g(X·Whᵀ + r⊙(H·Rhᵀ + Rbh) + Wbh)            (linear_before_reset ≠ 0)
//   H_t = (1 − z)⊙ĥ + z⊙H_{t-1}
// The input projection X·Wᵀ of all time steps is one matrix product (Eigen); the recurrence
// does one [batch, H]·[H, G·H] product per step.
#include <Eigen/Core>
#include <cmath>

#include "engine/kernels/common.h"

namespace oc {
namespace {

using namespace kern;
using Mat = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using CMap = Eigen::Map<const Mat>;

using Act = float (*)(float);

// Activations without parameters (those with alpha/beta need activation_alpha handling we do not do).
Act activation(const KernelContext& ctx, const std::string& name) {
  static const std::pair<const char*, Act> table[] = {
    {"Sigmoid", [](float x) { return 1.f / (1.f + std::exp(-x)); }},
    {"Tanh", [](float x) { return std::tanh(x); }},
    {"Relu", [](float x) { return x > 0.f ? x : 0.f; }},
    {"Softsign", [](float x) { return x / (1.f + std::fabs(x)); }},
    {"Softplus", [](float x) { return x > 0.f ? x + std::log1p(std::exp(-x)) : std::log1p(std::exp(x)); }},
  };
  for (const auto& [n, f] : table)
    if (name == n) return f;
  ctx.unsupported("activation '" + name + "'");
}

struct RnnSetup {
  int64_t seq = 0, batch = 0, input = 0, hidden = 0, dirs = 1;
  bool batch_first = false;
  std::vector<std::string> dir_names;
  std::vector<Act> acts;  // per direction, `per_dir` each
  float clip = 0;
};

RnnSetup setup(KernelContext& ctx, int gates, const std::vector<std::string>& default_acts) {
  RnnSetup s;
  const Tensor &X = ctx.input(0), &W = ctx.input(1), &R = ctx.input(2);
  for (const Tensor* t : {&X, &W, &R})
    if (t->dtype != DType::Float) ctx.unsupported("element type " + dtype_name(t->dtype));
  if (X.dims.size() != 3 || W.dims.size() != 3 || R.dims.size() != 3) bad_input(ctx, "X, W and R must be rank 3");
  s.batch_first = ctx.node.attr_int("layout", 0) != 0;
  s.seq = s.batch_first ? X.dims[1] : X.dims[0];
  s.batch = s.batch_first ? X.dims[0] : X.dims[1];
  s.input = X.dims[2];
  s.hidden = R.dims[2];
  const std::string direction = ctx.node.attr_string("direction", "forward");
  if (direction == "bidirectional") s.dir_names = {"forward", "reverse"};
  else if (direction == "forward" || direction == "reverse") s.dir_names = {direction};
  else bad_input(ctx, "direction '" + direction + "'");
  s.dirs = static_cast<int64_t>(s.dir_names.size());
  if (ctx.node.has_attr("hidden_size") && ctx.node.attr_int("hidden_size", 0) != s.hidden)
    bad_input(ctx, "hidden_size disagrees with R");
  if (W.dims[0] != s.dirs || W.dims[1] != gates * s.hidden || W.dims[2] != s.input)
    bad_input(ctx, "W has shape " + shape_str(W.dims));
  if (R.dims[0] != s.dirs || R.dims[1] != gates * s.hidden) bad_input(ctx, "R has shape " + shape_str(R.dims));
  if (ctx.has_input(4) && ctx.input(4).numel() > 0) {
    for (int64_t v : int_values(ctx.input(4)))
      if (v != s.seq) ctx.unsupported("sequence_lens shorter than the sequence");
  }
  if (ctx.node.has_attr("activation_alpha") || ctx.node.has_attr("activation_beta"))
    ctx.unsupported("activation_alpha/activation_beta");
  auto names = ctx.node.has_attr("activations") ? ctx.node.attr("activations")->strings : std::vector<std::string>{};
  if (names.empty())
    for (int64_t d = 0; d < s.dirs; ++d) names.insert(names.end(), default_acts.begin(), default_acts.end());
  if (names.size() != default_acts.size() * static_cast<size_t>(s.dirs)) bad_input(ctx, "wrong number of activations");
  for (const auto& n : names) s.acts.push_back(activation(ctx, n));
  s.clip = ctx.node.attr_float("clip", 0.f);
  return s;
}

// X as a contiguous [seq·batch, input] matrix in time-major order.
Mat time_major(const RnnSetup& s, const Tensor& X) {
  Mat x(s.seq * s.batch, s.input);
  const float* p = X.data<float>();
  for (int64_t t = 0; t < s.seq; ++t)
    for (int64_t b = 0; b < s.batch; ++b) {
      const float* src = s.batch_first ? p + (b * s.seq + t) * s.input : p + (t * s.batch + b) * s.input;
      std::copy(src, src + s.input, x.data() + (t * s.batch + b) * s.input);
    }
  return x;
}

// Output tensors: Y [seq, dirs, batch, H] (layout 1: [batch, seq, dirs, H]), Y_h/Y_c [dirs, batch, H]
// (layout 1: [batch, dirs, H]).
struct RnnOutputs {
  Tensor Y, Yh, Yc;
  RnnOutputs(const RnnSetup& s, bool cell) {
    Y = make_tensor(DType::Float, s.batch_first ? Dims{s.batch, s.seq, s.dirs, s.hidden} : Dims{s.seq, s.dirs, s.batch, s.hidden});
    Dims hd = s.batch_first ? Dims{s.batch, s.dirs, s.hidden} : Dims{s.dirs, s.batch, s.hidden};
    Yh = make_tensor(DType::Float, hd);
    if (cell) Yc = make_tensor(DType::Float, hd);
  }
  static void put(const RnnSetup& s, Tensor& t, int64_t d, const Mat& h) {  // state [batch, H]
    float* o = t.data<float>();
    for (int64_t b = 0; b < s.batch; ++b) {
      float* dst = s.batch_first ? o + (b * s.dirs + d) * s.hidden : o + (d * s.batch + b) * s.hidden;
      std::copy(h.data() + b * s.hidden, h.data() + (b + 1) * s.hidden, dst);
    }
  }
  void put_y(const RnnSetup& s, int64_t t, int64_t d, const Mat& h) {
    float* o = Y.data<float>();
    for (int64_t b = 0; b < s.batch; ++b) {
      float* dst = s.batch_first ? o + ((b * s.seq + t) * s.dirs + d) * s.hidden
                                 : o + ((t * s.dirs + d) * s.batch + b) * s.hidden;
      std::copy(h.data() + b * s.hidden, h.data() + (b + 1) * s.hidden, dst);
    }
  }
  void emit(KernelContext& ctx) {
    if (ctx.outputs.size() > 0) ctx.output(0) = std::move(Y);
    if (ctx.outputs.size() > 1) ctx.output(1) = std::move(Yh);
    if (ctx.outputs.size() > 2) ctx.output(2) = std::move(Yc);
  }
};

// Initial state for direction d as [batch, H] (zeros when the input is absent).
Mat initial_state(const RnnSetup& s, const KernelContext& ctx, size_t input, int64_t d) {
  Mat h = Mat::Zero(s.batch, s.hidden);
  if (!ctx.has_input(input)) return h;
  const Tensor& t = ctx.input(input);
  if (t.numel() != s.dirs * s.batch * s.hidden) bad_input(ctx, "initial state has shape " + shape_str(t.dims));
  std::vector<float> v = t.to_float();
  const float* p = v.data();
  for (int64_t b = 0; b < s.batch; ++b) {
    const float* src = s.batch_first ? p + (b * s.dirs + d) * s.hidden : p + (d * s.batch + b) * s.hidden;
    std::copy(src, src + s.hidden, h.data() + b * s.hidden);
  }
  return h;
}

// X·Wᵀ + Wb + Rb for all steps of direction d: [seq·batch, G·H].
Mat input_projection(const RnnSetup& s, const KernelContext& ctx, const Mat& x, int gates, int64_t d) {
  const int64_t GH = gates * s.hidden;
  CMap W(ctx.input(1).data<float>() + d * GH * s.input, GH, s.input);
  Mat g = x * W.transpose();
  if (ctx.has_input(3)) {
    if (ctx.input(3).dtype != DType::Float || ctx.input(3).numel() < (d + 1) * 2 * GH) bad_input(ctx, "B has the wrong type or shape");
    const float* b = ctx.input(3).data<float>() + d * 2 * GH;
    Eigen::Map<const Eigen::RowVectorXf> wb(b, GH), rb(b + GH, GH);
    g.rowwise() += wb + rb;
  }
  return g;
}

inline float clipped(float v, float c) { return c > 0.f ? std::max(-c, std::min(c, v)) : v; }

void lstm_kernel(KernelContext& ctx) {
  RnnSetup s = setup(ctx, 4, {"Sigmoid", "Tanh", "Tanh"});
  const bool couple = ctx.node.attr_int("input_forget", 0) != 0;
  const int64_t H = s.hidden;
  Mat x = time_major(s, ctx.input(0));
  RnnOutputs out(s, true);
  for (int64_t d = 0; d < s.dirs; ++d) {
    Act f = s.acts[d * 3], g = s.acts[d * 3 + 1], h = s.acts[d * 3 + 2];
    Mat gx = input_projection(s, ctx, x, 4, d);
    CMap R(ctx.input(2).data<float>() + d * 4 * H * H, 4 * H, H);
    std::vector<float> P(3 * H, 0.f);
    if (ctx.has_input(7)) {
      const float* p = ctx.input(7).data<float>() + d * 3 * H;
      std::copy(p, p + 3 * H, P.begin());
    }
    Mat Ht = initial_state(s, ctx, 5, d), Ct = initial_state(s, ctx, 6, d);
    const bool rev = s.dir_names[d] == "reverse";
    for (int64_t step = 0; step < s.seq; ++step) {
      const int64_t t = rev ? s.seq - 1 - step : step;
      Mat gates = gx.middleRows(t * s.batch, s.batch) + Ht * R.transpose();
      for (int64_t b = 0; b < s.batch; ++b) {
        float* gr = gates.data() + b * 4 * H;
        float* hr = Ht.data() + b * H;
        float* cr = Ct.data() + b * H;
        for (int64_t j = 0; j < H; ++j) {
          const float c_prev = cr[j];
          const float i = f(clipped(gr[j] + P[j] * c_prev, s.clip));
          const float fo = couple ? 1.f - i : f(clipped(gr[2 * H + j] + P[2 * H + j] * c_prev, s.clip));
          const float cc = g(clipped(gr[3 * H + j], s.clip));
          const float c_new = fo * c_prev + i * cc;
          const float o = f(clipped(gr[H + j] + P[H + j] * c_new, s.clip));
          cr[j] = c_new;
          hr[j] = o * h(c_new);
        }
      }
      out.put_y(s, t, d, Ht);
    }
    RnnOutputs::put(s, out.Yh, d, Ht);
    RnnOutputs::put(s, out.Yc, d, Ct);
  }
  out.emit(ctx);
}

void gru_kernel(KernelContext& ctx) {
  RnnSetup s = setup(ctx, 3, {"Sigmoid", "Tanh"});
  const bool lbr = ctx.node.attr_int("linear_before_reset", 0) != 0;
  const int64_t H = s.hidden;
  Mat x = time_major(s, ctx.input(0));
  RnnOutputs out(s, false);
  for (int64_t d = 0; d < s.dirs; ++d) {
    Act f = s.acts[d * 2], g = s.acts[d * 2 + 1];
    Mat gx = input_projection(s, ctx, x, 3, d);
    // input_projection added Rb_h to the h gate; with linear_before_reset it must sit inside r⊙(...).
    Eigen::RowVectorXf rbh = Eigen::RowVectorXf::Zero(H);
    if (ctx.has_input(3)) {
      rbh = Eigen::Map<const Eigen::RowVectorXf>(ctx.input(3).data<float>() + d * 6 * H + 5 * H, H);
      if (lbr) gx.rightCols(H).rowwise() -= rbh;
    }
    CMap R(ctx.input(2).data<float>() + d * 3 * H * H, 3 * H, H);
    Mat Ht = initial_state(s, ctx, 5, d);
    const bool rev = s.dir_names[d] == "reverse";
    for (int64_t step = 0; step < s.seq; ++step) {
      const int64_t t = rev ? s.seq - 1 - step : step;
      Mat gates = gx.middleRows(t * s.batch, s.batch);
      Mat zr = Ht * R.topRows(2 * H).transpose();
      Mat z(s.batch, H), rh(s.batch, H);
      for (int64_t b = 0; b < s.batch; ++b)
        for (int64_t j = 0; j < H; ++j) {
          z(b, j) = f(clipped(gates(b, j) + zr(b, j), s.clip));
          const float r = f(clipped(gates(b, H + j) + zr(b, H + j), s.clip));
          rh(b, j) = r;
        }
      Mat hh;
      if (lbr) {
        Mat hr = (Ht * R.bottomRows(H).transpose()).rowwise() + rbh;
        hh = gates.rightCols(H) + rh.cwiseProduct(hr);
      } else {
        hh = gates.rightCols(H) + rh.cwiseProduct(Ht) * R.bottomRows(H).transpose();
      }
      for (int64_t b = 0; b < s.batch; ++b)
        for (int64_t j = 0; j < H; ++j) {
          const float hn = g(clipped(hh(b, j), s.clip));
          Ht(b, j) = (1.f - z(b, j)) * hn + z(b, j) * Ht(b, j);
        }
      out.put_y(s, t, d, Ht);
    }
    RnnOutputs::put(s, out.Yh, d, Ht);
  }
  out.emit(ctx);
}

void rnn_kernel(KernelContext& ctx) {
  RnnSetup s = setup(ctx, 1, {"Tanh"});
  Mat x = time_major(s, ctx.input(0));
  RnnOutputs out(s, false);
  for (int64_t d = 0; d < s.dirs; ++d) {
    Act f = s.acts[d];
    Mat gx = input_projection(s, ctx, x, 1, d);
    CMap R(ctx.input(2).data<float>() + d * s.hidden * s.hidden, s.hidden, s.hidden);
    Mat Ht = initial_state(s, ctx, 5, d);
    const bool rev = s.dir_names[d] == "reverse";
    for (int64_t step = 0; step < s.seq; ++step) {
      const int64_t t = rev ? s.seq - 1 - step : step;
      Mat g = gx.middleRows(t * s.batch, s.batch) + Ht * R.transpose();
      for (int64_t i = 0; i < g.size(); ++i) Ht.data()[i] = f(clipped(g.data()[i], s.clip));
      out.put_y(s, t, d, Ht);
    }
    RnnOutputs::put(s, out.Yh, d, Ht);
  }
  out.emit(ctx);
}

}  // namespace

void register_rnn_kernels(KernelRegistry& r) {
  r.add("RNN", rnn_kernel);
  r.add("LSTM", lstm_kernel);
  r.add("GRU", gru_kernel);
}

}  // namespace oc
