// Quantized layouts: group indexing, dequantization W ≈ s·(q − z), bit-stream packing.
#include "quantize/layout.h"

#include <cmath>
#include <limits>

#include "graph/errors.h"

namespace oc::quant {

std::string scheme_name(Scheme s) { return s == Scheme::Sym ? "sym" : "asym"; }

std::string granularity_name(Granularity g) {
  switch (g) {
    case Granularity::Tensor: return "tensor";
    case Granularity::Channel: return "channel";
    case Granularity::Block: return "block";
  }
  return "?";
}

Scheme parse_scheme(const std::string& s) {
  if (s == "sym") return Scheme::Sym;
  if (s == "asym") return Scheme::Asym;
  throw InvalidArgument("unknown quantization scheme '" + s + "' (expected sym or asym)");
}

Granularity parse_granularity(const std::string& s) {
  if (s == "tensor") return Granularity::Tensor;
  if (s == "channel") return Granularity::Channel;
  if (s == "block") return Granularity::Block;
  throw InvalidArgument("unknown granularity '" + s + "' (expected tensor, channel or block)");
}

int64_t pair_partner(int64_t col, int64_t cols, int64_t taps) {
  if (taps <= 0 || cols % taps != 0) return -1;
  const int64_t channels = cols / taps;
  const int64_t k = (col % taps) * channels + col / taps;  // tap-major position
  const int64_t other = k ^ 1;
  if (other >= cols) return -1;  // odd K: the last one pairs with padding
  return (other % channels) * taps + other / channels;
}

std::vector<int64_t> pair_partners(int64_t cols, int64_t taps) {
  std::vector<int64_t> out(static_cast<size_t>(cols));
  for (int64_t c = 0; c < cols; ++c) out[c] = pair_partner(c, cols, taps);
  return out;
}

int64_t QuantizedMatrix::nblocks() const {
  int64_t g = layout.group_cols(cols);
  return g <= 0 ? 1 : (cols + g - 1) / g;
}

int64_t QuantizedMatrix::group_of(int64_t r, int64_t c) const {
  if (layout.granularity == Granularity::Tensor) return 0;
  return r * nblocks() + c / layout.group_cols(cols);
}

std::vector<float> QuantizedMatrix::dequantize() const {
  std::vector<float> w(static_cast<size_t>(rows * cols));
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) {
      int64_t g = group_of(r, c);
      size_t i = static_cast<size_t>(r * cols + c);
      w[i] = scales[g] * (static_cast<float>(codes[i]) - static_cast<float>(zero_points[g]));
    }
  return w;
}

size_t QuantizedMatrix::packed_bytes() const {
  size_t groups = scales.size();
  size_t b = packed_size(codes.size(), layout.bits) + groups * sizeof(float);
  if (layout.scheme == Scheme::Asym) b += packed_size(groups, layout.bits);
  return b;
}

std::vector<uint8_t> pack_bits(const uint8_t* values, size_t n, int bits) {
  if (bits < 1 || bits > 8) throw InvalidArgument("pack_bits: width " + std::to_string(bits) + " outside 1..8");
  std::vector<uint8_t> out(packed_size(n, bits), 0);
  const unsigned mask = (1u << bits) - 1u;
  size_t bit = 0;
  for (size_t i = 0; i < n; ++i, bit += static_cast<size_t>(bits)) {
    if (values[i] > mask) throw InvalidArgument("pack_bits: value " + std::to_string(values[i]) + " needs more than " + std::to_string(bits) + " bits");
    // A value spans at most two bytes (bits <= 8): write the low part, then the spill.
    unsigned v = static_cast<unsigned>(values[i]) << (bit % 8);
    out[bit / 8] |= static_cast<uint8_t>(v & 0xFFu);
    if ((bit % 8) + static_cast<size_t>(bits) > 8) out[bit / 8 + 1] |= static_cast<uint8_t>(v >> 8);
  }
  return out;
}

std::vector<uint8_t> unpack_bits(const uint8_t* packed, size_t n, int bits) {
  if (bits < 1 || bits > 8) throw InvalidArgument("unpack_bits: width " + std::to_string(bits) + " outside 1..8");
  std::vector<uint8_t> out(n);
  const unsigned mask = (1u << bits) - 1u;
  size_t bit = 0;
  for (size_t i = 0; i < n; ++i, bit += static_cast<size_t>(bits)) {
    unsigned v = packed[bit / 8];
    if ((bit % 8) + static_cast<size_t>(bits) > 8) v |= static_cast<unsigned>(packed[bit / 8 + 1]) << 8;
    out[i] = static_cast<uint8_t>((v >> (bit % 8)) & mask);
  }
  return out;
}

double relative_error(const std::vector<float>& w, const std::vector<float>& wq) {
  double num = 0, den = 0;
  for (size_t i = 0; i < w.size(); ++i) {
    double d = static_cast<double>(w[i]) - wq[i];
    num += d * d;
    den += static_cast<double>(w[i]) * w[i];
  }
  return den > 0 ? num / den : 0.0;
}

double sqnr_db(const std::vector<float>& w, const std::vector<float>& wq) {
  double e = relative_error(w, wq);
  return e > 0 ? -10.0 * std::log10(e) : std::numeric_limits<double>::infinity();
}

}  // namespace oc::quant
