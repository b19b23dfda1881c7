#include "graph/opset_convert.h"

#include <set>

#include "graph/shape_inference.h"

namespace oc {
namespace {

// Moves integer-list attribute `attr` of node `n` to a new int64 initializer input at `slot`.
void ints_attr_to_input(Graph& g, Node& n, const std::string& attr, size_t slot) {
  const Attribute* a = n.attr(attr);
  if (n.inputs.size() < slot) n.inputs.resize(slot);
  if (!a) return;
  std::string name = g.unique_name(n.name + "_" + attr);
  g.add_initializer(Tensor::from_int64(name, {static_cast<int64_t>(a->ints.size())}, a->ints));
  if (n.inputs.size() <= slot) n.inputs.resize(slot + 1);
  n.inputs[slot] = name;
  n.remove_attr(attr);
}

void float_attr_to_input(Graph& g, Node& n, const std::string& attr, size_t slot) {
  const Attribute* a = n.attr(attr);
  if (!a) return;
  std::string name = g.unique_name(n.name + "_" + attr);
  g.add_initializer(Tensor::from_float(name, {}, {a->f}));
  if (n.inputs.size() <= slot) n.inputs.resize(slot + 1);
  n.inputs[slot] = name;
  n.remove_attr(attr);
}

int rank_of(const Graph& g, const std::string& v) {
  const ValueInfo* vi = g.find_value_info(v);
  if (vi && vi->has_shape) return static_cast<int>(vi->shape.size());
  if (const Tensor* t = g.initializer(v)) return static_cast<int>(t->dims.size());
  return -1;
}

// Opset 13 changed Softmax/LogSoftmax/Hardmax from "flatten to 2-D at `axis`, normalize each row"
// to "normalize along `axis`". The old meaning at opset >= 13 is
//   y = Reshape(op(Flatten(x, axis), axis = -1), Shape(x))
// so node `i` becomes those four nodes (same output name, any input rank).
void keep_flattening_meaning(Graph& g, size_t i) {
  Node& n = g.nodes[i];
  const std::string x = n.inputs[0], y = n.outputs[0], base = n.name.empty() ? n.op_type : n.name;
  Node flatten;
  flatten.name = g.unique_name(base + "_flatten");
  flatten.op_type = "Flatten";
  flatten.inputs = {x};
  flatten.outputs = {g.unique_name(base + "_rows")};
  flatten.set_attr_int("axis", n.attr_int("axis", 1));
  Node shape;
  shape.name = g.unique_name(base + "_shape");
  shape.op_type = "Shape";
  shape.inputs = {x};
  shape.outputs = {g.unique_name(base + "_input_shape")};
  Node reshape;
  reshape.name = g.unique_name(base + "_unflatten");
  reshape.op_type = "Reshape";
  n.set_attr_int("axis", -1);
  n.inputs[0] = flatten.outputs[0];
  n.outputs[0] = g.unique_name(base + "_normalized_rows");
  reshape.inputs = {n.outputs[0], shape.outputs[0]};
  reshape.outputs = {y};
  g.insert_node(i + 1, std::move(reshape));
  g.insert_node(i, std::move(shape));
  g.insert_node(i, std::move(flatten));
}

[[noreturn]] void refuse(const Node& n, int64_t from, int64_t to, const std::string& why) {
  throw UnsupportedError("cannot raise opset " + std::to_string(from) + " -> " + std::to_string(to) + ": node '" +
                         n.name + "' (" + n.op_type + ") " + why);
}

void convert_graph(Graph& g, int64_t from, int64_t to) {
  auto crosses = [&](int64_t v) { return from < v && to >= v; };
  static const std::set<std::string> reduce18 = {"ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1",
                                                 "ReduceL2", "ReduceLogSum", "ReduceLogSumExp", "ReduceSumSquare"};
  std::vector<size_t> flattening;  // Softmax-like nodes to rewrite once the loop is done
  for (size_t index = 0; index < g.nodes.size(); ++index) {
    Node& n = g.nodes[index];
    for (auto& sg : n.subgraphs()) convert_graph(*sg, from, to);
    if (!n.is_default_domain()) continue;
    const std::string& op = n.op_type;
    if ((op == "Upsample" && crosses(10)) || (op == "Scatter" && crosses(11)))
      refuse(n, from, to, "was removed from the standard; re-export the model at the newer opset");
    if (op == "Resize" && crosses(11)) refuse(n, from, to, "changed meaning at opset 11 (coordinate modes)");
    if (op == "GroupNormalization" && crosses(21)) refuse(n, from, to, "changed its scale/bias layout at opset 21");
    if (op == "Slice" && crosses(10)) {
      ints_attr_to_input(g, n, "starts", 1);
      ints_attr_to_input(g, n, "ends", 2);
      ints_attr_to_input(g, n, "axes", 3);
    }
    if (op == "TopK" && crosses(10)) {
      n.inputs.resize(2);
      std::string name = g.unique_name(n.name + "_k");
      g.add_initializer(Tensor::from_int64(name, {1}, {n.attr_int("k", 1)}));
      n.inputs[1] = name;
      n.remove_attr("k");
    }
    if (op == "Pad" && crosses(11)) {
      if (n.has_attr("paddings")) n.attr("paddings")->name = "pads";
      ints_attr_to_input(g, n, "pads", 1);
      if (n.has_attr("value")) float_attr_to_input(g, n, "value", 2);
    }
    if (op == "Clip" && crosses(11)) {
      n.inputs.resize(1);
      if (n.has_attr("min")) float_attr_to_input(g, n, "min", 1);
      if (n.has_attr("max")) float_attr_to_input(g, n, "max", 2);
    }
    if (op == "Dropout" && crosses(12)) {
      if (n.has_attr("ratio")) float_attr_to_input(g, n, "ratio", 1);
      n.remove_attr("is_test");
    }
    if ((op == "Squeeze" || op == "Unsqueeze" || op == "ReduceSum") && crosses(13)) ints_attr_to_input(g, n, "axes", 1);
    if (op == "Split" && crosses(13)) ints_attr_to_input(g, n, "split", 1);
    if (reduce18.count(op) && crosses(18)) ints_attr_to_input(g, n, "axes", 1);
    if ((op == "Softmax" || op == "LogSoftmax" || op == "Hardmax") && crosses(13)) {
      // Before 13 these flatten to 2-D at `axis` (default 1); from 13 they act along one axis.
      // The two agree when `axis` is the last dimension; elsewhere the flattening is spelled out.
      int64_t axis = n.attr_int("axis", 1);
      int rank = rank_of(g, n.input(0));
      if (axis == -1 || (rank > 0 && axis == rank - 1)) n.set_attr_int("axis", -1);
      else flattening.push_back(index);
    }
    if (op == "BatchNormalization" && crosses(9)) {
      if (n.attr_int("spatial", 1) != 1) refuse(n, from, to, "uses spatial=0");
      n.remove_attr("spatial");
      n.remove_attr("is_test");
      n.remove_attr("consumed_inputs");
    }
  }
  for (auto it = flattening.rbegin(); it != flattening.rend(); ++it) keep_flattening_meaning(g, *it);
  g.invalidate();
}

}  // namespace

void convert_opset(Model& m, int64_t target) {
  const int64_t from = m.opset();
  if (target == from) return;
  if (target < from)
    throw UnsupportedError("cannot lower opset " + std::to_string(from) + " to " + std::to_string(target));
  if (target > 22) throw UnsupportedError("opset " + std::to_string(target) + " is newer than this toolkit knows (max 22)");
  // Softmax's flatten-vs-axis change needs ranks: infer them (fills value_info only).
  if (from < 13 && target >= 13) infer_shapes(m);
  convert_graph(m.graph, from, target);
  m.set_opset("", target);
  // Each opset needs a minimum IR version (opset 21 -> IR 10, 19 -> 9, 15 -> 8, ...).
  int64_t ir = target >= 21 ? 10 : target >= 19 ? 9 : target >= 15 ? 8 : target >= 13 ? 7 : target >= 10 ? 5 : 4;
  if (m.ir_version < ir) m.ir_version = ir;
}

}  // namespace oc
