// Denormal float32 values flushed to zero for the duration of a CPU run (MXCSR's FTZ and DAZ
// bits, on the calling thread and on each OpenMP worker that runs the executor's kernels).
//
// Why: an x86 core takes a microcode assist on every arithmetic result or operand below 2^-126,
// about 100 cycles each. PaddleOCR's exports carry tens of thousands of denormal weights (ppocr4_rec:
// 31,350), and an activation that decays (a sigmoid gate, a softmax with masked scores) produces
// them too; a pruned ppocr4_rec ran 534 ms per batch of 8 instead of 158 (graph/flush_denormals.h
// removes them from the models we write; this covers the models we read and the values they make).
// A denormal's contribution to any sum with a normal term is below float32 resolution, so the
// outputs agree with ONNX Runtime's (which keeps denormals) to the same tolerance as before.
//
// The previous MXCSR of every thread it changed is restored on destruction, so a host application
// that embeds the library keeps its own floating-point environment.
#pragma once
#include <vector>

namespace oc {

class DenormalsAsZero {
 public:
  explicit DenormalsAsZero(int threads);
  ~DenormalsAsZero();
  DenormalsAsZero(const DenormalsAsZero&) = delete;
  DenormalsAsZero& operator=(const DenormalsAsZero&) = delete;

 private:
  int threads_ = 1;
  unsigned caller_ = 0;
  std::vector<unsigned> workers_;  // each worker's previous MXCSR, by OpenMP thread number
};

}  // namespace oc
