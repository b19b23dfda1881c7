// Channel dependency graph: which tensor slices must disappear together when one channel goes.
//
// Every channel of every activation that has a channel axis is an element; operators couple
// elements through a per-operator rule table (channel_deps.cpp): pass-through ops couple channel i
// of input and output, Concat couples input k's channel i with output channel i + offset_k, a
// Flatten folding channel c into [c*s, (c+1)*s) couples c with each of those s outputs, and so on.
// Connected elements (union-find) form one *unit*: the smallest set of channels removable at once.
// Values whose units are coupled form one *group*. Each rule also records the parameter slices
// (weights, biases, BN statistics, per-channel constants) indexed by a value's channels, and the
// attribute/constant fix-ups (Conv group, Split sizes, Pad pads, Reshape shapes...) it needs when
// channels go. This file knows no pruning policy: it says what is coupled and what is safe.
#pragma once
#include <map>
#include <set>
#include <string>
#include <vector>

#include "graph/ir.h"

namespace oc {

// A value with a channel axis. `neg_axis` counts from the end (-1 = last), so broadcasting
// constants line up; `rank` is -1 when unknown.
struct ChannelSpace {
  std::string value;
  int64_t channels = 0;
  int rank = -1;
  int neg_axis = -1;
  int group = -1;      // index into ChannelDeps::groups
  int first_elem = 0;  // element id of channel 0 (elements of one value are contiguous)
};

// One parameter tensor slice indexed by a value's channels: node input `input` (an initializer)
// of node `node`, along `axis`; channel c of `value` owns index c of that axis, or c mod `modulo`
// when modulo > 0 (a grouped Conv's input slot j serves channel g·modulo + j of every group g).
struct ParamSlice {
  enum class Role { Producer, Consumer, Norm, Other };
  int node = -1;
  int input = -1;
  int axis = 0;
  std::string value;
  Role role = Role::Other;
  int64_t modulo = 0;
  int64_t index(int64_t channel) const { return modulo > 0 ? channel % modulo : channel; }
};

// The indices of `p`'s axis that kept channels `kept` (sorted) keep.
std::vector<int64_t> kept_indices(const ParamSlice& p, const std::vector<int64_t>& kept);

struct ChannelGroup {
  int id = 0;
  std::vector<std::string> values;  // activations whose channels this group removes
  std::vector<ParamSlice> params;   // every parameter slice touched
  int num_units = 0;                // removable sets of coupled channels
  int locked_units = 0;             // units that must stay (reasons below)
  std::vector<std::string> reasons; // why units are locked (graph output, unknown op, ...)
  bool prunable() const { return num_units > locked_units; }
};

// Where one element of a shape constant lives: element `elem` of the initializer read by input
// `input` of node `node` (the Reshape itself, or the Cast feeding a Concat that builds its target).
struct ShapeElemRef {
  int node = -1;
  int input = -1;
  int64_t elem = 0;
};

struct ChannelDeps {
  std::map<std::string, ChannelSpace> spaces;  // by value name
  // Reshapes that carry a channel axis: the target element holding its size (rewritten on pruning).
  std::map<int, ShapeElemRef> reshape_channel_elem;
  // Grouped Conv/ConvTranspose nodes whose units are whole groups (the rewrite sets group = kept groups).
  std::set<int> whole_group_convs;
  // --heads with heads folded into the batch axis ([T,B,C] -> [T,B·H,Dh], nn.MultiheadAttention):
  // the split Reshape's integer constant that holds H (input `input` of node `node`, rewritten to
  // H'), and the merge Reshape's target piece that holds H·Dh at run time (input `input` of the
  // Concat `node`, replaced by the constant H'·Dh).
  std::map<int, ShapeElemRef> reshape_head_count;
  std::map<int, ShapeElemRef> reshape_head_width;
  std::vector<ChannelGroup> groups;
  // Per element (space.first_elem + channel): the unit index within its group, and whether locked.
  std::vector<int> elem_unit;
  std::vector<char> unit_locked_flat;  // indexed by group_unit_base[g] + unit
  std::vector<int> group_unit_base;
  // Values whose shapes channel removal changes (spaces) map channel -> unit via these helpers.
  int unit_of(const std::string& value, int64_t channel) const;
  bool unit_locked(int group, int unit) const { return unit_locked_flat[group_unit_base[group] + unit] != 0; }
};

struct ChannelDepsOptions {
  // Attention heads as units: a Reshape that splits the channel axis C into (..., H, Dh) couples
  // channel c with head (c / Dh) mod H, so Q/K/V outputs and the O-projection input lose whole heads
  // and the Reshape constants get the new head count. Off: such a Reshape stops propagation.
  bool heads = false;
  // Grouped (not depthwise) convs: Whole = a unit is one group (its input and output channels
  // together, the conv keeps fewer groups of the same width); Slots = a unit is slot j of every
  // group (the conv keeps its group count, every group gets narrower). ConvTranspose is always Whole.
  enum class ConvGroups { Whole, Slots };
  ConvGroups conv_groups = ConvGroups::Whole;
};

// Builds the dependency graph of the main graph of `m` (normalized: topological order, weights as
// initializers). Uses value_info shapes where present (run shape inference first for Reshape/Flatten
// strides on dynamic models); with `heads` it infers shapes itself on a copy (head reshapes need the
// dims between the split and the merge).
ChannelDeps build_channel_deps(const Model& m, const ChannelDepsOptions& opt = {});
// Operators (default domain) with a channel rule, sorted; every other op locks the channels it reads.
std::vector<std::string> channel_rule_ops();

// Keep-lists per value: value -> sorted kept channel indices (values absent keep everything).
using KeptChannels = std::map<std::string, std::vector<int64_t>>;
KeptChannels kept_channels(const ChannelDeps& deps, const std::vector<std::vector<char>>& remove_unit);

// Rewrites the attributes and shape constants of node `node` that encode channel counts or offsets
// (Conv group, Split sizes, Slice starts/ends, Pad pads, Reshape shape, ConstantOfShape shape) for
// the new channel counts. Parameter slicing is the caller's (prune/rewrite.cpp).
void fix_node_for_channels(Graph& g, int node, const ChannelDeps& deps, const KeptChannels& kept);

// Replaces initializer `name` as used by node `node` input `input` with `t`, giving the node its own
// copy when other nodes share the original.
void set_node_constant(Graph& g, int node, int input, Tensor t);

// Keeps only `keep` indices of `t` along `axis` (a dataless tensor, see copy_without_weight_data, stays so).
Tensor slice_axis(const Tensor& t, int axis, const std::vector<int64_t>& keep);

}  // namespace oc
