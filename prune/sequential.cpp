// Sequential reconstruction (see sequential.h).
#include "prune/sequential.h"

#include <Eigen/Dense>
#include <algorithm>
#include <cstdio>
#include <map>
#include <memory>
#include <set>
#include <unordered_map>

#include "engine/dense_solve.h"
#include "engine/executor.h"
#include "engine/observers.h"
#include "graph/channel_deps.h"
#include "graph/errors.h"

namespace oc {

namespace {

using MatD = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using MatF = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

// A weight as rows (outputs) × features (inputs), with the layout to write it back.
struct Weight {
  int64_t rows = 0, features = 0;
  bool row_major = true;  // element (r, f) at r·F + f (Conv, Gemm transB), else f·rows + r
  bool bias_slot = false; // Conv / Gemm: input 2 is (or can become) a bias of `rows`
  const Tensor* w = nullptr;
  const Tensor* b = nullptr;
};

bool weight_of(const Graph& g, const Node& n, Weight& out) {
  if (n.inputs.size() < 2) return false;
  const Tensor* w = g.initializer(n.input(1));
  if (!w || w->dtype != DType::Float) return false;
  Weight r;
  r.w = w;
  if (n.op_type == "Conv") {
    if (n.attr_int("group", 1) != 1 || w->dims.size() < 3) return false;
    r.rows = w->dims[0];
    r.features = w->numel() / std::max<int64_t>(r.rows, 1);
    r.bias_slot = true;
  } else if (n.op_type == "Gemm") {
    if (w->dims.size() != 2 || n.attr_float("alpha", 1) != 1.f || n.attr_float("beta", 1) != 1.f) return false;
    const bool tb = n.attr_int("transB", 0) != 0;
    r.rows = tb ? w->dims[0] : w->dims[1];
    r.features = tb ? w->dims[1] : w->dims[0];
    r.row_major = tb;
    r.bias_slot = true;
  } else if (n.op_type == "MatMul") {
    if (w->dims.size() != 2) return false;
    r.rows = w->dims[1];
    r.features = w->dims[0];
    r.row_major = false;
  } else {
    return false;
  }
  if (r.bias_slot && n.inputs.size() > 2 && !n.input(2).empty()) {
    r.b = g.initializer(n.input(2));
    if (!r.b || r.b->dtype != DType::Float || r.b->dims.size() != 1 || r.b->dims[0] != r.rows) {
      // A bias we cannot rewrite (broadcast C, non-constant): it is the same on both sides, leave it.
      r.bias_slot = false;
      r.b = nullptr;
    }
  }
  out = r;
  return true;
}

// Rows × features of one layer input for one batch, im2col'd as its Gram is (LayerInput), in
// `out` (resized; the caller's buffer is reused across batches). Returns the row count.
int64_t layer_rows(const LayerInput& in, const Tensor& x, std::vector<float>& out) {
  const int64_t F = in.features_for(x);
  out.clear();
  int64_t rows = 0;
  in.for_each_block(x, [&](int64_t, const float* p, int64_t n) {
    out.insert(out.end(), p, p + n * F);
    rows += n;
  }, 1024);
  return rows;
}

// Floats of one sample's rows × features as `in` reads them (im2col for Conv).
int64_t floats_per_sample(const LayerInput& in, const Tensor& x) {
  const int64_t N = x.dims.empty() ? 1 : std::max<int64_t>(x.dims[0], 1);
  if (in.kind != LayerInput::Kind::Conv || x.dims.size() < 3) return x.numel() / N;
  const LayerInput::ConvExtent e = in.conv_extent(x.dims);
  return e.OH * e.OW * in.features_for(x) * in.groups;
}

// Accumulators for one distinct (original input, pruned input) pair.
struct Pair {
  LayerInput in0, in1;  // original, pruned
  int64_t f0 = -1, f1 = -1, n = 0;
  MatD g;   // X̂ᵀX̂   (f1 × f1)
  MatD c;   // X̂ᵀX   (f1 × f0)
  Eigen::VectorXd s0, s1;  // column sums of X and X̂
  std::vector<float> rows0, rows1, gb, cb;  // scratch, kept across batches

