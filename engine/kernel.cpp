// Kernel registry and the helpers shared by kernels (broadcasting, strided copies).
//
// Strided copy: out[i_0..i_{r-1}] = in[base + Σ_k i_k · s_k], done as memcpy/inner loops over
// the merged innermost axis.
#include "engine/kernel.h"

#include <algorithm>
#include <numeric>

#ifdef __GLIBC__
#include <malloc.h>
#endif

#include "engine/kernels/common.h"

namespace oc {

const Tensor& KernelContext::input(size_t i) const {
  if (!has_input(i))
    throw InvalidArgument("node '" + node.name + "' (" + node.op_type + "): required input " + std::to_string(i) +
                          " is missing");
  return *inputs[i];
}

const std::vector<uint8_t>& ConstantCache::get(const Tensor* t, const std::string& what,
                                               const std::function<void(std::vector<uint8_t>&)>& make) {
  std::lock_guard<std::mutex> lock(mu_);
  auto key = std::make_pair(t, what);
  auto it = items_.find(key);
  if (it != items_.end()) return it->second;
  std::vector<uint8_t> v;
  make(v);
  bytes_ += v.size();
  return items_.emplace(std::move(key), std::move(v)).first->second;
}

void KernelContext::unsupported(const std::string& what) const {
  throw UnsupportedError("node '" + node.name + "' (" + node.op_type + "): unsupported " + what);
}

KernelRegistry::KernelRegistry() {
  register_elementwise_kernels(*this);
  register_tensor_kernels(*this);
  register_nn_kernels(*this);
  register_reduce_kernels(*this);
  register_control_kernels(*this);
  register_rnn_kernels(*this);
  register_quant_kernels(*this);
  register_math_kernels(*this);
  register_indexing_kernels(*this);
  register_loss_kernels(*this);
  register_detection_kernels(*this);
  register_linalg_kernels(*this);
}

void keep_freed_activations() {
#ifdef __GLIBC__
  // Kernels allocate every activation afresh and the executor frees it after its last reader.
  // With glibc's defaults, freed heap tops go back to the OS and mid-sized blocks are mapped anew,
  // so each run page-faults its activations in again (4.5K faults, ~15% of a bert_tiny batch).
  mallopt(M_MMAP_THRESHOLD, 32 << 20);
  mallopt(M_TRIM_THRESHOLD, 256 << 20);
#endif
}

KernelRegistry& KernelRegistry::instance() {
  static KernelRegistry r;
  return r;
}

void KernelRegistry::add(const std::string& op, KernelFn fn, const std::string& domain) {
  table_[op_key(domain, op)] = std::move(fn);
}

const KernelFn* KernelRegistry::find(const std::string& key) const {
  auto it = table_.find(key);
  return it == table_.end() ? nullptr : &it->second;
}

std::vector<std::string> KernelRegistry::ops() const {
  std::vector<std::string> out;
  for (const auto& [k, v] : table_) out.push_back(k);
  return out;
}

namespace kern {

Dims broadcast_dims(const KernelContext& ctx, const std::vector<const Dims*>& shapes) {
  size_t rank = 0;
  for (const Dims* s : shapes) rank = std::max(rank, s->size());
  Dims out(rank, 1);
  for (const Dims* s : shapes) {
    size_t off = rank - s->size();
    for (size_t i = 0; i < s->size(); ++i) {
      int64_t d = (*s)[i];
      int64_t& o = out[off + i];
      if (d == o || d == 1) continue;
      if (o == 1) {
        o = d;
        continue;
      }
      std::string msg = "shapes";
      for (const Dims* t : shapes) msg += " " + shape_str(*t);
      bad_input(ctx, msg + " do not broadcast");
    }
  }
  return out;
}

Dims broadcast_strides(const Dims& in, const Dims& out) {
  Dims s(out.size(), 0);
  Dims is = strides_of(in);
  size_t off = out.size() - in.size();
  for (size_t i = 0; i < in.size(); ++i) s[off + i] = in[i] == 1 ? 0 : is[i];
  return s;
}

StridedPlan StridedPlan::make(const Dims& out, std::vector<Dims> operand_strides) {
  StridedPlan p;
  const size_t k = operand_strides.size();
  p.strides.assign(k, {});
  // Drop size-1 axes, then merge axis i into i+1 when every operand is contiguous across them.
  for (size_t i = 0; i < out.size(); ++i) {
    if (out[i] == 1) continue;
    bool merge = !p.dims.empty();
    for (size_t j = 0; j < k && merge; ++j)
      merge = p.strides[j].back() == operand_strides[j][i] * out[i];
    if (merge) {
      p.dims.back() *= out[i];
      for (size_t j = 0; j < k; ++j) p.strides[j].back() = operand_strides[j][i];
    } else {
      p.dims.push_back(out[i]);
      for (size_t j = 0; j < k; ++j) p.strides[j].push_back(operand_strides[j][i]);
    }
  }
  if (p.dims.empty()) {
    p.dims.push_back(1);
    for (size_t j = 0; j < k; ++j) p.strides[j].push_back(0);
  }
  return p;
}

void strided_copy(const uint8_t* in, int64_t base, const Dims& in_strides, uint8_t* out, const Dims& out_dims,
                  size_t es, int threads) {
  if (numel(out_dims) == 0) return;
  StridedPlan p = StridedPlan::make(out_dims, {strides_of(out_dims), in_strides});
  const int64_t s_in = p.strides[1].back();
  auto copy = [&](auto tag) {
    using T = decltype(tag);
    T* o = reinterpret_cast<T*>(out);
    const T* x = reinterpret_cast<const T*>(in) + base;
    for_each_run(p, threads, [&](int64_t n, const int64_t* off) {
      T* dst = o + off[0];
      const T* src = x + off[1];
      if (s_in == 1) std::memcpy(dst, src, static_cast<size_t>(n) * sizeof(T));
      else for (int64_t e = 0; e < n; ++e) dst[e] = src[e * s_in];
    });
  };
  switch (es) {
    case 1: copy(uint8_t{}); break;
    case 2: copy(uint16_t{}); break;
    case 4: copy(uint32_t{}); break;
    case 8: copy(uint64_t{}); break;
    default: throw UnsupportedError("strided copy of " + std::to_string(es) + "-byte elements");
  }
}

Tensor transpose(const KernelContext& ctx, const Tensor& in, const std::vector<int64_t>& perm) {
  const size_t r = in.dims.size();
  if (perm.size() != r) bad_input(ctx, "perm has " + std::to_string(perm.size()) + " entries for rank " + std::to_string(r));
  Dims is = strides_of(in.dims), od(r), st(r);
  std::vector<bool> seen(r, false);
  for (size_t i = 0; i < r; ++i) {
    int64_t a = norm_axis(ctx, perm[i], static_cast<int64_t>(r));
    if (seen[a]) bad_input(ctx, "perm repeats axis " + std::to_string(a));
    seen[a] = true;
    od[i] = in.dims[a];
    st[i] = is[a];
  }
  Tensor out = make_tensor(in.dtype, od);
  strided_copy(in.bytes.data(), 0, st, out.bytes.data(), od, elem_size(ctx, in.dtype), ctx.num_threads);
  return out;
}

std::vector<int64_t> axes_input_or_attr(const KernelContext& ctx, size_t i, const std::string& name, bool* present) {
  if (ctx.has_input(i)) {
    *present = true;
    return int_values(ctx.input(i));
  }
  if (const Attribute* a = ctx.node.attr(name)) {
    *present = true;
    return a->ints;
  }
  *present = false;
  return {};
}

}  // namespace kern
}  // namespace oc
