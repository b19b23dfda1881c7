// Large activation buffers kept for the next value of about the same size.
//
// A run allocates every activation afresh and frees it after its last reader. Below glibc's mmap
// threshold (32 MiB at most, engine/kernel.cpp) freed blocks are reused by the heap; above it each
// allocation is a new mapping whose pages the kernel faults in and clears, and value-initializing
// the vector writes them again: at batch 8, mobilenet_v2 spent 44% of its run there (perf: clear_page
// 21%, memset 7%, faults). The executor hands released buffers of at least kMinBytes to this pool
// and kernels take their outputs from it; runs with a value hook (calibration) keep nothing. Per thread (the executor allocates and releases on the
// calling thread), bounded in count and bytes, emptied when an Executor is destroyed.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

namespace oc::buffer_pool {

constexpr size_t kMinBytes = size_t(4) << 20;    // smaller blocks: the heap reuses them anyway
constexpr size_t kMaxBytes = size_t(256) << 20;  // all kept buffers together
constexpr size_t kMaxBuffers = 16;

// Storage of exactly n bytes: a kept buffer whose capacity is n..2n when there is one, else a new
// one. Zeroed when `zero` (a new buffer always is); otherwise it holds old bytes and the caller
// writes every byte.
std::vector<uint8_t> take(size_t n, bool zero = true);
// Keeps `v` for a later take() when it is large and the pool has room; else frees it.
void give(std::vector<uint8_t>&& v);
// Frees every kept buffer of this thread.
void clear();
// Bytes kept by this thread's pool (tests).
size_t kept_bytes();

}  // namespace oc::buffer_pool