  // One batch of the layer's input in the original (x0) and the pruned model (x1), a few samples
  // (leading axis) at a time, so the im2col'd copies stay within chunk_bytes whatever the batch.
  // The sums are the same (to fp32 block rounding) however the batch is split.
  void add(const Tensor& x0, const Tensor& x1, size_t chunk_bytes) {
    const int64_t N = x1.dims.empty() ? 0 : x1.dims[0];
    const bool by_sample = N > 1 && !x0.dims.empty() && x0.dims[0] == N && x0.dtype == DType::Float &&
                           x1.dtype == DType::Float && in0.kind != LayerInput::Kind::TransposedRows &&
                           in1.kind != LayerInput::Kind::TransposedRows;
    const int64_t per = by_sample ? 4 * (floats_per_sample(in0, x0) + floats_per_sample(in1, x1)) : 0;
    const int64_t k = per > 0 ? std::max<int64_t>(1, static_cast<int64_t>(chunk_bytes) / per) : N;
    if (!by_sample || k >= N) {
      add_rows(x0, x1);
      return;
    }
    for (int64_t b0 = 0; b0 < N; b0 += k) {
      std::vector<int64_t> keep;
      for (int64_t b = b0; b < std::min(N, b0 + k); ++b) keep.push_back(b);
      add_rows(slice_axis(x0, 0, keep), slice_axis(x1, 0, keep));
    }
  }

