// Shared pruning checks: a pruned model must equal the original with the removed channels zeroed
// where they are consumed (masking), keep its interface, and run in ONNX Runtime.
#pragma once
#include <map>
#include <string>
#include <vector>

#include "graph/channel_deps.h"
#include "support.h"

namespace oc::test {

Model load_norm(const fs::path& p);
// Removes a random fraction `p` of each group's units (never emptying a value).
std::vector<std::vector<char>> random_plan(const ChannelDeps& d, uint64_t seed, double p);
// The reference: the original model with the removed channels zeroed where they are consumed.
Model masked(const Model& m, const ChannelDeps& d, const std::vector<std::vector<char>>& plan);
int64_t removed_units(const std::vector<std::vector<char>>& plan);
void check_interface(const Model& a, const Model& b);
// A synthetic text line (dark glyph-like bars on white, PP-OCR's [-1, 1] normalization): random
// noise leaves OCR models' outputs saturated at 0, where nothing would be compared.
std::map<std::string, Tensor> text_image(int64_t h, int64_t w);
// Prunes a random selection and compares with masking in ONNX Runtime.
void prune_equals_mask(const Model& m, const std::string& tag, uint64_t seed, std::map<std::string, Tensor> inputs = {},
                       double p = 0.35, const ChannelDepsOptions& opt = {});
// The same for a given plan over `d` (built from `m`).
void prune_equals_mask(const Model& m, const ChannelDeps& d, const std::vector<std::vector<char>>& plan,
                       const std::string& tag, const std::map<std::string, Tensor>& inputs);

}  // namespace oc::test
