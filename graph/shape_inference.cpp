// Shape inference (see shape_inference.h). Per node:  outputs = rule[op](inputs, attrs).
// Window ops use  out = floor((in + pad_begin + pad_end - dilation*(k-1) - 1) / stride) + 1  (ceil for
// ceil_mode), ConvTranspose  out = stride*(in-1) + output_padding + dilation*(k-1) + 1 - pads.
#include "graph/shape_inference.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <functional>
#include <limits>
#include <optional>
#include <set>
#include <unordered_map>

#include "graph/conv_geometry.h"
#include "graph/errors.h"
#include "graph/normalize.h"

namespace oc {
namespace {

// ---------------------------------------------------------------------------------------------
// Symbolic integers. A value is a known number, a symbolic expression, or unknown (empty sym).
// Products are kept canonical ("a*b*4": sorted symbols, number last) so Reshape can cancel them.
struct Val {
  bool known = false;
  int64_t v = 0;
  std::string sym;  // when !known; empty = unknown
  static Val num(int64_t x) { Val r; r.known = true; r.v = x; return r; }
  static Val of_sym(std::string s) { Val r; r.sym = std::move(s); return r; }
  bool unknown() const { return !known && sym.empty(); }
  bool operator==(const Val& o) const { return known == o.known && (known ? v == o.v : (!sym.empty() && sym == o.sym)); }
};

Val from_dim(const Dim& d) { return d.known() ? Val::num(d.value) : Val::of_sym(d.param); }
Dim to_dim(const Val& v) {
  if (v.known) return v.v >= 0 ? Dim::of(v.v) : Dim{};
  return v.sym.empty() ? Dim{} : Dim::sym(v.sym);
}

bool is_product_atom(const std::string& s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c != '+' && c != '-' && c != '(' && c != ')' && c != '/'; });
}
// a*b*4 -> (4, {a, b}); anything with other operators is one atom.
void factors(const Val& x, int64_t& num, std::vector<std::string>& syms) {
  if (x.known) { num *= x.v; return; }
  if (!is_product_atom(x.sym)) { syms.push_back(x.sym); return; }
  size_t start = 0;
  while (start <= x.sym.size()) {
    size_t p = x.sym.find('*', start);
    std::string f = x.sym.substr(start, p == std::string::npos ? std::string::npos : p - start);
    bool digits = !f.empty() && std::all_of(f.begin(), f.end(), [](char c) { return c >= '0' && c <= '9'; });
    if (digits) num *= std::stoll(f);
    else syms.push_back(f);
    if (p == std::string::npos) break;
    start = p + 1;
  }
}
Val make_product(int64_t num, std::vector<std::string> syms) {
  if (syms.empty() || num == 0) return Val::num(num);
  std::sort(syms.begin(), syms.end());
  std::string s;
  for (const auto& f : syms) s += (s.empty() ? "" : "*") + (is_product_atom(f) ? f : "(" + f + ")");
  if (num != 1) s += "*" + std::to_string(num);
  return Val::of_sym(s);
}
std::string atom(const Val& x) {
  if (x.known) return std::to_string(x.v);
  return is_product_atom(x.sym) ? x.sym : "(" + x.sym + ")";
}

Val vmul(const Val& a, const Val& b) {
  if ((a.known && a.v == 0) || (b.known && b.v == 0)) return Val::num(0);
  if (a.unknown() || b.unknown()) return {};
  int64_t num = 1;
  std::vector<std::string> syms;
  factors(a, num, syms);
  factors(b, num, syms);
  return make_product(num, syms);
}
Val vadd(const Val& a, const Val& b) {
  if (a.known && b.known) return Val::num(a.v + b.v);
  if (a.unknown() || b.unknown()) return {};
  if (b.known && b.v == 0) return a;
  if (a.known && a.v == 0) return b;
  if (b.known) {
    // (X+2)+3 -> X+5: fold a trailing constant so repeated window arithmetic stays short.
    const std::string& s = a.sym;
    size_t p = s.find_last_of("+-");
    if (p != std::string::npos && p > 0 && s.find_first_of("()", p) == std::string::npos) {
      std::string tail = s.substr(p + 1);
      if (!tail.empty() && std::all_of(tail.begin(), tail.end(), [](char c) { return c >= '0' && c <= '9'; })) {
        int64_t c = std::stoll(tail) * (s[p] == '-' ? -1 : 1) + b.v;
        Val base = Val::of_sym(s.substr(0, p));
        if (c == 0) return base;
        return Val::of_sym(base.sym + (c > 0 ? "+" : "-") + std::to_string(std::llabs(c)));
      }
    }
    return Val::of_sym(s + (b.v > 0 ? "+" : "-") + std::to_string(std::llabs(b.v)));
  }
  return Val::of_sym(a.sym + "+" + atom(b));
}
Val vneg(const Val& a) { return a.known ? Val::num(-a.v) : (a.unknown() ? Val{} : Val::of_sym("-" + atom(a))); }
Val vsub(const Val& a, const Val& b) {
  if (a == b && !a.unknown()) return Val::num(0);
  if (b.known) return vadd(a, Val::num(-b.v));
  return vadd(a, vneg(b));
}
int64_t floor_div(int64_t a, int64_t b) { int64_t q = a / b; return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q; }
int64_t ceil_div(int64_t a, int64_t b) { return -floor_div(-a, b); }
Val vdiv(const Val& a, const Val& b, bool ceil = false) {
  if (b.known && b.v == 1) return a;
  if (a.known && b.known) return b.v == 0 ? Val{} : Val::num(ceil ? ceil_div(a.v, b.v) : floor_div(a.v, b.v));
  if (a.unknown() || b.unknown()) return {};
  if (b.known && b.v != 0) {
    int64_t num = 1;
    std::vector<std::string> syms;
    factors(a, num, syms);
    if (num % b.v == 0) return make_product(num / b.v, syms);
  }
  // A compound denominator is parenthesized: "x/a*b" would read as (x/a)*b.
  std::string den = b.known || b.sym.find_first_of("*+-/") == std::string::npos ? atom(b) : "(" + b.sym + ")";
  return Val::of_sym(ceil ? "ceil(" + atom(a) + "/" + den + ")" : atom(a) + "/" + den);
}

// Output length of a sliding window:  floor_or_ceil((in + pads - eff_k) / stride) + 1.
Val window_out(const Val& in, int64_t pads, int64_t eff_k, int64_t stride, bool ceil) {
  return vadd(vdiv(vadd(in, Val::num(pads - eff_k)), Val::num(stride), ceil), Val::num(1));
}

// ---------------------------------------------------------------------------------------------
struct Info {
  DType dtype = DType::Undefined;
  bool ranked = false;
  std::vector<Val> shape;
  bool has_value = false;  // small integer tensor whose elements are tracked (shape arithmetic)
  std::vector<Val> value;
  bool has_fvalue = false;  // small float constant (Resize scales)
  std::vector<double> fvalue;

  int64_t rank() const { return static_cast<int64_t>(shape.size()); }
  bool all_known() const { return ranked && std::all_of(shape.begin(), shape.end(), [](const Val& d) { return d.known; }); }
  int64_t numel_known() const {  // -1 when not all known
    if (!all_known()) return -1;
    int64_t n = 1;
    for (const auto& d : shape) n *= d.v;
    return n;
  }
  bool value_known() const { return has_value && std::all_of(value.begin(), value.end(), [](const Val& d) { return d.known; }); }
  std::vector<int64_t> ints() const {
    std::vector<int64_t> r;
    for (const auto& d : value) r.push_back(d.v);
    return r;
  }
};

constexpr int64_t kMaxTracked = 4096;  // elements of an integer tensor we fold

Info info_of_tensor(const Tensor& t) {
  Info i;
  i.dtype = t.dtype;
  i.ranked = true;
  for (int64_t d : t.dims) i.shape.push_back(Val::num(d));
  int64_t n = t.numel();
  if (n <= kMaxTracked && !t.bytes.empty()) {
    if (dtype_is_integer(t.dtype) || t.dtype == DType::Bool) {
      i.has_value = true;
      for (int64_t x : t.to_int64()) i.value.push_back(Val::num(x));
    } else if (dtype_is_float(t.dtype)) {
      i.has_fvalue = true;
      for (float x : t.to_float()) i.fvalue.push_back(x);
    }
  }
  if (n == 0) { i.has_value = true; }  // an empty tensor's (no) elements are known
  return i;
}

struct Scope {
  std::unordered_map<std::string, Info> vals;
  const Scope* parent = nullptr;
  const Info* find(const std::string& n) const {
    for (const Scope* s = this; s; s = s->parent) {
      auto it = s->vals.find(n);
      if (it != s->vals.end()) return &it->second;
    }
    return nullptr;
  }
};

class Inferencer;

struct Ctx {
  const Node& n;
  int64_t opset;
  std::vector<const Info*> in;  // nullptr: omitted or unknown value
  std::vector<Info> out;
  std::string why;
  Inferencer& inf;
  const Scope& scope;

  const Info* I(size_t i) const { return i < in.size() ? in[i] : nullptr; }
  bool present(size_t i) const { return i < n.inputs.size() && !n.inputs[i].empty(); }
  bool ranked(size_t i) const { return I(i) && I(i)->ranked; }
  const std::vector<Val>& S(size_t i) const { return in[i]->shape; }
  DType T(size_t i) const { return I(i) ? I(i)->dtype : DType::Undefined; }
  bool need(size_t i) {
    if (ranked(i)) return true;
    if (why.empty()) why = present(i) ? "input '" + n.inputs[i] + "' has no known shape" : "input " + std::to_string(i) + " is missing";
    return false;
  }
  bool need_value(size_t i) {
    if (I(i) && I(i)->has_value) return true;
    if (why.empty()) why = present(i) ? "input '" + n.inputs[i] + "' is not a constant" : "input " + std::to_string(i) + " is missing";
    return false;
  }
  Info& set(size_t k, DType t, std::vector<Val> shape) {
    if (k >= out.size()) out.resize(k + 1);
    out[k].dtype = t;
    out[k].ranked = true;
    out[k].shape = std::move(shape);
    return out[k];
  }
  void set_type(size_t k, DType t) {
    if (k >= out.size()) out.resize(k + 1);
    out[k].dtype = t;
  }
  // Ints from attribute (older opsets) or from a constant input (newer ones); false if neither.
  bool ints_arg(const std::string& attr, size_t input, std::vector<int64_t>& v, bool& found) {
    found = false;
    if (n.has_attr(attr)) { v = n.attr_ints(attr); found = true; return true; }
    if (!present(input)) return true;
    found = true;
    if (!I(input) || !I(input)->value_known()) {
      if (why.empty()) why = "input '" + n.inputs[input] + "' is not a constant";
      return false;
    }
    v = I(input)->ints();
    return true;
  }
};

