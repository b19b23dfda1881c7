// Channel dependency graph (see channel_deps.h).
//
// Elements e = (value, channel). Rules union elements: pass-through  (x,c) ~ (y,c);
// Concat (x_k,c) ~ (y, c + off_k); fold with stride s (x,c) ~ (y, c·s + j), 0 <= j < s;
// depthwise with multiplier m (x,c) ~ (y, c·m + j). Units = connected components; groups =
// components of the value graph induced by those unions.
#include "graph/channel_deps.h"

#include <algorithm>
#include <cstring>
#include <functional>
#include <limits>
#include <numeric>
#include <optional>
#include <set>

#include "graph/errors.h"
#include "graph/shape_inference.h"

namespace oc {

namespace {

struct DSU {
  std::vector<int> p;
  int add() { p.push_back(static_cast<int>(p.size())); return p.back(); }
  int find(int x) { while (p[x] != x) { p[x] = p[p[x]]; x = p[x]; } return x; }
  void unite(int a, int b) { a = find(a); b = find(b); if (a != b) p[std::max(a, b)] = std::min(a, b); }
};

struct Builder {
  const Model& m;
  const Graph& g;
  ChannelDeps d;
  DSU elems;
  DSU vals;
  std::map<std::string, int> val_id;
  std::map<std::string, int64_t> trailing;  // product of dims after the channel axis (-1 unknown)
  std::vector<std::pair<int, std::string>> locks;  // (element, reason)
  std::vector<ParamSlice> params;
  ChannelDepsOptions opt;

  Builder(const Model& model, const ChannelDepsOptions& o) : m(model), g(model.graph), opt(o) {}

  ChannelSpace* space(const std::string& v) {
    auto it = d.spaces.find(v);
    return it == d.spaces.end() ? nullptr : &it->second;
  }
  const Tensor* init(const std::string& name) const { return name.empty() ? nullptr : g.initializer(name); }
  std::optional<std::vector<int64_t>> ints_of(const std::string& name) const {
    const Tensor* t = init(name);
    if (!t) return std::nullopt;
    return t->to_int64();
  }
  // Fully known shape from value_info, if any.
  std::optional<std::vector<int64_t>> known_shape(const std::string& v) const {
    const ValueInfo* vi = g.find_value_info(v);
    if (!vi || !vi->has_shape || !shape_known(vi->shape)) return std::nullopt;
    return shape_values(vi->shape);
  }
  // Dims from value_info with -1 where a dim is symbolic; nullopt when the rank is unknown.
  std::optional<std::vector<int64_t>> dims_of(const std::string& v) const {
    if (const Tensor* t = init(v)) return t->dims;
    const ValueInfo* vi = g.find_value_info(v);
    if (!vi || !vi->has_shape) return std::nullopt;
    std::vector<int64_t> d;
    for (const auto& x : vi->shape) d.push_back(x.known() ? x.value : -1);
    return d;
  }
  int known_rank(const std::string& v) const {
    const ValueInfo* vi = g.find_value_info(v);
    return vi && vi->has_shape ? static_cast<int>(vi->shape.size()) : -1;
  }

