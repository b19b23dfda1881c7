#include "engine/denormals.h"

#if defined(__SSE__) || defined(__x86_64__)
#include <xmmintrin.h>
#define OC_HAVE_MXCSR 1
#endif
#ifdef _OPENMP
#include <omp.h>
#endif

namespace oc {

namespace {

// A worker the constructor's region did not reach (a smaller team, say inside a nested region)
// keeps its bits: MXCSR's upper 16 bits are reserved zeros, so no saved value equals this.
constexpr unsigned kNotSet = ~0u;

#ifdef OC_HAVE_MXCSR
constexpr unsigned kFtzDaz = 0x8040;  // FTZ (bit 15) | DAZ (bit 6)
unsigned set_ftz_daz() {
  const unsigned old = _mm_getcsr();
  _mm_setcsr(old | kFtzDaz);
  return old;
}
void restore(unsigned old) { _mm_setcsr((_mm_getcsr() & ~kFtzDaz) | (old & kFtzDaz)); }
#else
unsigned set_ftz_daz() { return 0; }
void restore(unsigned) {}
#endif

}  // namespace

DenormalsAsZero::DenormalsAsZero(int threads) : threads_(threads < 1 ? 1 : threads) {
  caller_ = set_ftz_daz();
#ifdef _OPENMP
  workers_.assign(static_cast<size_t>(threads_), kNotSet);
  // One parallel region over the team the kernels' regions reuse (same size: OpenMP keeps its
  // threads, and the thread with a given number is the same one across regions of that size).
  unsigned* w = workers_.data();
  const int n = threads_;
#pragma omp parallel num_threads(n)
  {
    const int t = omp_get_thread_num();
    if (t > 0 && t < n) w[t] = set_ftz_daz();
  }
#endif
}

DenormalsAsZero::~DenormalsAsZero() {
#ifdef _OPENMP
  const unsigned* w = workers_.data();
  const int n = threads_;
#pragma omp parallel num_threads(n)
  {
    const int t = omp_get_thread_num();
    if (t > 0 && t < n && w[t] != kNotSet) restore(w[t]);
  }
#endif
  restore(caller_);
}

}  // namespace oc
