// AWQ scale search on the Gram matrix (see awq.h).
#include "quantize/awq.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "graph/errors.h"
#include "quantize/quantizers.h"

namespace oc::quant {

std::vector<float> scale_columns(const std::vector<float>& w, int64_t rows, int64_t cols, int64_t per_channel,
                                 const std::vector<double>& s, bool inverse) {
  std::vector<float> out(w.size());
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) {
      const double f = s[static_cast<size_t>(c / per_channel)];
      out[r * cols + c] = static_cast<float>(inverse ? w[r * cols + c] / f : w[r * cols + c] * f);
    }
  return out;
}

std::vector<double> scale_gram(const std::vector<double>& xtx, int64_t cols, int64_t per_channel,
                               const std::vector<double>& s) {
  std::vector<double> out(xtx.size());
  for (int64_t i = 0; i < cols; ++i)
    for (int64_t j = 0; j < cols; ++j)
      out[i * cols + j] = xtx[i * cols + j] / (s[static_cast<size_t>(i / per_channel)] * s[static_cast<size_t>(j / per_channel)]);
  return out;
}

AwqResult awq_search(const std::vector<AwqMember>& members, int64_t cols, int64_t per_channel,
                     const std::vector<double>& xtx, int64_t rows_seen, const DequantFn& quantize, int grid) {
  if (per_channel <= 0 || cols % per_channel != 0) throw InvalidArgument("awq: columns are not whole channels");
  if (static_cast<int64_t>(xtx.size()) != cols * cols) throw InvalidArgument("awq: Gram matrix size mismatch");
  const int64_t channels = cols / per_channel;
  std::vector<double> a(static_cast<size_t>(channels), 0.0);
  const double n = static_cast<double>(std::max<int64_t>(1, rows_seen));
  for (int64_t c = 0; c < channels; ++c) {
    double e = 0;
    for (int64_t p = 0; p < per_channel; ++p) e += xtx[(c * per_channel + p) * cols + c * per_channel + p];
    a[c] = std::sqrt(e / (n * static_cast<double>(per_channel)));
  }
  double amax = *std::max_element(a.begin(), a.end());
  // Channels that never fired: keep them at the smallest live magnitude (their weights do not matter).
  double amin_live = std::numeric_limits<double>::infinity();
  for (double v : a)
    if (v > 0) amin_live = std::min(amin_live, v);
  AwqResult best;
  best.channel_scale.assign(static_cast<size_t>(channels), 1.0);
  if (!(amax > 0)) return best;
  for (double& v : a) v = std::max(v, std::max(amin_live, amax * 1e-4));

  auto error_at = [&](const std::vector<double>& s) {
    double err = 0;
    for (const auto& m : members) {
      std::vector<float> ws = scale_columns(*m.w, m.rows, cols, per_channel, s);
      std::vector<float> deq = scale_columns(quantize(ws, m.rows, cols, m.layout, s), m.rows, cols, per_channel, s, true);
      err += gram_error(*m.w, deq, m.rows, cols, xtx);
    }
    return err;
  };
  best.error_plain = best.error_scaled = error_at(best.channel_scale);
  for (int i = 1; i <= grid; ++i) {
    const double alpha = static_cast<double>(i) / grid;
    std::vector<double> s(a.size());
    double lo = std::numeric_limits<double>::infinity(), hi = 0;
    for (size_t c = 0; c < a.size(); ++c) {
      s[c] = std::pow(a[c], alpha);
      lo = std::min(lo, s[c]);
      hi = std::max(hi, s[c]);
    }
    const double norm = std::sqrt(lo * hi);
    for (double& v : s) v /= norm;
    const double e = error_at(s);
    if (e < best.error_scaled) best.error_scaled = e, best.alpha = alpha, best.channel_scale = s;
  }
  return best;
}

}  // namespace oc::quant
