#include "graph/subgraphs.h"

#include <functional>
#include <set>
#include <unordered_map>
#include <unordered_set>

namespace oc {

namespace {

void walk(Graph& g, const std::string& path, int parent, std::vector<GraphScope>& out) {
  const int self = static_cast<int>(out.size());
  out.push_back({path, &g, nullptr, parent});
  for (auto& n : g.nodes)
    for (auto& a : n.attributes) {
      auto sub = [&](const std::shared_ptr<Graph>& sg, const std::string& attr) {
        if (!sg) return;
        walk(*sg, (path.empty() ? "" : path + "|") + n.name + "." + attr, self, out);
      };
      if (a.kind == Attribute::Kind::Graph) sub(a.g, a.name);
      if (a.kind == Attribute::Kind::Graphs)
        for (size_t i = 0; i < a.graphs.size(); ++i) sub(a.graphs[i], a.name + "[" + std::to_string(i) + "]");
    }
}

bool defines(const Graph& g, const std::string& v) {
  if (g.producer(v) >= 0 || g.is_initializer(v)) return true;
  for (const auto& in : g.inputs)
    if (in.name == v) return true;
  return false;
}

}  // namespace

std::vector<GraphScope> all_graphs(Graph& root) {
  std::vector<GraphScope> out;
  walk(root, "", -1, out);
  for (auto& s : out) s.parent = s.parent_index >= 0 ? &out[static_cast<size_t>(s.parent_index)] : nullptr;
  return out;
}

std::vector<GraphScope> all_graphs(const Graph& root) { return all_graphs(const_cast<Graph&>(root)); }

Graph* graph_at(Graph& root, const std::string& path) {
  if (path.empty()) return &root;
  for (const auto& s : all_graphs(root))
    if (s.path == path) return s.graph;
  return nullptr;
}

const Graph* graph_at(const Graph& root, const std::string& path) { return graph_at(const_cast<Graph&>(root), path); }

std::string scoped_value(const std::string& path, const std::string& value) {
  return path.empty() ? value : path + "::" + value;
}

std::string defining_scope(const Graph& root, const std::string& path, const std::string& value) {
  const auto scopes = all_graphs(root);
  const GraphScope* s = nullptr;
  for (const auto& c : scopes)
    if (c.path == path) s = &c;
  for (; s; s = s->parent)
    if (defines(*s->graph, value)) return s->path;
  return "";
}

int localize_subgraph_weights(Graph& root) {
  int moved = 0;
  // Top-down: a weight moved into a branch may move again into a graph nested in that branch.
  std::function<void(Graph&)> visit = [&](Graph& g) {
    std::unordered_set<std::string> direct;  // read by g's own nodes or outputs
    for (const auto& n : g.nodes)
      for (const auto& in : n.inputs)
        if (!in.empty()) direct.insert(in);
    for (const auto& o : g.outputs) direct.insert(o.name);
    for (const auto& i : g.inputs) direct.insert(i.name);
    // Which subgraph (of all nodes of g) reads each outer-scope name.
    std::vector<Graph*> subs;
    std::unordered_map<std::string, std::vector<size_t>> readers;
    for (auto& n : g.nodes)
      for (auto& sg : n.subgraphs()) {
        const size_t k = subs.size();
        subs.push_back(sg.get());
        for (const auto& v : outer_scope_inputs(*sg)) readers[v].push_back(k);
      }
    if (!subs.empty()) {
      std::vector<Tensor> keep;
      for (auto& t : g.initializers) {
        auto r = readers.find(t.name);
        if (!dtype_is_float(t.dtype) || direct.count(t.name) || r == readers.end() || r->second.size() != 1) {
          keep.push_back(std::move(t));
          continue;
        }
        subs[r->second[0]]->initializers.push_back(std::move(t));
        subs[r->second[0]]->invalidate();
        ++moved;
      }
      g.initializers = std::move(keep);
      g.invalidate();
    }
    for (Graph* sg : subs) visit(*sg);
  };
  visit(root);
  return moved;
}

}  // namespace oc
