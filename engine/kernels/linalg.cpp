// Small linear-algebra and signal ops: Einsum, Det, MeanVarianceNormalization and the
// Hann/Hamming/Blackman windows.
//
// Einsum runs the equation as one loop over every index letter (ellipsis dims become letters of
// their own, broadcast right-aligned): out[free] += Π operand[letters], in double. It is meant for
// the small contractions inference graphs carry, not as a fast GEMM. Det: LU with partial
// pivoting per matrix of [..., M, M]. MVN: (x − mean) / sqrt(var + 1e-9) over `axes`.
// Windows: w[n] = Σ_k (−1)^k a_k cos(2πkn / N'), N' = size (periodic) or size − 1.
#include <cmath>
#include <map>

#include "engine/kernels/common.h"

namespace oc {
namespace {

using namespace kern;

std::vector<double> as_double(const Tensor& t) {
  if (t.dtype == DType::Double) return std::vector<double>(t.data<double>(), t.data<double>() + t.numel());
  if (dtype_is_float(t.dtype)) {
    auto f = t.to_float();
    return std::vector<double>(f.begin(), f.end());
  }
  auto v = t.to_int64();
  return std::vector<double>(v.begin(), v.end());
}

Tensor from_double(const KernelContext& ctx, DType dt, const Dims& dims, const std::vector<double>& v) {
  Tensor t = make_tensor(dt, dims);
  if (dt == DType::Double) {
    std::copy(v.begin(), v.end(), t.data<double>());
  } else if (dtype_is_float(dt)) {
    t = Tensor::from_float_as("", dt, dims, std::vector<float>(v.begin(), v.end()));
  } else {
    dispatch_numeric(ctx, dt, [&](auto tag) {
      using T = decltype(tag);
      T* p = t.data<T>();
      for (size_t i = 0; i < v.size(); ++i) p[i] = static_cast<T>(v[i]);
    });
  }
  return t;
}

std::string strip(const std::string& s) {
  std::string o;
  for (char c : s)
    if (c != ' ') o += c;
  return o;
}

void einsum_kernel(KernelContext& ctx) {
  std::string eq = strip(ctx.node.attr_string("equation", ""));
  const size_t arrow = eq.find("->");
  const bool explicit_out = arrow != std::string::npos;
  std::string lhs = explicit_out ? eq.substr(0, arrow) : eq, rhs = explicit_out ? eq.substr(arrow + 2) : "";
  std::vector<std::string> terms;
  for (size_t p = 0;;) {
    size_t q = lhs.find(',', p);
    terms.push_back(lhs.substr(p, q == std::string::npos ? std::string::npos : q - p));
    if (q == std::string::npos) break;
    p = q + 1;
  }
  if (terms.size() != ctx.num_inputs()) bad_input(ctx, "equation has " + std::to_string(terms.size()) + " operands");
  // Ellipsis dims: letters 'A', 'B', ... right-aligned across operands.
  size_t ell_rank = 0;
  for (size_t k = 0; k < terms.size(); ++k)
    if (terms[k].find("...") != std::string::npos)
      ell_rank = std::max(ell_rank, ctx.input(k).dims.size() - (terms[k].size() - 3));
  std::string ell;
  for (size_t i = 0; i < ell_rank; ++i) ell += static_cast<char>('A' + i);
  std::map<char, int64_t> size;
  std::vector<std::string> letters(terms.size());
  for (size_t k = 0; k < terms.size(); ++k) {
    std::string t = terms[k];
    const size_t e = t.find("...");
    const Dims& d = ctx.input(k).dims;
    if (e != std::string::npos) {
      const size_t n = d.size() - (t.size() - 3);
      t = t.substr(0, e) + ell.substr(ell_rank - n) + t.substr(e + 3);
    }
    if (t.size() != d.size()) bad_input(ctx, "operand " + std::to_string(k) + " rank differs from '" + terms[k] + "'");
    for (size_t i = 0; i < t.size(); ++i) {
      auto it = size.find(t[i]);
      if (it == size.end() || it->second == 1) size[t[i]] = d[i];
      else if (d[i] != 1 && d[i] != it->second) bad_input(ctx, std::string("dimension of '") + t[i] + "' differs");
    }
    letters[k] = t;
  }
  std::string out;
  if (explicit_out) {
    const size_t e = rhs.find("...");
    out = e == std::string::npos ? rhs : rhs.substr(0, e) + ell + rhs.substr(e + 3);
  } else {
    out = ell;
    std::map<char, int> count;
    for (const auto& t : letters)
      for (char c : t) ++count[c];
    for (const auto& [c, n] : count)
      if (n == 1 && !(c >= 'A' && c < 'A' + static_cast<char>(ell_rank))) out += c;
  }
  std::string all = out;
  for (const auto& [c, n] : size)
    if (all.find(c) == std::string::npos) all += c;
  Dims od;
  for (char c : out) {
    if (!size.count(c)) bad_input(ctx, std::string("output letter '") + c + "' not in the inputs");
    od.push_back(size[c]);
  }
  std::vector<std::vector<double>> vals;
  std::vector<Dims> strides;  // per operand, per letter of `all`
  for (size_t k = 0; k < terms.size(); ++k) {
    vals.push_back(as_double(ctx.input(k)));
    const Dims& d = ctx.input(k).dims;
    const Dims s = strides_of(d);
    Dims st(all.size(), 0);
    for (size_t i = 0; i < letters[k].size(); ++i)
      if (d[i] != 1) st[all.find(letters[k][i])] += s[i];
    strides.push_back(st);
  }
  Dims ad;
  for (char c : all) ad.push_back(size[c]);
  const int64_t total = numel(ad), out_n = numel(od);
  std::vector<double> res(out_n, 0.0);
  std::vector<int64_t> idx(all.size(), 0);
  for (int64_t it = 0; it < total; ++it) {
    int64_t rem = it;
    for (int64_t i = static_cast<int64_t>(all.size()) - 1; i >= 0; --i) {
      idx[i] = rem % ad[i];
      rem /= ad[i];
    }
    double p = 1;
    for (size_t k = 0; k < vals.size(); ++k) {
      int64_t off = 0;
      for (size_t i = 0; i < all.size(); ++i) off += idx[i] * strides[k][i];
      p *= vals[k][off];
    }
    int64_t o = 0;
    for (size_t i = 0; i < out.size(); ++i) o = o * ad[i] + idx[i];
    res[o] += p;
  }
  ctx.output(0) = from_double(ctx, ctx.input(0).dtype, od, res);
}

void det_kernel(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  if (x.dims.size() < 2 || x.dims.back() != x.dims[x.dims.size() - 2]) bad_input(ctx, "input must be [..., M, M]");
  if (!dtype_is_float(x.dtype)) ctx.unsupported("element type " + dtype_name(x.dtype));
  const int64_t M = x.dims.back();
  const auto v = as_double(x);
  const int64_t mats = M ? x.numel() / (M * M) : 0;
  std::vector<double> res(mats);
  for (int64_t b = 0; b < mats; ++b) {
    std::vector<double> a(v.begin() + b * M * M, v.begin() + (b + 1) * M * M);
    double det = 1;
    for (int64_t c = 0; c < M; ++c) {
      int64_t p = c;
      for (int64_t r = c + 1; r < M; ++r)
        if (std::fabs(a[r * M + c]) > std::fabs(a[p * M + c])) p = r;
      if (a[p * M + c] == 0) {
        det = 0;
        break;
      }
      if (p != c) {
        for (int64_t j = 0; j < M; ++j) std::swap(a[p * M + j], a[c * M + j]);
        det = -det;
      }
      det *= a[c * M + c];
      for (int64_t r = c + 1; r < M; ++r) {
        const double f = a[r * M + c] / a[c * M + c];
        for (int64_t j = c; j < M; ++j) a[r * M + j] -= f * a[c * M + j];
      }
    }
    res[b] = det;
  }
  ctx.output(0) = from_double(ctx, x.dtype, Dims(x.dims.begin(), x.dims.end() - 2), res);
}

void mvn_kernel(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  if (!dtype_is_float(x.dtype)) ctx.unsupported("element type " + dtype_name(x.dtype));
  const int64_t r = static_cast<int64_t>(x.dims.size());
  std::vector<bool> reduce(r, false);
  for (int64_t a : ctx.node.attr_ints("axes", {0, 2, 3})) reduce[norm_axis(ctx, a, r)] = true;
  const auto v = as_double(x);
  const Dims s = strides_of(x.dims);
  // Group key: the index with reduced axes zeroed.
  std::map<int64_t, std::pair<double, double>> acc;  // key -> (sum, sum of squares)
  std::map<int64_t, int64_t> cnt;
  std::vector<int64_t> key(v.size());
  for (int64_t i = 0; i < static_cast<int64_t>(v.size()); ++i) {
    int64_t rem = i, k = 0;
    for (int64_t d = 0; d < r; ++d) {
      const int64_t c = rem / s[d];
      rem %= s[d];
      if (!reduce[d]) k += c * s[d];
    }
    key[i] = k;
    acc[k].first += v[i];
    acc[k].second += v[i] * v[i];
    ++cnt[k];
  }
  std::vector<double> y(v.size());
  for (size_t i = 0; i < v.size(); ++i) {
    const auto& [sum, sq] = acc[key[i]];
    const double n = static_cast<double>(cnt[key[i]]), mean = sum / n, var = sq / n - mean * mean;
    y[i] = (v[i] - mean) / std::sqrt(var + 1e-9);
  }
  ctx.output(0) = from_double(ctx, x.dtype, x.dims, y);
}

void window_kernel(KernelContext& ctx, const std::vector<double>& a) {
  const auto sz = ctx.input(0).to_int64();
  if (sz.size() != 1 || sz[0] < 0) bad_input(ctx, "size must be a non-negative scalar");
  const int64_t n = sz[0];
  const bool periodic = ctx.node.attr_int("periodic", 1) != 0;
  const DType dt = static_cast<DType>(ctx.node.attr_int("output_datatype", static_cast<int64_t>(DType::Float)));
  const double denom = periodic ? double(n) : double(n - 1);
  std::vector<double> w(n);
  for (int64_t i = 0; i < n; ++i) {
    double v = 0;
    for (size_t k = 0; k < a.size(); ++k)
      v += (k % 2 ? -1.0 : 1.0) * a[k] * (denom > 0 ? std::cos(2 * M_PI * double(k) * double(i) / denom) : 1.0);
    w[i] = v;
  }
  ctx.output(0) = from_double(ctx, dt, {n}, w);
}

}  // namespace

void register_linalg_kernels(KernelRegistry& r) {
  r.add("Einsum", einsum_kernel);
  r.add("Det", det_kernel);
  r.add("MeanVarianceNormalization", mvn_kernel);
  r.add("HannWindow", [](KernelContext& c) { window_kernel(c, {0.5, 0.5}); });
  r.add("HammingWindow", [](KernelContext& c) { window_kernel(c, {25.0 / 46.0, 21.0 / 46.0}); });
  r.add("BlackmanWindow", [](KernelContext& c) { window_kernel(c, {0.42, 0.5, 0.08}); });
}

}  // namespace oc