  ChannelSpace& add_space(const std::string& v, int64_t channels, int rank, int neg_axis, int64_t trail = -1) {
    ChannelSpace s;
    s.value = v;
    s.channels = channels;
    s.rank = rank >= 0 ? rank : known_rank(v);
    s.neg_axis = neg_axis;
    s.first_elem = static_cast<int>(elems.p.size());
    for (int64_t c = 0; c < channels; ++c) elems.add();
    val_id[v] = vals.add();
    if (auto sh = dims_of(v); sh && static_cast<int>(sh->size()) >= -neg_axis) {
      int64_t t = 1;
      for (size_t i = sh->size() + neg_axis + 1; i < sh->size() && t >= 0; ++i) t = (*sh)[i] < 0 ? -1 : t * (*sh)[i];
      if (t >= 0) trail = t;
      int64_t at = (*sh)[sh->size() + neg_axis];
      if (at >= 0 && at != channels) {  // value_info disagrees: do not trust our reading
        d.spaces[v] = s;
        lock(v, "channel count of '" + v + "' disagrees with its value_info");
        trailing[v] = trail;
        return d.spaces[v];
      }
    }
    trailing[v] = trail;
    return d.spaces[v] = s;
  }
  int elem(const ChannelSpace& s, int64_t c) const { return s.first_elem + static_cast<int>(c); }
  void link(const ChannelSpace& a, int64_t ca, const ChannelSpace& b, int64_t cb) {
    elems.unite(elem(a, ca), elem(b, cb));
    vals.unite(val_id[a.value], val_id[b.value]);
  }
  void link_all(const ChannelSpace& a, const ChannelSpace& b) {
    for (int64_t c = 0; c < a.channels; ++c) link(a, c, b, c);
  }
  void lock(const std::string& v, const std::string& reason) {
    ChannelSpace* s = space(v);
    if (!s) return;
    for (int64_t c = 0; c < s->channels; ++c) locks.push_back({elem(*s, c), reason});
  }
  void lock_inputs(const Node& n, const std::string& reason) {
    for (const auto& i : n.inputs) lock(i, reason);
  }
  void param(int node, int input, int axis, const std::string& v, ParamSlice::Role r, int64_t modulo = 0) {
    params.push_back({node, input, axis, v, r, modulo});
  }
  // Output space that copies `in`'s layout, linked channel by channel.
  ChannelSpace& pass(const ChannelSpace& in, const std::string& out, int64_t trail) {
    ChannelSpace in_copy = in;
    ChannelSpace& o = add_space(out, in_copy.channels, in_copy.rank, in_copy.neg_axis, trail);
    link_all(in_copy, o);
    return o;
  }
  int pos_axis(const ChannelSpace& s) const { return s.rank >= 0 ? s.rank + s.neg_axis : -1; }
  std::string nm(const Node& n) const { return n.op_type + " '" + n.name + "'"; }
};

using PropagateFn = std::function<void(Builder&, int, const Node&)>;
using FixFn = std::function<void(Graph&, int, const ChannelDeps&, const KeptChannels&)>;
struct OpRule {
  PropagateFn propagate;
  FixFn fix;            // may be empty
  int data_inputs = 1;  // inputs the rule reads channels from (-1: all); a channel tensor anywhere
                        // else (a dynamic weight, a shape) would be misread, so it is locked
};

std::string nm_weight(const Builder& b, const Node& n) { return b.nm(n) + " has no constant weight"; }

const std::vector<int64_t>* kept_of(const KeptChannels& k, const std::string& v) {
  auto it = k.find(v);
  return it == k.end() ? nullptr : &it->second;
}
int64_t count_in(const std::vector<int64_t>& kept, int64_t lo, int64_t hi) {
  return std::count_if(kept.begin(), kept.end(), [&](int64_t c) { return c >= lo && c < hi; });
}
int64_t norm_axis(int64_t a, int rank) { return a < 0 ? a + rank : a; }

// ---- rules ----

// Conv: out = W axis 0 (+B); in = W axis 1 for group 1; depthwise couples in c with out c·m..c·m+m-1.
void conv_rule(Builder& b, int ni, const Node& n) {
  const Tensor* w = b.init(n.input(1));
  if (!w) { b.lock_inputs(n, nm_weight(b, n)); return; }
  int rank = static_cast<int>(w->dims.size());
  int64_t group = n.attr_int("group", 1);
  int64_t cout = w->dims[0];
  ChannelSpace* x = b.space(n.input(0));
  std::optional<ChannelSpace> xin;
  if (x) xin = *x;
  ChannelSpace& y = b.add_space(n.outputs[0], cout, rank, 1 - rank);
  ChannelSpace yc = y;
  b.param(ni, 1, 0, yc.value, ParamSlice::Role::Producer);
  if (b.init(n.input(2))) b.param(ni, 2, 0, yc.value, ParamSlice::Role::Producer);
  if (xin && xin->neg_axis != 1 - rank) {
    b.lock(xin->value, "input of " + b.nm(n) + " has its channels on another axis");
    xin.reset();
  }
  if (group == 1) {
    if (xin) b.param(ni, 1, 1, xin->value, ParamSlice::Role::Consumer);
    return;
  }
  if (!xin) { b.lock(yc.value, "grouped " + b.nm(n) + " reads a fixed-width input"); return; }
  if (group == xin->channels && w->dims[1] == 1 && cout % group == 0) {
    int64_t mult = cout / group;
    for (int64_t c = 0; c < xin->channels; ++c)
      for (int64_t j = 0; j < mult; ++j) b.link(*xin, c, yc, c * mult + j);
    return;
  }
  // General groups: W is [Cout, Cin/G, k..]. Whole groups (the default): a unit is one group, its
  // Cin/G input channels and Cout/G output channels together; the conv keeps G' groups of the same
  // width (W loses rows, not columns). Slots: every group reads the same slots, so a unit removes
  // slot j of every group's input (channels g·Cin/G + j) and output k of every group.
  if (xin->channels % group == 0 && cout % group == 0 && w->dims[1] == xin->channels / group) {
    int64_t in_per = xin->channels / group, out_per = cout / group;
    if (b.opt.conv_groups == ChannelDepsOptions::ConvGroups::Whole) {
      for (int64_t gi = 0; gi < group; ++gi) {
        for (int64_t j = 0; j < in_per; ++j) b.link(*xin, gi * in_per + j, yc, gi * out_per);
        for (int64_t k = 1; k < out_per; ++k) b.link(yc, gi * out_per, yc, gi * out_per + k);
      }
      b.d.whole_group_convs.insert(ni);
      return;
    }
    for (int64_t gi = 1; gi < group; ++gi) {
      for (int64_t j = 0; j < in_per; ++j) b.link(*xin, j, *xin, gi * in_per + j);
      for (int64_t k = 0; k < out_per; ++k) b.link(yc, k, yc, gi * out_per + k);
    }
    b.param(ni, 1, 1, xin->value, ParamSlice::Role::Consumer, in_per);
    return;
  }
  b.lock(xin->value, "grouped " + b.nm(n) + " (group=" + std::to_string(group) + ") does not split its channels evenly");
  b.lock(yc.value, "grouped " + b.nm(n) + " (group=" + std::to_string(group) + ") does not split its channels evenly");
}

// ConvTranspose: W is [Cin, Cout/g, k...]; in = W axis 0, out = W axis 1 (+B).
void conv_transpose_rule(Builder& b, int ni, const Node& n) {
  const Tensor* w = b.init(n.input(1));
  if (!w) { b.lock_inputs(n, nm_weight(b, n)); return; }
  int rank = static_cast<int>(w->dims.size());
  int64_t group = n.attr_int("group", 1);
  std::optional<ChannelSpace> xin;
  if (ChannelSpace* x = b.space(n.input(0))) xin = *x;
  if (xin && xin->neg_axis != 1 - rank) {
    b.lock(xin->value, "input of " + b.nm(n) + " has its channels on another axis");
    xin.reset();
  }
  int64_t cout = w->dims[1] * group;
  ChannelSpace yc = b.add_space(n.outputs[0], cout, rank, 1 - rank);
  if (b.init(n.input(2))) b.param(ni, 2, 0, yc.value, ParamSlice::Role::Producer);
  if (group == 1) {
    b.param(ni, 1, 1, yc.value, ParamSlice::Role::Producer);
    if (xin) b.param(ni, 1, 0, xin->value, ParamSlice::Role::Consumer);
    return;
  }
  if (xin && group == xin->channels && w->dims[1] == 1) {
    b.param(ni, 1, 0, yc.value, ParamSlice::Role::Producer);
    b.link_all(*xin, yc);
    return;
  }
  // General groups: W is [Cin, Cout/G, k..]; a unit is one whole group (its Cin/G input rows of W
  // and its Cout/G outputs), so W loses rows along axis 0 and keeps its width.
  if (xin && xin->channels % group == 0 && w->dims[0] == xin->channels) {
    int64_t in_per = xin->channels / group, out_per = w->dims[1];
    for (int64_t gi = 0; gi < group; ++gi) {
      for (int64_t j = 0; j < in_per; ++j) b.link(*xin, gi * in_per + j, yc, gi * out_per);
      for (int64_t k = 1; k < out_per; ++k) b.link(yc, gi * out_per, yc, gi * out_per + k);
    }
    b.param(ni, 1, 0, xin->value, ParamSlice::Role::Other);
    b.d.whole_group_convs.insert(ni);
    return;
  }
  if (xin) b.lock(xin->value, "grouped " + b.nm(n) + " does not split its channels evenly");
  b.lock(yc.value, xin ? "grouped " + b.nm(n) + " does not split its channels evenly"
                       : "grouped " + b.nm(n) + " reads a fixed-width input");
}

// MatMul of two activations (attention QKᵀ, probs·V): the axes before the last two are batch axes,
// so a channel space there (the heads) passes to the output and couples both operands (head h of Q
// with head h of K); on the two matrix axes it is contracted or mixed, so it stops.
void batched_matmul_rule(Builder& b, const Node& n) {
  std::optional<ChannelSpace> a, c;
  if (ChannelSpace* s = b.space(n.input(0))) a = *s;
  if (ChannelSpace* s = b.space(n.input(1))) c = *s;
  if (!a && !c) return;
  auto lock_both = [&](const std::string& why) {
    if (a) b.lock(a->value, why);
    if (c) b.lock(c->value, why);
  };
  auto batch = [](const std::optional<ChannelSpace>& s) { return !s || s->neg_axis <= -3; };
  if (!batch(a) || !batch(c)) { lock_both(b.nm(n) + " multiplies two activations along their channel axis"); return; }
  const std::string& out = n.outputs[0];
  if (a && c) {
    if (a->channels != c->channels || a->neg_axis != c->neg_axis) {
      lock_both(b.nm(n) + " combines tensors with different channel layouts");
      return;
    }
    ChannelSpace o = b.add_space(out, a->channels, std::max(a->rank, c->rank), a->neg_axis);
    b.link_all(*a, o);
    b.link_all(*c, o);
    return;
  }
  // One operand carries the space: the other must broadcast (size 1 or absent) on that axis.
  ChannelSpace x = a ? *a : *c;
  auto od = b.dims_of(n.input(a ? 1 : 0));
  int pos = od ? static_cast<int>(od->size()) + x.neg_axis : 0;
  if (!od || (pos >= 0 && (*od)[pos] != 1)) { lock_both(b.nm(n) + " broadcasts an operand across channels"); return; }
  b.pass(x, out, -1);
}

// Gemm / MatMul with a constant 2-D weight: in = K axis, out = N axis (+ bias on its last axis).
void linear_rule(Builder& b, int ni, const Node& n, bool gemm) {
  const Tensor* w = b.init(n.input(1));
  std::optional<ChannelSpace> xin;
  if (ChannelSpace* x = b.space(n.input(0))) xin = *x;
  bool trans_a = gemm && n.attr_int("transA", 0) != 0;
  bool trans_b = gemm && n.attr_int("transB", 0) != 0;
  if (!gemm && !w && !b.init(n.input(1)) && !b.init(n.input(0))) {
    batched_matmul_rule(b, n);
    return;
  }
  if (!w || w->dims.size() != 2 || trans_a) {
    b.lock_inputs(n, b.nm(n) + " has no constant 2-D weight");
    return;
  }
  int k_axis = trans_b ? 1 : 0, n_axis = trans_b ? 0 : 1;
  if (xin && xin->neg_axis != -1) {
    b.lock(xin->value, "input of " + b.nm(n) + " has its channels on another axis");
    xin.reset();
  }
  int rank = gemm ? 2 : (xin ? xin->rank : b.known_rank(n.input(0)));
  ChannelSpace yc = b.add_space(n.outputs[0], w->dims[n_axis], rank, -1, 1);
  b.param(ni, 1, n_axis, yc.value, ParamSlice::Role::Producer);
  if (gemm) {
    const Tensor* c = b.init(n.input(2));
    if (c && !c->dims.empty() && c->dims.back() == yc.channels)
      b.param(ni, 2, static_cast<int>(c->dims.size()) - 1, yc.value, ParamSlice::Role::Producer);
    else if (c && !c->dims.empty() && c->dims.back() != 1)
      b.lock(yc.value, "bias of " + b.nm(n) + " does not broadcast per output");
  }
  if (xin) b.param(ni, 1, k_axis, xin->value, ParamSlice::Role::Consumer);
}


// Normalizations over axis 1 (BatchNorm, InstanceNorm): params 1.. sliced on axis 0.
void channel_norm_rule(Builder& b, int ni, const Node& n, int nparams) {
  ChannelSpace* x = b.space(n.input(0));
  if (!x) return;
  ChannelSpace xc = *x;
  if (xc.rank < 0 || xc.neg_axis != 1 - xc.rank) { b.lock(xc.value, b.nm(n) + " normalizes another axis"); return; }
  b.pass(xc, n.outputs[0], b.trailing[xc.value]);
  for (int i = 1; i <= nparams; ++i)
    if (b.init(n.input(i))) b.param(ni, i, 0, xc.value, i == 1 ? ParamSlice::Role::Norm : ParamSlice::Role::Other);
    else if (!n.input(i).empty()) b.lock(xc.value, b.nm(n) + " has non-constant parameters");
}

// Unary element-wise ops and ops whose other inputs are scalars/attributes.
void unary_rule(Builder& b, int, const Node& n) {
  ChannelSpace* x = b.space(n.input(0));
  if (!x || n.outputs.empty()) return;
  ChannelSpace xc = *x;
  b.pass(xc, n.outputs[0], b.trailing[xc.value]);
}

// Pooling keeps channels on axis 1 (global pooling leaves 1x1 behind the channel).
void pool_rule(Builder& b, int, const Node& n, bool global) {
  ChannelSpace* x = b.space(n.input(0));
  if (!x) return;
  ChannelSpace xc = *x;
  if (xc.rank >= 0 && xc.neg_axis != 1 - xc.rank) { b.lock(xc.value, b.nm(n) + " pools over the channel axis"); return; }
  b.pass(xc, n.outputs[0], global ? 1 : -1);
}

void resize_rule(Builder& b, int, const Node& n) {
  ChannelSpace* x = b.space(n.input(0));
  if (!x) return;
  ChannelSpace xc = *x;
  // scales (input 2 from opset 11, input 1 before) must keep the channel axis.
  int p = b.pos_axis(xc);
  for (int i : {1, 2}) {
    const Tensor* s = b.init(n.input(i));
    if (s && s->dtype == DType::Float && s->numel() > p && p >= 0 && s->to_float()[p] != 1.f) {
      b.lock(xc.value, b.nm(n) + " rescales the channel axis");
      return;
    }
  }
  b.pass(xc, n.outputs[0], -1);
}

// Element-wise binary ops: two dynamic channel inputs are one group (residual, SE gating); a
// constant operand is a per-channel parameter when its dim at the channel axis equals C.
void binary_rule(Builder& b, int ni, const Node& n) {
  ChannelSpace* a = b.space(n.input(0));
  ChannelSpace* c = b.space(n.input(1));
  if (!a && !c) return;
  if (a && c) {
    ChannelSpace ac = *a, cc = *c;
    if (ac.channels != cc.channels || ac.neg_axis != cc.neg_axis) {
      b.lock(ac.value, b.nm(n) + " combines tensors with different channel layouts");
      b.lock(cc.value, b.nm(n) + " combines tensors with different channel layouts");
      return;
    }
    int64_t t = b.trailing[ac.value] == 1 ? b.trailing[cc.value] : b.trailing[ac.value];
    ChannelSpace o = b.pass(ac, n.outputs[0], t);
    b.link_all(cc, o);
    return;
  }
  ChannelSpace xc = a ? *a : *c;
  int other = a ? 1 : 0;
  const std::string& ov = n.input(other);
  // Only the operand's dim at the channel axis matters (a mask [B,1,T,T] broadcasts over heads).
  std::optional<std::vector<int64_t>> odims = b.dims_of(ov);
  int r = odims ? static_cast<int>(odims->size()) : 0;
  int pos = r + xc.neg_axis;
  if (!odims || (pos >= 0 && (*odims)[pos] < 0)) {
    b.lock(xc.value, b.nm(n) + " mixes in an operand of unknown shape");
    return;
  }
  if (pos >= 0 && (*odims)[pos] != 1) {
    if ((*odims)[pos] != xc.channels || !b.init(ov)) {
      b.lock(xc.value, b.nm(n) + " broadcasts an operand across channels");
      return;
    }
    b.param(ni, other, pos, xc.value, ParamSlice::Role::Other);
  }
  // Broadcasting may give the output more dims in front; neg_axis counts from the end so it holds.
  ChannelSpace o = b.pass(xc, n.outputs[0], b.trailing[xc.value]);
  (void)o;
}

void prelu_rule(Builder& b, int ni, const Node& n) { binary_rule(b, ni, n); }

// LayerNormalization over the channel axis only: scale/bias slice with it (statistics change).
void layer_norm_rule(Builder& b, int ni, const Node& n) {
  ChannelSpace* x = b.space(n.input(0));
  if (!x) return;
  ChannelSpace xc = *x;
  int64_t axis = n.attr_int("axis", -1);
  bool last = axis == -1 || (xc.rank >= 0 && axis == xc.rank - 1);
  int p = b.pos_axis(xc);
  bool covers = last ? xc.neg_axis == -1 : (p < 0 || norm_axis(axis, xc.rank) <= p);
  if (covers && !(last && xc.neg_axis == -1)) { b.lock(xc.value, b.nm(n) + " normalizes across the channel axis"); return; }
  b.pass(xc, n.outputs[0], b.trailing[xc.value]);
  if (covers) {
    for (int i : {1, 2})
      if (const Tensor* t = b.init(n.input(i)))
        b.param(ni, i, static_cast<int>(t->dims.size()) - 1, xc.value, ParamSlice::Role::Norm);
  }
}

std::vector<int64_t> concat_offsets(const std::vector<int64_t>& sizes) {
  std::vector<int64_t> off(sizes.size() + 1, 0);
  for (size_t i = 0; i < sizes.size(); ++i) off[i + 1] = off[i] + sizes[i];
  return off;
}

// Concat: on the channel axis input k's channel i is output channel i + offset_k; elsewhere it is
// a pass-through that unites all inputs. Zero padding made by ConstantOfShape becomes a space too.
void concat_rule(Builder& b, int, const Node& n) {
  std::vector<std::optional<ChannelSpace>> ins;
  bool any = false;
  for (const auto& i : n.inputs) {
    ChannelSpace* s = b.space(i);
    ins.push_back(s ? std::optional<ChannelSpace>(*s) : std::nullopt);
    any = any || s;
  }
  if (!any) return;
  const ChannelSpace& ref = *std::find_if(ins.begin(), ins.end(), [](auto& s) { return s.has_value(); })->operator->();
  ChannelSpace r = ref;
  int rank = r.rank >= 0 ? r.rank : b.known_rank(n.outputs[0]);
  int64_t axis = n.attr_int("axis", 1);
  bool on_channel = axis < 0 ? axis == r.neg_axis : (rank >= 0 && axis == rank + r.neg_axis);
  if (!on_channel && (axis >= 0 && rank < 0)) { b.lock_inputs(n, b.nm(n) + " with unknown rank"); return; }
  if (!on_channel) {
    for (auto& s : ins)
      if (!s || s->channels != r.channels || s->neg_axis != r.neg_axis) {
        b.lock_inputs(n, b.nm(n) + " joins tensors of different channel layouts");
        return;
      }
    ChannelSpace o = b.pass(r, n.outputs[0], -1);
    for (auto& s : ins) b.link_all(*s, o);
    return;
  }
  // Inputs without a space: zero padding from ConstantOfShape(constant shape) gets one.
  for (size_t k = 0; k < ins.size(); ++k) {
    if (ins[k]) continue;
    int p = b.g.producer(n.inputs[k]);
    std::optional<std::vector<int64_t>> shape;
    if (p >= 0 && b.g.nodes[p].op_type == "ConstantOfShape") shape = b.ints_of(b.g.nodes[p].input(0));
    if (!shape || rank < 0 || static_cast<int>(shape->size()) != rank) {
      b.lock_inputs(n, b.nm(n) + " joins a fixed-width input on the channel axis");
      return;
    }
    ins[k] = b.add_space(n.inputs[k], (*shape)[rank + r.neg_axis], rank, r.neg_axis);
  }
  std::vector<int64_t> sizes;
  for (auto& s : ins) sizes.push_back(s->channels);
  auto off = concat_offsets(sizes);
  ChannelSpace o = b.add_space(n.outputs[0], off.back(), rank, r.neg_axis);
  for (size_t k = 0; k < ins.size(); ++k)
    for (int64_t c = 0; c < ins[k]->channels; ++c) b.link(*ins[k], c, o, off[k] + c);
}

void concat_fix(Graph& g, int ni, const ChannelDeps& d, const KeptChannels& kept) {
  // ConstantOfShape inputs: their shape constant carries the channel count.
  Node n = g.nodes[ni];
  for (const auto& in : n.inputs) {
    auto it = d.spaces.find(in);
    const auto* k = kept_of(kept, in);
    int p = g.producer(in);
    if (it == d.spaces.end() || !k || p < 0 || g.nodes[p].op_type != "ConstantOfShape") continue;
    const Tensor* sh = g.initializer(g.nodes[p].input(0));
    std::vector<int64_t> dims = sh->to_int64();
    dims[dims.size() + it->second.neg_axis] = static_cast<int64_t>(k->size());
    Tensor t = sh->dtype == DType::Int32
                   ? Tensor::from_int32(sh->name, sh->dims, std::vector<int32_t>(dims.begin(), dims.end()))
                   : Tensor::from_int64(sh->name, sh->dims, dims);
    set_node_constant(g, p, 0, t);
  }
}

std::optional<std::vector<int64_t>> attr_or_input(const Builder& b, const Node& n, const char* attr, int input) {
  if (n.has_attr(attr)) return n.attr_ints(attr);
  if (!n.input(input).empty()) return b.ints_of(n.input(input));
  return std::nullopt;
}

// Split on the channel axis: output k's channel i is input channel offset_k + i.
void split_rule(Builder& b, int, const Node& n) {
  ChannelSpace* x = b.space(n.input(0));
  if (!x) return;
  ChannelSpace xc = *x;
  int64_t axis = n.attr_int("axis", 0);
  bool on_channel = axis < 0 ? axis == xc.neg_axis : (xc.rank >= 0 && axis == xc.rank + xc.neg_axis);
  if (!on_channel) {
    if (axis >= 0 && xc.rank < 0) { b.lock(xc.value, b.nm(n) + " with unknown rank"); return; }
    for (const auto& o : n.outputs) b.pass(xc, o, -1);
    return;
  }
  std::optional<std::vector<int64_t>> split = attr_or_input(b, n, "split", 1);
  if (!split) {  // implicit equal split: no attribute or input to rewrite afterwards
    b.lock(xc.value, b.nm(n) + " splits the channel axis evenly without explicit sizes");
    return;
  }
  auto off = concat_offsets(*split);
  for (size_t k = 0; k < n.outputs.size(); ++k) {
    ChannelSpace o = b.add_space(n.outputs[k], (*split)[k], xc.rank, xc.neg_axis, b.trailing[xc.value]);
    for (int64_t c = 0; c < o.channels; ++c) b.link(xc, off[k] + c, o, c);
  }
}

void split_fix(Graph& g, int ni, const ChannelDeps& d, const KeptChannels& kept) {
  Node& n = g.nodes[ni];
  if (!d.spaces.count(n.input(0)) || !kept_of(kept, n.input(0))) return;
  const ChannelSpace& xs = d.spaces.at(n.input(0));
  const ChannelSpace& o0 = d.spaces.at(n.outputs[0]);
  if (o0.channels == xs.channels && n.outputs.size() > 1) return;  // split along another axis
  std::vector<int64_t> sizes;
  for (const auto& o : n.outputs) {
    const auto* k = kept_of(kept, o);
    sizes.push_back(k ? static_cast<int64_t>(k->size()) : d.spaces.at(o).channels);
  }
  if (n.has_attr("split")) { n.set_attr_ints("split", sizes); return; }
  const Tensor* cur = g.initializer(n.input(1));
  set_node_constant(g, ni, 1, Tensor::from_int64(cur->name, cur->dims, sizes));
}

// ---- run-time shape arithmetic (heads folded into the batch axis, --heads) ----
//
// A small integer computation (Shape -> Gather/Slice -> Add/Sub/Mul/Div -> Cast/(Un)Squeeze ->
// Concat) evaluated on the dims the graph knows, unknown dims counted as 1, with two what-ifs: dim
// `over_dim` of value `over` taken as `over_n` (the channel count after pruning), and the constant
// read by input `probe_input` of node `probe_node` multiplied by `probe_mul` (which constant holds H).
struct EvalCtx {
  std::string over;
  int64_t over_dim = -1, over_n = 0;
  int probe_node = -1, probe_input = -1;
  int64_t probe_mul = 1;
};

std::optional<std::vector<int64_t>> eval_ints(const Builder& b, const EvalCtx& cx, const std::string& v, int depth = 0) {
  if (v.empty() || depth > 24) return std::nullopt;
  if (const Tensor* t = b.init(v)) {
    if (!dtype_is_integer(t->dtype) || t->numel() > 16) return std::nullopt;
    return t->to_int64();
  }
  int p = b.g.producer(v);
  if (p < 0) return std::nullopt;
  const Node& n = b.g.nodes[p];
  const std::string& op = n.op_type;
  auto in = [&](size_t i) -> std::optional<std::vector<int64_t>> {
    auto r = eval_ints(b, cx, n.input(i), depth + 1);
    if (r && cx.probe_node == p && cx.probe_input == static_cast<int>(i))
      for (auto& x : *r) x *= cx.probe_mul;
    return r;
  };
  if (op == "Shape") {
    if (n.has_attr("start") || n.has_attr("end")) return std::nullopt;
    auto dims = b.dims_of(n.input(0));
    if (!dims) {
      const ChannelSpace* sp = b.d.spaces.count(n.input(0)) ? &b.d.spaces.at(n.input(0)) : nullptr;
      if (!sp || sp->rank < 0) return std::nullopt;
      dims = std::vector<int64_t>(static_cast<size_t>(sp->rank), -1);
    }
    for (auto& x : *dims) x = x < 0 ? 1 : x;
    if (n.input(0) == cx.over && cx.over_dim >= 0 && cx.over_dim < static_cast<int64_t>(dims->size()))
      (*dims)[static_cast<size_t>(cx.over_dim)] = cx.over_n;
    return dims;
  }
  if (op == "Cast" || op == "Identity" || op == "Squeeze" || op == "Unsqueeze") return in(0);
  if (op == "Concat") {
    std::vector<int64_t> out;
    for (size_t i = 0; i < n.inputs.size(); ++i) {
      auto r = in(i);
      if (!r) return std::nullopt;
      out.insert(out.end(), r->begin(), r->end());
    }
    return out;
  }
  if (op == "Gather") {
    auto data = in(0), idx = in(1);
    if (!data || !idx || n.attr_int("axis", 0) != 0) return std::nullopt;
    std::vector<int64_t> out;
    const int64_t len = static_cast<int64_t>(data->size());
    for (int64_t i : *idx) {
      if (i < 0) i += len;
      if (i < 0 || i >= len) return std::nullopt;
      out.push_back((*data)[static_cast<size_t>(i)]);
    }
    return out;
  }
  if (op == "Add" || op == "Sub" || op == "Mul" || op == "Div") {
    auto a = in(0), c = in(1);
    if (!a || !c || a->empty() || c->empty()) return std::nullopt;
    if (a->size() != c->size() && a->size() != 1 && c->size() != 1) return std::nullopt;
    std::vector<int64_t> out(std::max(a->size(), c->size()));
    for (size_t i = 0; i < out.size(); ++i) {
      int64_t x = (*a)[a->size() == 1 ? 0 : i], y = (*c)[c->size() == 1 ? 0 : i];
      if (op == "Div" && y == 0) return std::nullopt;
      out[i] = op == "Add" ? x + y : op == "Sub" ? x - y : op == "Mul" ? x * y : x / y;
    }
    return out;
  }
  return std::nullopt;
}

// A Slice of the channel axis whose bounds are computed at run time from the sliced value's own
// channel count as an equal k-of-`parts` split (nn.MultiheadAttention's packed Q/K/V: bounds
// k·⌊(C+2)/3⌋): {start, width} at the current count, checked to stay an equal split at C − parts.
std::optional<std::pair<int64_t, int64_t>> adaptive_split(const Builder& b, const Node& n, const ChannelSpace& xc) {
  if (!b.opt.heads || n.op_type != "Slice" || n.has_attr("starts") || n.inputs.size() < 4) return std::nullopt;
  auto axes = b.ints_of(n.input(3));
  int p = b.pos_axis(xc);
  if (!axes || axes->size() != 1 || !((*axes)[0] == xc.neg_axis || (p >= 0 && (*axes)[0] == p))) return std::nullopt;
  if (!n.input(4).empty()) {
    auto steps = b.ints_of(n.input(4));
    if (!steps || *steps != std::vector<int64_t>{1}) return std::nullopt;
  }
  int rank = xc.rank;
  if (rank < 0) return std::nullopt;
  auto bounds = [&](int64_t c) -> std::optional<std::pair<int64_t, int64_t>> {
    EvalCtx cx;
    cx.over = xc.value;
    cx.over_dim = rank + xc.neg_axis;
    cx.over_n = c;
    auto st = eval_ints(b, cx, n.input(1)), en = eval_ints(b, cx, n.input(2));
    if (!st || !en || st->size() != 1 || en->size() != 1) return std::nullopt;
    auto cl = [&](int64_t v) { return std::clamp<int64_t>(v < 0 ? v + c : v, 0, c); };
    return std::make_pair(cl((*st)[0]), cl((*en)[0]));
  };
  const int64_t c0 = xc.channels;
  auto b0 = bounds(c0);
  if (!b0 || b0->second <= b0->first) return std::nullopt;
  const int64_t width = b0->second - b0->first;
  if (c0 % width != 0 || b0->first % width != 0) return std::nullopt;
  const int64_t parts = c0 / width, k = b0->first / width;
  if (parts < 2 || c0 - parts <= 0) return std::nullopt;
  const int64_t c1 = c0 - parts, w1 = c1 / parts;
  auto b1 = bounds(c1);
  if (!b1 || b1->first != k * w1 || b1->second != (k + 1) * w1) return std::nullopt;
  return std::make_pair(b0->first, width);
}

// Slice with step 1 on the channel axis: output channel i is input channel start + i.
void slice_rule(Builder& b, int, const Node& n) {
  ChannelSpace* x = b.space(n.input(0));
  if (!x) return;
  ChannelSpace xc = *x;
  auto starts = attr_or_input(b, n, "starts", 1), ends = attr_or_input(b, n, "ends", 2);
  auto axes = attr_or_input(b, n, "axes", 3), steps = n.has_attr("starts") ? std::nullopt : attr_or_input(b, n, "steps", 4);
  if (!starts || !ends) {
    if (auto sp = adaptive_split(b, n, xc)) {  // bounds that follow the channel count by themselves
      ChannelSpace o = b.add_space(n.outputs[0], sp->second, xc.rank, xc.neg_axis);
      for (int64_t c = 0; c < o.channels; ++c) b.link(xc, sp->first + c, o, c);
      return;
    }
    b.lock(xc.value, b.nm(n) + " has dynamic bounds");
    return;
  }
  if (!axes) { axes = std::vector<int64_t>(starts->size()); std::iota(axes->begin(), axes->end(), 0); }
  int p = b.pos_axis(xc);
  for (size_t i = 0; i < axes->size(); ++i) {
    int64_t a = (*axes)[i];
    bool on = a < 0 ? a == xc.neg_axis : (p >= 0 && a == p);
    if (!on && a >= 0 && p < 0) { b.lock(xc.value, b.nm(n) + " with unknown rank"); return; }
    if (!on) continue;
    if (steps && (*steps)[i] != 1) { b.lock(xc.value, b.nm(n) + " strides the channel axis"); return; }
    auto clampc = [&](int64_t v) { if (v < 0) v += xc.channels; return std::clamp<int64_t>(v, 0, xc.channels); };
    int64_t s = clampc((*starts)[i]), e = clampc((*ends)[i]);
    ChannelSpace o = b.add_space(n.outputs[0], std::max<int64_t>(0, e - s), xc.rank, xc.neg_axis);
    for (int64_t c = 0; c < o.channels; ++c) b.link(xc, s + c, o, c);
    return;
  }
  b.pass(xc, n.outputs[0], -1);
}

void slice_fix(Graph& g, int ni, const ChannelDeps& d, const KeptChannels& kept) {
  Node& n = g.nodes[ni];
  const auto* kin = kept_of(kept, n.input(0));
  if (!kin) return;
  const ChannelSpace& xs = d.spaces.at(n.input(0));
  const ChannelSpace& os = d.spaces.at(n.outputs[0]);
  bool attrs = n.has_attr("starts");
  if (!attrs && (!g.initializer(n.input(1)) || !g.initializer(n.input(2)))) return;  // run-time bounds adapt
  std::vector<int64_t> starts = attrs ? n.attr_ints("starts") : g.initializer(n.input(1))->to_int64();
  std::vector<int64_t> ends = attrs ? n.attr_ints("ends") : g.initializer(n.input(2))->to_int64();
  std::vector<int64_t> axes = attrs ? n.attr_ints("axes") : (n.input(3).empty() ? std::vector<int64_t>{} : g.initializer(n.input(3))->to_int64());
  if (axes.empty()) { axes.resize(starts.size()); std::iota(axes.begin(), axes.end(), 0); }
  int p = xs.rank >= 0 ? xs.rank + xs.neg_axis : -1;
  for (size_t i = 0; i < axes.size(); ++i) {
    int64_t a = axes[i];
    if (!(a < 0 ? a == xs.neg_axis : a == p)) continue;
    int64_t s = starts[i] < 0 ? starts[i] + xs.channels : starts[i];
    s = std::clamp<int64_t>(s, 0, xs.channels);
    const auto* kout = kept_of(kept, n.outputs[0]);
    int64_t ns = count_in(*kin, 0, s);
    int64_t ne = ns + (kout ? static_cast<int64_t>(kout->size()) : os.channels);
    starts[i] = ns;
    ends[i] = ne;
  }
  if (attrs) { n.set_attr_ints("starts", starts); n.set_attr_ints("ends", ends); return; }
  const Tensor* st = g.initializer(n.input(1));
  const Tensor* en = g.initializer(n.input(2));
  auto mk = [](const Tensor* t, const std::vector<int64_t>& v) {
    return t->dtype == DType::Int32 ? Tensor::from_int32(t->name, t->dims, std::vector<int32_t>(v.begin(), v.end()))
                                    : Tensor::from_int64(t->name, t->dims, v);
  };
  Tensor ts = mk(st, starts), te = mk(en, ends);
  set_node_constant(g, ni, 1, ts);
  set_node_constant(g, ni, 2, te);
}

void transpose_rule(Builder& b, int, const Node& n) {
  ChannelSpace* x = b.space(n.input(0));
  if (!x) return;
  ChannelSpace xc = *x;
  std::vector<int64_t> perm = n.attr_ints("perm");
  int rank = static_cast<int>(perm.size());
  if (rank == 0 || (xc.rank >= 0 && xc.rank != rank)) { b.lock(xc.value, b.nm(n) + " without a usable perm"); return; }
  int p = rank + xc.neg_axis;
  int j = static_cast<int>(std::find(perm.begin(), perm.end(), p) - perm.begin());
  int64_t trail = j == rank - 1 ? 1 : -1;
  ChannelSpace o = b.add_space(n.outputs[0], xc.channels, rank, j - rank, trail);
  b.link_all(xc, o);
}

// Output channel c·s + j of a fold comes from input channel c.
void fold(Builder& b, const ChannelSpace& x, const std::string& out, int64_t s, int rank, int neg) {
  ChannelSpace o = b.add_space(out, x.channels * s, rank, neg, neg == -1 ? 1 : -1);
  for (int64_t c = 0; c < x.channels; ++c)
    for (int64_t j = 0; j < s; ++j) b.link(x, c, o, c * s + j);
}

void flatten_rule(Builder& b, int, const Node& n) {
  ChannelSpace* x = b.space(n.input(0));
  if (!x) return;
  ChannelSpace xc = *x;
  int p = b.pos_axis(xc);
  int64_t axis = n.attr_int("axis", 1);
  if (p < 0) { b.lock(xc.value, b.nm(n) + " with unknown rank"); return; }
  axis = norm_axis(axis, xc.rank);
  int64_t s = b.trailing[xc.value];
  if (axis != p || s < 0) { b.lock(xc.value, b.nm(n) + " mixes the channel axis with others"); return; }
  fold(b, xc, n.outputs[0], s, 2, -1);
}

// A Reshape target element by element. Constant elements say where they are stored; run-time
// elements say which dim of which value they copy. Targets are an integer initializer, or built at
// run time from pieces: Concat (axis 0), Cast/Identity/Squeeze/Unsqueeze (element order kept),
// Slice/Gather on axis 0 with constant bounds, Shape of a value of known rank.
struct TargetElem {
  std::optional<int64_t> value;  // constant
  std::string dim_of;            // run-time: dim `dim` of value `dim_of`
  int64_t dim = -1;
  ShapeElemRef at;               // where a constant element is stored
  bool private_chain = true;     // each value between that constant and the Reshape has one use
};

std::optional<std::vector<TargetElem>> target_elems(const Builder& b, int node, int input, bool priv, int depth = 0) {
  const Graph& g = b.g;
  const std::string& v = g.nodes[node].inputs[input];
  if (v.empty() || depth > 16) return std::nullopt;
  if (const Tensor* t = g.initializer(v)) {
    if (!dtype_is_integer(t->dtype) || t->dims.size() > 1 || t->numel() > 16) return std::nullopt;
    std::vector<TargetElem> out;
    std::vector<int64_t> vals = t->to_int64();
    for (size_t i = 0; i < vals.size(); ++i) out.push_back({vals[i], "", -1, {node, input, static_cast<int64_t>(i)}, priv});
    return out;
  }
  int p = g.producer(v);
  if (p < 0) return std::nullopt;
  priv = priv && g.consumers(v).size() == 1 && !g.is_graph_output(v);
  const Node& n = g.nodes[p];
  const std::string& op = n.op_type;
  if (op == "Cast" || op == "Identity" || op == "Squeeze" || op == "Unsqueeze") return target_elems(b, p, 0, priv, depth + 1);
  if (op == "Concat") {
    if (n.attr_int("axis", 0) != 0 && n.attr_int("axis", 0) != -1) return std::nullopt;
    std::vector<TargetElem> out;
    for (size_t i = 0; i < n.inputs.size(); ++i) {
      auto part = target_elems(b, p, static_cast<int>(i), priv, depth + 1);
      if (!part) return std::nullopt;
      out.insert(out.end(), part->begin(), part->end());
    }
    return out;
  }
  if (op == "Shape") {
    int rank = b.known_rank(n.input(0));
    if (auto sp = b.d.spaces.find(n.input(0)); rank < 0 && sp != b.d.spaces.end()) rank = sp->second.rank;
    if (rank < 0 || n.has_attr("start") || n.has_attr("end")) return std::nullopt;
    std::vector<TargetElem> out;
    for (int i = 0; i < rank; ++i) out.push_back({std::nullopt, n.input(0), i, {}, priv});
    return out;
  }
  if (op == "Slice" || op == "Gather") {
    auto data = target_elems(b, p, 0, priv, depth + 1);
    if (!data) return std::nullopt;
    int64_t len = static_cast<int64_t>(data->size());
    auto in_range = [&](int64_t i) { return i < 0 ? i + len : i; };
    std::vector<TargetElem> out;
    if (op == "Gather") {
      auto idx = b.ints_of(n.input(1));
      if (!idx || n.attr_int("axis", 0) != 0) return std::nullopt;
      for (int64_t i : *idx) {
        i = in_range(i);
        if (i < 0 || i >= len) return std::nullopt;
        out.push_back((*data)[i]);
      }
      return out;
    }
    bool attrs = n.has_attr("starts");
    auto starts = attrs ? std::optional(n.attr_ints("starts")) : b.ints_of(n.input(1));
    auto ends = attrs ? std::optional(n.attr_ints("ends")) : b.ints_of(n.input(2));
    std::optional<std::vector<int64_t>> axes = attrs ? std::optional(n.attr_ints("axes")) : b.ints_of(n.input(3));
    if (!attrs && n.input(3).empty()) axes = std::vector<int64_t>{0};
    if (!attrs && !n.input(4).empty()) {
      auto steps = b.ints_of(n.input(4));
      if (!steps || *steps != std::vector<int64_t>{1}) return std::nullopt;
    }
    if (attrs && axes->empty()) axes = std::vector<int64_t>{0};
    if (!starts || !ends || !axes || starts->size() != 1 || ends->size() != 1 || *axes != std::vector<int64_t>{0})
      return std::nullopt;
    int64_t s = std::clamp<int64_t>(in_range((*starts)[0]), 0, len), e = std::clamp<int64_t>(in_range((*ends)[0]), 0, len);
    for (int64_t i = s; i < e; ++i) out.push_back((*data)[i]);
    return out;
  }
  return std::nullopt;
}

// Whether the channel count of a value can reach anything through `v`, an output of Shape (or a Cast
// of one): every use must pick dims other than `channel_dim` with a Gather or Slice of constant
// indices on axis 0, so what flows on never depends on how many channels there are.
bool channel_count_escapes(const Builder& b, const std::string& v, int64_t channel_dim, int64_t rank, int depth = 0) {
  if (b.g.is_graph_output(v) || depth > 8) return true;
  for (int c : b.g.consumers(v)) {
    const Node& n = b.g.nodes[c];
    if (n.input(0) != v) return true;
    for (size_t i = 1; i < n.inputs.size(); ++i)
      if (n.inputs[i] == v) return true;
    if (n.op_type == "Cast" || n.op_type == "Identity") {
      if (channel_count_escapes(b, n.outputs[0], channel_dim, rank, depth + 1)) return true;
      continue;
    }
    auto norm = [&](int64_t i) { return i < 0 ? i + rank : i; };
    if (n.op_type == "Gather") {
      auto idx = b.ints_of(n.input(1));
      if (!idx || n.attr_int("axis", 0) != 0) return true;
      for (int64_t i : *idx)
        if (norm(i) == channel_dim || norm(i) < 0 || norm(i) >= rank) return true;
      continue;
    }
    if (n.op_type == "Slice") {
      bool attrs = n.has_attr("starts");
      auto starts = attrs ? std::optional(n.attr_ints("starts")) : b.ints_of(n.input(1));
      auto ends = attrs ? std::optional(n.attr_ints("ends")) : b.ints_of(n.input(2));
      std::optional<std::vector<int64_t>> axes = attrs ? std::optional(n.attr_ints("axes")) : b.ints_of(n.input(3));
      if ((attrs && axes->empty()) || (!attrs && n.input(3).empty())) axes = std::vector<int64_t>{0};
      if (!attrs && !n.input(4).empty()) {
        auto steps = b.ints_of(n.input(4));
        if (!steps || *steps != std::vector<int64_t>{1}) return true;
      }
      if (!starts || !ends || !axes || starts->size() != 1 || ends->size() != 1 || *axes != std::vector<int64_t>{0})
        return true;
      int64_t lo = std::clamp<int64_t>(norm((*starts)[0]), 0, rank), hi = std::clamp<int64_t>(norm((*ends)[0]), 0, rank);
      if (lo <= channel_dim && channel_dim < hi) return true;
      continue;
    }
    return true;
  }
  return false;
}

// Whether `v` (computed from Shape of `x`) only reaches the bounds of adaptive equal-split Slices
// of `x` itself (adaptive_split), through integer arithmetic: then the count it reads follows the
// pruned channel count by construction.
bool only_feeds_adaptive_slices(const Builder& b, const std::string& v, const ChannelSpace& x, int depth = 0) {
  if (!b.opt.heads || b.g.is_graph_output(v) || depth > 12) return false;
  auto cons = b.g.consumers(v);
  if (cons.empty()) return false;
  for (int c : cons) {
    const Node& n = b.g.nodes[c];
    if (n.op_type == "Slice") {
      if (n.input(0) != x.value || n.input(0) == v || !adaptive_split(b, n, x)) return false;
      continue;
    }
    static const std::set<std::string> arith = {"Gather", "Add", "Sub", "Mul", "Div", "Cast", "Identity", "Unsqueeze",
                                                "Squeeze", "Concat"};
    if (!arith.count(n.op_type) || n.outputs.size() != 1 || !only_feeds_adaptive_slices(b, n.outputs[0], x, depth + 1))
      return false;
  }
  return true;
}

// Shape of a value with channels: harmless unless the channel count escapes (above).
void shape_rule(Builder& b, int, const Node& n) {
  ChannelSpace* x = b.space(n.input(0));
  if (!x) return;
  int p = b.pos_axis(*x);
  if (p < 0 || n.has_attr("start") || n.has_attr("end") || channel_count_escapes(b, n.outputs[0], p, x->rank)) {
    if (p >= 0 && !n.has_attr("start") && !n.has_attr("end") && only_feeds_adaptive_slices(b, n.outputs[0], *x)) return;
    b.lock(x->value, b.nm(n) + " reads the channel count");
  }
}

// True when `a` and `b` are provably the same size at run time (equal numbers, or one symbol).
bool same_dim(const Dim& a, const Dim& b) {
  if (a.known() || b.known()) return a.known() && b.known() && a.value == b.value;
  return !a.param.empty() && a.param == b.param;
}

// Reshape keeping the leading dims and either folding the channel with what follows it (stride s:
// input c -> outputs c·s .. c·s+s-1), or, with heads, splitting it into (G, H, Dh) (input c ->
// head (c / Dh) mod H on the H axis; G > 1 for packed Q/K/V). Leading dims must be copied (0),
// equal, or one -1 that can only stand for the input's own dim.
// Integer initializers the computation of `v` reads: (node, input) pairs.
void integer_leaves(const Builder& b, const std::string& v, std::vector<std::pair<int, int>>& out, int depth = 0) {
  int p = b.g.producer(v);
  if (p < 0 || depth > 24) return;
  const Node& n = b.g.nodes[p];
  for (size_t i = 0; i < n.inputs.size(); ++i) {
    const Tensor* t = b.init(n.inputs[i]);
    if (t && dtype_is_integer(t->dtype) && t->numel() == 1) out.push_back({p, static_cast<int>(i)});
    else if (!t) integer_leaves(b, n.inputs[i], out, depth + 1);
  }
}

// --heads, heads folded into the batch axis (nn.MultiheadAttention's export): the split
// [.., B, C] -> [.., B·H, Dh] and the merge [.., B·H, Dh] -> [.., H·Dh] with targets computed at
// run time (eval_ints). The split's output is a space of H channels on the B·H axis (channel h is
// every entry b·H + h); the merge is a fold with stride Dh. True when it handled `n`.
bool heads_batch_rule(Builder& b, int ni, const Node& n, const ChannelSpace& xc) {
  const int r = xc.rank, p = b.pos_axis(xc);
  if (!b.opt.heads || r < 2 || p < 0) return false;
  auto S = eval_ints(b, EvalCtx{}, n.input(1));
  if (!S) return false;
  auto in = b.dims_of(xc.value);
  auto dim_in = [&](int i) -> int64_t {
    return !in || i >= static_cast<int>(in->size()) || (*in)[static_cast<size_t>(i)] < 0 ? 1 : (*in)[static_cast<size_t>(i)];
  };
  const int rs = static_cast<int>(S->size());
  if (xc.neg_axis == -1 && rs == r && p >= 1) {
    const int64_t dh = (*S)[static_cast<size_t>(p)], bh = (*S)[static_cast<size_t>(p - 1)];
    if (dh <= 0 || xc.channels % dh != 0 || xc.channels / dh < 2 || bh != dim_in(p - 1) * (xc.channels / dh)) return false;
    const int64_t heads = xc.channels / dh;
    std::vector<std::pair<int, int>> leaves;
    integer_leaves(b, n.input(1), leaves);
    std::optional<std::pair<int, int>> holder;
    for (const auto& [node, input] : leaves) {
      const Tensor* t = b.init(b.g.nodes[static_cast<size_t>(node)].inputs[static_cast<size_t>(input)]);
      if (!t || t->to_int64()[0] != heads) continue;
      EvalCtx pr;
      pr.probe_node = node;
      pr.probe_input = input;
      pr.probe_mul = 2;
      auto S2 = eval_ints(b, pr, n.input(1));
      if (!S2 || S2->size() != S->size()) continue;
      bool ok = (*S2)[static_cast<size_t>(p - 1)] == 2 * bh;
      for (int i = 0; i < rs && ok; ++i)
        if (i != p - 1 && (*S2)[static_cast<size_t>(i)] != (*S)[static_cast<size_t>(i)]) ok = false;
      if (ok) { holder = std::make_pair(node, input); break; }
    }
    if (!holder) {
      b.lock(xc.value, b.nm(n) + " folds heads into the batch axis with a head count it cannot rewrite");
      return true;
    }
    b.d.reshape_head_count[ni] = {holder->first, holder->second, 0};
    ChannelSpace o = b.add_space(n.outputs[0], heads, r, (p - 1) - r, dh);
    for (int64_t c = 0; c < xc.channels; ++c) b.link(xc, c, o, c / dh);
    return true;
  }
  if (xc.neg_axis == -2 && rs == r - 1 && rs >= 1) {
    const int64_t width = S->back();
    if (width <= 0 || width % xc.channels != 0) return false;
    const int64_t dh = width / xc.channels;
    if (in && (*in)[static_cast<size_t>(r - 1)] >= 0 && (*in)[static_cast<size_t>(r - 1)] != dh) return false;
    int cp = b.g.producer(n.input(1));
    if (cp < 0 || b.g.nodes[static_cast<size_t>(cp)].op_type != "Concat") return false;
    const Node& cn = b.g.nodes[static_cast<size_t>(cp)];
    auto last = eval_ints(b, EvalCtx{}, cn.inputs.back());
    if (!last || last->size() != 1 || (*last)[0] != width) return false;
    if (b.g.consumers(n.input(1)).size() != 1 || b.g.is_graph_output(n.input(1))) {
      b.lock(xc.value, b.nm(n) + "'s computed shape is shared with other nodes");
      return true;
    }
    b.d.reshape_head_width[ni] = {cp, static_cast<int>(cn.inputs.size()) - 1, 0};
    fold(b, xc, n.outputs[0], dh, rs, -1);
    return true;
  }
  return false;
}

void reshape_rule(Builder& b, int ni, const Node& n) {
  ChannelSpace* x = b.space(n.input(0));
  if (!x) return;
  ChannelSpace xc = *x;
  auto target = target_elems(b, ni, 1, true);
  if (!target && heads_batch_rule(b, ni, n, xc)) return;
  int p = b.pos_axis(xc);
  auto in = b.dims_of(xc.value);
  if (!target || p < 0 || static_cast<int>(target->size()) <= p) { b.lock(xc.value, b.nm(n) + " with a dynamic or channel-mixing shape"); return; }
  // Run-time elements: before the channel axis, a dim provably equal to the input's own at that place
  // (and not a channel axis of the value it is read from, so pruning cannot change it) counts as
  // copied (0); anywhere else as unknown.
  constexpr int64_t kRuntime = std::numeric_limits<int64_t>::min();
  std::vector<int64_t> S;
  const ValueInfo* in_vi = b.g.find_value_info(xc.value);
  for (size_t i = 0; i < target->size(); ++i) {
    const TargetElem& e = (*target)[i];
    if (e.value) { S.push_back(*e.value); continue; }
    bool copied = false;
    if (static_cast<int>(i) < p) {
      const ChannelSpace* src = b.space(e.dim_of);
      bool src_channel = src && b.pos_axis(*src) == e.dim;
      const ValueInfo* vi = b.g.find_value_info(e.dim_of);
      copied = !src_channel && ((e.dim_of == xc.value && e.dim == static_cast<int64_t>(i)) ||
                                (vi && in_vi && vi->has_shape && in_vi->has_shape && e.dim < static_cast<int64_t>(vi->shape.size()) &&
                                 i < in_vi->shape.size() && same_dim(vi->shape[e.dim], in_vi->shape[i])));
    }
    S.push_back(copied ? 0 : kRuntime);
  }
  // The element that holds the channel axis' size (`pos`) is rewritten when channels go: it must
  // be a constant that only this Reshape reads through its chain (the constant itself is copied).
  auto record = [&](int pos) {
    const TargetElem& e = (*target)[pos];
    if (e.value && *e.value > 0 && !e.private_chain) {
      b.lock(xc.value, b.nm(n) + "'s computed shape is shared with other nodes");
      return false;
    }
    if (e.value) b.d.reshape_channel_elem[ni] = e.at;
    return true;
  };
  int free = -1;
  bool leading = true;
  for (int i = 0; i < p && leading; ++i) {
    bool same = S[i] == 0 || (in && static_cast<int>(in->size()) > i && (*in)[i] >= 0 && (*in)[i] == S[i]);
    if (same) continue;
    if (S[i] == -1 && free < 0) { free = i; continue; }
    leading = false;
  }
  int64_t trail_in = b.trailing[xc.value];
  int64_t after = 1;
  bool after_known = true;
  for (size_t i = p + 1; i < S.size(); ++i) {
    if (S[i] > 0) after *= S[i];
    else if (S[i] == 0 && in && static_cast<int>(in->size()) > static_cast<int>(i) && (*in)[i] >= 0) after *= (*in)[i];
    else after_known = false;
  }
  int64_t s = -1;
  if (S[p] > 0 && S[p] % xc.channels == 0) s = S[p] / xc.channels;
  else if (free < 0 && (S[p] == -1 || S[p] == 0) && trail_in >= 0 && after_known && after > 0 && trail_in % after == 0)
    s = S[p] == 0 ? 1 : trail_in / after;
  int rank = static_cast<int>(S.size());
  if (leading && s >= 1 && after_known && trail_in >= 0 && s * after == trail_in) {
    if (record(p)) fold(b, xc, n.outputs[0], s, rank, p - rank);
    return;
  }
  // Head split: S[p..q] multiplies to C with every factor given, S[q+1..] matches the input's tail.
  int64_t prod = 1;
  int q = p;
  for (; q < rank && S[q] > 0 && prod * S[q] <= xc.channels; ++q) {
    prod *= S[q];
    if (prod == xc.channels) break;
  }
  bool split = q < rank && q > p && prod == xc.channels && trail_in >= 0;
  int64_t tail = 1;
  for (int i = q + 1; split && i < rank; ++i) {
    if (S[i] <= 0) split = false;
    else tail *= S[i];
  }
  split = split && tail == trail_in;
  if (!split && !leading) { b.lock(xc.value, b.nm(n) + " mixes the channel axis with leading dims"); return; }
  if (!split) { b.lock(xc.value, b.nm(n) + " mixes the channel axis with others"); return; }
  if (!b.opt.heads) {
    b.lock(xc.value, b.nm(n) + " splits the channel axis into heads (prune them with --heads)");
    return;
  }
  if (!leading) { b.lock(xc.value, b.nm(n) + " mixes the channel axis with leading dims"); return; }
  int64_t heads = S[q - 1], head_dim = S[q];
  if (!record(q - 1)) return;
  ChannelSpace o = b.add_space(n.outputs[0], heads, rank, (q - 1) - rank, head_dim * tail);
  for (int64_t c = 0; c < xc.channels; ++c) b.link(xc, c, o, (c / head_dim) % heads);
}

void reshape_fix(Graph& g, int ni, const ChannelDeps& d, const KeptChannels& kept) {
  const auto* k = kept_of(kept, g.nodes[ni].outputs[0]);
  if (auto hc = d.reshape_head_count.find(ni); hc != d.reshape_head_count.end()) {
    if (!k) return;
    const ShapeElemRef& r = hc->second;
    const Tensor* t = g.initializer(g.nodes[r.node].inputs[r.input]);
    const int64_t h = static_cast<int64_t>(k->size());
    Tensor nt = t->dtype == DType::Int32 ? Tensor::from_int32(t->name, t->dims, {static_cast<int32_t>(h)})
                                         : Tensor::from_int64(t->name, t->dims, {h});
    set_node_constant(g, r.node, r.input, nt);
    return;
  }
  if (auto hw = d.reshape_head_width.find(ni); hw != d.reshape_head_width.end()) {
    if (!k) return;
    const ShapeElemRef& r = hw->second;
    Tensor t = Tensor::from_int64(g.unique_name(g.nodes[ni].name + "_width"), {1}, {static_cast<int64_t>(k->size())});
    g.nodes[r.node].inputs[r.input] = t.name;
    g.add_initializer(std::move(t));
    g.invalidate();
    return;
  }
  auto at = d.reshape_channel_elem.find(ni);
  if (!k || at == d.reshape_channel_elem.end()) return;  // no constant: a 0 or -1 adapts by itself
  const ShapeElemRef& r = at->second;
  const Tensor* sh = g.initializer(g.nodes[r.node].inputs[r.input]);
  std::vector<int64_t> S = sh->to_int64();
  if (S[r.elem] <= 0) return;  // 0 copies the (already smaller) input dim, -1 infers it
  S[r.elem] = static_cast<int64_t>(k->size());
  Tensor t = sh->dtype == DType::Int32 ? Tensor::from_int32(sh->name, sh->dims, std::vector<int32_t>(S.begin(), S.end()))
                                       : Tensor::from_int64(sh->name, sh->dims, S);
  set_node_constant(g, r.node, r.input, t);
}

// Squeeze / Unsqueeze: move the channel axis (rank must be known).
void squeeze_rule(Builder& b, int, const Node& n, bool unsqueeze) {
  ChannelSpace* x = b.space(n.input(0));
  if (!x) return;
  ChannelSpace xc = *x;
  auto axes = attr_or_input(b, n, "axes", 1);
  int p = b.pos_axis(xc);
  if (!axes || p < 0) { b.lock(xc.value, b.nm(n) + " with unknown axes or rank"); return; }
  int out_rank = xc.rank + (unsqueeze ? 1 : -1) * static_cast<int>(axes->size());
  int np = p;
  if (unsqueeze) {
    std::vector<int64_t> a = *axes;
    for (auto& v : a) v = norm_axis(v, out_rank);
    std::sort(a.begin(), a.end());
    for (int64_t v : a) if (v <= np) ++np;
  } else {
    for (int64_t v : *axes) {
      v = norm_axis(v, xc.rank);
      if (v == p) { b.lock(xc.value, b.nm(n) + " squeezes the channel axis"); return; }
      if (v < p) --np;
    }
  }
  ChannelSpace o = b.add_space(n.outputs[0], xc.channels, out_rank, np - out_rank);
  b.link_all(xc, o);
}

// Reductions over other axes keep channels; over the channel axis they stop propagation.
void reduce_rule(Builder& b, int, const Node& n) {
  ChannelSpace* x = b.space(n.input(0));
  if (!x) return;
  ChannelSpace xc = *x;
  auto axes = attr_or_input(b, n, "axes", 1);
  int p = b.pos_axis(xc);
  if (!axes || axes->empty() || p < 0) { b.lock(xc.value, "reduction " + b.nm(n) + " over the channel axis"); return; }
  bool keep = n.attr_int("keepdims", 1) != 0;
  int after = 0;
  bool all_after = true;
  std::set<int64_t> red;
  for (int64_t a : *axes) red.insert(norm_axis(a, xc.rank));
  if (red.count(p)) { b.lock(xc.value, "reduction " + b.nm(n) + " over the channel axis"); return; }
  for (int i = p + 1; i < xc.rank; ++i) { if (red.count(i)) ++after; else all_after = false; }
  int out_rank = keep ? xc.rank : xc.rank - static_cast<int>(red.size());
  int neg = keep ? xc.neg_axis : xc.neg_axis + after;
  ChannelSpace o = b.add_space(n.outputs[0], xc.channels, out_rank, neg, all_after ? 1 : -1);
  b.link_all(xc, o);
}

void softmax_rule(Builder& b, int, const Node& n) {
  ChannelSpace* x = b.space(n.input(0));
  if (!x) return;
  ChannelSpace xc = *x;
  int64_t def = b.m.opset() >= 13 ? -1 : 1;
  int64_t axis = n.attr_int("axis", def);
  int p = b.pos_axis(xc);
  bool old = b.m.opset() < 13;  // before 13 the input is coerced to 2-D from `axis` on
  bool hits = axis < 0 ? (old ? xc.neg_axis >= axis : xc.neg_axis == axis)
                       : (p < 0 || (old ? p >= axis : p == axis));
  if (hits) { b.lock(xc.value, b.nm(n) + " normalizes over the channel axis"); return; }
  b.pass(xc, n.outputs[0], b.trailing[xc.value]);
}

// Pad: zero pads on the channel axis are pass-through; constant pads add standalone channels.
void pad_rule(Builder& b, int, const Node& n) {
  ChannelSpace* x = b.space(n.input(0));
  if (!x) return;
  ChannelSpace xc = *x;
  auto pads = attr_or_input(b, n, "pads", 1);
  int p = b.pos_axis(xc);
  if (!pads || p < 0 || static_cast<int>(pads->size()) != 2 * xc.rank || !n.input(3).empty()) {
    b.lock(xc.value, b.nm(n) + " with dynamic pads or axes");
    return;
  }
  int64_t before = (*pads)[p], after = (*pads)[p + xc.rank];
  if (before == 0 && after == 0) { b.pass(xc, n.outputs[0], -1); return; }
  if (n.attr_string("mode", "constant") != "constant" || before < 0 || after < 0) {
    b.lock(xc.value, b.nm(n) + " pads the channel axis by reflection");
    return;
  }
  ChannelSpace o = b.add_space(n.outputs[0], xc.channels + before + after, xc.rank, xc.neg_axis);
  for (int64_t c = 0; c < xc.channels; ++c) b.link(xc, c, o, before + c);
}

void pad_fix(Graph& g, int ni, const ChannelDeps& d, const KeptChannels& kept) {
  Node& n = g.nodes[ni];
  const auto* ko = kept_of(kept, n.outputs[0]);
  if (!ko) return;
  const ChannelSpace& xs = d.spaces.at(n.input(0));
  const ChannelSpace& os = d.spaces.at(n.outputs[0]);
  int p = xs.rank + xs.neg_axis;
  bool attr = n.has_attr("pads");
  std::vector<int64_t> pads = attr ? n.attr_ints("pads") : g.initializer(n.input(1))->to_int64();
  int64_t before = pads[p];
  int64_t after_start = os.channels - pads[p + xs.rank];
  pads[p] = count_in(*ko, 0, before);
  pads[p + xs.rank] = count_in(*ko, after_start, os.channels);
  if (attr) n.set_attr_ints("pads", pads);
  else set_node_constant(g, ni, 1, Tensor::from_int64(g.initializer(n.input(1))->name, {static_cast<int64_t>(pads.size())}, pads));
}

// Depthwise convs (group = input channels) keep group = kept channels; general groups keep G
// (slot units) or lose the removed groups (whole-group units: kept input channels / group width).
void conv_fix(Graph& g, int ni, const ChannelDeps& d, const KeptChannels& kept) {
  Node& n = g.nodes[ni];
  int64_t group = n.attr_int("group", 1);
  auto xs = d.spaces.find(n.input(0));
  if (group == 1 || xs == d.spaces.end()) return;
  const auto* k = kept_of(kept, n.input(0));
  if (!k) return;
  if (xs->second.channels == group) { n.set_attr_int("group", static_cast<int64_t>(k->size())); return; }
  if (d.whole_group_convs.count(ni)) n.set_attr_int("group", static_cast<int64_t>(k->size()) / (xs->second.channels / group));
}

const std::map<std::string, OpRule>& rules() {
  static const std::map<std::string, OpRule> table = [] {
    std::map<std::string, OpRule> t;
    t["Conv"] = {conv_rule, conv_fix};
    t["ConvTranspose"] = {conv_transpose_rule, conv_fix};
    t["Gemm"] = {[](Builder& b, int i, const Node& n) { linear_rule(b, i, n, true); }, nullptr};
    // Both MatMul inputs may be activations (attention); linear_rule locks what it cannot read.
    t["MatMul"] = {[](Builder& b, int i, const Node& n) { linear_rule(b, i, n, false); }, nullptr, 2};
    t["BatchNormalization"] = {[](Builder& b, int i, const Node& n) { channel_norm_rule(b, i, n, 4); }, nullptr};
    t["InstanceNormalization"] = {[](Builder& b, int i, const Node& n) { channel_norm_rule(b, i, n, 2); }, nullptr};
    t["LayerNormalization"] = {layer_norm_rule, nullptr};
    for (const char* op : {"Relu", "LeakyRelu", "Sigmoid", "HardSigmoid", "HardSwish", "Tanh", "Elu", "Selu", "Celu",
                           "Softplus", "Softsign", "Gelu", "Erf", "Exp", "Log", "Neg", "Abs", "Sqrt", "Reciprocal",
                           "Identity", "Dropout", "Cast", "Floor", "Ceil", "Round", "Sign", "Mish", "ThresholdedRelu",
                           "Clip", "Sin", "Cos", "Not"})
      t[op] = {unary_rule, nullptr};
    for (const char* op : {"MaxPool", "AveragePool", "LpPool"})
      t[op] = {[](Builder& b, int i, const Node& n) { pool_rule(b, i, n, false); }, nullptr};
    for (const char* op : {"GlobalAveragePool", "GlobalMaxPool", "GlobalLpPool"})
      t[op] = {[](Builder& b, int i, const Node& n) { pool_rule(b, i, n, true); }, nullptr};
    t["Resize"] = {resize_rule, nullptr};
    t["Upsample"] = {resize_rule, nullptr};
    for (const char* op : {"Add", "Sub", "Mul", "Div", "Pow", "Max", "Min"}) t[op] = {binary_rule, nullptr, 2};
    t["PRelu"] = {prelu_rule, nullptr, 2};
    t["Concat"] = {concat_rule, concat_fix, -1};
    t["Split"] = {split_rule, split_fix};
    t["Slice"] = {slice_rule, slice_fix};
    t["Transpose"] = {transpose_rule, nullptr};
    t["Flatten"] = {flatten_rule, nullptr};
    t["Reshape"] = {reshape_rule, reshape_fix};
    t["Shape"] = {shape_rule, nullptr};
    t["Squeeze"] = {[](Builder& b, int i, const Node& n) { squeeze_rule(b, i, n, false); }, nullptr};
    t["Unsqueeze"] = {[](Builder& b, int i, const Node& n) { squeeze_rule(b, i, n, true); }, nullptr};
    for (const char* op : {"ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin", "ReduceL1", "ReduceL2", "ReduceProd",
                           "ReduceSumSquare", "ReduceLogSum", "ReduceLogSumExp"})
      t[op] = {reduce_rule, nullptr};
    for (const char* op : {"Softmax", "LogSoftmax", "Hardmax"}) t[op] = {softmax_rule, nullptr};
    t["Pad"] = {pad_rule, pad_fix};
    // Makes zero padding for Concat (handled there); its own inputs carry no channels.
    t["ConstantOfShape"] = {[](Builder&, int, const Node&) {}, nullptr};
    return t;
  }();
  return table;
}

}  // namespace

std::vector<std::string> channel_rule_ops() {
  std::vector<std::string> out;
  for (const auto& [k, v] : rules()) out.push_back(k);
  return out;
}

ChannelDeps build_channel_deps(const Model& m, const ChannelDepsOptions& opt) {
  // Shape inference fills value_info only (nodes keep their indices), so the rules' node and
  // input references hold for `m` itself.
  std::optional<Model> shaped;
  if (opt.heads) {
    shaped = m;
    infer_shapes(*shaped);
  }
  Builder b(shaped ? *shaped : m, opt);
  const Graph& g = b.g;
  for (int i = 0; i < static_cast<int>(g.nodes.size()); ++i) {
    const Node& n = g.nodes[i];
    auto it = rules().find(n.op_type);
    if (!n.is_default_domain() || it == rules().end()) {
      b.lock_inputs(n, "consumed by unsupported " + b.nm(n));
      continue;
    }
    int k = it->second.data_inputs;
    for (size_t j = k < 0 ? n.inputs.size() : static_cast<size_t>(k); j < n.inputs.size(); ++j)
      b.lock(n.inputs[j], "used as a parameter of " + b.nm(n));
    it->second.propagate(b, i, n);
  }
  for (const auto& n : g.nodes)
    for (const auto& sg : n.subgraphs())
      for (const auto& v : outer_scope_inputs(*sg)) b.lock(v, "read inside a subgraph of " + b.nm(n));
  for (const auto& o : g.outputs) b.lock(o.name, "reaches graph output '" + o.name + "'");

  ChannelDeps& d = b.d;
  std::vector<const ChannelSpace*> order;
  for (auto& [name, s] : d.spaces) order.push_back(&s);
  std::sort(order.begin(), order.end(), [](auto* a, auto* c) { return a->first_elem < c->first_elem; });
  std::map<int, int> group_of_root;
  std::vector<int> elem_group(b.elems.p.size(), -1);
  std::vector<std::map<int, int>> unit_of_root;
  for (const ChannelSpace* s : order) {
    int root = b.vals.find(b.val_id[s->value]);
    auto [it, fresh] = group_of_root.insert({root, static_cast<int>(d.groups.size())});
    if (fresh) {
      ChannelGroup gr;
      gr.id = it->second;
      d.groups.push_back(gr);
      unit_of_root.emplace_back();
    }
    ChannelSpace& sm = d.spaces[s->value];
    sm.group = it->second;
    ChannelGroup& gr = d.groups[sm.group];
    gr.values.push_back(s->value);
    for (int64_t c = 0; c < s->channels; ++c) elem_group[s->first_elem + c] = sm.group;
  }
  d.elem_unit.assign(b.elems.p.size(), -1);
  for (size_t e = 0; e < b.elems.p.size(); ++e) {
    int gi = elem_group[e];
    if (gi < 0) continue;
    auto& roots = unit_of_root[gi];
    auto [it, fresh] = roots.insert({b.elems.find(static_cast<int>(e)), d.groups[gi].num_units});
    if (fresh) ++d.groups[gi].num_units;
    d.elem_unit[e] = it->second;
  }
  d.group_unit_base.assign(d.groups.size() + 1, 0);
  for (size_t gi = 0; gi < d.groups.size(); ++gi) d.group_unit_base[gi + 1] = d.group_unit_base[gi] + d.groups[gi].num_units;
  d.unit_locked_flat.assign(d.group_unit_base.back(), 0);
  for (const auto& [e, reason] : b.locks) {
    int gi = elem_group[e];
    if (gi < 0) continue;
    char& l = d.unit_locked_flat[d.group_unit_base[gi] + d.elem_unit[e]];
    if (!l) ++d.groups[gi].locked_units;
    l = 1;
    auto& rs = d.groups[gi].reasons;
    if (std::find(rs.begin(), rs.end(), reason) == rs.end()) rs.push_back(reason);
  }
  for (const auto& p : b.params) d.groups[d.spaces.at(p.value).group].params.push_back(p);
  return d;
}

int ChannelDeps::unit_of(const std::string& value, int64_t channel) const {
  auto it = spaces.find(value);
  if (it == spaces.end() || channel < 0 || channel >= it->second.channels) return -1;
  return elem_unit[it->second.first_elem + channel];
}

KeptChannels kept_channels(const ChannelDeps& deps, const std::vector<std::vector<char>>& remove_unit) {
  KeptChannels k;
  for (const auto& [name, s] : deps.spaces) {
    const auto& rm = remove_unit.at(s.group);
    std::vector<int64_t> keep;
    for (int64_t c = 0; c < s.channels; ++c)
      if (!rm[deps.elem_unit[s.first_elem + c]]) keep.push_back(c);
    if (static_cast<int64_t>(keep.size()) != s.channels) k[name] = std::move(keep);
  }
  return k;
}

void fix_node_for_channels(Graph& g, int node, const ChannelDeps& deps, const KeptChannels& kept) {
  auto it = rules().find(g.nodes[node].op_type);
  if (it != rules().end() && it->second.fix) it->second.fix(g, node, deps, kept);
}

void set_node_constant(Graph& g, int node, int input, Tensor t) {
  const std::string name = g.nodes[node].inputs[input];
  int uses = 0;
  for (const auto& n : g.nodes)
    for (const auto& i : n.inputs) uses += i == name;
  if (g.is_graph_output(name)) ++uses;
  if (uses <= 1) {
    t.name = name;
    g.add_initializer(std::move(t));
    return;
  }
  t.name = g.unique_name(name + "_pruned");
  g.nodes[node].inputs[input] = t.name;
  g.add_initializer(std::move(t));
  g.invalidate();
}

std::vector<int64_t> kept_indices(const ParamSlice& p, const std::vector<int64_t>& kept) {
  std::set<int64_t> idx;
  for (int64_t c : kept) idx.insert(p.index(c));
  return {idx.begin(), idx.end()};
}

Tensor slice_axis(const Tensor& t, int axis, const std::vector<int64_t>& keep) {
  if (dtype_bits(t.dtype) < 8 || t.dtype == DType::String)
    throw UnsupportedError("cannot slice tensor '" + t.name + "' of type " + dtype_name(t.dtype));
  size_t esz = static_cast<size_t>(dtype_bits(t.dtype) / 8);
  int64_t outer = 1, inner = 1;
  for (int i = 0; i < axis; ++i) outer *= t.dims[i];
  for (size_t i = axis + 1; i < t.dims.size(); ++i) inner *= t.dims[i];
  Tensor r;
  r.name = t.name;
  r.dtype = t.dtype;
  r.dims = t.dims;
  r.dims[axis] = static_cast<int64_t>(keep.size());
  if (is_dataless(t)) return r;  // a shape-only copy stays shape-only
  size_t row = static_cast<size_t>(inner) * esz;
  r.bytes.assign(static_cast<size_t>(outer) * keep.size() * row, 0);
  uint8_t* dst = r.bytes.data();
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t k : keep) {
      std::memcpy(dst, t.bytes.data() + (static_cast<size_t>(o * t.dims[axis] + k)) * row, row);
      dst += row;
    }
  return r;
}

}  // namespace oc
