// Walking the nested graphs of a model (If branches, Loop/Scan bodies) and naming them.
//
// A nested graph is named by its path: "<node>.<attribute>" for each level from the main graph
// down, joined by "|" (the main graph is ""). Node names are unique across the whole model after
// normalize(), so a path names one graph. A value of a nested graph, as the executor reports it to
// watching hooks, is "<path>::<value>" (scoped_value): branches often reuse the same value names.
#pragma once
#include <string>
#include <vector>

#include "graph/ir.h"

namespace oc {

struct GraphScope {
  std::string path;           // "" for the root
  Graph* graph = nullptr;
  const GraphScope* parent = nullptr;  // index-stable: points into the vector all_graphs returns
  int parent_index = -1;
};

// The root and every nested graph below it, root first, then depth-first in node/attribute order.
std::vector<GraphScope> all_graphs(Graph& root);
std::vector<GraphScope> all_graphs(const Graph& root);  // same, for reading (graph stays const in use)

// The graph at `path` below `root`, nullptr when there is none.
Graph* graph_at(Graph& root, const std::string& path);
const Graph* graph_at(const Graph& root, const std::string& path);

// "<path>::<value>", or `value` itself for the root ("").
std::string scoped_value(const std::string& path, const std::string& value);

// Path of the graph that defines `value` (node output, graph input or initializer) as seen from the
// graph at `path`: that graph or the nearest enclosing one; "" when nothing defines it.
std::string defining_scope(const Graph& root, const std::string& path, const std::string& value);

// Moves each float initializer that only one nested graph reads (no node of its own graph reads it
// directly, it is no graph input or output there, and exactly one subgraph — at any depth under
// one node — refers to it from the outer scope) into the deepest graph that holds all its readers.
// The model computes the same; the weights of a branch then live with the branch's nodes, as the
// quantizer and the pruner need. Returns how many initializers moved.
int localize_subgraph_weights(Graph& root);

}  // namespace oc
