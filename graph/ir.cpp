#include "graph/ir.h"

#include <algorithm>
#include <functional>
#include <queue>
#include <set>
#include <unordered_set>

namespace oc {

// ---------------- shapes ----------------
std::string shape_str(const Shape& s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) {
    if (i) out += ",";
    out += s[i].known() ? std::to_string(s[i].value) : (s[i].param.empty() ? "?" : s[i].param);
  }
  return out + "]";
}
bool shape_known(const Shape& s) {
  return std::all_of(s.begin(), s.end(), [](const Dim& d) { return d.known(); });
}
std::vector<int64_t> shape_values(const Shape& s) {
  std::vector<int64_t> v;
  for (const Dim& d : s) {
    if (!d.known()) throw InvalidArgument("shape " + shape_str(s) + " has an unknown dimension");
    v.push_back(d.value);
  }
  return v;
}
Shape shape_of(const std::vector<int64_t>& dims) {
  Shape s;
  for (int64_t d : dims) s.push_back(Dim::of(d));
  return s;
}

// ---------------- node attributes ----------------
const Attribute* Node::attr(const std::string& n) const {
  for (const auto& a : attributes) if (a.name == n) return &a;
  return nullptr;
}
Attribute* Node::attr(const std::string& n) {
  for (auto& a : attributes) if (a.name == n) return &a;
  return nullptr;
}
int64_t Node::attr_int(const std::string& n, int64_t def) const {
  const Attribute* a = attr(n);
  return a ? a->i : def;
}
float Node::attr_float(const std::string& n, float def) const {
  const Attribute* a = attr(n);
  return a ? a->f : def;
}
std::string Node::attr_string(const std::string& n, const std::string& def) const {
  const Attribute* a = attr(n);
  return a ? a->s : def;
}
std::vector<int64_t> Node::attr_ints(const std::string& n, std::vector<int64_t> def) const {
  const Attribute* a = attr(n);
  return a ? a->ints : def;
}
std::vector<float> Node::attr_floats(const std::string& n, std::vector<float> def) const {
  const Attribute* a = attr(n);
  return a ? a->floats : def;
}
static Attribute& upsert(Node& node, const std::string& n, Attribute::Kind k) {
  Attribute* a = node.attr(n);
  if (!a) {
    node.attributes.emplace_back();
    a = &node.attributes.back();
    a->name = n;
  }
  a->kind = k;
  return *a;
}
void Node::set_attr_int(const std::string& n, int64_t v) { upsert(*this, n, Attribute::Kind::Int).i = v; }
void Node::set_attr_float(const std::string& n, float v) { upsert(*this, n, Attribute::Kind::Float).f = v; }
void Node::set_attr_string(const std::string& n, const std::string& v) { upsert(*this, n, Attribute::Kind::String).s = v; }
void Node::set_attr_ints(const std::string& n, std::vector<int64_t> v) {
  upsert(*this, n, Attribute::Kind::Ints).ints = std::move(v);
}
void Node::remove_attr(const std::string& n) {
  attributes.erase(std::remove_if(attributes.begin(), attributes.end(), [&](const Attribute& a) { return a.name == n; }),
                   attributes.end());
}
Attribute::Attribute(const Attribute& o)
    : name(o.name), kind(o.kind), f(o.f), i(o.i), s(o.s), t(o.t), floats(o.floats), ints(o.ints), strings(o.strings),
      raw(o.raw), ref_attr_name(o.ref_attr_name) {
  if (o.g) g = std::make_shared<Graph>(*o.g);
  graphs.reserve(o.graphs.size());
  for (const auto& sg : o.graphs) graphs.push_back(sg ? std::make_shared<Graph>(*sg) : nullptr);
}
Attribute& Attribute::operator=(const Attribute& o) {
  if (this != &o) *this = Attribute(o);
  return *this;
}
std::vector<std::shared_ptr<Graph>> Node::subgraphs() const {
  std::vector<std::shared_ptr<Graph>> out;
  for (const auto& a : attributes) {
    if (a.kind == Attribute::Kind::Graph && a.g) out.push_back(a.g);
    if (a.kind == Attribute::Kind::Graphs)
      for (const auto& g : a.graphs) if (g) out.push_back(g);
  }
  return out;
}
const std::string& Node::input(size_t i) const {
  static const std::string empty;
  return i < inputs.size() ? inputs[i] : empty;
}

