// The in-memory graph that every stage reads and rewrites.
//
// A Model owns one Graph; a Graph owns its nodes, initializers and value infos. Nodes refer to
// values by name (as ONNX does); producer/consumer lookups are indexed lazily and rebuilt after
// any mutation through the API below. Subgraphs of If/Loop/Scan are nested Graphs held by the
// node's attributes, so they load, rewrite and save like the main graph.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "graph/tensor.h"

namespace oc {

// One dimension of a shape: a known size, a symbolic name ("batch"), or unknown.
struct Dim {
  int64_t value = -1;  // >= 0 when known
  std::string param;   // symbolic name when value < 0
  bool known() const { return value >= 0; }
  static Dim of(int64_t v) { Dim d; d.value = v; return d; }
  static Dim sym(std::string s) { Dim d; d.param = std::move(s); return d; }
  bool operator==(const Dim& o) const { return value == o.value && (known() || param == o.param); }
};
using Shape = std::vector<Dim>;
std::string shape_str(const Shape& s);
bool shape_known(const Shape& s);
std::vector<int64_t> shape_values(const Shape& s);  // throws if any dim is unknown
Shape shape_of(const std::vector<int64_t>& dims);

struct ValueInfo {
  std::string name;
  DType dtype = DType::Undefined;
  bool has_shape = false;  // false = rank unknown
  Shape shape;
  std::string doc_string;
  std::string raw_type;  // serialized TypeProto for non-tensor types (sequences, maps, optionals)
};

struct Graph;

struct Attribute {
  enum class Kind { Float, Int, String, Tensor, Graph, Floats, Ints, Strings, Graphs, Other };
  std::string name;
  Kind kind = Kind::Int;
  float f = 0;
  int64_t i = 0;
  std::string s;
  oc::Tensor t;
  std::shared_ptr<oc::Graph> g;
  std::vector<float> floats;
  std::vector<int64_t> ints;
  std::vector<std::string> strings;
  std::vector<std::shared_ptr<oc::Graph>> graphs;
  std::string raw;  // serialized AttributeProto for kinds held as-is (sparse tensors, type protos, tensors lists)
  std::string ref_attr_name;  // for attributes inside functions

  // A copy owns copies of its graphs: rewriting a copied model's branch (quantize, prune) must not
  // reach the original's. Moves keep the graphs.
  Attribute() = default;
  Attribute(const Attribute& o);
  Attribute& operator=(const Attribute& o);
  Attribute(Attribute&&) noexcept = default;
  Attribute& operator=(Attribute&&) noexcept = default;
};

// "" and "ai.onnx" both name the default domain.
inline bool is_default_domain(const std::string& domain) { return domain.empty() || domain == "ai.onnx"; }
// How op tables (shape rules, kernels, cost) key an op: "Conv" in the default domain,
// "com.microsoft:MatMulNBits" elsewhere.
inline std::string op_key(const std::string& domain, const std::string& op_type) {
  return is_default_domain(domain) ? op_type : domain + ":" + op_type;
}

struct Node {
  std::string name;
  std::string op_type;
  std::string domain;  // "" and "ai.onnx" are the default domain
  std::vector<std::string> inputs;   // "" marks an omitted optional input
  std::vector<std::string> outputs;
  std::vector<Attribute> attributes;
  std::string doc_string;

  const Attribute* attr(const std::string& n) const;
  Attribute* attr(const std::string& n);
  bool has_attr(const std::string& n) const { return attr(n) != nullptr; }
  int64_t attr_int(const std::string& n, int64_t def) const;
  float attr_float(const std::string& n, float def) const;
  std::string attr_string(const std::string& n, const std::string& def) const;
  std::vector<int64_t> attr_ints(const std::string& n, std::vector<int64_t> def = {}) const;
  std::vector<float> attr_floats(const std::string& n, std::vector<float> def = {}) const;
  void set_attr_int(const std::string& n, int64_t v);
  void set_attr_float(const std::string& n, float v);
  void set_attr_string(const std::string& n, const std::string& v);
  void set_attr_ints(const std::string& n, std::vector<int64_t> v);
  void remove_attr(const std::string& n);
  bool is_default_domain() const { return oc::is_default_domain(domain); }
  std::string key() const { return op_key(domain, op_type); }  // see op_key
  // Nested graphs (If branches, Loop/Scan bodies).
  std::vector<std::shared_ptr<Graph>> subgraphs() const;
  // Input i, or "" when absent/omitted.
  const std::string& input(size_t i) const;
};

struct Graph {
  std::string name;
  std::string doc_string;
  std::vector<Node> nodes;
  std::vector<ValueInfo> inputs, outputs, value_info;
  std::vector<Tensor> initializers;
  std::vector<std::string> raw_sparse_initializers;  // preserved as serialized protos

