// Quantized weight layouts: what one quantized weight matrix is, byte for byte.
//
// Every weight layer is seen as a matrix W of [N rows = output channels, K cols = reduction axis]
// (Conv: [Cout, Cin/g·kh·kw] in im2col order; MatMul [K,N] and Gemm transB=0 are transposed).
// A quantized matrix stores unsigned codes q ∈ [0, 2^bits − 1] and, per scale group,
//     W[n,k] ≈ scale[g] · (q[n,k] − zero[g])
// where the group g of (n,k) depends on the granularity:
//
//   granularity | scale grid [srows, nblocks]   | group of (n,k)
//   ------------+-------------------------------+---------------------------
//   tensor      | [1, 1]                        | 0
//   channel     | [N, 1]                        | n
//   block       | [N, ceil(K/block_size)]       | n·nblocks + k/block_size
//
// Schemes: sym  → zero = 2^(bits−1) for every group (stored signed as q − 2^(bits−1) ∈
//                 [−2^(bits−1), 2^(bits−1)−1], so int8/int4 containers hold it with zero point 0);
//          asym → zero ∈ [0, 2^bits − 1] per group (uint8/uint4 containers).
//
// Packed forms (see pack_bits):
//   - MatMulNBits B: uint8 [N, nblocks, block_size·bits/8]; inside a block the codes form one
//     little-endian bit stream: code j occupies bits [j·bits, (j+1)·bits) of the block's bytes,
//     low bits first. K is padded to nblocks·block_size with the zero point (dequantizes to 0).
//     Zero points (asym only): uint8 [N, ceil(nblocks·bits/8)], the same bit stream per row.
//   - QDQ int4/uint4: two elements per byte, low nibble first (ONNX raw_data for INT4/UINT4).
//   - QDQ int8/uint8: one byte per element.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace oc::quant {

enum class Scheme { Sym, Asym };
enum class Granularity { Tensor, Channel, Block };

std::string scheme_name(Scheme s);
std::string granularity_name(Granularity g);
Scheme parse_scheme(const std::string& s);            // "sym" | "asym"; throws InvalidArgument
Granularity parse_granularity(const std::string& s);  // "tensor" | "channel" | "block"

// How one matrix is quantized.
struct QuantLayout {
  int bits = 8;                 // 2..8
  Scheme scheme = Scheme::Sym;
  Granularity granularity = Granularity::Channel;
  int64_t block_size = 32;      // used only for Granularity::Block (along K)
  // ONNX Runtime's x86 AVX2 u8·s8 kernels (MLAS, no VNNI) add two products of the reduction axis
  // into one saturating int16 (vpmaddubsw: a₁·w₁ + a₂·w₂, uint8 activations a ≤ 255), which stays
  // exact while |w₁| + |w₂| ≤ 128 in signed codes of one sign (opposite signs cannot overflow it).
  // pair_limit > 0 keeps every such pair of a row within it (sym, channel granularity: the W8A8 weights); 0: no limit. pair_taps: the kernel taps
  // per input channel (Conv kh·kw, MatMul/Gemm 1), which fix the pairing (pair_partner); 0: the
  // layer's kernel never pairs (a depthwise Conv: MLAS widens it to int32 first).
  int pair_limit = 0;
  int64_t pair_taps = 1;

  int code_max() const { return (1 << bits) - 1; }
  int sym_zero() const { return 1 << (bits - 1); }
  // Width of one scale group along K for a matrix with `cols` columns.
  int64_t group_cols(int64_t cols) const { return granularity == Granularity::Block ? block_size : cols; }
};

// The column multiplied beside column `col` in one int16 pair by ORT's AVX2 kernels, or −1. ORT
// reorders a Conv filter's reduction axis tap-major (k = tap·C + c, where our columns are
// c·taps + tap: qlinearconv.cc ReorderFilter) and its kernels pair k = 2m with 2m + 1 (QGEMM packs
// B by 4 rows of K; the ConvSym kernel broadcasts 4 input channels); MatMul/Gemm: k = col.
int64_t pair_partner(int64_t col, int64_t cols, int64_t taps);
// pair_partner of every column, for the loops that visit a matrix's pairs many times.
std::vector<int64_t> pair_partners(int64_t cols, int64_t taps);

// A quantized [rows, cols] matrix. Codes are unpacked (one byte each) for the algorithms; the
// exporters pack them.
struct QuantizedMatrix {
  QuantLayout layout;
  int64_t rows = 0, cols = 0;
  std::vector<uint8_t> codes;        // rows·cols, row-major
  std::vector<float> scales;         // scale_rows()·nblocks(), row-major
  std::vector<uint8_t> zero_points;  // same shape as scales

  int64_t nblocks() const;           // scale groups along K per scale row
  int64_t scale_rows() const { return layout.granularity == Granularity::Tensor ? 1 : rows; }
  // Index into scales/zero_points for element (r, c).
  int64_t group_of(int64_t r, int64_t c) const;
  // s·(q − z) for every element, row-major [rows, cols].
  std::vector<float> dequantize() const;
  // Storage of the packed codes plus one float scale (and, asym, one packed zero point) per group.
  size_t packed_bytes() const;
};

// Little-endian bit stream: value i occupies bits [i·bits, (i+1)·bits). Values must be < 2^bits.
std::vector<uint8_t> pack_bits(const uint8_t* values, size_t n, int bits);
std::vector<uint8_t> unpack_bits(const uint8_t* packed, size_t n, int bits);
// Smallest power of two >= v (1 for v <= 1): block and table sizes.
inline int64_t pow2_ceil(int64_t v) {
  int64_t p = 1;
  while (p < v) p <<= 1;
  return p;
}
// Bytes of n values packed at `bits` bits.
inline size_t packed_size(size_t n, int bits) { return (n * static_cast<size_t>(bits) + 7) / 8; }

// Relative squared error ‖W − Ŵ‖² / ‖W‖² (0 for an all-zero W).
double relative_error(const std::vector<float>& w, const std::vector<float>& wq);
// Signal-to-quantization-noise ratio in dB: 10·log10(‖W‖² / ‖W − Ŵ‖²).
double sqnr_db(const std::vector<float>& w, const std::vector<float>& wq);

}  // namespace oc::quant