// ---------------- graph index ----------------
void Graph::build_index() const {
  if (index_valid_) return;
  producer_.clear();
  consumers_.clear();
  init_index_.clear();
  for (size_t i = 0; i < initializers.size(); ++i) init_index_[initializers[i].name] = i;
  for (size_t n = 0; n < nodes.size(); ++n) {
    for (const auto& o : nodes[n].outputs)
      if (!o.empty()) producer_[o] = static_cast<int>(n);
    std::unordered_set<std::string> seen;
    for (const auto& in : nodes[n].inputs)
      if (!in.empty() && seen.insert(in).second) consumers_[in].push_back(static_cast<int>(n));
    // Values a subgraph reads from the outer scope are consumed by the node holding it.
    for (const auto& sg : nodes[n].subgraphs())
      for (const auto& v : outer_scope_inputs(*sg))
        if (seen.insert(v).second) consumers_[v].push_back(static_cast<int>(n));
  }
  index_valid_ = true;
}

const Tensor* Graph::initializer(const std::string& name) const {
  build_index();
  auto it = init_index_.find(name);
  return it == init_index_.end() ? nullptr : &initializers[it->second];
}
Tensor* Graph::initializer(const std::string& name) {
  build_index();
  auto it = init_index_.find(name);
  return it == init_index_.end() ? nullptr : &initializers[it->second];
}
int Graph::node_index(const std::string& node_name) const {
  for (size_t i = 0; i < nodes.size(); ++i)
    if (nodes[i].name == node_name) return static_cast<int>(i);
  return -1;
}
int Graph::producer(const std::string& value) const {
  build_index();
  auto it = producer_.find(value);
  return it == producer_.end() ? -1 : it->second;
}
const std::vector<int>& Graph::consumers(const std::string& value) const {
  static const std::vector<int> none;
  build_index();
  auto it = consumers_.find(value);
  return it == consumers_.end() ? none : it->second;
}
bool Graph::is_graph_output(const std::string& value) const {
  return std::any_of(outputs.begin(), outputs.end(), [&](const ValueInfo& v) { return v.name == value; });
}
bool Graph::is_graph_input(const std::string& value) const {
  return std::any_of(inputs.begin(), inputs.end(), [&](const ValueInfo& v) { return v.name == value; });
}
const ValueInfo* Graph::find_value_info(const std::string& value) const {
  for (const auto* list : {&inputs, &outputs, &value_info})
    for (const auto& v : *list) if (v.name == value) return &v;
  return nullptr;
}
ValueInfo* Graph::find_value_info(const std::string& value) {
  return const_cast<ValueInfo*>(static_cast<const Graph*>(this)->find_value_info(value));
}
std::vector<const ValueInfo*> Graph::runtime_inputs() const {
  std::vector<const ValueInfo*> out;
  for (const auto& v : inputs) if (!is_initializer(v.name)) out.push_back(&v);
  return out;
}
std::optional<Tensor> Graph::constant_value(const std::string& value) const {
  std::string v = value;
  for (int hops = 0; hops < 8; ++hops) {
    if (const Tensor* t = initializer(v)) {
      Tensor out = *t;
      out.name = value;
      return out;
    }
    int p = producer(v);
    if (p < 0) return std::nullopt;
    const Node& n = nodes[static_cast<size_t>(p)];
    if (n.op_type == "Identity" && n.is_default_domain()) {
      v = n.input(0);
    } else if (n.op_type == "Cast" && n.is_default_domain()) {
      std::optional<Tensor> src = constant_value(n.input(0));
      if (!src) return std::nullopt;
      DType to = static_cast<DType>(n.attr_int("to", 1));
      if (!dtype_is_float(to)) return std::nullopt;
      return Tensor::from_float_as(value, to, src->dims, src->to_float());
    } else if (n.op_type == "Constant" && n.is_default_domain()) {
      const Attribute* a = n.attr("value");
      if (!a || a->kind != Attribute::Kind::Tensor) return std::nullopt;
      Tensor out = a->t;
      out.name = value;
      return out;
    } else {
      return std::nullopt;
    }
  }
  return std::nullopt;
}