  // ---- lookups (indexed lazily; valid until the next mutation) ----
  const Tensor* initializer(const std::string& name) const;
  Tensor* initializer(const std::string& name);
  bool is_initializer(const std::string& name) const { return initializer(name) != nullptr; }
  // Index of the node producing `value`, or -1 (graph input, initializer, or outer-scope value).
  int producer(const std::string& value) const;
  // Index of the first node named `node_name`, or -1 (a linear scan: names are not indexed).
  int node_index(const std::string& node_name) const;
  // Indices of nodes consuming `value` (each node once).
  const std::vector<int>& consumers(const std::string& value) const;
  bool is_graph_output(const std::string& value) const;
  bool is_graph_input(const std::string& value) const;
  const ValueInfo* find_value_info(const std::string& value) const;  // inputs, outputs, value_info
  ValueInfo* find_value_info(const std::string& value);
  // Inputs that are real runtime inputs (not shadowed by an initializer).
  std::vector<const ValueInfo*> runtime_inputs() const;
  // Follows `value` through Cast/Identity to an initializer and returns its values as float
  // (recognizes fp16 weights behind Cast). nullopt when it is not a constant.
  std::optional<Tensor> constant_value(const std::string& value) const;

  // ---- mutation ----
  void add_initializer(Tensor t);            // replaces one of the same name
  void remove_initializer(const std::string& name);
  Node& add_node(Node n);                    // appends
  Node& insert_node(size_t pos, Node n);
  void remove_node(size_t index);
  void remove_nodes(const std::vector<int>& indices);
  // Every use of `from` (node inputs, graph outputs) now reads `to`.
  void replace_all_uses(const std::string& from, const std::string& to);
  // A name not used by any value, node or initializer in this graph, derived from `base`.
  std::string unique_name(const std::string& base);
  // Call after editing `nodes`/`initializers` directly.
  void invalidate() const { index_valid_ = false; }
  // Drops initializers and nodes no graph output depends on (keeps subgraph references).
  void remove_unused();

 private:
  void build_index() const;
  mutable bool index_valid_ = false;
  mutable std::unordered_map<std::string, int> producer_;
  mutable std::unordered_map<std::string, std::vector<int>> consumers_;
  mutable std::unordered_map<std::string, size_t> init_index_;
  mutable std::unordered_map<std::string, int> used_names_;
  int name_counter_ = 0;
};

struct OpsetImport {
  std::string domain;
  int64_t version = 0;
};

struct Model {
  int64_t ir_version = 8;
  std::vector<OpsetImport> opset_imports;
  std::string producer_name, producer_version, domain, doc_string;
  int64_t model_version = 0;
  std::vector<std::pair<std::string, std::string>> metadata;
  std::vector<std::string> raw_functions;  // FunctionProtos preserved as serialized bytes
  std::vector<std::string> raw_training_info;
  Graph graph;

  int64_t opset(const std::string& domain = "") const;  // 0 if not imported
  void set_opset(const std::string& domain, int64_t version);
};

// Node order that respects data dependencies (stable: keeps the original order where possible).
// Throws if the graph has a cycle.
void toposort(Graph& g);
// Values read by `g` (or its subgraphs) that no node, input or initializer of `g` defines.
std::vector<std::string> outer_scope_inputs(const Graph& g);

// A copy of `m` whose large floating-point initializers (over kDatalessMinElems elements) keep name,
// dtype and dims but no bytes. Shape inference (it folds only small tensors), cost counting and
// slice_axis (a dataless tensor stays dataless) work on it at a fraction of a full copy's cost, so
// searches that rewrite a model many times to measure it (pruning targets) use it.
constexpr int64_t kDatalessMinElems = 4096;
Model copy_without_weight_data(const Model& m);
// True for a tensor with elements but no bytes (from copy_without_weight_data).
bool is_dataless(const Tensor& t);

}  // namespace oc
