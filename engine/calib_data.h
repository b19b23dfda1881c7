// Calibration data: batches of model inputs read from a SPEC string, streamed from disk.
//
//   FILE.npy       one array whose first axis enumerates samples (single-input models only)
//   FILE.npz       arrays keyed by input name, first axis = samples (numpy.savez / savez_compressed)
//   DIR            every .npy/.npz in DIR, sorted by file name, each one sample or a batch
//   random:N[:SEED] N seeded samples, uniform [0,1) for float inputs, 0 for integer/bool inputs;
//                  symbolic dims are 1 unless CalibrationDataOptions::shapes gives the shape
//   DIR of images  .png/.jpg/.jpeg files (one sample each) for a single image-shaped input, decoded,
//                  resized and normalized as engine/image_data.h says (CalibrationDataOptions::image);
//                  one sub-folder per class gives labels() (sorted folder names -> 0, 1, ...)
//   IMAGE.png/.jpg one image, one sample
//
// Bad values. A float sample holding NaN or Inf is an error naming the input, the file and the
// sample; with skip_bad_samples it is left out of its batch and counted (skipped_samples()).
//
// Samples. Axis 0 of every input is the batch axis and is kept. An input whose model dim 0 is
// symbolic takes one row per sample; a fixed dim 0 = k takes k rows per sample (so a [16,3,H,W]
// file feeds a [1,3,H,W] model 16 samples). An array may also be one sample without the batch
// axis (rank one less: the axis is added) or samples of full inputs (rank one more: the first two
// axes merge). An array holding exactly one sample in a file with more samples (say a scalar
// `sr` or an initial state) is repeated for every sample of that file.
//
// Batches. With every input batched on a symbolic dim 0, a batch is up to batch_size samples,
// spanning files as long as their per-sample shapes agree. If any input has a fixed dim 0 or is a
// scalar, each run takes one sample.
//
// Only headers are read when the source opens (to count and validate); data is read per batch
// (deflated .npz entries are inflated whole when first needed, one array per input at a time).
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "engine/image_data.h"
#include "graph/ir.h"

namespace oc {

struct CalibrationDataOptions {
  CalibrationDataOptions(int64_t batch = 1, int64_t max = 0, std::map<std::string, std::vector<int64_t>> shapes_ = {})
      : batch_size(batch), max_samples(max), shapes(std::move(shapes_)) {}
  int64_t batch_size = 1;  // samples per executor run
  int64_t max_samples = 0; // use at most this many samples (0: all)
  // Shape of one sample per input name for random: data (axis 0 = rows per sample).
  std::map<std::string, std::vector<int64_t>> shapes;
  ImageOptions image;              // image folders: normalization, channel order, resize
  bool skip_bad_samples = false;   // leave out samples with NaN/Inf instead of failing
};

class CalibrationSource {
 public:
  // Parses the spec and validates every array's header against the model's runtime inputs; throws
  // InvalidArgument with a one-line message saying what the model expects.
  CalibrationSource(const std::string& spec, const Model& model, CalibrationDataOptions opt = {});
  ~CalibrationSource();
  CalibrationSource(CalibrationSource&&) noexcept;
  CalibrationSource& operator=(CalibrationSource&&) noexcept;

  int64_t num_samples() const;
  int64_t num_batches() const;
  // Effective samples per run (1 when the model's inputs have a fixed batch dim).
  int64_t batch_size() const;
  // Fills `batch` (input name -> tensor) with the next batch; false when all batches were read.
  bool next(std::map<std::string, Tensor>& batch);
  // Samples in the batch most recently returned by next().
  int64_t last_batch_samples() const;
  void rewind();
  const std::string& spec() const;
  // Position of each sample of the last batch in the source (0-based, over all samples); differs
  // from a running count only when bad samples were skipped.
  const std::vector<int64_t>& last_batch_ids() const;
  // Class index per sample from an image folder's class sub-folders; empty otherwise.
  const std::vector<int64_t>& labels() const;
  const std::vector<std::string>& classes() const;
  // Distinct samples left out for NaN/Inf (skip_bad_samples), over every pass so far.
  int64_t skipped_samples() const;
  // Per input: the distinct shapes of one sample in the data (axis 0 = the rows one sample feeds,
  // 1 for a symbolic batch), each with the first file that has it. random: data is left out (its
  // shapes are the ones given). What concrete dims the data gives symbolic input dims.
  std::map<std::string, std::vector<std::pair<std::vector<int64_t>, std::string>>> sample_shapes() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace oc
