// Layer-wise mixed-bit weight quantization of a model: find layers -> score -> allocate widths ->
// quantize (RTN / MSE clipping / GPTQ) -> export (qdq / matmulnbits / fake) -> report.
#pragma once
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/calib_data.h"
#include "engine/executor.h"
#include "engine/statistics.h"
#include "graph/ir.h"
#include "quantize/export.h"
#include "quantize/layers.h"
#include "quantize/layout.h"
#include "quantize/quantizers.h"
#include "quantize/scorers.h"

namespace oc::quant {

struct QuantizeOptions {
  enum class Target { Uniform, AvgBits, MaxBytes };
  Target target = Target::Uniform;
  int bits = 8;             // Uniform
  double avg_bits = 0;      // AvgBits: Σ params·bits / Σ params over the quantized layers
  int64_t max_bytes = 0;    // MaxBytes: all weight bytes of the output (float ones included)
  // Widths the allocator may choose; empty = every width the format stores (stored_widths).
  std::vector<int> widths;
  QuantLayout layout;       // scheme, granularity, block size (bits set per layer)
  // 2-bit layers (and tables) take asymmetric zero points whatever `layout.scheme` says: symmetric
  // 2-bit codes with a max|w| scale round most weights to zero (relative error ~1 on gpt_tiny's
  // layers, measured). The CLI sets it when --scheme is not given.
  bool asym_2bit = false;
  // Block layouts: widths below 4 bits take blocks 4/b times the layout's length (2-bit: 64 when
  // the layout says 32), so each block's scale and zero point cost the same fraction of the codes
  // at every width and a file's bytes follow its stored bits (a 2.5-bit plan at blocks of 32 kept
  // fp32 scales worth a full bit per weight on its 2-bit layers: 0.688 of the 4-bit file instead
  // of 0.625, gpt_tiny). The CLI sets it when --block-size is not given.
  bool scale_blocks_to_width = false;
  Method method = Method::RTN;
  std::string scorer = "zd";
  Format format = Format::QDQ;
  std::vector<std::string> keep_float;               // ECMAScript regexes on node or weight names
  std::vector<std::pair<std::string, int>> bits_for;  // regex -> fixed width
  bool protect_ends = true;  // first and last weight layer at >= protect_bits
  // Range of 8-bit weights that meet uint8 activations in an integer kernel. ONNX Runtime's x86
  // AVX2 kernels (MLAS u8·s8: vpmaddubsw) add two uint8 × int8 products into a saturating int16:
  // 2·255·128 overflows it, 2·255·64 does not. Full-range weights there cost fashion_cnn W8A8 a
  // 1e-2 logit error energy against 2e-4 for the exact arithmetic (docs/QUANTIZATION.md, "Weight
  // range"); AVX-512 VNNI and ARM accumulate in int32 and are exact either way.
  //   Full     [−128, 127] codes (weight-only files; VNNI/ARM targets)
  //   Reduced  [−64, 63]: 7 bits of range in the int8 container, exact everywhere
  //   Pairs    [−128, 127] with every pair of one sign that the AVX2 kernel adds kept within
  //            |q₁| + |q₂| ≤ 128 (QuantLayout::pair_limit): exact everywhere, each row's step
  //            chosen between amax/127 and the step at which every pair fits
  // Unset: Pairs for Format::MatMulNBits (its 8-bit layers are written as dynamic W8A8), Full
  // otherwise; the quantize step sets Pairs for --activations int8, or what --weight-range says.
  enum class WeightRange { Full, Reduced, Pairs };
  std::optional<WeightRange> weight_range;
  // The bound of WeightRange::Pairs: 128 is the int16 bound itself; files whose conv codes are then
  // shifted by ±1 for an AMX target (conv_gemm_route.h) take 126, so the shifted codes still keep 128.
  int pair_limit = 128;
  WeightRange range() const { return weight_range.value_or(format == Format::MatMulNBits ? WeightRange::Pairs : WeightRange::Full); }
  bool reduces_range() const { return range() == WeightRange::Reduced; }
  // MatMulNBits files: embedding tables quantized too (quantize/embeddings.h: GatherBlockQuantized,
  // counted in --avg-bits / --max-bytes and the report like layers) and constant masks compacted
  // (graph/compact_constants.h). Other formats keep standard ops only and leave both as they are.
  bool tables = true;
  int protect_bits = 8;
  ScoreInputs score_inputs;  // calibration statistics, sensitivity hook, seed
  GptqOptions gptq;
  // Activation-aware per-input-channel scales for layers at <= awq_max_bits (quantize/awq.h); needs
  // the Gram matrices (calibration).
  bool awq = false;
  int awq_max_bits = 4;
  // Output-mean correction: b += (W − Ŵ)·E[x] where the layer has (or can be given) a bias; needs
  // the Gram statistics' column sums.
  bool bias_correction = false;
  // Block-sequential calibration (issue 18, models larger than memory): with this source set and
  // no score_inputs.stats, the Gram matrices GPTQ / bias correction need are gathered one graph
  // segment at a time (engine/block_runner.h): the main graph is cut before a layer whenever the
  // segment's Grams would pass `sequential_gram_bytes`, each segment runs (float weights) from the
  // activations cached at its input boundary, its layers are quantized and their Grams freed
  // before the next segment runs. The Grams equal one calibrate() pass over the whole model.
  // Uniform widths only; not with AWQ (it needs every layer's Gram for its search).
  CalibrationSource* sequential_calib = nullptr;
  ExecutorOptions sequential_exec;
  int64_t sequential_gram_bytes = int64_t(1) << 30;
  size_t sequential_cache_bytes = size_t(256) << 20;  // boundary activations in memory, the rest spilled
  // Layer-streamed output (issue 18): on a model whose weights pass this many bytes, each exported
  // MatMulNBits layer's new tensors (64 KiB and up) move to a temporary file as they are made
  // (graph/spill.h SpillFile), so the packed model is not held in memory until it is saved; the
  // saved file is the same bytes. Negative: never.
  int64_t spill_model_bytes = int64_t(1) << 30;
  // Called after each layer is quantized (GPTQ on large models takes minutes); may throw to cancel.
  std::function<void(int64_t done, int64_t total)> progress;
};

struct LayerReport {
  std::string node, op, weight;
  int64_t rows = 0, cols = 0;
  double score = 0;
  int bits = 0;            // planned width
  int storage_bits = 0;    // container width in the chosen format
  std::string decided_by;  // allocation | uniform | protected | bits-for
  std::string method, scheme, granularity;
  int64_t block_size = 0;
  double rel_error = 0;    // ‖W − Ŵ‖² / ‖W‖²
  double output_rel_error = -1;  // ‖X(W − Ŵ)ᵀ‖² / ‖XWᵀ‖² on the calibration Gram (−1: no Gram)
  bool awq = false;              // activation-aware scales applied
  bool bias_corrected = false;
  double sqnr_db = 0;
};

struct QuantizeReport {
  std::string format, scorer, target;
  int64_t opset = 0;              // default-domain opset of the output
  std::string dequantize_form;    // how QDQ-path weights are written (see export.h)
  std::vector<LayerReport> layers;
  std::vector<SkippedLayer> skipped;
  double avg_bits = 0;           // stored (container) bits, params-weighted
  std::string method_summary;    // one line: which method ran (summary, report)
  std::vector<std::string> notes;
  int64_t quantized_params = 0;
  nlohmann::json to_json() const;
};

// Rewrites `m` in place. `m` must be normalized (Constant weights lifted to initializers).
QuantizeReport quantize_model(Model& m, const QuantizeOptions& opt);

// The code widths format `f` stores for a layer, narrowest first: what ONNX Runtime 1.30 runs.
// MatMulNBits (MatMul/Gemm): 2, 4, 8; QDQ (and Conv layers under matmulnbits, and fake, which
// simulates QDQ): int4 and int8.
std::vector<int> stored_widths(const WeightLayer& l, Format f);
std::vector<int> stored_widths(Format f);  // for MatMul/Gemm layers

// The layout a layer (or table) gets at width `bits`: `l` with bits set, asym at 2 bits under
// QuantizeOptions::asym_2bit, blocks lengthened below 4 bits under
// QuantizeOptions::scale_blocks_to_width, 8 bits at 7 bits of range or with the pair limit as
// QuantizeOptions::weight_range says, unless `weight_only` (embedding tables: dequantized, never
// in an integer kernel).
QuantLayout width_layout(QuantLayout l, int bits, const QuantizeOptions& opt, bool weight_only = false);

// Bytes a layer takes at `bits` in format `f` (packed codes, scales, zero points).
double layer_bytes(const WeightLayer& l, const QuantLayout& layout, Format f);

}  // namespace oc::quant
