// Denormal float32 weights (0 < |w| < 2^-126, FLT_MIN) set to zero.
//
// A denormal operand costs x86 cores a microcode assist on every multiply unless the kernel runs
// with flush-to-zero: ONNX Runtime's float kernels do not set it, so a 1x1 Conv whose weights hold a
// few thousand denormals ran 30x slower in ORT 1.30 (PP-OCRv4 rec pruned to 70% MACs: conv2d_201,
// 47 ms against 1.6 ms). PaddleOCR's exported SE convs already carry them (31,350 in ppocr4_rec) and
// least-squares compensation can write more. Their contribution is below float32's normal range,
// so zero is the same model to within rounding.
#pragma once
#include <cstdint>

#include "graph/ir.h"

namespace oc {

// Every float32 initializer of the model's graphs (nested ones too). Returns the values zeroed.
int64_t flush_denormal_weights(Model& m);

}  // namespace oc
