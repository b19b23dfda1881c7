// Block detection (see blocks.h).
#include "prune/blocks.h"

#include <algorithm>
#include <map>
#include <regex>
#include <set>

#include "graph/errors.h"

namespace oc {

namespace {

// Values computed from runtime inputs (constants folded into initializers are not).
std::set<std::string> dynamic_values(const Graph& g) {
  std::set<std::string> dyn;
  for (const ValueInfo* v : g.runtime_inputs()) dyn.insert(v->name);
  for (const Node& n : g.nodes) {
    bool d = false;
    for (const auto& i : n.inputs) d = d || (!i.empty() && dyn.count(i));
    if (d) for (const auto& o : n.outputs) dyn.insert(o);
  }
  return dyn;
}

// Same rank and no known dimension differs (an Add that broadcasts is no residual).
bool same_shape(const Graph& g, const std::string& x, const std::string& y) {
  const ValueInfo* a = g.find_value_info(x);
  const ValueInfo* b = g.find_value_info(y);
  if (!a || !b || !a->has_shape || !b->has_shape || a->shape.size() != b->shape.size() || a->shape.empty()) return false;
  for (size_t i = 0; i < a->shape.size(); ++i)
    if (a->shape[i].known() && b->shape[i].known() && a->shape[i].value != b->shape[i].value) return false;
  return true;
}

// Marks every node `value` depends on (its producer included).
void mark_ancestors(const Graph& g, const std::string& value, std::vector<char>& mark) {
  std::vector<int> stack;
  int p = g.producer(value);
  if (p >= 0 && !mark[p]) { mark[p] = 1; stack.push_back(p); }
  while (!stack.empty()) {
    int n = stack.back();
    stack.pop_back();
    for (const auto& i : g.nodes[n].inputs) {
      if (i.empty()) continue;
      int q = g.producer(i);
      if (q >= 0 && !mark[q]) { mark[q] = 1; stack.push_back(q); }
    }
  }
}

// Runtime inputs `value` depends on.
std::set<std::string> input_ancestors(const Graph& g, const std::vector<char>& anc, const std::string& value,
                                      const std::set<std::string>& runtime) {
  std::set<std::string> out;
  if (runtime.count(value)) out.insert(value);
  for (size_t n = 0; n < anc.size(); ++n)
    if (anc[n])
      for (const auto& i : g.nodes[n].inputs)
        if (runtime.count(i)) out.insert(i);
  return out;
}

int count(const std::vector<char>& v) { return static_cast<int>(std::count(v.begin(), v.end(), 1)); }

std::vector<Block> residual_blocks(const Graph& g) {
  const auto dyn = dynamic_values(g);
  std::set<std::string> runtime;
  for (const ValueInfo* v : g.runtime_inputs()) runtime.insert(v->name);
  const size_t N = g.nodes.size();
  std::vector<Block> out;
  for (size_t ai = 0; ai < N; ++ai) {
    const Node& add = g.nodes[ai];
    if (add.op_type != "Add" || !add.is_default_domain() || add.inputs.size() != 2 || add.outputs.size() != 1) continue;
    const std::string &a = add.inputs[0], &b = add.inputs[1], &y = add.outputs[0];
    if (!dyn.count(a) || !dyn.count(b) || a == b || !same_shape(g, a, y) || !same_shape(g, b, y)) continue;
    std::vector<char> anc_a(N, 0), anc_b(N, 0);
    mark_ancestors(g, a, anc_a);
    mark_ancestors(g, b, anc_b);
    // The fork: the latest node both sides depend on, else a runtime input both read.
    int fork_node = -1;
    for (size_t n = 0; n < N; ++n)
      if (anc_a[n] && anc_b[n]) fork_node = static_cast<int>(n);
    std::string fork;
    std::vector<char> anc_fork(N, 0);
    if (fork_node >= 0) {
      const Node& f = g.nodes[fork_node];
      fork = f.outputs.empty() ? "" : f.outputs[0];
      for (const auto& o : f.outputs) if (o == a || o == b) fork = o;
      mark_ancestors(g, fork, anc_fork);
    } else {
      auto ia = input_ancestors(g, anc_a, a, runtime), ib = input_ancestors(g, anc_b, b, runtime);
      for (const auto& v : ia) if (ib.count(v)) { fork = v; break; }
    }
    if (fork.empty()) continue;  // two independent inputs: not a residual
    std::vector<char> side_a(N, 0), side_b(N, 0);
    for (size_t n = 0; n < N; ++n) {
      side_a[n] = anc_a[n] && !anc_fork[n];
      side_b[n] = anc_b[n] && !anc_fork[n];
    }
    Block blk;
    blk.name = add.name;
    blk.output = y;
    if (fork == a) blk.input = a;
    else if (fork == b) blk.input = b;
    else blk.input = count(side_a) <= count(side_b) ? a : b;
    for (size_t n = 0; n < N; ++n)
      if (side_a[n] || side_b[n] || n == ai) blk.nodes.push_back(static_cast<int>(n));
    if (blk.nodes.size() < 2) continue;  // nothing between the fork and the Add
    out.push_back(std::move(blk));
  }
  return out;
}

std::vector<Block> user_blocks(const Graph& g, const std::string& pattern) {
  std::regex re;
  try { re = std::regex(pattern); } catch (const std::regex_error&) { throw InvalidArgument("bad --blocks regex '" + pattern + "'"); }
  const auto dyn = dynamic_values(g);
  std::vector<std::string> order;
  std::map<std::string, std::vector<int>> nodes;
  for (size_t n = 0; n < g.nodes.size(); ++n) {
    std::smatch m;
    if (!std::regex_search(g.nodes[n].name, m, re)) continue;
    std::string key = re.mark_count() > 0 && m[1].matched ? m[1].str() : m[0].str();
    if (!nodes.count(key)) order.push_back(key);
    nodes[key].push_back(static_cast<int>(n));
  }
  if (order.empty()) throw InvalidArgument("--blocks regex '" + pattern + "' matches no node name");
  std::vector<Block> out;
  for (const auto& key : order) {
    Block blk;
    blk.name = key;
    blk.nodes = nodes[key];
    std::set<int> inside(blk.nodes.begin(), blk.nodes.end());
    // Output: the last value produced inside and used outside (or a graph output).
    for (int n : blk.nodes)
      for (const auto& o : g.nodes[n].outputs) {
        bool used_outside = g.is_graph_output(o);
        for (int c : g.consumers(o)) used_outside = used_outside || !inside.count(c);
        if (used_outside && dyn.count(o)) blk.output = o;
      }
    if (blk.output.empty()) throw InvalidArgument("--blocks: block '" + key + "' has no output used outside it");
    // Input: the first value from outside with the output's shape.
    for (int n : blk.nodes) {
      for (const auto& i : g.nodes[n].inputs)
        if (!i.empty() && dyn.count(i) && !inside.count(g.producer(i)) && same_shape(g, i, blk.output)) {
          blk.input = i;
          break;
        }
      if (!blk.input.empty()) break;
    }
    if (blk.input.empty())
      throw InvalidArgument("--blocks: block '" + key + "' reads no value shaped like its output '" + blk.output +
                            "' (the angle needs equal shapes)");
    out.push_back(std::move(blk));
  }
  return out;
}

}  // namespace

std::vector<Block> find_blocks(const Model& m, const std::string& regex) {
  return regex.empty() ? residual_blocks(m.graph) : user_blocks(m.graph, regex);
}

std::vector<int> group_blocks(const ChannelDeps& d, const std::vector<Block>& blocks, size_t num_nodes) {
  std::vector<std::vector<int>> of_node(num_nodes);
  for (size_t b = 0; b < blocks.size(); ++b)
    for (int n : blocks[b].nodes) of_node[n].push_back(static_cast<int>(b));
  std::vector<int> out(d.groups.size(), -1);
  for (size_t gi = 0; gi < d.groups.size(); ++gi) {
    const auto& params = d.groups[gi].params;
    if (params.empty()) continue;
    std::vector<int> common = of_node[params[0].node];
    for (const auto& p : params) {
      std::vector<int> keep;
      for (int b : common)
        if (std::find(of_node[p.node].begin(), of_node[p.node].end(), b) != of_node[p.node].end()) keep.push_back(b);
      common = std::move(keep);
    }
    for (int b : common)
      if (out[gi] < 0 || blocks[b].nodes.size() < blocks[out[gi]].nodes.size()) out[gi] = b;
  }
  return out;
}

}  // namespace oc
