// Deployment check: how ONNX Runtime's CPU EP (1.30, x86) will run a model's compute layers,
// read from the graph alone (structural and deterministic, no runtime needed).
//
// A Conv/MatMul/Gemm is predicted to run as an integer kernel when its node group matches ORT's
// QDQ selectors (static_qdq.h has the table): every float input a DequantizeLinear of uint8
// (activation) / int8 (weight) / int32 (bias), and for Conv the output read only by a
// QuantizeLinear, directly or through one Relu/Clip. Otherwise it runs in float, and the check
// says why. Findings a user can act on:
//   weight_only   a weight DequantizeLinear feeding a float layer: ORT dequantizes it on every run
//                 (smaller file, slower model)
//   unfused       a QDQ layer that misses one condition (named), so ORT runs it in float
//   unaligned     channel counts (N or K) that are not multiples of 8: integer and SIMD kernels
//                 pad them
//   float_ops     in a model that has integer layers: the float operators left between them
//   16-bit      activations stored as uint16/int16 codes (--act16): the layers and ops around them run
//               in float (ORT 1.30 CPU has no 16-bit QLinear kernels)
//   matmulnbits   each com.microsoft MatMulNBits node with how ORT's MLAS runs it at its bits and
//                 accuracy_level ("float speed", or "slower than float" with the measured ratio)
// MatMulInteger reading a DynamicQuantizeLinear (dynamic W8A8, ORT's DynamicQuantizeMatMul) counts as
// an integer compute layer.
#pragma once
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "graph/ir.h"

namespace oc::quant {

struct DeployFinding {
  std::string node, op, why;
};

struct DeployCheck {
  int compute_layers = 0;                  // Conv, MatMul and Gemm nodes of the main graph
  std::vector<std::string> integer_layers; // predicted to run as integer kernels
  std::map<std::string, int> integer_ops;  // what ORT makes of them: QLinearConv, MatMulIntegerToFloat, ...
  std::vector<DeployFinding> weight_only, unfused, unaligned, nbits;
  std::map<std::string, int> float_ops;    // op type -> count, only when integer_layers is not empty
  // Activations stored as 16-bit codes (--act16, quantize/act16.h): ORT's CPU EP has no 16-bit QLinear
  // kernels, so the layers reading or writing them are listed in `unfused` and their ops in `float_ops`.
  std::vector<std::string> wide_activations;
  nlohmann::json to_json() const;
  std::string summary() const;             // a few lines for the terminal
};

DeployCheck check_deployment(const Model& m);

// The DequantizeLinear that produces value `v`, or nullptr (also for v = "").
const Node* dq_of(const Graph& g, const std::string& v);

}  // namespace oc::quant
