// Merging duplicate constants and rebuilding two-valued ones (see compact_constants.h):
//   two values a ≠ b, m = (x == a):  x = Where(m, a, b)
//   triangle test for m over the last two axes [R, C]: upper  m[i, j] = (j − i ≥ k)
//                                                     lower  m[i, j] = (j − i ≤ k),   k ∈ [−R, C]
#include "graph/compact_constants.h"

#include <cstring>
#include <map>
#include <optional>
#include <tuple>
#include <set>
#include <sstream>

#include "graph/subgraphs.h"

namespace oc {

std::string CompactResult::summary() const {
  if (!merged && !computed && !as_bool) return "";
  std::ostringstream o;
  o << "constants: " << merged << " duplicates merged, " << computed << " two-valued tensors computed (Trilu), " << as_bool
    << " stored as bool masks, " << bytes_saved << " bytes saved";
  return o.str();
}

namespace {

constexpr size_t kMinBytes = 1024;
constexpr int64_t kMinElems = 1024;

// Names a weight layer or a Gather table reads (the quantizer's, never touched here), plus every
// name a nested graph refers to (their readers are outside the main graph's index).
std::set<std::string> protected_names(const Graph& g) {
  std::set<std::string> keep;
  for (const auto& n : g.nodes) {
    const std::string& op = n.op_type;
    if ((op == "Conv" || op == "ConvTranspose" || op == "MatMul" || op == "Gemm") && n.inputs.size() > 1) keep.insert(n.input(1));
    if (op == "Gather" && !n.inputs.empty()) keep.insert(n.input(0));
  }
  const auto scopes = all_graphs(g);
  for (size_t s = 1; s < scopes.size(); ++s)
    for (const auto& n : scopes[s].graph->nodes)
      for (const auto& in : n.inputs) keep.insert(in);
  return keep;
}

bool eligible(const Graph& g, const Tensor& t, const std::set<std::string>& keep) {
  return !keep.count(t.name) && !g.is_graph_input(t.name) && !g.is_graph_output(t.name);
}

// k such that m (row-major [lead, R, C]) is the upper (j − i ≥ k) or lower (j − i ≤ k) triangle
// in every leading slice; nothing when it is neither.
std::optional<std::pair<bool, int64_t>> triangle_of(const std::vector<uint8_t>& m, int64_t lead, int64_t R, int64_t C) {
  for (bool upper : {true, false})
    for (int64_t k = -R; k <= C; ++k) {
      bool ok = true;
      for (int64_t s = 0; s < lead && ok; ++s)
        for (int64_t i = 0; i < R && ok; ++i)
          for (int64_t j = 0; j < C; ++j) {
            const bool want = upper ? j - i >= k : j - i <= k;
            if (static_cast<bool>(m[(s * R + i) * C + j]) != want) {
              ok = false;
              break;
            }
          }
      if (ok) return std::make_pair(upper, k);
    }
  return std::nullopt;
}

Node make_node(Graph& g, const std::string& op, const std::string& base, std::vector<std::string> in, std::string out) {
  Node n;
  n.op_type = op;
  n.name = g.unique_name(base + "/" + op);
  n.inputs = std::move(in);
  n.outputs = {std::move(out)};
  return n;
}

// Rebuilds the two-valued float tensor `name` as Where(mask, a, b); true when done.
bool rebuild_two_valued(Model& m, const std::string& name, CompactResult& r) {
  Graph& g = m.graph;
  const Tensor t = *g.initializer(name);
  const std::vector<float> v = t.to_float();
  const float a = v[0];
  float b = a;
  for (float x : v) {
    if (std::memcmp(&x, &a, 4) == 0) continue;
    if (b == a) b = x;
    else if (std::memcmp(&x, &b, 4) != 0) return false;  // a third value
  }
  if (std::memcmp(&a, &b, 4) == 0) return false;  // one value: not worth a Where here
  std::vector<uint8_t> mask(v.size());
  for (size_t i = 0; i < v.size(); ++i) mask[i] = std::memcmp(&v[i], &a, 4) == 0;

  std::vector<Node> added;
  const std::string an = g.unique_name(name + "_a"), bn = g.unique_name(name + "_b"), mn = g.unique_name(name + "_mask");
  std::optional<std::pair<bool, int64_t>> tri;
  const int64_t rank = static_cast<int64_t>(t.dims.size());
  if (rank >= 2 && m.opset() >= 14) {
    const int64_t R = t.dims[rank - 2], C = t.dims[rank - 1];
    tri = triangle_of(mask, t.numel() / std::max<int64_t>(1, R * C), R, C);
  }
  if (tri) {
    const std::string one = g.unique_name(name + "_one"), shape = g.unique_name(name + "_shape"), k = g.unique_name(name + "_k");
    g.add_initializer(Tensor::from_float(one, {}, {1.f}));
    g.add_initializer(Tensor::from_int64(shape, {rank}, t.dims));
    g.add_initializer(Tensor::from_int64(k, {}, {tri->second}));
    const std::string ones = g.unique_name(name + "_ones"), band = g.unique_name(name + "_band");
    added.push_back(make_node(g, "Expand", name, {one, shape}, ones));
    added.push_back(make_node(g, "Trilu", name, {ones, k}, band));
    added.back().set_attr_int("upper", tri->first ? 1 : 0);
    added.push_back(make_node(g, "Cast", name, {band}, mn));
    added.back().set_attr_int("to", static_cast<int64_t>(DType::Bool));
    r.computed++;
    r.bytes_saved += static_cast<int64_t>(t.nbytes());
  } else {
    Tensor mt;
    mt.name = mn;
    mt.dtype = DType::Bool;
    mt.dims = t.dims;
    mt.bytes = mask;
    g.add_initializer(std::move(mt));
    r.as_bool++;
    r.bytes_saved += static_cast<int64_t>(t.nbytes()) - static_cast<int64_t>(mask.size());
  }
  g.add_initializer(Tensor::from_float(an, {}, {a}));
  g.add_initializer(Tensor::from_float(bn, {}, {b}));
  added.push_back(make_node(g, "Where", name, {mn, an, bn}, name));
  g.remove_initializer(name);
  // Constant inputs only: in front of every node keeps the order topological.
  g.nodes.insert(g.nodes.begin(), added.begin(), added.end());
  g.invalidate();
  return true;
}

}  // namespace

CompactResult compact_constants(Model& m) {
  Graph& g = m.graph;
  CompactResult r;
  const std::set<std::string> keep = protected_names(g);
  // 1. Duplicates: keyed by type, dims and bytes; the first of each kind stays.
  std::map<std::tuple<int, std::vector<int64_t>, size_t>, std::vector<std::string>> same_shape;
  for (const Tensor& t : g.initializers)
    if (t.nbytes() >= kMinBytes && eligible(g, t, keep))
      same_shape[{static_cast<int>(t.dtype), t.dims, t.nbytes()}].push_back(t.name);
  for (const auto& [key, names] : same_shape) {
    std::vector<std::string> firsts;
    for (const auto& n : names) {
      const Tensor* t = g.initializer(n);
      std::string into;
      for (const auto& f : firsts)
        if (g.initializer(f)->bytes == t->bytes) into = f;
      if (into.empty()) {
        firsts.push_back(n);
        continue;
      }
      r.bytes_saved += static_cast<int64_t>(t->nbytes());
      g.replace_all_uses(n, into);
      g.remove_initializer(n);
      r.merged++;
    }
  }
  g.invalidate();
  // 2. Two-valued float tensors.
  std::vector<std::string> candidates;
  for (const Tensor& t : g.initializers)
    if (t.dtype == DType::Float && t.numel() >= kMinElems && eligible(g, t, keep)) candidates.push_back(t.name);
  for (const auto& n : candidates) rebuild_two_valued(m, n, r);
  return r;
}

}  // namespace oc