  void add_rows(const Tensor& x0, const Tensor& x1) {
    const int64_t ra = layer_rows(in1, x1, rows1), rb = layer_rows(in0, x0, rows0);
    if (ra != rb)
      throw Error("sequential reconstruction: input '" + in1.value + "' has " + std::to_string(ra) +
                  " rows in the pruned model and " + std::to_string(rb) + " in the original");
    if (f1 < 0) {
      f1 = in1.features_for(x1), f0 = in0.features_for(x0);
      g = MatD::Zero(f1, f1), c = MatD::Zero(f1, f0);
      s0 = Eigen::VectorXd::Zero(f0), s1 = Eigen::VectorXd::Zero(f1);
      gb.resize(static_cast<size_t>(f1 * f1));
      cb.resize(static_cast<size_t>(f1 * f0));
    }
    const Eigen::Map<const MatF> a(rows1.data(), ra, f1), b(rows0.data(), rb, f0);
    // fp32 GEMMs (oneDNN sgemm: the executor's threads, the CPU's widest vectors) over blocks of
    // rows, each block product added into double at once (fp32 rounding covers one block).
    constexpr int64_t kBlock = 2048;
    for (int64_t r0 = 0; r0 < ra; r0 += kBlock) {
      const int64_t m = std::min<int64_t>(kBlock, ra - r0);
      const float* pa = a.data() + r0 * f1;
      const float* pb = b.data() + r0 * f0;
      // Row-major C = Aᵀ·B with A (m × f1), B (m × f0) row-major.
      sgemm('T', 'N', f1, f1, m, 1.f, pa, f1, pa, f1, 0.f, gb.data(), f1, "sequential reconstruction");
      sgemm('T', 'N', f1, f0, m, 1.f, pa, f1, pb, f0, 0.f, cb.data(), f0, "sequential reconstruction");
      g.noalias() += Eigen::Map<const MatF>(gb.data(), f1, f1).cast<double>();
      c.noalias() += Eigen::Map<const MatF>(cb.data(), f1, f0).cast<double>();
      s1 += a.middleRows(r0, m).colwise().sum().transpose().cast<double>();
      s0 += b.middleRows(r0, m).colwise().sum().transpose().cast<double>();
    }
    n += ra;
  }
};

// Re-solves node `name` of `pruned` from the pair's statistics; false when it does not fit.
bool solve_layer(const Model& original, Model& pruned, const SequentialLayer& layer, const Pair& st, double damping) {
  const int i0 = original.graph.node_index(layer.node), i1 = pruned.graph.node_index(layer.node);
  if (i0 < 0 || i1 < 0 || st.n <= 0) return false;
  Weight w0, w1;
  if (!weight_of(original.graph, original.graph.nodes[i0], w0) || !weight_of(pruned.graph, pruned.graph.nodes[i1], w1))
    return false;
  std::vector<int64_t> rows = layer.rows;
  if (rows.empty())
    for (int64_t r = 0; r < w0.rows; ++r) rows.push_back(r);
  const int64_t R = static_cast<int64_t>(rows.size());
  if (R != w1.rows || w0.features != st.f0 || w1.features != st.f1) return false;
  for (int64_t r : rows)
    if (r < 0 || r >= w0.rows) return false;
  const bool bias = w0.bias_slot && w1.bias_slot;
  const int64_t F0 = st.f0, F1 = st.f1, n0 = F0 + bias, n1 = F1 + bias;

  // A = X̂ₐᵀX̂ₐ + λI, B = X̂ₐᵀXₐ, T = [W b] of the kept rows.
  MatD A(n1, n1), B(n1, n0), T(R, n0);
  A.topLeftCorner(F1, F1) = st.g;
  B.topLeftCorner(F1, F0) = st.c;
  if (bias) {
    A.block(0, F1, F1, 1) = st.s1;
    A.block(F1, 0, 1, F1) = st.s1.transpose();
    A(F1, F1) = static_cast<double>(st.n);
    B.block(0, F0, F1, 1) = st.s1;
    B.block(F1, 0, 1, F0) = st.s0.transpose();
    B(F1, F0) = static_cast<double>(st.n);
  }
  double lambda = damping * st.g.diagonal().mean();
  if (!(lambda > 0)) lambda = 1e-8;
  A.diagonal().array() += lambda;
  const std::vector<float> wv = w0.w->to_float();
  const std::vector<float> bv = w0.b ? w0.b->to_float() : std::vector<float>();
  for (int64_t k = 0; k < R; ++k) {
    const int64_t r = rows[static_cast<size_t>(k)];
    for (int64_t f = 0; f < F0; ++f) T(k, f) = wv[static_cast<size_t>(w0.row_major ? r * F0 + f : f * w0.rows + r)];
    if (bias) T(k, F0) = w0.b ? bv[static_cast<size_t>(r)] : 0.0;
  }
  const MatD sol = spd_solve_product(A, B, T);  // n1 × R
  if (!sol.allFinite()) return false;

  Graph& g = pruned.graph;
  std::vector<float> out(static_cast<size_t>(R * F1));
  for (int64_t k = 0; k < R; ++k)
    for (int64_t f = 0; f < F1; ++f)
      out[static_cast<size_t>(w1.row_major ? k * F1 + f : f * R + k)] = static_cast<float>(sol(f, k));
  const std::string wname = w1.w->name;
  const std::vector<int64_t> wdims = w1.w->dims;
  const Tensor* b1 = w1.b;
  const std::string bname = b1 ? b1->name : "";
  const std::vector<int64_t> bdims = b1 ? b1->dims : std::vector<int64_t>{R};
  set_node_constant(g, i1, 1, Tensor::from_float(wname, wdims, out));
  if (bias) {
    std::vector<float> nb(static_cast<size_t>(R));
    for (int64_t k = 0; k < R; ++k) nb[static_cast<size_t>(k)] = static_cast<float>(sol(F1, k));
    if (!bname.empty()) {
      set_node_constant(g, i1, 2, Tensor::from_float(bname, bdims, nb));
    } else {
      Node& nn = g.nodes[static_cast<size_t>(i1)];
      const std::string name = g.unique_name(nn.name + ".bias");
      g.add_initializer(Tensor::from_float(name, {R}, nb));
      nn.inputs.resize(3);
      nn.inputs[2] = name;
      g.invalidate();
    }
  }
  return true;
}

// ---------------------------------------------------------------- segments from cached values
//
// A cut at node index c of a model (nodes in topological order) is the set of values made before c
// (graph inputs, outputs of nodes < c) that nodes from c on read. Caching a cut per calibration
// batch lets the next pass run only the nodes from c on. For the pruned model, a pass for stage k
// cuts at c_k = the first node of stage k: nodes before it depend only on layers of stages < k,
// which are re-solved before pass k and never change again, so the cached values stay exact.

// Values node `n` reads, its subgraphs' outer-scope values included.
std::vector<std::string> node_reads(const Node& n) {
  std::vector<std::string> r;
  for (const auto& v : n.inputs)
    if (!v.empty()) r.push_back(v);
  for (const auto& sg : n.subgraphs())
    for (const auto& v : outer_scope_inputs(*sg)) r.push_back(v);
  return r;
}

}  // namespace

std::unique_ptr<Segment> make_segment(const Model& m, size_t from, const std::set<std::string>& need,
                                      const ExecutorOptions& exec) {
  const Graph& g = m.graph;
  auto seg = std::make_unique<Segment>();
  std::vector<char> take(g.nodes.size(), 0);
  std::set<std::string> inputs, seen;
  std::vector<std::string> todo(need.begin(), need.end());
  while (!todo.empty()) {
    const std::string v = todo.back();
    todo.pop_back();
    if (!seen.insert(v).second || g.is_initializer(v)) continue;
    const int p = g.producer(v);
    if (p < 0 || static_cast<size_t>(p) < from) {
      inputs.insert(v);
      continue;
    }
    if (take[static_cast<size_t>(p)]) continue;
    take[static_cast<size_t>(p)] = 1;
    for (const auto& r : node_reads(g.nodes[static_cast<size_t>(p)])) todo.push_back(r);
  }
  Model& s = seg->sub;
  s.ir_version = m.ir_version;
  s.opset_imports = m.opset_imports;
  s.raw_functions = m.raw_functions;
  Graph& sg = s.graph;
  sg.name = g.name;
  std::set<std::string> inits;
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    if (!take[i]) continue;
    sg.nodes.push_back(g.nodes[i]);
    for (const auto& r : node_reads(g.nodes[i]))
      if (const Tensor* t = g.initializer(r); t && inits.insert(r).second) sg.initializers.push_back(*t);
  }
  for (const auto& v : inputs) {
    ValueInfo vi;
    vi.name = v;  // dtype and shape unchecked: the values come from the same model's run
    sg.inputs.push_back(vi);
    seg->inputs.push_back(v);
  }
  for (const auto& v : need)
    if (!inputs.count(v) && !g.is_initializer(v)) {
      ValueInfo vi;
      vi.name = v;
      sg.outputs.push_back(vi);
      seg->made.insert(v);
    }
  sg.value_info = g.value_info;
  sg.invalidate();
  if (!sg.nodes.empty()) seg->ex = std::make_unique<Executor>(seg->sub, exec);
  return seg;
}

