#include "graph/flush_denormals.h"

#include <cmath>
#include <limits>

#include "graph/subgraphs.h"

namespace oc {

namespace {

bool denormal(float v) { return v != 0.f && std::fabs(v) < std::numeric_limits<float>::min(); }

}  // namespace

int64_t flush_denormal_weights(Model& m) {
  int64_t flushed = 0;
  for (const auto& s : all_graphs(m.graph))
    for (Tensor& t : s.graph->initializers) {
      if (t.dtype != DType::Float) continue;
      const size_t n = t.nbytes() / sizeof(float);
      size_t first = 0;
      // A transient view: an external-data weight is read without staying mapped (models larger than memory).
      t.bytes.view([&](const uint8_t* p) {
        const float* r = reinterpret_cast<const float*>(p);
        while (first < n && !denormal(r[first])) ++first;
      });
      if (first == n) continue;
      float* w = t.data<float>();  // materializes, only for the tensors that change
      for (size_t i = first; i < n; ++i)
        if (denormal(w[i])) w[i] = 0.f, ++flushed;
    }
  return flushed;
}

}  // namespace oc