// ---------------- mutation ----------------
void Graph::add_initializer(Tensor t) {
  if (Tensor* old = initializer(t.name)) {
    *old = std::move(t);
    return;
  }
  initializers.push_back(std::move(t));
  index_valid_ = false;
}
void Graph::remove_initializer(const std::string& name) {
  initializers.erase(std::remove_if(initializers.begin(), initializers.end(),
                                    [&](const Tensor& t) { return t.name == name; }),
                     initializers.end());
  inputs.erase(std::remove_if(inputs.begin(), inputs.end(), [&](const ValueInfo& v) { return v.name == name; }),
               inputs.end());
  index_valid_ = false;
}
Node& Graph::add_node(Node n) {
  nodes.push_back(std::move(n));
  index_valid_ = false;
  return nodes.back();
}
Node& Graph::insert_node(size_t pos, Node n) {
  index_valid_ = false;
  return *nodes.insert(nodes.begin() + static_cast<std::ptrdiff_t>(std::min(pos, nodes.size())), std::move(n));
}
void Graph::remove_node(size_t index) {
  nodes.erase(nodes.begin() + static_cast<std::ptrdiff_t>(index));
  index_valid_ = false;
}
void Graph::remove_nodes(const std::vector<int>& indices) {
  std::vector<char> drop(nodes.size(), 0);
  for (int i : indices) drop[static_cast<size_t>(i)] = 1;
  std::vector<Node> kept;
  kept.reserve(nodes.size());
  for (size_t i = 0; i < nodes.size(); ++i)
    if (!drop[i]) kept.push_back(std::move(nodes[i]));
  nodes = std::move(kept);
  index_valid_ = false;
}
static void rename_uses(Graph& g, const std::string& from, const std::string& to) {
  for (auto& n : g.nodes) {
    for (auto& in : n.inputs) if (in == from) in = to;
    for (auto& sg : n.subgraphs()) {
      // Only rename inside a subgraph when the name is not shadowed there.
      bool shadowed = sg->is_initializer(from) || sg->is_graph_input(from) || sg->producer(from) >= 0;
      if (!shadowed) rename_uses(*sg, from, to);
    }
  }
  g.invalidate();
}
void Graph::replace_all_uses(const std::string& from, const std::string& to) {
  rename_uses(*this, from, to);
  for (auto& o : outputs) if (o.name == from) o.name = to;
  index_valid_ = false;
}
std::string Graph::unique_name(const std::string& base) {
  if (used_names_.empty() || !index_valid_) {
    used_names_.clear();
    for (const auto& n : nodes) {
      used_names_[n.name] = 1;
      for (const auto& o : n.outputs) used_names_[o] = 1;
      for (const auto& i : n.inputs) used_names_[i] = 1;
    }
    for (const auto& t : initializers) used_names_[t.name] = 1;
    for (const auto* list : {&inputs, &outputs, &value_info})
      for (const auto& v : *list) used_names_[v.name] = 1;
  }
  std::string cand = base;
  while (used_names_.count(cand)) cand = base + "_" + std::to_string(++name_counter_);
  used_names_[cand] = 1;
  return cand;
}
void Graph::remove_unused() {
  std::unordered_set<std::string> live;
  for (const auto& o : outputs) live.insert(o.name);
  std::vector<char> keep(nodes.size(), 0);
  for (size_t k = nodes.size(); k-- > 0;) {
    const Node& n = nodes[k];
    bool needed = std::any_of(n.outputs.begin(), n.outputs.end(), [&](const std::string& o) { return live.count(o) > 0; });
    if (!needed) continue;
    keep[k] = 1;
    for (const auto& in : n.inputs) live.insert(in);
    for (const auto& sg : n.subgraphs())
      for (const auto& v : outer_scope_inputs(*sg)) live.insert(v);
  }
  std::vector<int> drop;
  for (size_t k = 0; k < nodes.size(); ++k) if (!keep[k]) drop.push_back(static_cast<int>(k));
  remove_nodes(drop);
  initializers.erase(std::remove_if(initializers.begin(), initializers.end(),
                                    [&](const Tensor& t) { return !live.count(t.name); }),
                     initializers.end());
  value_info.erase(std::remove_if(value_info.begin(), value_info.end(),
                                  [&](const ValueInfo& v) { return !live.count(v.name); }),
                   value_info.end());
  index_valid_ = false;
}

// ---------------- model ----------------
int64_t Model::opset(const std::string& d) const {
  for (const auto& o : opset_imports)
    if (o.domain == d || (d.empty() && o.domain == "ai.onnx") || (d == "ai.onnx" && o.domain.empty())) return o.version;
  return 0;
}
void Model::set_opset(const std::string& d, int64_t version) {
  for (auto& o : opset_imports)
    if (o.domain == d || (d.empty() && o.domain == "ai.onnx")) { o.version = version; return; }
  opset_imports.push_back({d, version});
}

