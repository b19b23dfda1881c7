// Sequential reconstruction (issue 15 point 1): after the rewrite, each compensated layer is
// re-solved against the ORIGINAL model's output of that layer, reading its input from the
// ALREADY PRUNED (and already re-solved) model:
//
//   min_{W',b'} ‖W·X + b − W'·X̂ − b'‖²,   X = the layer's input in the original model,
//                                          X̂ = its input in the pruned model (kept features only)
//   ⇒ [W' b']ᵀ = (X̂ₐᵀX̂ₐ + λI)⁻¹ · X̂ₐᵀXₐ · [W b]ᵀ,   X̂ₐ = [X̂ 1], Xₐ = [X 1],
//     λ = damping · mean(diag X̂ᵀX̂)
//
// One-shot compensation (prune/compensate.h) is the special case X̂ = X restricted to the kept
// features, i.e. it fits each layer as if every layer before it were still unpruned, so errors
// pile up through depth; here each layer also undoes what the layers before it lost.
//
// Layers are processed in stages: a layer's stage is the number of re-solved layers on its longest
// path from the inputs, so layers of one stage (Q/K/V of a block, parallel branches) read inputs
// that no other layer of the stage changes and share one calibration pass. A pass runs the
// original model and the partly pruned one on every calibration batch and accumulates, per
// distinct layer input, X̂ₐᵀX̂ₐ and the cross-Gram X̂ₐᵀXₐ (double); memory is the current stage's
// accumulators (at most the Grams one-shot compensation holds for all layers at once) plus one
// batch of the stage's inputs. Runs the executor (the rest of prune/ reads statistics only).
//
// A pass does not run both whole models: each pass keeps, per calibration batch, the values that
// cross the cut at its stage's first node (in both models), and the next pass runs only the nodes
// after that cut, from those values. Nodes before stage k's first node depend only on layers of
// earlier stages, which are final by then, so the results are the same as running from the graph
// inputs; every node runs about twice in all instead of once per stage. The cached cuts are bounded
// by SequentialOptions::cache_bytes; past it a pass keeps the older cut (still exact, just longer).
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "engine/calibrate.h"
#include "engine/executor.h"
#include "graph/ir.h"
#include "graph/spill.h"

namespace oc {

struct SequentialLayer {
  std::string node;           // Conv (group 1) / Gemm / MatMul, by name (the same in both models)
  std::vector<int64_t> rows;  // the original output rows (channels) the pruned layer keeps; empty = all
};

struct SequentialOptions {
  double damping = 0.01;
  ExecutorOptions exec;
  ProgressFn progress;  // per pass: samples done of the total
  // Bytes of cached cut values (both models, all batches) a pass may keep for the next one;
  // 0 = every pass runs both models from the graph inputs.
  size_t cache_bytes = size_t{512} << 20;
  // Bytes of im2col'd layer input rows (both models) formed at once: a batch is taken a few
  // samples at a time past it (ResNet-50's layer1 3x3 convs read 7 MB a sample per model).
  size_t chunk_bytes = size_t{32} << 20;
  // Models larger than memory (issue 18): each re-solved weight moves to this file once its stage
  // is done (owned tensors of at least 64 KiB), so the pruned model is not held in memory.
  SpillFile* spill = nullptr;
};

struct SequentialReport {
  int layers = 0;  // layers re-solved
  int passes = 0;  // calibration passes (stages)
};

// `original`: the model before pruning; `pruned`: after the rewrite (weights sliced, not
// compensated), updated in place. Layers that cannot be re-solved (non-float weight, a Gemm with
// alpha/beta ≠ 1, weight shapes that do not match) are left as they are.
// ---- segments: part of a model run from cached values (also prune/sensitivity.cpp) ----
// The nodes of `m` from index `from` on that the values `need` depend on, as a model of their own
// whose runtime inputs are values of the cut at `from` (values made before `from`, or graph inputs).
struct Segment {
  Model sub;
  std::vector<std::string> inputs;  // read from the cut at `from` (or the batch)
  std::set<std::string> made;       // values of `need` the segment produces
  std::unique_ptr<Executor> ex;     // null when it has no node
};
std::unique_ptr<Segment> make_segment(const Model& m, size_t from, const std::set<std::string>& need,
                                      const ExecutorOptions& exec);
// The values of the cut at `cut`: read by nodes from `cut` on, made before it (or graph inputs).
std::set<std::string> cut_values(const Graph& g, size_t cut);
// Runs one batch of a segment from `in` (the cut's values), the hook seeing watched values;
// `next` receives the values of `carry` (made here or passed through).
void run_segment(Segment& seg, const std::map<std::string, Tensor>& in, const ValueHook& hook,
                 const std::set<std::string>& watch, const std::set<std::string>& carry, std::map<std::string, Tensor>* next);

SequentialReport reconstruct_sequential(const Model& original, Model& pruned, const std::vector<SequentialLayer>& layers,
                                        CalibrationSource& source, const SequentialOptions& opt = {});

}  // namespace oc
