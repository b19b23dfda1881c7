#include "engine/cpu_features.h"

#if defined(__x86_64__) || defined(_M_X64)
#include <cpuid.h>
#endif

namespace oc {

namespace {

CpuFeatures detect() {
  CpuFeatures f;
#if defined(__x86_64__) || defined(_M_X64)
  unsigned a = 0, b = 0, c = 0, d = 0;
  if (!__get_cpuid(1, &a, &b, &c, &d)) return f;
  const bool osxsave = (c >> 27) & 1;
  unsigned long long xcr0 = 0;
  if (osxsave) {
    unsigned lo = 0, hi = 0;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    xcr0 = (static_cast<unsigned long long>(hi) << 32) | lo;
  }
  if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return f;
  const bool ymm = (xcr0 & 0x6) == 0x6, zmm = (xcr0 & 0xe6) == 0xe6, tiles = (xcr0 & 0x60000) == 0x60000;
  f.avx2 = ymm && ((b >> 5) & 1);
  f.avx512_vnni = zmm && ((b >> 16) & 1) && ((c >> 11) & 1);
  f.amx_int8 = tiles && ((d >> 24) & 1) && ((d >> 25) & 1);
#endif
  return f;
}

}  // namespace

const CpuFeatures& host_cpu_features() {
  static const CpuFeatures f = detect();
  return f;
}

}  // namespace oc