int64_t norm_axis(int64_t a, int64_t rank) { return a < 0 ? a + rank : a; }
// Malformed models must not index out of range: an axis outside [0, rank) leaves the output unknown.
bool axis_ok(Ctx& c, int64_t axis, int64_t rank) {
  if (axis >= 0 && axis < rank) return true;
  if (c.why.empty()) c.why = "axis " + std::to_string(axis) + " out of range for rank " + std::to_string(rank);
  return false;
}

// Numpy broadcasting of dims: 1 stretches; a number beats a symbol (the symbol must be 1 or equal).
Val bcast_dim(const Val& a, const Val& b) {
  if (a.known && a.v == 1) return b;
  if (b.known && b.v == 1) return a;
  if (a == b) return a;
  if (a.known && !b.known) return a;
  if (b.known && !a.known) return b;
  if (a.known && b.known) return Val::num(std::max(a.v, b.v));  // invalid model; keep going
  return {};
}
std::vector<Val> broadcast(const std::vector<const std::vector<Val>*>& shapes) {
  size_t r = 0;
  for (auto* s : shapes) r = std::max(r, s->size());
  std::vector<Val> out(r, Val::num(1));
  for (auto* s : shapes)
    for (size_t i = 0; i < s->size(); ++i) {
      size_t o = r - s->size() + i;
      out[o] = bcast_dim(out[o], (*s)[i]);
    }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Rules. Each returns after filling ctx.out; an output left unranked is reported as unresolved.
using Rule = std::function<void(Ctx&)>;

void same_as_input0(Ctx& c) {
  if (!c.I(0)) { c.why = "input 0 unknown"; return; }
  Info& o = c.set(0, c.T(0), c.S(0));
  o.ranked = c.I(0)->ranked;
  if (!o.ranked) c.why = "input '" + c.n.inputs[0] + "' has no known shape";
  if (c.n.op_type == "Identity") { o.has_value = c.I(0)->has_value; o.value = c.I(0)->value; o.has_fvalue = c.I(0)->has_fvalue; o.fvalue = c.I(0)->fvalue; }
  if (c.n.op_type == "Neg" && c.I(0)->has_value) {
    o.has_value = true;
    for (const auto& x : c.I(0)->value) o.value.push_back(vneg(x));
  }
}
void bool_like_input0(Ctx& c) {
  same_as_input0(c);
  if (!c.out.empty()) c.out[0].dtype = DType::Bool;
}

// Elementwise value folding for shape arithmetic (scalars and 1-D, broadcasting size-1).
void fold_elementwise(Ctx& c, Info& o) {
  size_t nin = c.n.inputs.size();
  size_t len = 1;
  for (size_t i = 0; i < nin; ++i) {
    if (!c.I(i) || !c.I(i)->has_value || c.I(i)->rank() > 1) return;
    size_t l = c.I(i)->value.size();
    if (l != 1 && len != 1 && l != len) return;
    if (l != 1) len = l;
  }
  const std::string& op = c.n.op_type;
  auto at = [&](size_t i, size_t k) { const auto& v = c.I(i)->value; return v.size() == 1 ? v[0] : v[k]; };
  std::vector<Val> r;
  for (size_t k = 0; k < len; ++k) {
    Val a = at(0, k), b = nin > 1 ? at(1, k) : Val{};
    Val x;
    if (op == "Add") x = vadd(a, b);
    else if (op == "Sub") x = vsub(a, b);
    else if (op == "Mul") x = vmul(a, b);
    else if (op == "Div") x = dtype_is_integer(c.T(0)) ? vdiv(a, b) : (a.known && b.known && b.v != 0 && a.v % b.v == 0 ? Val::num(a.v / b.v) : Val{});
    else if (op == "Equal") {
      // Symbols stand for dims (>= 0), so a symbol never equals a negative number (torch's
      // expand(n, -1, -1) export compares a shape with -1).
      if (a.known && b.known) x = Val::num(a.v == b.v);
      else if (a == b) x = Val::num(1);
      else if ((a.known && a.v < 0 && !b.unknown()) || (b.known && b.v < 0 && !a.unknown())) x = Val::num(0);
    }
    else if (op == "Max") x = (a.known && b.known) ? Val::num(std::max(a.v, b.v)) : Val{};
    else if (op == "Min") x = (a.known && b.known) ? Val::num(std::min(a.v, b.v)) : Val{};
    else if (op == "Where") { Val cnd = a; if (!cnd.known) return; x = cnd.v ? b : at(2, k); }
    else return;
    r.push_back(x);
  }
  o.has_value = true;
  o.value = std::move(r);
}

void broadcast_op(Ctx& c, DType t) {
  std::vector<const std::vector<Val>*> shapes;
  for (size_t i = 0; i < c.n.inputs.size(); ++i) {
    if (!c.present(i)) continue;
    if (!c.need(i)) { c.set_type(0, t); return; }
    shapes.push_back(&c.S(i));
  }
  Info& o = c.set(0, t, broadcast(shapes));
  fold_elementwise(c, o);
}
void elementwise(Ctx& c) { broadcast_op(c, c.T(0)); }
void comparison(Ctx& c) { broadcast_op(c, DType::Bool); }
void where_op(Ctx& c) { broadcast_op(c, c.T(1)); }

void cast_op(Ctx& c) {
  DType to = c.n.op_type == "CastLike" ? c.T(1) : static_cast<DType>(c.n.attr_int("to", 1));
  if (!c.I(0)) { c.set_type(0, to); c.why = "input 0 unknown"; return; }
  Info& o = c.set(0, to, c.S(0));
  o.ranked = c.I(0)->ranked;
  if (c.I(0)->has_value) { o.has_value = true; o.value = c.I(0)->value; }
  else if (c.I(0)->has_fvalue && (dtype_is_integer(to))) {
    o.has_value = true;
    for (double x : c.I(0)->fvalue) o.value.push_back(Val::num(static_cast<int64_t>(x)));
  }
  if (o.has_value && dtype_is_float(to)) {
    bool all = std::all_of(o.value.begin(), o.value.end(), [](const Val& v) { return v.known; });
    if (all) { o.has_fvalue = true; for (const auto& v : o.value) o.fvalue.push_back(static_cast<double>(v.v)); }
  }
  if (o.has_value && to == DType::Bool)
    for (auto& v : o.value) if (v.known) v.v = v.v != 0;
}

void constant_op(Ctx& c) {
  std::optional<Tensor> t = constant_node_value(c.n);
  if (!t) { c.why = "Constant without a dense value"; return; }
  c.out.resize(1);
  c.out[0] = info_of_tensor(*t);
}

void shape_op(Ctx& c) {
  if (!c.need(0)) { c.set(0, DType::Int64, {Val{}}); return; }
  int64_t r = c.I(0)->rank();
  int64_t s = norm_axis(c.n.attr_int("start", 0), r), e = norm_axis(c.n.attr_int("end", r), r);
  s = std::clamp<int64_t>(s, 0, r);
  e = std::clamp<int64_t>(e, 0, r);
  std::vector<Val> v(c.S(0).begin() + s, c.S(0).begin() + std::max(s, e));
  Info& o = c.set(0, DType::Int64, {Val::num(static_cast<int64_t>(v.size()))});
  o.has_value = true;
  o.value = std::move(v);
}
void size_op(Ctx& c) {
  Info& o = c.set(0, DType::Int64, {});
  if (!c.need(0)) return;
  Val p = Val::num(1);
  for (const auto& d : c.S(0)) p = vmul(p, d);
  o.has_value = true;
  o.value = {p};
}

void constant_of_shape(Ctx& c) {
  DType t = DType::Float;
  std::optional<int64_t> fill;
  if (const Attribute* a = c.n.attr("value"); a && a->kind == Attribute::Kind::Tensor) {
    t = a->t.dtype;
    if (dtype_is_integer(t) && a->t.numel() == 1) fill = a->t.to_int64()[0];
  }
  if (!c.need_value(0)) {
    if (c.ranked(0) && c.S(0).size() == 1 && c.S(0)[0].known) c.set(0, t, std::vector<Val>(static_cast<size_t>(c.S(0)[0].v)));
    else c.set_type(0, t);
    return;
  }
  Info& o = c.set(0, t, c.I(0)->value);
  int64_t n = o.numel_known();
  if (fill && n >= 0 && n <= kMaxTracked) { o.has_value = true; o.value.assign(static_cast<size_t>(n), Val::num(*fill)); }
}

// Reshape target: 0 copies the input dim (unless allowzero), -1 takes what is left; with symbols,
// symbolic factors of input and target cancel so [batch,H,W,C] -> [-1,C] still resolves to batch*H*W.
void reshape_op(Ctx& c) {
  std::vector<Val> tgt;
  if (c.opset < 5 && c.n.has_attr("shape")) {
    for (int64_t x : c.n.attr_ints("shape")) tgt.push_back(Val::num(x));
  } else if (c.I(1) && c.I(1)->has_value) {
    tgt = c.I(1)->value;
  } else {
    if (c.ranked(1) && c.S(1).size() == 1 && c.S(1)[0].known) c.set(0, c.T(0), std::vector<Val>(static_cast<size_t>(c.S(1)[0].v)));
    else c.set_type(0, c.T(0));
    c.why = "shape input '" + c.n.input(1) + "' is not a constant";
    return;
  }
  bool allowzero = c.n.attr_int("allowzero", 0) != 0;
  const std::vector<Val>* in = c.ranked(0) ? &c.S(0) : nullptr;
  int neg = -1;
  for (size_t i = 0; i < tgt.size(); ++i) {
    if (tgt[i].known && tgt[i].v == 0 && !allowzero) tgt[i] = (in && i < in->size()) ? (*in)[i] : Val{};
    else if (tgt[i].known && tgt[i].v == -1) neg = static_cast<int>(i);
  }
  if (neg >= 0) {
    Val r;
    if (in) {
      int64_t num_in = 1, num_t = 1;
      std::vector<std::string> sin, st;
      bool unk = false;
      for (const auto& d : *in) { if (d.unknown()) unk = true; else factors(d, num_in, sin); }
      for (size_t i = 0; i < tgt.size(); ++i) {
        if (static_cast<int>(i) == neg) continue;
        if (tgt[i].unknown()) unk = true; else factors(tgt[i], num_t, st);
      }
      for (const auto& s : st) {
        auto it = std::find(sin.begin(), sin.end(), s);
        if (it == sin.end()) { unk = true; break; }
        sin.erase(it);
      }
      if (!unk && num_t != 0 && num_in % num_t == 0) r = make_product(num_in / num_t, sin);
    }
    tgt[static_cast<size_t>(neg)] = r;
  }
  Info& o = c.set(0, c.T(0), tgt);
  if (c.I(0) && c.I(0)->has_value) { o.has_value = true; o.value = c.I(0)->value; }
}

void flatten_op(Ctx& c) {
  if (!c.need(0)) { c.set(0, c.T(0), {Val{}, Val{}}); return; }
  const auto& s = c.S(0);
  int64_t axis = norm_axis(c.n.attr_int("axis", 1), c.I(0)->rank());
  Val a = Val::num(1), b = Val::num(1);
  for (int64_t i = 0; i < c.I(0)->rank(); ++i) (i < axis ? a : b) = vmul(i < axis ? a : b, s[static_cast<size_t>(i)]);
  c.set(0, c.T(0), {a, b});
}

void transpose_op(Ctx& c) {
  if (!c.need(0)) { c.set_type(0, c.T(0)); return; }
  int64_t r = c.I(0)->rank();
  std::vector<int64_t> perm = c.n.attr_ints("perm");
  if (perm.empty()) for (int64_t i = r - 1; i >= 0; --i) perm.push_back(i);
  if (static_cast<int64_t>(perm.size()) != r) { c.why = "perm does not match the input rank"; c.set_type(0, c.T(0)); return; }
  std::vector<Val> o;
  for (int64_t p : perm) {
    if (!axis_ok(c, norm_axis(p, r), r)) { c.set_type(0, c.T(0)); return; }
    o.push_back(c.S(0)[static_cast<size_t>(norm_axis(p, r))]);
  }
  c.set(0, c.T(0), o);
}

void squeeze_op(Ctx& c) {
  std::vector<int64_t> axes;
  bool found = false;
  if (!c.ints_arg("axes", 1, axes, found) || !c.need(0)) { c.set_type(0, c.T(0)); return; }
  int64_t r = c.I(0)->rank();
  std::set<int64_t> drop;
  for (int64_t a : axes) drop.insert(norm_axis(a, r));
  std::vector<Val> o;
  for (int64_t i = 0; i < r; ++i) {
    const Val& d = c.S(0)[static_cast<size_t>(i)];
    if (!found) {
      if (!d.known) { c.why = "Squeeze without axes on a symbolic dim"; c.set_type(0, c.T(0)); return; }
      if (d.v == 1) continue;
    } else if (drop.count(i)) continue;
    o.push_back(d);
  }
  Info& out = c.set(0, c.T(0), o);
  if (c.I(0)->has_value) { out.has_value = true; out.value = c.I(0)->value; }
}
void unsqueeze_op(Ctx& c) {
  std::vector<int64_t> axes;
  bool found = false;
  if (!c.ints_arg("axes", 1, axes, found) || !c.need(0)) { c.set_type(0, c.T(0)); return; }
  int64_t r = c.I(0)->rank() + static_cast<int64_t>(axes.size());
  std::set<int64_t> add;
  for (int64_t a : axes) add.insert(norm_axis(a, r));
  std::vector<Val> o;
  size_t k = 0;
  for (int64_t i = 0; i < r; ++i) o.push_back(add.count(i) ? Val::num(1) : (k < c.S(0).size() ? c.S(0)[k++] : Val{}));
  Info& out = c.set(0, c.T(0), o);
  if (c.I(0)->has_value) { out.has_value = true; out.value = c.I(0)->value; }
}

void concat_op(Ctx& c) {
  DType t = DType::Undefined;
  for (size_t i = 0; i < c.in.size(); ++i) if (c.I(i) && c.T(i) != DType::Undefined) { t = c.T(i); break; }
  const std::vector<Val>* first = nullptr;
  for (size_t i = 0; i < c.n.inputs.size(); ++i) {
    if (!c.need(i)) { c.set_type(0, t); return; }
    if (!first) first = &c.S(i);
  }
  if (!first) { c.set_type(0, t); return; }
  int64_t r = static_cast<int64_t>(first->size());
  int64_t axis = norm_axis(c.n.attr_int("axis", 0), r);
  if (!axis_ok(c, axis, r)) { c.set_type(0, t); return; }
  std::vector<Val> o(static_cast<size_t>(r));
  o[static_cast<size_t>(axis)] = Val::num(0);
  bool values = true;
  std::vector<Val> value;
  for (size_t i = 0; i < c.n.inputs.size(); ++i) {
    const auto& s = c.S(i);
    if (static_cast<int64_t>(s.size()) != r) { c.why = "inputs of different rank"; c.set_type(0, t); return; }
    for (int64_t d = 0; d < r; ++d) {
      size_t k = static_cast<size_t>(d);
      if (d == axis) o[k] = vadd(o[k], s[k]);
      else if (o[k].unknown() || (!o[k].known && s[k].known)) o[k] = s[k];
    }
    if (c.I(i)->has_value && r == 1) value.insert(value.end(), c.I(i)->value.begin(), c.I(i)->value.end());
    else values = false;
  }
  Info& out = c.set(0, t, o);
  if (values) { out.has_value = true; out.value = std::move(value); }
}

void split_op(Ctx& c) {
  size_t nout = c.n.outputs.size();
  for (size_t k = 0; k < nout; ++k) c.set_type(k, c.T(0));
  if (!c.need(0)) return;
  int64_t axis = norm_axis(c.n.attr_int("axis", 0), c.I(0)->rank());
  if (!axis_ok(c, axis, c.I(0)->rank())) return;
  std::vector<int64_t> sizes;
  bool found = false;
  if (!c.ints_arg("split", 1, sizes, found)) return;
  Val dim = c.S(0)[static_cast<size_t>(axis)];
  std::vector<Val> parts;
  if (found && !sizes.empty()) {
    for (int64_t s : sizes) parts.push_back(Val::num(s));
  } else if (dim.known) {
    int64_t n = static_cast<int64_t>(nout);
    int64_t chunk = ceil_div(dim.v, n);  // opset 18 num_outputs: the last part may be smaller
    for (int64_t k = 0; k < n; ++k) parts.push_back(Val::num(std::max<int64_t>(0, std::min(chunk, dim.v - k * chunk))));
  } else {
    for (size_t k = 0; k < nout; ++k) parts.push_back(vdiv(dim, Val::num(static_cast<int64_t>(nout))));
  }
  for (size_t k = 0; k < nout && k < parts.size(); ++k) {
    std::vector<Val> s = c.S(0);
    s[static_cast<size_t>(axis)] = parts[k];
    c.set(k, c.T(0), s);
  }
}

// Slice length per the spec: clamp start/end into range, then ceil((end-start)/step).
void slice_op(Ctx& c) {
  std::vector<int64_t> starts, ends, axes, steps;
  bool f1 = false, f2 = false, f3 = false, f4 = false;
  if (c.opset < 10) {
    starts = c.n.attr_ints("starts");
    ends = c.n.attr_ints("ends");
    axes = c.n.attr_ints("axes");
  } else if (!c.ints_arg("_", 1, starts, f1) || !c.ints_arg("_", 2, ends, f2) || !c.ints_arg("_", 3, axes, f3) ||
             !c.ints_arg("_", 4, steps, f4)) {
    if (c.ranked(0)) c.set(0, c.T(0), std::vector<Val>(c.S(0).size()));
    else c.set_type(0, c.T(0));
    return;
  }
  if (!c.need(0)) { c.set_type(0, c.T(0)); return; }
  int64_t r = c.I(0)->rank();
  if (axes.empty()) for (size_t i = 0; i < starts.size(); ++i) axes.push_back(static_cast<int64_t>(i));
  std::vector<Val> o = c.S(0);
  std::vector<std::pair<int64_t, int64_t>> ranges(static_cast<size_t>(r), {0, -1});  // for value slicing
  bool value_ok = c.I(0)->has_value && r == 1 && c.S(0)[0].known &&
                  static_cast<int64_t>(c.I(0)->value.size()) == c.S(0)[0].v;
  for (size_t i = 0; i < axes.size() && i < starts.size() && i < ends.size(); ++i) {
    if (!axis_ok(c, norm_axis(axes[i], r), r)) { c.set_type(0, c.T(0)); return; }
    size_t a = static_cast<size_t>(norm_axis(axes[i], r));
    int64_t step = i < steps.size() ? steps[i] : 1;
    const Val& d = o[a];
    if (step == 0) { c.why = "Slice step 0"; return; }
    if (!d.known) {
      // A symbolic dim survives an identity slice or a slice that drops a fixed count from the end.
      if (step == 1 && starts[i] == 0 && ends[i] >= (std::numeric_limits<int32_t>::max)()) continue;
      if (step == 1 && starts[i] >= 0 && ends[i] < 0) { o[a] = vadd(d, Val::num(ends[i] - starts[i])); value_ok = false; continue; }
      if (step == 1 && starts[i] < 0 && ends[i] >= (std::numeric_limits<int32_t>::max)()) { o[a] = Val::num(-starts[i]); value_ok = false; continue; }
      o[a] = Val{};
      value_ok = false;
      continue;
    }
    int64_t n = d.v, s = starts[i], e = ends[i];
    if (s < 0) s += n;
    if (e < 0) e += n;
    int64_t len;
    if (step > 0) {
      s = std::clamp<int64_t>(s, 0, n);
      e = std::clamp<int64_t>(e, 0, n);
      len = e > s ? ceil_div(e - s, step) : 0;
    } else {
      s = std::clamp<int64_t>(s, 0, n - 1);
      e = std::clamp<int64_t>(e, -1, n - 1);
      len = s > e ? ceil_div(s - e, -step) : 0;
    }
    o[a] = Val::num(len);
    if (value_ok) {
      std::vector<Val> v;
      for (int64_t k = 0; k < len; ++k) v.push_back(c.I(0)->value[static_cast<size_t>(s + k * step)]);
      Info& out = c.set(0, c.T(0), o);
      out.has_value = true;
      out.value = std::move(v);
      return;
    }
  }
  c.set(0, c.T(0), o);
}

void gather_op(Ctx& c) {
  if (!c.need(0) || !c.need(1)) { c.set_type(0, c.T(0)); return; }
  int64_t r = c.I(0)->rank();
  int64_t axis = norm_axis(c.n.attr_int("axis", 0), r);
  if (!axis_ok(c, axis, r)) { c.set_type(0, c.T(0)); return; }
  std::vector<Val> o(c.S(0).begin(), c.S(0).begin() + axis);
  o.insert(o.end(), c.S(1).begin(), c.S(1).end());
  o.insert(o.end(), c.S(0).begin() + axis + 1, c.S(0).end());
  Info& out = c.set(0, c.T(0), o);
  if (r == 1 && c.I(0)->has_value && c.I(1)->value_known()) {
    int64_t n = static_cast<int64_t>(c.I(0)->value.size());
    out.has_value = true;
    for (int64_t idx : c.I(1)->ints()) {
      int64_t k = idx < 0 ? idx + n : idx;
      out.value.push_back(k >= 0 && k < n ? c.I(0)->value[static_cast<size_t>(k)] : Val{});
    }
  }
}
void gather_block_quantized_op(Ctx& c) {
  // uint8 data (codes packed along the last axis): output = indices' shape + data[1:], last axis
  // times 8/bits; the type is the scales'.
  const DType t = c.T(2) != DType::Undefined ? c.T(2) : DType::Float;
  if (!c.need(0) || !c.need(1) || c.S(0).empty()) { c.set_type(0, t); return; }
  std::vector<Val> o(c.S(1).begin(), c.S(1).end());
  o.insert(o.end(), c.S(0).begin() + 1, c.S(0).end());
  const int64_t bits = c.n.attr_int("bits", 4);
  if (c.T(0) == DType::UInt8 && !o.empty() && o.back().known && bits > 0 && bits <= 8) o.back() = Val::num(o.back().v * (8 / bits));
  c.set(0, t, o);
}
void gather_elements_op(Ctx& c) {
  if (!c.need(1)) { c.set_type(0, c.T(0)); return; }
  c.set(0, c.T(0), c.S(1));
}
void gather_nd_op(Ctx& c) {
  if (!c.need(0) || !c.need(1) || !c.S(1).back().known) { c.set_type(0, c.T(0)); return; }
  int64_t b = c.n.attr_int("batch_dims", 0), last = c.S(1).back().v;
  if (b < 0 || last < 0 || b + last > c.I(0)->rank()) { c.why = "GatherND indices deeper than data"; c.set_type(0, c.T(0)); return; }
  std::vector<Val> o(c.S(1).begin(), c.S(1).end() - 1);
  o.insert(o.end(), c.S(0).begin() + b + last, c.S(0).end());
  c.set(0, c.T(0), o);
}

void expand_op(Ctx& c) {
  if (!c.need(0) || !c.need_value(1)) { c.set_type(0, c.T(0)); return; }
  const std::vector<Val>& tgt = c.I(1)->value;
  c.set(0, c.T(0), broadcast({&c.S(0), &tgt}));
}
void tile_op(Ctx& c) {
  if (!c.need(0) || !c.need_value(1)) { c.set_type(0, c.T(0)); return; }
  std::vector<Val> o = c.S(0);
  for (size_t i = 0; i < o.size() && i < c.I(1)->value.size(); ++i) o[i] = vmul(o[i], c.I(1)->value[i]);
  c.set(0, c.T(0), o);
}

void pad_op(Ctx& c) {
  std::vector<int64_t> pads, axes;
  bool found = false, fa = false;
  if (!c.ints_arg("pads", 1, pads, found) || !c.ints_arg("_", 3, axes, fa) || !c.need(0)) {
    if (c.ranked(0)) c.set(0, c.T(0), std::vector<Val>(c.S(0).size()));
    else c.set_type(0, c.T(0));
    return;
  }
  int64_t r = c.I(0)->rank();
  if (axes.empty()) for (int64_t i = 0; i < r; ++i) axes.push_back(i);
  std::vector<Val> o = c.S(0);
  size_t na = axes.size();
  for (size_t i = 0; i < na && i + na < pads.size(); ++i) {
    if (!axis_ok(c, norm_axis(axes[i], r), r)) { c.set_type(0, c.T(0)); return; }
    size_t a = static_cast<size_t>(norm_axis(axes[i], r));
    o[a] = vadd(o[a], Val::num(pads[i] + pads[i + na]));
  }
  c.set(0, c.T(0), o);
}

// Resize/Upsample: sizes win; else out = floor(in * scale) per axis.
void resize_op(Ctx& c) {
  if (!c.need(0)) { c.set_type(0, c.T(0)); return; }
  int64_t r = c.I(0)->rank();
  std::vector<int64_t> axes = c.n.attr_ints("axes");
  if (axes.empty()) for (int64_t i = 0; i < r; ++i) axes.push_back(i);
  for (int64_t a : axes) if (!axis_ok(c, norm_axis(a, r), r)) { c.set_type(0, c.T(0)); return; }
  std::vector<Val> o = c.S(0);
  size_t scales_in = c.n.op_type == "Upsample" || c.opset < 11 ? 1 : 2, sizes_in = 3;
  const Info* sz = c.present(sizes_in) ? c.I(sizes_in) : nullptr;
  if (sz && sz->has_value && !sz->value.empty()) {
    for (size_t i = 0; i < axes.size() && i < sz->value.size(); ++i) o[static_cast<size_t>(norm_axis(axes[i], r))] = sz->value[i];
    c.set(0, c.T(0), o);
    return;
  }
  std::vector<double> scales;
  if (c.n.has_attr("scales")) for (float f : c.n.attr_floats("scales")) scales.push_back(f);
  else if (c.present(scales_in) && c.I(scales_in) && c.I(scales_in)->has_fvalue) scales = c.I(scales_in)->fvalue;
  if (scales.empty()) {
    c.why = "Resize scales/sizes are not constant";
    c.set(0, c.T(0), std::vector<Val>(static_cast<size_t>(r)));
    return;
  }
  for (size_t i = 0; i < axes.size() && i < scales.size(); ++i) {
    Val& d = o[static_cast<size_t>(norm_axis(axes[i], r))];
    double s = scales[i];
    if (d.known) d = Val::num(static_cast<int64_t>(std::floor(static_cast<double>(d.v) * s + 1e-9)));
    else if (s == std::floor(s)) d = vmul(d, Val::num(static_cast<int64_t>(s)));
    else d = Val{};
  }
  c.set(0, c.T(0), o);
}

void reduce_op(Ctx& c) {
  std::vector<int64_t> axes;
  bool found = false;
  bool keep = c.n.attr_int("keepdims", 1) != 0;
  if (!c.ints_arg("axes", 1, axes, found) || !c.need(0)) { c.set_type(0, c.T(0)); return; }
  int64_t r = c.I(0)->rank();
  bool noop = axes.empty() && c.n.attr_int("noop_with_empty_axes", 0) != 0;
  std::set<int64_t> red;
  if (axes.empty() && !noop) for (int64_t i = 0; i < r; ++i) red.insert(i);
  for (int64_t a : axes) {
    if (!axis_ok(c, norm_axis(a, r), r)) { c.set_type(0, c.T(0)); return; }
    red.insert(norm_axis(a, r));
  }
  std::vector<Val> o;
  for (int64_t i = 0; i < r; ++i) {
    if (!red.count(i)) o.push_back(c.S(0)[static_cast<size_t>(i)]);
    else if (keep) o.push_back(Val::num(1));
  }
  c.set(0, c.T(0), o);
}
void argminmax_op(Ctx& c) {
  if (!c.need(0)) { c.set_type(0, DType::Int64); return; }
  int64_t axis = norm_axis(c.n.attr_int("axis", 0), c.I(0)->rank());
  if (!axis_ok(c, axis, c.I(0)->rank())) { c.set_type(0, DType::Int64); return; }
  std::vector<Val> o = c.S(0);
  if (c.n.attr_int("keepdims", 1)) o[static_cast<size_t>(axis)] = Val::num(1);
  else o.erase(o.begin() + axis);
  c.set(0, DType::Int64, o);
}

// Pads as [begin..., end...] for `nsp` spatial dims, honouring auto_pad (SAME_* gives out = ceil(in/stride)).
// Dims may be symbolic, so this is window_axis (graph/conv_geometry.h) in Val arithmetic; on known
// dims where the window fits it agrees with it except for SAME pools with dilation > 1, where
// window_axis (like ONNX Runtime and our kernels) gives fewer than ceil(in/stride).
struct Window {
  std::vector<int64_t> k, s, d, pads;
  AutoPad auto_pad = AutoPad::NotSet;  // an unknown value counts as NOTSET
};
Window window_attrs(const Node& n, size_t nsp, std::vector<int64_t> kernel) {
  Window w;
  w.k = n.attr_ints("kernel_shape", kernel);
  w.s = n.attr_ints("strides", std::vector<int64_t>(nsp, 1));
  w.d = n.attr_ints("dilations", std::vector<int64_t>(nsp, 1));
  w.pads = n.attr_ints("pads", std::vector<int64_t>(2 * nsp, 0));
  w.auto_pad = parse_auto_pad(n.attr_string("auto_pad", "NOTSET")).value_or(AutoPad::NotSet);
  return w;
}
std::vector<Val> window_spatial(const std::vector<Val>& in, const Window& w, bool ceil_mode, bool pool) {
  std::vector<Val> o;
  size_t nsp = in.size();
  for (size_t i = 0; i < nsp; ++i) {
    int64_t k = i < w.k.size() ? w.k[i] : 1, s = i < w.s.size() ? w.s[i] : 1, d = i < w.d.size() ? w.d[i] : 1;
    int64_t eff = window_span(k, d);
    if (is_same_pad(w.auto_pad)) { o.push_back(vdiv(in[i], Val::num(s), true)); continue; }
    int64_t pb = 0, pe = 0;
    if (w.auto_pad != AutoPad::Valid && i + nsp < w.pads.size()) { pb = w.pads[i]; pe = w.pads[i + nsp]; }
    Val out = window_out(in[i], pb + pe, eff, s, ceil_mode);
    // ONNX Runtime drops a last ceil-mode window that would start inside the end padding.
    if (pool && ceil_mode && out.known && in[i].known && window_starts_in_end_pad(out.v, in[i].v, pb, s)) out.v -= 1;
    o.push_back(out);
  }
  return o;
}

void conv_op(Ctx& c) {
  size_t wi = c.n.op_type == "QLinearConv" ? 3 : 1;
  DType t = c.n.op_type == "ConvInteger" ? DType::Int32 : c.n.op_type == "QLinearConv" ? c.T(7) : c.T(0);
  if (!c.need(0) || !c.need(wi)) { c.set_type(0, t); return; }
  const auto& x = c.S(0);
  const auto& w = c.S(wi);
  if (x.size() < 2 || w.size() != x.size()) { c.why = "input and weight ranks differ"; c.set_type(0, t); return; }
  std::vector<int64_t> kernel;
  for (size_t i = 2; i < w.size(); ++i) kernel.push_back(w[i].known ? w[i].v : 1);
  Window win = window_attrs(c.n, x.size() - 2, kernel);
  std::vector<Val> o = {x[0], w[0]};
  auto sp = window_spatial(std::vector<Val>(x.begin() + 2, x.end()), win, false, false);
  o.insert(o.end(), sp.begin(), sp.end());
  c.set(0, t, o);
}

void conv_transpose_op(Ctx& c) {
  if (!c.need(0) || !c.need(1)) { c.set_type(0, c.T(0)); return; }
  const auto& x = c.S(0);
  const auto& w = c.S(1);
  if (x.size() < 3 || w.size() != x.size()) { c.why = "input and weight ranks differ"; c.set_type(0, c.T(0)); return; }
  size_t nsp = x.size() - 2;
  std::vector<int64_t> kernel;
  for (size_t i = 2; i < w.size(); ++i) kernel.push_back(w[i].known ? w[i].v : 1);
  Window win = window_attrs(c.n, nsp, kernel);
  std::vector<int64_t> outpad = c.n.attr_ints("output_padding", std::vector<int64_t>(nsp, 0));
  std::vector<int64_t> oshape = c.n.attr_ints("output_shape");
  std::vector<Val> o = {x[0], vmul(w[1], Val::num(c.n.attr_int("group", 1)))};
  for (size_t i = 0; i < nsp; ++i) {
    if (oshape.size() >= nsp) { o.push_back(Val::num(oshape[oshape.size() - nsp + i])); continue; }
    int64_t k = i < win.k.size() ? win.k[i] : 1, s = i < win.s.size() ? win.s[i] : 1, d = i < win.d.size() ? win.d[i] : 1;
    if (is_same_pad(win.auto_pad)) { o.push_back(vmul(x[2 + i], Val::num(s))); continue; }
    int64_t pads = win.auto_pad == AutoPad::Valid || i + nsp >= win.pads.size() ? 0 : win.pads[i] + win.pads[i + nsp];
    int64_t op = i < outpad.size() ? outpad[i] : 0;
    o.push_back(vadd(vmul(vadd(x[2 + i], Val::num(-1)), Val::num(s)), Val::num(op + window_span(k, d) - pads)));
  }
  c.set(0, c.T(0), o);
}

void pool_op(Ctx& c) {
  if (!c.need(0)) { c.set_type(0, c.T(0)); return; }
  const auto& x = c.S(0);
  if (x.size() < 3) { c.why = "pooling needs [N, C, spatial...]"; c.set_type(0, c.T(0)); return; }
  Window win = window_attrs(c.n, x.size() - 2, {});
  std::vector<Val> o = {x[0], x[1]};
  auto sp = window_spatial(std::vector<Val>(x.begin() + 2, x.end()), win, c.n.attr_int("ceil_mode", 0) != 0, true);
  o.insert(o.end(), sp.begin(), sp.end());
  c.set(0, c.T(0), o);
  if (c.n.outputs.size() > 1) c.set(1, DType::Int64, o);
}
void global_pool_op(Ctx& c) {
  if (!c.need(0)) { c.set_type(0, c.T(0)); return; }
  std::vector<Val> o = c.S(0);
  for (size_t i = 2; i < o.size(); ++i) o[i] = Val::num(1);
  c.set(0, c.T(0), o);
}

void gemm_op(Ctx& c) {
  if (!c.need(0) || !c.need(1)) { c.set_type(0, c.T(0)); return; }
  const auto& a = c.S(0);
  const auto& b = c.S(1);
  if (a.size() != 2 || b.size() != 2) { c.why = "Gemm inputs must be 2-D"; c.set_type(0, c.T(0)); return; }
  bool ta = c.n.attr_int("transA", 0) != 0, tb = c.n.attr_int("transB", 0) != 0;
  c.set(0, c.T(0), {ta ? a[1] : a[0], tb ? b[0] : b[1]});
}

// MatMul (numpy): 1-D operands get a dim prepended/appended and removed again; batch dims broadcast.
void matmul_op(Ctx& c) {
  bool q = c.n.op_type == "QLinearMatMul";
  size_t bi = q ? 3 : 1;
  DType t = c.n.op_type == "MatMulInteger" ? DType::Int32 : q ? c.T(7) : c.T(0);
  if (!c.need(0) || !c.need(bi)) { c.set_type(0, t); return; }
  std::vector<Val> a = c.S(0), b = c.S(bi);
  if (a.empty() || b.empty()) { c.why = "MatMul of a scalar"; c.set_type(0, t); return; }
  if (c.n.domain == "com.microsoft" && c.n.op_type == "FusedMatMul") {
    if (c.n.attr_int("transA", 0) && a.size() >= 2) std::swap(a[a.size() - 1], a[a.size() - 2]);
    if (c.n.attr_int("transB", 0) && b.size() >= 2) std::swap(b[b.size() - 1], b[b.size() - 2]);
  }
  bool a1 = a.size() == 1, b1 = b.size() == 1;
  if (a1) a.insert(a.begin(), Val::num(1));
  if (b1) b.push_back(Val::num(1));
  std::vector<Val> ba(a.begin(), a.end() - 2), bb(b.begin(), b.end() - 2);
  std::vector<Val> o = broadcast({&ba, &bb});
  if (!a1) o.push_back(a[a.size() - 2]);
  if (!b1) o.push_back(b.back());
  c.set(0, t, o);
}
void matmul_nbits_op(Ctx& c) {
  if (!c.need(0)) { c.set_type(0, c.T(0)); return; }
  std::vector<Val> o = c.S(0);
  if (o.empty()) { c.set_type(0, c.T(0)); return; }
  o.back() = Val::num(c.n.attr_int("N", 0));
  c.set(0, c.T(0), o);
}

void batchnorm_op(Ctx& c) {
  same_as_input0(c);
  for (size_t k = 1; k < c.n.outputs.size(); ++k) {  // training-mode running stats: [C]
    if (c.ranked(0) && c.S(0).size() > 1) c.set(k, c.T(1), {c.S(0)[1]});
    else c.set_type(k, c.T(1));
  }
}
void layernorm_op(Ctx& c) {
  same_as_input0(c);
  if (!c.ranked(0)) return;
  int64_t axis = norm_axis(c.n.attr_int("axis", -1), c.I(0)->rank());
  std::vector<Val> stat = c.S(0);
  for (size_t i = static_cast<size_t>(axis); i < stat.size(); ++i) stat[i] = Val::num(1);
  for (size_t k = 1; k < c.n.outputs.size(); ++k) c.set(k, DType::Float, stat);
}
void dropout_op(Ctx& c) {
  same_as_input0(c);
  if (c.n.outputs.size() > 1 && c.ranked(0)) c.set(1, DType::Bool, c.S(0));
}

// RNNs: Y [seq, dirs, batch, hidden], Y_h/Y_c [dirs, batch, hidden] (layout 0); batch-first for layout 1.
void rnn_op(Ctx& c) {
  size_t nout = c.n.outputs.size();
  for (size_t k = 0; k < nout; ++k) c.set_type(k, c.T(0));
  if (!c.need(0)) return;
  const auto& x = c.S(0);
  if (x.size() != 3) { c.why = "RNN input must be 3-D"; return; }
  bool bf = c.n.attr_int("layout", 0) != 0;
  Val seq = bf ? x[1] : x[0], batch = bf ? x[0] : x[1];
  Val dirs = Val::num(c.n.attr_string("direction", "forward") == "bidirectional" ? 2 : 1);
  Val hid = Val::num(c.n.attr_int("hidden_size", 0));
  if (!c.n.has_attr("hidden_size") && c.ranked(2) && c.S(2).size() == 3) hid = c.S(2)[2];
  c.set(0, c.T(0), bf ? std::vector<Val>{batch, seq, dirs, hid} : std::vector<Val>{seq, dirs, batch, hid});
  for (size_t k = 1; k < nout; ++k) c.set(k, c.T(0), bf ? std::vector<Val>{batch, dirs, hid} : std::vector<Val>{dirs, batch, hid});
}

void quantize_op(Ctx& c) {
  DType t = c.present(2) ? c.T(2) : static_cast<DType>(c.n.attr_int("output_dtype", static_cast<int64_t>(DType::UInt8)));
  if (t == DType::Undefined) t = DType::UInt8;
  same_as_input0(c);
  if (!c.out.empty()) c.out[0].dtype = t;
}
void dequantize_op(Ctx& c) {
  DType t = c.T(1) != DType::Undefined ? c.T(1) : DType::Float;
  if (c.n.is_default_domain()) t = c.opset >= 19 && c.T(1) != DType::Undefined ? c.T(1) : DType::Float;
  same_as_input0(c);
  if (!c.out.empty()) c.out[0].dtype = t;
}
void dynamic_quantize_op(Ctx& c) {
  same_as_input0(c);
  if (!c.out.empty()) c.out[0].dtype = DType::UInt8;
  c.set(1, DType::Float, {});
  c.set(2, DType::UInt8, {});
}

void range_op(Ctx& c) {
  DType t = c.T(0);
  const Info *s = c.I(0), *l = c.I(1), *d = c.I(2);
  auto scalar = [](const Info* i, double& x) {
    if (!i) return false;
    if (i->value_known() && i->value.size() == 1) { x = static_cast<double>(i->value[0].v); return true; }
    if (i->has_fvalue && i->fvalue.size() == 1) { x = i->fvalue[0]; return true; }
    return false;
  };
  double a = 0, b = 0, st = 1;
  if (!scalar(s, a) || !scalar(l, b) || !scalar(d, st) || st == 0) { c.set(0, t, {Val{}}); return; }
  int64_t n = std::max<int64_t>(0, static_cast<int64_t>(std::ceil((b - a) / st)));
  Info& o = c.set(0, t, {Val::num(n)});
  if (dtype_is_integer(t) && n <= kMaxTracked) {
    o.has_value = true;
    for (int64_t k = 0; k < n; ++k) o.value.push_back(Val::num(static_cast<int64_t>(a + st * static_cast<double>(k))));
  }
}

void topk_op(Ctx& c) {
  c.set_type(0, c.T(0));
  c.set_type(1, DType::Int64);
  if (!c.need(0)) return;
  std::vector<Val> o = c.S(0);
  int64_t axis = norm_axis(c.n.attr_int("axis", -1), c.I(0)->rank());
  if (!axis_ok(c, axis, c.I(0)->rank())) return;
  Val k = c.n.has_attr("k") ? Val::num(c.n.attr_int("k", 0)) : (c.I(1) && c.I(1)->has_value && !c.I(1)->value.empty() ? c.I(1)->value[0] : Val{});
  o[static_cast<size_t>(axis)] = k;
  c.set(0, c.T(0), o);
  c.set(1, DType::Int64, o);
}

void nonzero_op(Ctx& c) {
  if (!c.need(0)) { c.set(0, DType::Int64, {Val{}, Val{}}); return; }
  c.set(0, DType::Int64, {Val::num(c.I(0)->rank()), Val{}});
}

// Unique: the number of distinct values (slices along `axis`) is data-dependent.
void unique_op(Ctx& c) {
  c.set_type(0, c.T(0));
  for (size_t k = 1; k < 4; ++k) c.set(k, DType::Int64, {Val{}});
  if (!c.need(0)) return;
  const auto& x = c.S(0);
  if (!c.n.has_attr("axis")) {
    Val n = Val::num(1);
    for (const Val& d : x) n = vmul(n, d);
    c.set(0, c.T(0), {Val{}});
    c.set(2, DType::Int64, {n});
    return;
  }
  const int64_t axis = norm_axis(c.n.attr_int("axis", 0), c.I(0)->rank());
  if (!axis_ok(c, axis, c.I(0)->rank())) return;
  std::vector<Val> o = x;
  o[static_cast<size_t>(axis)] = Val{};
  c.set(0, c.T(0), o);
  c.set(2, DType::Int64, {x[static_cast<size_t>(axis)]});
}

// Det: the batch dims of [*, M, M].
void det_op(Ctx& c) {
  if (!c.need(0) || c.S(0).size() < 2) { c.set_type(0, c.T(0)); return; }
  c.set(0, c.T(0), std::vector<Val>(c.S(0).begin(), c.S(0).end() - 2));
}

// NonMaxSuppression: [selected, 3] int64, the count data-dependent.
void nms_op(Ctx& c) { c.set(0, DType::Int64, {Val{}, Val::num(3)}); }

// Compress: data-dependent length along `axis` (flattened without it).
void compress_op(Ctx& c) {
  c.set_type(0, c.T(0));
  if (!c.need(0)) return;
  if (!c.n.has_attr("axis")) { c.set(0, c.T(0), {Val{}}); return; }
  const int64_t axis = norm_axis(c.n.attr_int("axis", 0), c.I(0)->rank());
  if (!axis_ok(c, axis, c.I(0)->rank())) return;
  std::vector<Val> o = c.S(0);
  o[static_cast<size_t>(axis)] = Val{};
  c.set(0, c.T(0), o);
}

// OneHot: indices' shape with depth inserted at `axis`, values' element type.
void one_hot_op(Ctx& c) {
  c.set_type(0, c.T(2));
  if (!c.need(0)) return;
  std::vector<Val> o = c.S(0);
  const int64_t r = static_cast<int64_t>(o.size()) + 1;
  const int64_t axis = norm_axis(c.n.attr_int("axis", -1), r);
  if (!axis_ok(c, axis, r)) return;
  Val depth = c.I(1) && c.I(1)->has_value && c.I(1)->value.size() == 1 ? c.I(1)->value[0] : Val{};
  o.insert(o.begin() + axis, depth);
  c.set(0, c.T(2), o);
}

// Hann/Hamming/BlackmanWindow: [size] of output_datatype (float by default).
void window_op(Ctx& c) {
  Val size = c.I(0) && c.I(0)->has_value && c.I(0)->value.size() == 1 ? c.I(0)->value[0] : Val{};
  c.set(0, static_cast<DType>(c.n.attr_int("output_datatype", 1)), {size});
}

void depth_space_op(Ctx& c) {
  if (!c.need(0) || c.S(0).size() != 4) { c.set_type(0, c.T(0)); return; }
  int64_t b = c.n.attr_int("blocksize", 1);
  const auto& x = c.S(0);
  if (c.n.op_type == "DepthToSpace")
    c.set(0, c.T(0), {x[0], vdiv(x[1], Val::num(b * b)), vmul(x[2], Val::num(b)), vmul(x[3], Val::num(b))});
  else
    c.set(0, c.T(0), {x[0], vmul(x[1], Val::num(b * b)), vdiv(x[2], Val::num(b)), vdiv(x[3], Val::num(b))});
}

void grid_sample_op(Ctx& c) {
  if (!c.need(0) || !c.need(1)) { c.set_type(0, c.T(0)); return; }
  std::vector<Val> o = {c.S(0)[0], c.S(0)[1]};
  o.insert(o.end(), c.S(1).begin() + 1, c.S(1).end() - 1);
  c.set(0, c.T(0), o);
}

void einsum_op(Ctx& c) {
  // "ij,jk->ik" style with explicit output and no ellipsis.
  std::string eq = c.n.attr_string("equation", "");
  eq.erase(std::remove(eq.begin(), eq.end(), ' '), eq.end());
  size_t arrow = eq.find("->");
  if (arrow == std::string::npos || eq.find("...") != std::string::npos) { c.why = "implicit or ellipsis Einsum"; c.set_type(0, c.T(0)); return; }
  std::map<char, Val> dims;
  size_t start = 0, k = 0;
  std::string lhs = eq.substr(0, arrow);
  while (start <= lhs.size()) {
    size_t comma = lhs.find(',', start);
    std::string term = lhs.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    if (!c.need(k)) { c.set_type(0, c.T(0)); return; }
    for (size_t i = 0; i < term.size() && i < c.S(k).size(); ++i) {
      Val& d = dims[term[i]];
      d = d.unknown() ? c.S(k)[i] : bcast_dim(d, c.S(k)[i]);
    }
    ++k;
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  std::vector<Val> o;
  for (char ch : eq.substr(arrow + 2)) o.push_back(dims[ch]);
  c.set(0, c.T(0), o);
}

void if_op(Ctx& c);
void loop_op(Ctx& c);

const std::unordered_map<std::string, Rule>& rules() {
  static const std::unordered_map<std::string, Rule> table = [] {
    std::unordered_map<std::string, Rule> t;
    for (const char* op : {"Relu", "Sigmoid", "Tanh", "HardSigmoid", "HardSwish", "LeakyRelu", "Elu", "Selu", "Celu",
                           "Gelu", "Erf", "Exp", "Log", "Sqrt", "Abs", "Neg", "Reciprocal", "Floor", "Ceil", "Round",
                           "Sign", "Sin", "Cos", "Tan", "Asin", "Acos", "Atan", "Sinh", "Cosh", "Asinh", "Acosh",
                           "Atanh", "Softplus", "Softsign", "Clip", "Softmax", "LogSoftmax", "Hardmax", "Mish",
                           "ThresholdedRelu", "Shrink", "CumSum", "Trilu", "LRN", "InstanceNormalization",
                           "MeanVarianceNormalization", "GroupNormalization", "ReverseSequence", "Identity",
                           "ScatterND", "ScatterElements", "Scatter", "EyeLike", "RandomNormalLike",
                           "RandomUniformLike", "BitwiseNot", "com.microsoft:Gelu", "com.microsoft:FastGelu",
                           "com.microsoft:QuickGelu", "com.microsoft:BiasGelu", "com.microsoft:SkipLayerNormalization",
                           "com.microsoft:SkipSimplifiedLayerNormalization", "com.microsoft:SimplifiedLayerNormalization"})
      t[op] = same_as_input0;
    for (const char* op : {"Not", "IsNaN", "IsInf"}) t[op] = bool_like_input0;
    for (const char* op : {"Add", "Sub", "Mul", "Div", "Pow", "Max", "Min", "Mean", "Sum", "Mod", "BitShift", "PRelu",
                           "BitwiseAnd", "BitwiseOr", "BitwiseXor"})
      t[op] = elementwise;
    for (const char* op : {"Equal", "Less", "Greater", "LessOrEqual", "GreaterOrEqual"}) t[op] = comparison;
    t["And"] = t["Or"] = t["Xor"] = comparison;
    t["Where"] = where_op;
    t["Cast"] = t["CastLike"] = cast_op;
    t["Constant"] = constant_op;
    t["Shape"] = shape_op;
    t["Size"] = size_op;
    t["ConstantOfShape"] = constant_of_shape;
    t["Reshape"] = reshape_op;
    t["Flatten"] = flatten_op;
    t["Transpose"] = transpose_op;
    t["Squeeze"] = squeeze_op;
    t["Unsqueeze"] = unsqueeze_op;
    t["Concat"] = concat_op;
    t["Split"] = split_op;
    t["Slice"] = slice_op;
    t["Gather"] = gather_op;
    t["GatherElements"] = gather_elements_op;
    t["GatherND"] = gather_nd_op;
    t["Expand"] = expand_op;
    t["Tile"] = tile_op;
    t["Pad"] = pad_op;
    t["Resize"] = t["Upsample"] = resize_op;
    for (const char* op : {"ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1", "ReduceL2",
                           "ReduceLogSum", "ReduceLogSumExp", "ReduceSumSquare"})
      t[op] = reduce_op;
    t["ArgMax"] = t["ArgMin"] = argminmax_op;
    t["Conv"] = t["ConvInteger"] = t["QLinearConv"] = t["com.microsoft:FusedConv"] = conv_op;
    t["ConvTranspose"] = conv_transpose_op;
    t["MaxPool"] = t["AveragePool"] = t["LpPool"] = pool_op;
    t["GlobalAveragePool"] = t["GlobalMaxPool"] = t["GlobalLpPool"] = global_pool_op;
    t["Gemm"] = gemm_op;
    t["MatMul"] = t["MatMulInteger"] = t["QLinearMatMul"] = t["com.microsoft:FusedMatMul"] = matmul_op;
    t["com.microsoft:MatMulNBits"] = matmul_nbits_op;
    t["com.microsoft:GatherBlockQuantized"] = gather_block_quantized_op;
    t["BatchNormalization"] = batchnorm_op;
    t["LayerNormalization"] = layernorm_op;
    t["Dropout"] = dropout_op;
    t["LSTM"] = t["GRU"] = t["RNN"] = rnn_op;
    t["QuantizeLinear"] = quantize_op;
    t["DequantizeLinear"] = t["com.microsoft:DequantizeLinear"] = dequantize_op;
    t["com.microsoft:QuantizeLinear"] = quantize_op;
    t["DynamicQuantizeLinear"] = dynamic_quantize_op;
    t["Range"] = range_op;
    t["TopK"] = topk_op;
    t["NonZero"] = nonzero_op;
    t["Unique"] = unique_op;
    t["Det"] = det_op;
    t["NonMaxSuppression"] = nms_op;
    t["Compress"] = compress_op;
    t["OneHot"] = one_hot_op;
    t["HannWindow"] = t["HammingWindow"] = t["BlackmanWindow"] = window_op;
    t["DepthToSpace"] = t["SpaceToDepth"] = depth_space_op;
    t["GridSample"] = grid_sample_op;
    t["Einsum"] = einsum_op;
    t["If"] = if_op;
    t["Loop"] = loop_op;
    return t;
  }();
  return table;
}

// ---------------------------------------------------------------------------------------------
// The constant an Info holds as a tensor (every element known, shape concrete), for the evaluator.
std::optional<Tensor> tensor_of_info(const Info& i) {
  if (!i.all_known()) return std::nullopt;
  int64_t n = i.numel_known();
  if (n > kMaxTracked) return std::nullopt;
  std::vector<int64_t> dims;
  for (const auto& d : i.shape) dims.push_back(d.v);
  if ((dtype_is_integer(i.dtype) || i.dtype == DType::Bool) && i.has_value && i.value_known() &&
      static_cast<int64_t>(i.value.size()) == n) {
    std::vector<int64_t> v = i.ints();
    switch (i.dtype) {
      case DType::Int64: return Tensor::from_int64("", dims, v);
      case DType::Int32: return Tensor::from_int32("", dims, std::vector<int32_t>(v.begin(), v.end()));
      case DType::Bool:
      case DType::UInt8:
      case DType::Int8: {
        Tensor t;
        t.dtype = i.dtype;
        t.dims = dims;
        for (int64_t x : v) t.bytes.push_back(static_cast<uint8_t>(i.dtype == DType::Bool ? x != 0 : x));
        return t;
      }
      default: return std::nullopt;
    }
  }
  if (i.has_fvalue && static_cast<int64_t>(i.fvalue.size()) == n && dtype_is_float(i.dtype)) {
    try {
      return Tensor::from_float_as("", i.dtype, dims, std::vector<float>(i.fvalue.begin(), i.fvalue.end()));
    } catch (const Error&) {
      return std::nullopt;
    }
  }
  return std::nullopt;
}

// Operators the evaluator must not fold: their outputs are not functions of the inputs' values.
bool evaluable_op(const Node& n) {
  if (!n.subgraphs().empty() || n.inputs.empty()) return false;
  static const std::set<std::string> random = {"RandomNormal", "RandomUniform", "RandomNormalLike",
                                               "RandomUniformLike", "Multinomial", "Bernoulli"};
  return !random.count(n.op_type);
}

class Inferencer {
 public:
  Inferencer(const Model& m, ShapeInferenceResult& r, const ValueEvaluator& eval) : model_(m), res_(r), eval_(eval) {}

  // A node whose present inputs are all small known constants and whose rule left some output
  // without a known value is run on those constants; its outputs then become those constants.
  void evaluate(Ctx& c) {
    if (!eval_ || !evaluable_op(c.n)) return;
    c.out.resize(c.n.outputs.size());
    bool wanted = false;
    for (size_t k = 0; k < c.n.outputs.size(); ++k) {
      if (c.n.outputs[k].empty()) continue;
      const Info& o = c.out[k];
      if (o.all_known() && o.numel_known() > kMaxTracked) return;  // too big to be a shape computation
      if (!(o.all_known() && (o.value_known() || o.has_fvalue))) wanted = true;
    }
    if (!wanted) return;
    std::vector<Tensor> held;
    held.reserve(c.n.inputs.size());
    std::vector<const Tensor*> in(c.n.inputs.size(), nullptr);
    std::vector<size_t> slot(c.n.inputs.size(), SIZE_MAX);
    for (size_t i = 0; i < c.n.inputs.size(); ++i) {
      if (!c.present(i)) continue;
      if (!c.I(i)) return;
      std::optional<Tensor> t = tensor_of_info(*c.I(i));
      if (!t) return;
      t->name = c.n.inputs[i];
      slot[i] = held.size();
      held.push_back(std::move(*t));
    }
    for (size_t i = 0; i < in.size(); ++i) if (slot[i] != SIZE_MAX) in[i] = &held[slot[i]];
    std::vector<Tensor> outs(c.n.outputs.size());
    if (!eval_(c.n, c.opset, in, outs) || outs.size() != c.n.outputs.size()) return;
    for (size_t k = 0; k < outs.size(); ++k) {
      if (c.n.outputs[k].empty()) continue;
      if (outs[k].dtype == DType::String || static_cast<int64_t>(outs[k].bytes.size()) !=
                                                static_cast<int64_t>(dtype_storage_bytes(outs[k].dtype, outs[k].numel())))
        return;
    }
    for (size_t k = 0; k < outs.size(); ++k)
      if (!c.n.outputs[k].empty()) c.out[k] = info_of_tensor(outs[k]);
    c.why.clear();
    ++res_.evaluated;
  }

  // Infers `g` with outer-scope values visible through `parent`; writes value_info into `g`.
  // Returns the infos of g's outputs.
  std::vector<Info> run(Graph& g, const Scope* parent, const std::vector<Info>* formal_inputs = nullptr) {
    Scope scope;
    scope.parent = parent;
    for (size_t i = 0; i < g.inputs.size(); ++i) {
      const ValueInfo& v = g.inputs[i];
      Info info;
      if (formal_inputs && i < formal_inputs->size() && (*formal_inputs)[i].ranked) info = (*formal_inputs)[i];
      else {
        info.dtype = v.dtype;
        info.ranked = v.has_shape;
        for (const Dim& d : v.shape) info.shape.push_back(from_dim(d));
        if (formal_inputs && i < formal_inputs->size() && info.dtype == DType::Undefined) info.dtype = (*formal_inputs)[i].dtype;
      }
      scope.vals[v.name] = std::move(info);
    }
    for (const Tensor& t : g.initializers) scope.vals[t.name] = info_of_tensor(t);

    std::unordered_map<std::string, Info> produced;
    for (const Node& n : g.nodes) {
      Ctx c{n, model_.opset(n.is_default_domain() ? "" : n.domain), {}, {}, {}, *this, scope};
      for (const auto& in : n.inputs) c.in.push_back(in.empty() ? nullptr : scope.find(in));
      const std::string key = n.key();
      auto it = rules().find(key);
      if (it == rules().end()) {
        if (std::find(res_.unknown_ops.begin(), res_.unknown_ops.end(), key) == res_.unknown_ops.end()) res_.unknown_ops.push_back(key);
        c.why = "no shape rule for " + key;
      } else {
        it->second(c);
      }
      evaluate(c);
      c.out.resize(n.outputs.size());
      bool resolved = true;
      for (size_t k = 0; k < n.outputs.size(); ++k) {
        if (n.outputs[k].empty()) continue;
        Info& o = c.out[k];
        ++res_.values;
        if (o.dtype != DType::Undefined) ++res_.typed;
        if (o.ranked) ++res_.ranked;
        if (o.all_known()) ++res_.concrete;
        else resolved = false;
        if (o.value_known() && !o.value.empty() && (dtype_is_integer(o.dtype) || o.dtype == DType::Bool)) res_.folded[n.outputs[k]] = o.ints();
        if (!o.ranked) {
          // Keep what the file declared for values we cannot infer.
          if (const ValueInfo* vi = g.find_value_info(n.outputs[k]); vi && vi->has_shape) {
            o.ranked = true;
            for (const Dim& d : vi->shape) o.shape.push_back(from_dim(d));
            if (o.dtype == DType::Undefined) o.dtype = vi->dtype;
          }
        }
        scope.vals[n.outputs[k]] = o;
        produced[n.outputs[k]] = o;
      }
      if (!resolved) res_.unresolved.push_back({n.name, c.why.empty() ? "symbolic dims (give concrete input shapes)" : c.why});
    }
    write_back(g, produced);
    std::vector<Info> outs;
    for (const auto& v : g.outputs) {
      const Info* i = scope.find(v.name);
      outs.push_back(i ? *i : Info{});
    }
    return outs;
  }

 private:
  static ValueInfo to_value_info(const std::string& name, const Info& i) {
    ValueInfo v;
    v.name = name;
    v.dtype = i.dtype;
    v.has_shape = i.ranked;
    for (const Val& d : i.shape) v.shape.push_back(to_dim(d));
    return v;
  }
  // Per dim: a number beats a symbol beats unknown; the declared dim wins a tie.
  static void merge_into(ValueInfo& decl, const ValueInfo& inf) {
    if (inf.dtype != DType::Undefined) decl.dtype = inf.dtype;
    if (!inf.has_shape) return;
    if (!decl.has_shape || decl.shape.size() != inf.shape.size()) { decl.has_shape = true; decl.shape = inf.shape; return; }
    for (size_t i = 0; i < decl.shape.size(); ++i) {
      const Dim& a = decl.shape[i];
      const Dim& b = inf.shape[i];
      if (b.known() || (!a.known() && a.param.empty())) decl.shape[i] = b;
    }
  }
  void write_back(Graph& g, const std::unordered_map<std::string, Info>& produced) {
    std::unordered_map<std::string, size_t> vi_index;
    for (size_t i = 0; i < g.value_info.size(); ++i) vi_index[g.value_info[i].name] = i;
    std::set<std::string> outs;
    for (auto& v : g.outputs) {
      outs.insert(v.name);
      auto it = produced.find(v.name);
      if (it != produced.end()) merge_into(v, to_value_info(v.name, it->second));
    }
    for (const Node& n : g.nodes)
      for (const auto& name : n.outputs) {
        if (name.empty() || outs.count(name)) continue;
        const Info& i = produced.at(name);
        if (i.dtype == DType::Undefined && !i.ranked) continue;
        ValueInfo v = to_value_info(name, i);
        auto it = vi_index.find(name);
        if (it != vi_index.end()) g.value_info[it->second] = std::move(v);
        else { vi_index[name] = g.value_info.size(); g.value_info.push_back(std::move(v)); }
      }
  }

  const Model& model_;
  ShapeInferenceResult& res_;
  const ValueEvaluator& eval_;
};

// If: both branches are inferred; a dim both agree on is kept, a disagreement becomes unknown.
void if_op(Ctx& c) {
  std::vector<std::vector<Info>> branches;
  for (const char* name : {"then_branch", "else_branch"}) {
    const Attribute* a = c.n.attr(name);
    if (!a || !a->g) continue;
    branches.push_back(c.inf.run(*a->g, &c.scope));
  }
  if (branches.empty()) { c.why = "If without branches"; return; }
  // A constant condition picks its branch (silero picks by sample rate).
  if (branches.size() == 2 && c.I(0) && c.I(0)->value_known() && c.I(0)->value.size() == 1)
    branches = {branches[c.I(0)->value[0].v ? 0 : 1]};
  for (size_t k = 0; k < c.n.outputs.size(); ++k) {
    Info o = k < branches[0].size() ? branches[0][k] : Info{};
    for (size_t b = 1; b < branches.size(); ++b) {
      const Info& x = k < branches[b].size() ? branches[b][k] : Info{};
      if (o.dtype == DType::Undefined) o.dtype = x.dtype;
      if (!o.ranked || !x.ranked || o.shape.size() != x.shape.size()) { o.ranked = false; o.shape.clear(); }
      else for (size_t i = 0; i < o.shape.size(); ++i) if (!(o.shape[i] == x.shape[i])) o.shape[i] = Val{};
      if (!(o.has_value && x.has_value && o.value.size() == x.value.size() &&
            std::equal(o.value.begin(), o.value.end(), x.value.begin())))
        o.has_value = false;
      o.has_fvalue = false;
    }
    if (k >= c.out.size()) c.out.resize(k + 1);
    c.out[k] = o;
  }
}

// Loop: carried values keep their types (dims that change across iterations become unknown);
// scan outputs gain a leading iteration dim.
void loop_op(Ctx& c) {
  const Attribute* a = c.n.attr("body");
  if (!a || !a->g) { c.why = "Loop without body"; return; }
  size_t ncarried = c.n.inputs.size() > 2 ? c.n.inputs.size() - 2 : 0;
  std::vector<Info> formal(2 + ncarried);
  formal[0].dtype = DType::Int64; formal[0].ranked = true;
  formal[1].dtype = DType::Bool; formal[1].ranked = true;
  for (size_t i = 0; i < ncarried; ++i) if (c.I(2 + i)) { formal[2 + i] = *c.I(2 + i); formal[2 + i].has_value = false; }
  std::vector<Info> outs = c.inf.run(*a->g, &c.scope, &formal);
  Val trip = c.I(0) && c.I(0)->value_known() && c.I(0)->value.size() == 1 && !c.present(1) ? c.I(0)->value[0] : Val{};
  for (size_t k = 0; k < c.n.outputs.size(); ++k) {
    Info o = k + 1 < outs.size() ? outs[k + 1] : Info{};
    o.has_value = o.has_fvalue = false;
    if (k < ncarried) {
      const Info& init = formal[2 + k];
      if (o.ranked && init.ranked && o.shape.size() == init.shape.size())
        for (size_t i = 0; i < o.shape.size(); ++i) if (!(o.shape[i] == init.shape[i])) o.shape[i] = Val{};
    } else if (o.ranked) {
      o.shape.insert(o.shape.begin(), trip);
    }
    if (k >= c.out.size()) c.out.resize(k + 1);
    c.out[k] = o;
  }
}

// Recursive descent over  expr := term (('+'|'-') term)*,  term := unary (('*'|'/') unary)*,
// unary := '-' unary | primary,  primary := number | symbol | '(' expr ')' | 'ceil(' expr '/' expr ')'.
class DimEval {
 public:
  DimEval(const std::string& s, const std::map<std::string, int64_t>& env) : s_(s), env_(env) {}
  std::optional<int64_t> run() {
    auto v = expr();
    if (!v || pos_ != s_.size()) return std::nullopt;
    return v;
  }

 private:
  static bool ident_char(char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.' || c == ':'; }
  bool eat(char c) {
    if (pos_ < s_.size() && s_[pos_] == c) { ++pos_; return true; }
    return false;
  }
  std::optional<int64_t> expr() {
    auto v = term();
    while (v && pos_ < s_.size() && (s_[pos_] == '+' || s_[pos_] == '-')) {
      char op = s_[pos_++];
      auto r = term();
      if (!r) return std::nullopt;
      v = op == '+' ? *v + *r : *v - *r;
    }
    return v;
  }
  std::optional<int64_t> term() {
    auto v = unary();
    while (v && pos_ < s_.size() && (s_[pos_] == '*' || s_[pos_] == '/')) {
      char op = s_[pos_++];
      auto r = unary();
      if (!r || (op == '/' && *r == 0)) return std::nullopt;
      v = op == '*' ? *v * *r : floor_div(*v, *r);
    }
    return v;
  }
  std::optional<int64_t> unary() {
    if (eat('-')) { auto v = unary(); return v ? std::optional<int64_t>(-*v) : std::nullopt; }
    return primary();
  }
  std::optional<int64_t> primary() {
    if (s_.compare(pos_, 5, "ceil(") == 0) {
      pos_ += 5;
      auto a = term_until_div();
      if (!a || !eat('/')) return std::nullopt;
      auto b = expr();
      if (!b || *b == 0 || !eat(')')) return std::nullopt;
      return ceil_div(*a, *b);
    }
    if (eat('(')) {
      auto v = expr();
      if (!v || !eat(')')) return std::nullopt;
      return v;
    }
    size_t start = pos_;
    while (pos_ < s_.size() && ident_char(s_[pos_])) ++pos_;
    std::string tok = s_.substr(start, pos_ - start);
    if (tok.empty()) return std::nullopt;
    if (std::all_of(tok.begin(), tok.end(), [](char c) { return c >= '0' && c <= '9'; })) return std::stoll(tok);
    auto it = env_.find(tok);
    if (it == env_.end()) return std::nullopt;
    return it->second;
  }
  // The numerator of ceil(a/b) is one atom: a number, a symbol or a parenthesized expression.
  std::optional<int64_t> term_until_div() { return unary(); }

  const std::string& s_;
  const std::map<std::string, int64_t>& env_;
  size_t pos_ = 0;
};

}  // namespace

std::vector<std::string> shape_rule_ops() {
  std::vector<std::string> out;
  for (const auto& [k, v] : rules()) out.push_back(k);
  std::sort(out.begin(), out.end());
  return out;
}

std::optional<int64_t> evaluate_dim(const Dim& d, const std::map<std::string, int64_t>& symbols) {
  if (d.known()) return d.value;
  if (d.param.empty()) return std::nullopt;
  return DimEval(d.param, symbols).run();
}

ShapeInferenceResult infer_shapes(Model& m, const std::map<std::string, std::vector<int64_t>>& input_shapes,
                                  const ValueEvaluator& evaluate) {
  Graph& g = m.graph;
  for (const auto& [name, dims] : input_shapes) {
    ValueInfo* vi = nullptr;
    for (auto& v : g.inputs) if (v.name == name && !g.is_initializer(name)) vi = &v;
    if (!vi) throw InvalidArgument("input shape given for '" + name + "', which is not a model input");
    if (vi->has_shape && vi->shape.size() != dims.size())
      throw InvalidArgument("input '" + name + "' has rank " + std::to_string(vi->shape.size()) + ", but " +
                            std::to_string(dims.size()) + " dims were given");
    for (size_t i = 0; vi->has_shape && i < dims.size(); ++i)
      if (vi->shape[i].known() && vi->shape[i].value != dims[i])
        throw InvalidArgument("input '" + name + "' has fixed dim " + std::to_string(i) + " = " +
                              std::to_string(vi->shape[i].value) + ", but " + std::to_string(dims[i]) + " was given");
    for (int64_t d : dims)
      if (d < 0) throw InvalidArgument("input '" + name + "': dims must be >= 0");
    vi->has_shape = true;
    vi->shape = shape_of(dims);
  }
  ShapeInferenceResult r;
  Inferencer inf(m, r, evaluate);
  inf.run(g, nullptr);
  return r;
}

}  // namespace oc
