// Detection and sampling ops: NonMaxSuppression and GridSample.
//
// NonMaxSuppression: per batch and class, boxes sorted by score (descending, stable) above
// score_threshold; greedily keep a box unless its IoU with a kept one exceeds iou_threshold, up to
// max_output_boxes_per_class. Output rows (batch, class, box) in that order.
// GridSample (N,C,H,W) at grid (N,Ho,Wo,2) of (x, y) in [-1, 1]: x = ((g+1)·W − 1)/2, or
// (g+1)/2·(W−1) with align_corners; padding zeros / border / reflection as PyTorch's grid_sample
// (the coordinate is clipped or reflected, bicubic taps each); modes nearest (half to even),
// bilinear, bicubic (A = −0.75).
#include <cmath>
#include <numeric>

#include "engine/kernels/common.h"

namespace oc {
namespace {

using namespace kern;

double scalar_input(const KernelContext& ctx, size_t i, double def) {
  if (!ctx.has_input(i) || ctx.input(i).numel() == 0) return def;
  return ctx.input(i).dtype == DType::Int64 || ctx.input(i).dtype == DType::Int32
             ? static_cast<double>(ctx.input(i).to_int64()[0])
             : static_cast<double>(ctx.input(i).to_float()[0]);
}

void nms_kernel(KernelContext& ctx) {
  const Tensor& boxes_t = ctx.input(0);
  const Tensor& scores_t = ctx.input(1);
  if (boxes_t.dims.size() != 3 || boxes_t.dims[2] != 4) bad_input(ctx, "boxes must be [batch, boxes, 4]");
  if (scores_t.dims.size() != 3 || scores_t.dims[0] != boxes_t.dims[0] || scores_t.dims[2] != boxes_t.dims[1])
    bad_input(ctx, "scores must be [batch, classes, boxes]");
  const int64_t B = boxes_t.dims[0], S = boxes_t.dims[1], C = scores_t.dims[1];
  const int64_t max_out = static_cast<int64_t>(scalar_input(ctx, 2, 0));
  const float iou_thr = static_cast<float>(scalar_input(ctx, 3, 0));
  const bool has_score_thr = ctx.has_input(4) && ctx.input(4).numel() > 0;
  const float score_thr = static_cast<float>(scalar_input(ctx, 4, 0));
  const bool center = ctx.node.attr_int("center_point_box", 0) != 0;
  const auto bv = boxes_t.to_float(), sv = scores_t.to_float();
  // Corners (y1, x1, y2, x2) with y1 <= y2, x1 <= x2.
  auto corners = [&](int64_t b, int64_t i, float* c) {
    const float* p = &bv[(b * S + i) * 4];
    if (center) {
      c[0] = p[1] - p[3] / 2, c[1] = p[0] - p[2] / 2, c[2] = p[1] + p[3] / 2, c[3] = p[0] + p[2] / 2;
    } else {
      c[0] = std::min(p[0], p[2]), c[1] = std::min(p[1], p[3]), c[2] = std::max(p[0], p[2]), c[3] = std::max(p[1], p[3]);
    }
  };
  auto iou = [](const float* a, const float* b) {
    const float ih = std::min(a[2], b[2]) - std::max(a[0], b[0]), iw = std::min(a[3], b[3]) - std::max(a[1], b[1]);
    if (ih <= 0 || iw <= 0) return 0.f;
    const float inter = ih * iw;
    const float uni = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter;
    return uni > 0 ? inter / uni : 0.f;
  };
  std::vector<int64_t> rows;
  std::vector<float> box(S * 4);
  for (int64_t b = 0; b < B; ++b) {
    for (int64_t i = 0; i < S; ++i) corners(b, i, &box[i * 4]);
    for (int64_t c = 0; c < C; ++c) {
      if (max_out <= 0) break;
      const float* sc = &sv[(b * C + c) * S];
      std::vector<int64_t> cand;
      for (int64_t i = 0; i < S; ++i)
        if (!has_score_thr || sc[i] > score_thr) cand.push_back(i);
      std::stable_sort(cand.begin(), cand.end(), [&](int64_t x, int64_t y) { return sc[x] > sc[y]; });
      std::vector<int64_t> kept;
      for (int64_t i : cand) {
        if (static_cast<int64_t>(kept.size()) >= max_out) break;
        bool keep = true;
        for (int64_t k : kept)
          if (iou(&box[i * 4], &box[k * 4]) > iou_thr) {
            keep = false;
            break;
          }
        if (keep) {
          kept.push_back(i);
          rows.insert(rows.end(), {b, c, i});
        }
      }
    }
  }
  ctx.output(0) = Tensor::from_int64("", {static_cast<int64_t>(rows.size() / 3), 3}, rows);
}

// PyTorch's reflect_coordinates over [lo/2, hi/2] given twice the bounds.
double reflect(double x, double twice_lo, double twice_hi) {
  if (twice_lo == twice_hi) return 0;
  const double lo = twice_lo / 2, span = (twice_hi - twice_lo) / 2;
  x = std::fabs(x - lo);
  const double extra = std::fmod(x, span);
  const int64_t flips = static_cast<int64_t>(std::floor(x / span));
  return flips % 2 == 0 ? extra + lo : span - extra + lo;
}

void grid_sample_kernel(KernelContext& ctx) {
  const Tensor& X = ctx.input(0);
  const Tensor& G = ctx.input(1);
  if (X.dims.size() != 4) ctx.unsupported("input of rank " + std::to_string(X.dims.size()) + " (4-D only)");
  if (G.dims.size() != 4 || G.dims[0] != X.dims[0] || G.dims[3] != 2) bad_input(ctx, "grid must be [N, H_out, W_out, 2]");
  if (X.dtype != DType::Float) ctx.unsupported("element type " + dtype_name(X.dtype));
  const std::string mode = ctx.node.attr_string("mode", "bilinear");
  const std::string pad = ctx.node.attr_string("padding_mode", "zeros");
  const bool ac = ctx.node.attr_int("align_corners", 0) != 0;
  if (mode != "bilinear" && mode != "nearest" && mode != "bicubic") ctx.unsupported("mode '" + mode + "'");
  if (pad != "zeros" && pad != "border" && pad != "reflection") ctx.unsupported("padding_mode '" + pad + "'");
  const int64_t N = X.dims[0], C = X.dims[1], H = X.dims[2], W = X.dims[3], Ho = G.dims[1], Wo = G.dims[2];
  const float* x = X.data<float>();
  const auto g = G.to_float();
  Tensor out = make_tensor(DType::Float, {N, C, Ho, Wo});
  float* o = out.data<float>();
  auto unnorm = [&](double v, int64_t size) { return ac ? (v + 1) / 2 * (size - 1) : ((v + 1) * size - 1) / 2; };
  auto pad_coord = [&](double v, int64_t size) {
    if (pad == "border") return std::clamp(v, 0.0, double(size - 1));
    if (pad == "reflection") {
      v = ac ? reflect(v, 0, 2.0 * (size - 1)) : reflect(v, -1, 2.0 * size - 1);
      return std::clamp(v, 0.0, double(size - 1));
    }
    return v;
  };
  auto cubic = [](double t) {
    const double A = -0.75;
    t = std::fabs(t);
    if (t <= 1) return ((A + 2) * t - (A + 3)) * t * t + 1;
    if (t < 2) return ((A * t - 5 * A) * t + 8 * A) * t - 4 * A;
    return 0.0;
  };
  for (int64_t n = 0; n < N; ++n)
    for (int64_t i = 0; i < Ho; ++i)
      for (int64_t j = 0; j < Wo; ++j) {
        const float* gp = &g[((n * Ho + i) * Wo + j) * 2];
        double ix = unnorm(gp[0], W), iy = unnorm(gp[1], H);
        for (int64_t c = 0; c < C; ++c) {
          const float* img = x + (n * C + c) * H * W;
          auto at = [&](int64_t yy, int64_t xx) -> double {
            if (yy < 0 || yy >= H || xx < 0 || xx >= W) return 0.0;
            return img[yy * W + xx];
          };
          double v = 0;
          if (mode == "bicubic") {
            const double fx = std::floor(ix), fy = std::floor(iy), tx = ix - fx, ty = iy - fy;
            for (int a = -1; a <= 2; ++a) {
              const double wy = cubic(ty - a);
              for (int b2 = -1; b2 <= 2; ++b2) {
                const double wx = cubic(tx - b2);
                double yy = fy + a, xx = fx + b2;
                if (pad != "zeros") yy = pad_coord(yy, H), xx = pad_coord(xx, W);
                v += wy * wx * at(static_cast<int64_t>(yy), static_cast<int64_t>(xx));
              }
            }
          } else {
            const double px = pad_coord(ix, W), py = pad_coord(iy, H);
            if (mode == "nearest") {
              v = at(static_cast<int64_t>(std::nearbyint(py)), static_cast<int64_t>(std::nearbyint(px)));
            } else {
              const int64_t x0 = static_cast<int64_t>(std::floor(px)), y0 = static_cast<int64_t>(std::floor(py));
              const double tx = px - x0, ty = py - y0;
              v = (1 - ty) * ((1 - tx) * at(y0, x0) + tx * at(y0, x0 + 1)) +
                  ty * ((1 - tx) * at(y0 + 1, x0) + tx * at(y0 + 1, x0 + 1));
            }
          }
          o[((n * C + c) * Ho + i) * Wo + j] = static_cast<float>(v);
        }
      }
  ctx.output(0) = std::move(out);
}

}  // namespace

void register_detection_kernels(KernelRegistry& r) {
  r.add("NonMaxSuppression", nms_kernel);
  r.add("GridSample", grid_sample_kernel);
}

}  // namespace oc
