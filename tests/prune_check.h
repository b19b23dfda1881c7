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
// The same on one graph (a body, with `d` built on it as a graph of its own: prune/bodies.h).
void mask_graph(Graph& g, const ChannelDeps& d, const std::vector<std::vector<char>>& plan);
int64_t removed_units(const std::vector<std::vector<char>>& plan);
void check_interface(const Model& a, const Model& b);
// A synthetic text line (dark glyph-like bars on white, PP-OCR's [-1, 1] normalization): random
// noise leaves OCR models' outputs saturated at 0, where nothing would be compared.
std::map<std::string, Tensor> text_image(int64_t h, int64_t w);
// Gives graph input `name` the concrete `dims` (a smaller image than the export's) and drops the
// inferred shapes of the old size; shape inference then reads the new one.
void set_input_dims(Model& m, const std::string& name, const std::vector<int64_t>& dims);
// Rescales every Conv's output channels to zero mean and unit variance over `inputs` (N·H·W
// samples per channel), in graph order, as BatchNorm with batch statistics would: torchvision's
// random initialization makes MobileNet/EfficientNet logits vanish (~1e-10, its depthwise convs
// are initialized for a fan-out C times too large), and masking cannot be compared on outputs that
// carry no signal. Channels with fewer than 2 samples or no spread keep their weights.
void normalize_activations(Model& m, const std::map<std::string, Tensor>& inputs);
// Prunes a random selection and compares with masking in ONNX Runtime and on our executor.
void prune_equals_mask(const Model& m, const std::string& tag, uint64_t seed, std::map<std::string, Tensor> inputs = {},
                       double p = 0.35, const ChannelDepsOptions& opt = {});
// The same for a given plan over `d` (built from `m`).
void prune_equals_mask(const Model& m, const ChannelDeps& d, const std::vector<std::vector<char>>& plan,
                       const std::string& tag, const std::map<std::string, Tensor>& inputs);

}  // namespace oc::test
