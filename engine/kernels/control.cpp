// Control flow: If, Loop, Scan. Bodies run through Executor::run_subgraph, which sees the
// enclosing graph's values via ctx.lookup (outer scope); the executor keeps those values alive
// until the node that owns the subgraph has finished.
//
// Loop: for i in [0, M) while cond: (cond, v, scan_i) = body(i, cond, v); outputs = (v, stack(scan)).
// Scan: for t over axis (direction ±): (s, y_t) = body(s, x_t); outputs = (s, stack(y)).
#include <limits>

#include "engine/executor.h"
#include "engine/kernels/common.h"

namespace oc {
namespace {

using namespace kern;

const Graph& body_attr(const KernelContext& ctx, const std::string& name) {
  const Attribute* a = ctx.node.attr(name);
  if (!a || !a->g) bad_input(ctx, "missing graph attribute '" + name + "'");
  return *a->g;
}

void if_kernel(KernelContext& ctx) {
  const Tensor& c = ctx.input(0);
  if (c.numel() != 1) bad_input(ctx, "condition must hold one element, got " + shape_str(c.dims));
  const bool cond = c.to_float()[0] != 0.f;
  const Graph& g = body_attr(ctx, cond ? "then_branch" : "else_branch");
  auto outs = ctx.executor->run_subgraph(g, {}, *ctx.lookup);
  if (outs.size() != ctx.outputs.size())
    bad_input(ctx, "branch gives " + std::to_string(outs.size()) + " outputs for " + std::to_string(ctx.outputs.size()));
  for (size_t i = 0; i < outs.size(); ++i) ctx.output(i) = std::move(outs[i]);
}

// Stacks equally shaped tensors on a new axis 0.
Tensor stack(const KernelContext& ctx, const std::vector<Tensor>& parts) {
  if (parts.empty()) return make_tensor(DType::Float, {0});
  Dims d = parts[0].dims;
  d.insert(d.begin(), static_cast<int64_t>(parts.size()));
  Tensor out = make_tensor(parts[0].dtype, d);
  const size_t each = parts[0].bytes.size();
  for (size_t i = 0; i < parts.size(); ++i) {
    if (parts[i].dims != parts[0].dims || parts[i].dtype != parts[0].dtype)
      bad_input(ctx, "scan output changes shape across iterations (" + shape_str(parts[0].dims) + " then " +
                         shape_str(parts[i].dims) + ")");
    if (each) std::memcpy(out.bytes.data() + i * each, parts[i].bytes.data(), each);
  }
  return out;
}

void loop_kernel(KernelContext& ctx) {
  const Graph& body = body_attr(ctx, "body");
  const int64_t max_trip = ctx.has_input(0) ? int_values(ctx.input(0)).at(0) : std::numeric_limits<int64_t>::max();
  bool cond = ctx.has_input(1) ? ctx.input(1).to_float().at(0) != 0.f : true;
  const size_t n_carried = ctx.num_inputs() - 2;
  const size_t n_scan = ctx.outputs.size() - n_carried;
  if (body.outputs.size() != 1 + n_carried + n_scan) bad_input(ctx, "body outputs do not match the node's");
  std::vector<Tensor> carried;
  for (size_t i = 0; i < n_carried; ++i) carried.push_back(ctx.input(2 + i));
  std::vector<std::vector<Tensor>> scans(n_scan);
  for (int64_t it = 0; it < max_trip && cond; ++it) {
    Tensor iter = Tensor::from_int64("", {}, {it});
    Tensor cond_t = make_tensor(DType::Bool, {});
    cond_t.bytes[0] = 1;
    std::vector<const Tensor*> in = {&iter, &cond_t};
    for (const Tensor& t : carried) in.push_back(&t);
    auto outs = ctx.executor->run_subgraph(body, in, *ctx.lookup);
    cond = outs[0].to_float().at(0) != 0.f;
    for (size_t i = 0; i < n_carried; ++i) carried[i] = std::move(outs[1 + i]);
    for (size_t k = 0; k < n_scan; ++k) scans[k].push_back(std::move(outs[1 + n_carried + k]));
  }
  for (size_t i = 0; i < n_carried; ++i) ctx.output(i) = std::move(carried[i]);
  for (size_t k = 0; k < n_scan; ++k) ctx.output(n_carried + k) = stack(ctx, scans[k]);
}

// x[..., t, ...] along `axis` (axis removed).
Tensor take_slice(const KernelContext& ctx, const Tensor& x, int64_t axis, int64_t t) {
  Dims st = strides_of(x.dims), od = x.dims;
  const int64_t base = t * st[axis];
  st.erase(st.begin() + axis);
  od.erase(od.begin() + axis);
  Tensor out = make_tensor(x.dtype, od);
  strided_copy(x.bytes.data(), base, st, out.bytes.data(), od, elem_size(ctx, x.dtype), 1);
  return out;
}

void scan_kernel(KernelContext& ctx) {
  if (ctx.opset < 9) ctx.unsupported("Scan before opset 9 (batched form)");
  const Graph& body = body_attr(ctx, "body");
  const int64_t m = ctx.node.attr_int("num_scan_inputs", 0);
  const int64_t n = static_cast<int64_t>(ctx.num_inputs()) - m;
  const int64_t n_out_scan = static_cast<int64_t>(ctx.outputs.size()) - n;
  auto in_axes = ctx.node.attr_ints("scan_input_axes", std::vector<int64_t>(m, 0));
  auto in_dirs = ctx.node.attr_ints("scan_input_directions", std::vector<int64_t>(m, 0));
  auto out_axes = ctx.node.attr_ints("scan_output_axes", std::vector<int64_t>(n_out_scan, 0));
  auto out_dirs = ctx.node.attr_ints("scan_output_directions", std::vector<int64_t>(n_out_scan, 0));
  if (m <= 0 || n < 0 || static_cast<int64_t>(in_axes.size()) != m || static_cast<int64_t>(in_dirs.size()) != m ||
      static_cast<int64_t>(out_axes.size()) != n_out_scan || static_cast<int64_t>(out_dirs.size()) != n_out_scan)
    bad_input(ctx, "scan attributes do not match the inputs/outputs");
  int64_t steps = -1;
  for (int64_t j = 0; j < m; ++j) {
    const Tensor& x = ctx.input(n + j);
    in_axes[j] = norm_axis(ctx, in_axes[j], static_cast<int64_t>(x.dims.size()));
    if (steps >= 0 && x.dims[in_axes[j]] != steps) bad_input(ctx, "scan inputs differ in length");
    steps = x.dims[in_axes[j]];
  }
  std::vector<Tensor> state;
  for (int64_t i = 0; i < n; ++i) state.push_back(ctx.input(i));
  std::vector<std::vector<Tensor>> ys(n_out_scan);
  for (int64_t t = 0; t < steps; ++t) {
    std::vector<Tensor> slices;
    for (int64_t j = 0; j < m; ++j) {
      const Tensor& x = ctx.input(n + j);
      slices.push_back(take_slice(ctx, x, in_axes[j], in_dirs[j] ? steps - 1 - t : t));
    }
    std::vector<const Tensor*> in;
    for (const Tensor& s : state) in.push_back(&s);
    for (const Tensor& s : slices) in.push_back(&s);
    auto outs = ctx.executor->run_subgraph(body, in, *ctx.lookup);
    if (static_cast<int64_t>(outs.size()) != n + n_out_scan) bad_input(ctx, "body outputs do not match the node's");
    for (int64_t i = 0; i < n; ++i) state[i] = std::move(outs[i]);
    for (int64_t k = 0; k < n_out_scan; ++k) ys[k].push_back(std::move(outs[n + k]));
  }
  for (int64_t i = 0; i < n; ++i) ctx.output(i) = std::move(state[i]);
  for (int64_t k = 0; k < n_out_scan; ++k) {
    if (out_dirs[k]) std::reverse(ys[k].begin(), ys[k].end());
    Tensor s = stack(ctx, ys[k]);
    const int64_t r = static_cast<int64_t>(s.dims.size());
    const int64_t axis = norm_axis(ctx, out_axes[k], r);
    if (axis != 0) {  // move the stacking axis from 0 to `axis`
      std::vector<int64_t> perm;
      for (int64_t a = 1; a <= axis; ++a) perm.push_back(a);
      perm.push_back(0);
      for (int64_t a = axis + 1; a < r; ++a) perm.push_back(a);
      s = transpose(ctx, s, perm);
    }
    ctx.output(n + k) = std::move(s);
  }
}

}  // namespace

void register_control_kernels(KernelRegistry& r) {
  r.add("If", if_kernel);
  r.add("Loop", loop_kernel);
  r.add("Scan", scan_kernel);
}

}  // namespace oc
