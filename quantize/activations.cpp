// Static activation QDQ (see activations.h).
#include "quantize/activations.h"

#include <algorithm>
#include <cmath>

#include "graph/errors.h"

namespace oc::quant {

CalibMethod parse_calib_method(const std::string& s) {
  if (s == "minmax") return CalibMethod::MinMax;
  if (s == "percentile") return CalibMethod::Percentile;
  if (s == "entropy") return CalibMethod::Entropy;
  if (s == "mse") return CalibMethod::MSE;
  throw InvalidArgument("unknown calibration method '" + s + "' (expected minmax, percentile, entropy or mse)");
}

// Squared error of uint8 quantization over [a, b] (0 inside), each bin at its centre: clipped
// values cost their distance to the bound, others to the nearest level of the zero-point grid.
double histogram_quant_mse(const HistogramStat& h, float a, float b) {
  const Uint8Params q = uint8_params(a, b);
  const double w = h.bin_width(), s = q.scale, z = q.zero_point;
  const double qlo = (0 - z) * s, qhi = (255 - z) * s;
  double err = 0;
  for (size_t i = 0; i < h.bins.size(); ++i) {
    if (!h.bins[i]) continue;
    const double c = h.lo + (static_cast<double>(i) + 0.5) * w;
    const double v = std::clamp(std::round(c / s) * s, qlo, qhi);
    err += static_cast<double>(h.bins[i]) * (c - v) * (c - v);
  }
  return err;
}

// The range [lo', hi'] ⊆ [lo, hi] with the least quantization MSE: a coarse grid of shrink factors
// for each bound, then a finer one around the best.
std::pair<float, float> histogram_mse_range(const HistogramStat& h) {
  const float lo = std::min(h.lo, 0.f), hi = std::max(h.hi, 0.f);
  std::pair<float, float> best{lo, hi};
  double best_err = histogram_quant_mse(h, lo, hi);
  auto search = [&](double f0, double f1, double step, double g0, double g1) {
    for (double f = f0; f <= f1 + 1e-9; f += step)
      for (double g = g0; g <= g1 + 1e-9; g += step) {
        const float a = static_cast<float>(lo * g), b = static_cast<float>(hi * f);
        if (!(b > a)) continue;
        const double e = histogram_quant_mse(h, a, b);
        if (e < best_err) best_err = e, best = {a, b};
      }
  };
  search(0.05, 1.0, 0.05, lo < 0 ? 0.05 : 1.0, 1.0);
  const double f = hi > 0 ? best.second / hi : 1.0, g = lo < 0 ? best.first / lo : 1.0;
  search(std::max(0.01, f - 0.05), std::min(1.0, f + 0.05), 0.01, lo < 0 ? std::max(0.01, g - 0.05) : 1.0,
         lo < 0 ? std::min(1.0, g + 0.05) : 1.0);
  return best;
}

std::pair<float, float> activation_range(const std::string& v, const CalibrationStats& st, CalibMethod m, double p) {
  if (m == CalibMethod::MinMax) {
    auto it = st.minmax.find(v);
    if (it == st.minmax.end() || it->second.count == 0) throw InvalidArgument("no calibration range for activation " + v);
    return {it->second.min, it->second.max};
  }
  auto it = st.histograms.find(v);
  if (it == st.histograms.end() || it->second.total() == 0) throw InvalidArgument("no calibration histogram for activation " + v);
  const HistogramStat& h = it->second;
  if (m == CalibMethod::Percentile) return {histogram_percentile(h, 1.0 - p), histogram_percentile(h, p)};
  if (m == CalibMethod::MSE) return histogram_mse_range(h);
  const float t = histogram_entropy_threshold(h);
  return {std::max(h.lo, -t), std::min(h.hi, t)};
}

UintParams uint_params(float lo, float hi, int bits) {
  if (bits != 8 && bits != 16) throw InvalidArgument("activation quantization: " + std::to_string(bits) + " bits (8 or 16)");
  const float top = bits == 8 ? 255.f : 65535.f;
  lo = std::min(lo, 0.f);
  hi = std::max(hi, 0.f);
  UintParams p;
  p.bits = bits;
  p.constant = !(hi > lo);
  p.scale = p.constant ? 1.f : (hi - lo) / top;
  p.zero_point = static_cast<uint16_t>(std::clamp(std::round(-lo / p.scale), 0.f, top));
  return p;
}

std::pair<std::string, std::string> add_uint_params(Graph& g, const std::string& base, const UintParams& p) {
  const std::string sn = g.unique_name(base + "_scale"), zn = g.unique_name(base + "_zero_point");
  g.add_initializer(Tensor::from_float(sn, {}, {p.scale}));
  Tensor zt;
  zt.name = zn;
  zt.dtype = p.bits == 16 ? DType::UInt16 : DType::UInt8;
  if (p.bits == 16) zt.bytes = {static_cast<uint8_t>(p.zero_point & 0xff), static_cast<uint8_t>(p.zero_point >> 8)};  // little-endian
  else zt.bytes = {static_cast<uint8_t>(p.zero_point)};
  g.add_initializer(zt);
  return {sn, zn};
}

}  // namespace oc::quant
