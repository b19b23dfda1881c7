// Quantized lookup tables: token embeddings (a float table read by Gather) and learned position
// tables (a float constant added whole to the residual stream), written as ONNX Runtime's
// com.microsoft.GatherBlockQuantized so a 2/4/8-bit file does not keep them in float32:
//
//   table T [..., C] viewed as rows × C, blocks of `bs` along C (the last axis):
//     T[r, c] ≈ s[r, c/bs] · (q[r, c] − z[r, c/bs])       (z = 2^(bits−1) when sym: no zero points)
//   Gather(T, idx)         -> GatherBlockQuantized(Tq, idx, s[, z])     gather_axis 0
//   Add(x, T) (T constant) -> Add(x, GatherBlockQuantized(Tq', 0, s'[, z']))  Tq' = Tq with a leading
//                             axis of 1 and a scalar index 0: the output is T's shape
//   Tq uint8 [..., C·bits/8], codes low bits first along C; z packed the same way per row
//   (the layout ORT 1.30's CPU kernel reads: uint8 data, gather_axis 0, quantize_axis last).
// ORT constant-folds the second form at session start (all its inputs are initializers), so only
// the token lookup dequantizes at run time, and only the rows it gathers.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "graph/ir.h"
#include "quantize/layout.h"

namespace oc::quant {

struct EmbeddingTable {
  std::string name;               // the float32 initializer
  std::vector<int64_t> dims;
  int64_t rows = 0, cols = 0;     // [prod(dims[:-1]), dims[-1]]
  bool gathered = false;          // read as Gather data (else added whole)
  std::string reader;             // first reading node (report)
  int64_t params() const { return rows * cols; }
};

// Main-graph float32 initializers of ≥ 4096 elements that are either the data of axis-0 Gathers
// (rank 2) or an input of Add nodes only (≥ 2 axes longer than 1: a position table, not a bias),
// and nothing else reads.
std::vector<EmbeddingTable> find_embedding_tables(const Graph& g);

// The block layout a table gets: blocks of `requested.block_size` along C when blocked, else one
// block of the next power of two ≥ C (≥ 16, the kernel's minimum).
QuantLayout table_layout(const EmbeddingTable& t, const QuantLayout& requested);
// Bytes of the table at `layout` (codes, fp32 scales, packed zero points).
double table_bytes(const EmbeddingTable& t, const QuantLayout& layout);
// Widths GatherBlockQuantized stores for the table (the codes of a row must fill whole bytes).
std::vector<int> table_widths(const EmbeddingTable& t);

// The table as row-major [rows, cols] floats.
std::vector<float> table_matrix(const Graph& g, const EmbeddingTable& t);
// Replaces the table by its quantized form (see above); raises nothing: the contrib domain is added.
void export_embedding_table(Model& m, const EmbeddingTable& t, const QuantizedMatrix& q);

}  // namespace oc::quant
