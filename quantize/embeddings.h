// Quantized lookup tables: token embeddings (a float table read by Gather) and learned position
// tables (a float constant added whole to the residual stream), stored at 2/4/8 bits so a
// MatMulNBits file does not keep them in float32, and dequantized once, when the model loads:
//
//   table T [..., C] viewed as rows × C, blocks of `bs` along C (the last axis):
//     T[r, c] = s[r, c/bs] · (q[r, c] − z[r, c/bs])       (z = 2^(bits−1) when sym: one scalar)
//   q uint8 [rows, C·bits/8, 1], codes low bits first along C (8/bits per byte):
//     T = Reshape(Mul(Sub(Reshape(Cast<float>(Mod(BitShift(q, {0, b, 2b, ..}), 2^b)), [rows, nb, bs]), z), s), dims(T))
//   under T's own name, so its Gather / Add readers are unchanged.
// Every input of that chain is an initializer, so ONNX Runtime constant-folds it at session start:
// the run reads a float table exactly as the float model does. The contrib GatherBlockQuantized
// form it replaces is not folded and dequantizes per element on every run (ORT 1.30 CPU, gpt_tiny
// w4-mixed [1,128]: 0.48 ms for the token lookup and 0.39 ms for the position table per run in
// ORT's profile, against 0.04 ms for the float Gather, machine load ~4); it stays only for tables
// whose blocks do not tile the rows (C not a multiple of the block, more than one block).
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
// True when `layout`'s blocks tile the table's rows, so it is written as the load-time chain above.
bool dequantizes_at_load(const EmbeddingTable& t, const QuantLayout& layout);
// Replaces the table by its quantized form (see above); raises nothing (the GatherBlockQuantized
// form adds the contrib domain).
void export_embedding_table(Model& m, const EmbeddingTable& t, const QuantizedMatrix& q);

}  // namespace oc::quant