// The values of the cut at `cut`: read by nodes from `cut` on, made before it (or graph inputs).
std::set<std::string> cut_values(const Graph& g, size_t cut) {
  std::set<std::string> out;
  for (size_t i = cut; i < g.nodes.size(); ++i)
    for (const auto& v : node_reads(g.nodes[i])) {
      if (g.is_initializer(v)) continue;
      const int p = g.producer(v);
      if (p < 0 || static_cast<size_t>(p) < cut) out.insert(v);
    }
  return out;
}

// Runs one batch of a segment from `in` (the cut's values), the hook seeing watched values;
// `next` receives the values of `carry` (made here or passed through).
void run_segment(Segment& seg, const std::map<std::string, Tensor>& in, const ValueHook& hook,
                 const std::set<std::string>& watch, const std::set<std::string>& carry, std::map<std::string, Tensor>* next) {
  std::map<std::string, Tensor> feed, out;
  for (const auto& v : seg.inputs) {
    auto it = in.find(v);
    if (it == in.end()) throw Error("sequential reconstruction: cached value '" + v + "' is missing");
    feed[v] = it->second;
  }
  if (seg.ex) {
    out = seg.ex->run(feed, hook, watch);
  } else {
    for (const auto& [name, t] : feed)
      if (watch.count(name)) hook(name, t);
  }
  if (!next) return;
  for (const auto& v : carry) {
    auto it = out.find(v);
    if (it != out.end()) (*next)[v] = std::move(it->second);
    else if (auto f = feed.find(v); f != feed.end()) (*next)[v] = f->second;
    else throw Error("sequential reconstruction: value '" + v + "' of the cut was not produced");
  }
}

