// Additive masks before a Softmax whose masked entries keep ORT's Softmax off denormals.
//
//   Softmax(x + C), C a constant with entries c ≤ −87 (−1e4, −1e9, −inf: a causal or padding mask)
//     becomes  Softmax(x + C′),  C′ = C with those entries set to M,
//   M = −20 − 1.25·max(d_max, 0) − 2, where d = x − (the row's largest unmasked x) over the masked
//   entries of the calibration data, d ∈ [d_min, d_max]; applied when M + d_min ≥ −87.
//
// Why: ORT's Softmax (MLAS) clamps exp's argument at −88.38, so every masked entry comes out as a
// denormal (≈ 4e-39) and the normalization multiplies thousands of them: gpt_tiny's 4 causal
// Softmaxes [1, 4, 128, 128] took 0.33 ms each in ORT 1.30 (Xeon), 0.027 ms with their arguments
// above ln FLT_MIN = −87.3. The exp of a masked entry is then at most e^−22 (3e-10) of its row's
// largest (with a 25% margin on d_max beyond the data), so the outputs agree with the original to
// float rounding; a fully masked row is softmax(x) either way (Softmax is shift-invariant).
//
// Mask shapes recognized: C an initializer, or Where(cond, a, b) with scalar initializers a, b (how
// graph/compact_constants.h writes two-valued masks), read by nothing but such Adds.
#pragma once
#include <map>
#include <string>
#include <vector>

#include "graph/ir.h"

namespace oc {

constexpr float kDenormalExp = -87.f;  // exp(x) below FLT_MIN for x < ln FLT_MIN = −87.34

struct SoftmaxMask {
  std::string scores;  // x, the value calibration observes
  std::string values;  // the initializer holding the masked entries (C, or the Where's scalar)
  std::string mask;    // the Add's other input: C, or the Where's output
  std::string sum;     // the Add's output (the Softmax's input)
};

// Every Softmax(Add(x, C)) of the main graph with a recognized mask.
std::vector<SoftmaxMask> find_softmax_masks(const Graph& g);

// M for masked entries spanning [d_min, d_max] as above; NaN when M + d_min < −87 (left alone).
float mask_value(float d_min, float d_max);

// Sets the masked entries (≤ kDenormalExp) of `values` to `v`. Returns the entries changed.
int64_t set_mask_entries(Graph& g, const std::string& values, float v);

// For a site whose mask is a Where shared with other sites: a copy of that Where with its own copy
// of the masked scalar, read by this site's Add alone. Returns the copy's scalar ("" when the mask
// is not a Where).
std::string own_where_mask(Graph& g, const SoftmaxMask& site);

}  // namespace oc