// ---------------- algorithms ----------------
std::vector<std::string> outer_scope_inputs(const Graph& g) {
  std::unordered_set<std::string> defined;
  for (const auto& v : g.inputs) defined.insert(v.name);
  for (const auto& t : g.initializers) defined.insert(t.name);
  for (const auto& n : g.nodes) for (const auto& o : n.outputs) defined.insert(o);
  std::vector<std::string> out;
  std::unordered_set<std::string> seen;
  auto need = [&](const std::string& v) {
    if (!v.empty() && !defined.count(v) && seen.insert(v).second) out.push_back(v);
  };
  for (const auto& n : g.nodes) {
    for (const auto& in : n.inputs) need(in);
    for (const auto& sg : n.subgraphs())
      for (const auto& v : outer_scope_inputs(*sg)) need(v);
  }
  for (const auto& o : g.outputs) need(o.name);
  return out;
}

void toposort(Graph& g) {
  const size_t n = g.nodes.size();
  std::unordered_map<std::string, int> producer;
  for (size_t i = 0; i < n; ++i)
    for (const auto& o : g.nodes[i].outputs) if (!o.empty()) producer[o] = static_cast<int>(i);
  std::vector<std::vector<int>> users(n);
  std::vector<int> pending(n, 0);
  for (size_t i = 0; i < n; ++i) {
    std::set<int> deps;
    for (const auto& in : g.nodes[i].inputs) {
      auto it = producer.find(in);
      if (it != producer.end()) deps.insert(it->second);
    }
    for (const auto& sg : g.nodes[i].subgraphs())
      for (const auto& v : outer_scope_inputs(*sg)) {
        auto it = producer.find(v);
        if (it != producer.end()) deps.insert(it->second);
      }
    deps.erase(static_cast<int>(i));
    for (int d : deps) users[static_cast<size_t>(d)].push_back(static_cast<int>(i));
    pending[i] = static_cast<int>(deps.size());
  }
  // Min-heap on original index keeps the original order wherever it is already valid.
  std::priority_queue<int, std::vector<int>, std::greater<int>> ready;
  for (size_t i = 0; i < n; ++i) if (pending[i] == 0) ready.push(static_cast<int>(i));
  std::vector<int> order;
  order.reserve(n);
  while (!ready.empty()) {
    int i = ready.top();
    ready.pop();
    order.push_back(i);
    for (int u : users[static_cast<size_t>(i)])
      if (--pending[static_cast<size_t>(u)] == 0) ready.push(u);
  }
  if (order.size() != n) throw LoadError("graph '" + g.name + "' has a cycle: its nodes cannot be ordered");
  std::vector<Node> sorted;
  sorted.reserve(n);
  for (int i : order) sorted.push_back(std::move(g.nodes[static_cast<size_t>(i)]));
  g.nodes = std::move(sorted);
  g.invalidate();
  for (auto& node : g.nodes)
    for (auto& sg : node.subgraphs()) toposort(*sg);
}

Model copy_without_weight_data(const Model& m) {
  // Field by field, so the large tensors' bytes are never copied (keep in step with Model and Graph).
  Model c;
  c.ir_version = m.ir_version;
  c.opset_imports = m.opset_imports;
  c.producer_name = m.producer_name;
  c.producer_version = m.producer_version;
  c.domain = m.domain;
  c.doc_string = m.doc_string;
  c.model_version = m.model_version;
  c.metadata = m.metadata;
  c.raw_functions = m.raw_functions;
  c.raw_training_info = m.raw_training_info;
  const Graph& g = m.graph;
  Graph& h = c.graph;
  h.name = g.name;
  h.doc_string = g.doc_string;
  h.nodes = g.nodes;
  h.inputs = g.inputs;
  h.outputs = g.outputs;
  h.value_info = g.value_info;
  h.raw_sparse_initializers = g.raw_sparse_initializers;
  h.initializers.reserve(g.initializers.size());
  for (const Tensor& t : g.initializers) {
    if (!dtype_is_float(t.dtype) || t.numel() <= kDatalessMinElems) {
      h.initializers.push_back(t);
      continue;
    }
    Tensor d;
    d.name = t.name;
    d.dtype = t.dtype;
    d.dims = t.dims;
    h.initializers.push_back(std::move(d));
  }
  h.invalidate();
  return c;
}

bool is_dataless(const Tensor& t) { return t.bytes.empty() && t.strings.empty() && t.numel() > 0; }

}  // namespace oc