namespace {

struct Frontier {
  size_t cut = 0;                                      // 0: the calibration batches themselves
  std::vector<std::map<std::string, Tensor>> batches;  // per batch: the cut's values (cut > 0)
  std::vector<int64_t> samples;                        // per batch
  size_t bytes = 0;
};

size_t tensors_bytes(const std::map<std::string, Tensor>& m) {
  size_t b = 0;
  for (const auto& [n, t] : m) b += t.bytes.size();
  return b;
}

}  // namespace

SequentialReport reconstruct_sequential(const Model& original, Model& pruned, const std::vector<SequentialLayer>& layers,
                                        CalibrationSource& source, const SequentialOptions& opt) {
  SequentialReport rep;
  // Stage of each layer: re-solved layers on its longest path from the inputs (in the pruned graph,
  // which is in topological order).
  std::map<std::string, const SequentialLayer*> by_name;
  for (const auto& l : layers) {
    const int i0 = original.graph.node_index(l.node), i1 = pruned.graph.node_index(l.node);
    Weight w;
    if (i0 < 0 || i1 < 0 || !weight_of(pruned.graph, pruned.graph.nodes[i1], w)) continue;
    by_name[l.node] = &l;
  }
  std::unordered_map<std::string, int> level;
  std::map<int, std::vector<const SequentialLayer*>> stages;
  for (const Node& n : pruned.graph.nodes) {
    int in = 0;
    for (const auto& v : n.inputs)
      if (auto it = level.find(v); it != level.end()) in = std::max(in, it->second);
    int out = in;
    if (auto it = by_name.find(n.name); it != by_name.end()) {
      stages[in].push_back(it->second);
      out = in + 1;
    }
    for (const auto& v : n.outputs) level[v] = out;
  }

  // First node of each stage in each model: where that stage's pass cuts for the next one.
  auto first_index = [](const Graph& g, const std::vector<const SequentialLayer*>& ls) {
    size_t c = g.nodes.size();
    for (const SequentialLayer* l : ls) c = std::min(c, static_cast<size_t>(g.node_index(l->node)));
    return c;
  };
  Frontier f0, f1;  // cached cuts of the original and the pruned model (cut 0: from the batches)
  size_t cut0 = 0;
  for (auto st = stages.begin(); st != stages.end(); ++st) {
    const std::vector<const SequentialLayer*>& members = st->second;
    const bool last = std::next(st) == stages.end();
    // One accumulator per distinct (original input, pruned input) reading.
    std::vector<std::unique_ptr<Pair>> pairs;
    std::map<std::string, Pair*> by_sig;
    std::vector<std::pair<const SequentialLayer*, Pair*>> work;
    std::set<std::string> watch0, watch1;
    for (const SequentialLayer* l : members) {
      const Node& n0 = original.graph.nodes[static_cast<size_t>(original.graph.node_index(l->node))];
      const Node& n1 = pruned.graph.nodes[static_cast<size_t>(pruned.graph.node_index(l->node))];
      LayerInput in0 = LayerInput::of(original.graph, n0), in1 = LayerInput::of(pruned.graph, n1);
      const std::string sig = in0.signature() + "|" + in1.signature();
      auto it = by_sig.find(sig);
      if (it == by_sig.end()) {
        auto p = std::make_unique<Pair>();
        p->in0 = std::move(in0);
        p->in1 = std::move(in1);
        watch0.insert(p->in0.value);
        watch1.insert(p->in1.value);
        it = by_sig.emplace(sig, p.get()).first;
        pairs.push_back(std::move(p));
      }
      work.push_back({l, it->second});
    }
    std::map<std::string, Tensor> seen0;
    const ValueHook hook0 = [&](const std::string& name, const Tensor& t) { seen0[name] = t; };
    const ValueHook hook1 = [&](const std::string& name, const Tensor& t) {
      for (auto& p : pairs)
        if (p->in1.value == name) p->add(seen0.at(p->in0.value), t, opt.chunk_bytes);
    };
    // This pass runs each model from its cached cut; unless it is the last, it also keeps the cut
    // at this stage's first node for the next pass (within the cache budget).
    const size_t next1 = first_index(pruned.graph, members);
    const size_t next0 = std::max(cut0, first_index(original.graph, members));
    const bool cache = !last && opt.cache_bytes > 0;
    const std::set<std::string> carry0 = cache ? cut_values(original.graph, next0) : std::set<std::string>();
    const std::set<std::string> carry1 = cache ? cut_values(pruned.graph, next1) : std::set<std::string>();
    std::set<std::string> need0 = watch0, need1 = watch1;
    need0.insert(carry0.begin(), carry0.end());
    need1.insert(carry1.begin(), carry1.end());
    Frontier n0, n1;
    n0.cut = next0, n1.cut = next1;
    bool keep = cache;
    const bool from_source = f0.cut == 0 || f1.cut == 0;
    const int64_t total = source.num_samples();
    int64_t done = 0;
    if (opt.progress) opt.progress(0, total);
    {
      // Gone before the weights they read are replaced.
      auto s0 = make_segment(original, f0.cut, need0, opt.exec);
      auto s1 = make_segment(pruned, f1.cut, need1, opt.exec);
      std::map<std::string, Tensor> batch;
      if (from_source) source.rewind();
      for (size_t b = 0;; ++b) {
        int64_t samples = 0;
        if (from_source) {
          if (!source.next(batch)) break;
          samples = source.last_batch_samples();
        } else {
          if (b >= f1.batches.size()) break;
          samples = f1.samples[b];
        }
        seen0.clear();
        std::map<std::string, Tensor> c0, c1;
        run_segment(*s0, f0.cut == 0 ? batch : f0.batches[b], hook0, watch0, carry0, keep ? &c0 : nullptr);
        run_segment(*s1, f1.cut == 0 ? batch : f1.batches[b], hook1, watch1, carry1, keep ? &c1 : nullptr);
        if (keep) {
          n0.bytes += tensors_bytes(c0);
          n1.bytes += tensors_bytes(c1);
          n0.batches.push_back(std::move(c0));
          n1.batches.push_back(std::move(c1));
          n0.samples.push_back(samples);
          n1.samples.push_back(samples);
          if (n0.bytes + n1.bytes > opt.cache_bytes) {  // over budget: the older cuts stay (still exact)
            keep = false;
            n0 = Frontier{};
            n1 = Frontier{};
          }
        }
        done += samples;
        if (opt.progress) opt.progress(done, total);
      }
      // The weight pages this pass read (mapped input or spilled tensors, shared with the models)
      // leave the resident set: over all passes they would be both whole models.
      for (const Segment* sg : {s0.get(), s1.get()})
        for (const auto& t : sg->sub.graph.initializers) release_pages(t.bytes);
    }
    if (keep) {
      f0 = std::move(n0);
      f1 = std::move(n1);
      cut0 = f0.cut;
    }
    ++rep.passes;
    for (const auto& [l, p] : work) rep.layers += solve_layer(original, pruned, *l, *p, opt.damping) ? 1 : 0;
    pruned.graph.invalidate();
    if (opt.spill) spill_owned_tensors(pruned.graph, *opt.spill, size_t(64) << 10);
    if (trace_memory()) std::fprintf(stderr, "[memory] reconstruction stage %d done: %s\n", rep.passes, memory_status_line().c_str());
  }
  return rep;
}

}  // namespace oc
