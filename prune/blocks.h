// Blocks of a network for coarse (per-block) pruning decisions: the stretches of the residual
// stream between consecutive residual Adds.
//
//   residual Add   y = a + b, a and b both computed from runtime inputs, same shape as y
//   fork           the latest value both a and b depend on (a itself when b = f(a))
//   block          the nodes strictly after the fork that a or b depend on, plus the Add
//   angle input    the skip side (a when b = f(a); else the side with fewer nodes since the fork,
//                  e.g. a strided 1x1 downsample), so x_in and x_out = y have the same shape
// A transformer layer gives two blocks (attention, FFN); a ResNet basic/bottleneck unit gives one.
// Nested residuals: a group belongs to the smallest block holding all its member nodes.
//
// With a user regex (--blocks REGEX) the blocks are instead the sets of nodes whose names share
// the same match of REGEX (the first capture group when the regex has one): `blocks\.[0-9]+` makes
// one block per transformer layer. Its output is the last value it produces that something outside
// uses; its input is the value from outside with the output's shape that it reads first.
#pragma once
#include <string>
#include <vector>

#include "graph/channel_deps.h"
#include "graph/ir.h"

namespace oc {

struct Block {
  std::string name;    // the residual Add's node name, or the regex match
  std::string input;   // x_in of the angle
  std::string output;  // x_out of the angle
  std::vector<int> nodes;  // node indices of the block, ascending
};

// Blocks of the main graph of `m` (normalized; shapes from value_info, so run shape inference on a
// copy first for models without it). Throws InvalidArgument for a bad regex or a user block whose
// input and output shapes cannot match.
std::vector<Block> find_blocks(const Model& m, const std::string& regex = "");

// Per group of `d`: index of the smallest block containing every node the group slices, or -1.
std::vector<int> group_blocks(const ChannelDeps& d, const std::vector<Block>& blocks, size_t num_nodes);

}  // namespace oc
