// CUDA runtime plumbing for the backend: error checks, a caching device allocator, and cuBLAS
// loaded at run time (dlopen), so the binary links only the static CUDA runtime and starts on
// machines without a GPU or without cuBLAS — the backend then says why it cannot run.
#pragma once
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <cublas_v2.h>
#include <cuda_runtime.h>

namespace oc::cuda {

[[noreturn]] void fail(cudaError_t e, const char* what);
[[noreturn]] void fail_blas(cublasStatus_t e, const char* what);
#define OC_CUDA_CHECK(x)                                 \
  do {                                                   \
    const cudaError_t oc_e_ = (x);                       \
    if (oc_e_ != cudaSuccess) ::oc::cuda::fail(oc_e_, #x); \
  } while (0)
#define OC_BLAS_CHECK(x)                                           \
  do {                                                             \
    const cublasStatus_t oc_s_ = (x);                              \
    if (oc_s_ != CUBLAS_STATUS_SUCCESS) ::oc::cuda::fail_blas(oc_s_, #x); \
  } while (0)

// Whether a CUDA device can be used; `why` gets the reason when not.
bool device_usable(std::string* why);

// Exact-size free lists: calibration runs the same shapes batch after batch, so after the first
// batch every allocation is a reuse. Everything is released with the pool.
class DevicePool {
 public:
  DevicePool() = default;
  DevicePool(const DevicePool&) = delete;
  DevicePool& operator=(const DevicePool&) = delete;
  ~DevicePool();
  void* get(size_t bytes);
  void put(void* p, size_t bytes);
  size_t held_bytes() const { return held_; }
  size_t peak_bytes() const { return peak_; }

 private:
  std::map<size_t, std::vector<void*>> free_;
  size_t held_ = 0, peak_ = 0, in_use_ = 0;
};

// Move-only device allocation from a pool.
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  DeviceBuffer(DevicePool& pool, size_t bytes) : pool_(&pool), bytes_(bytes), ptr_(bytes ? pool.get(bytes) : nullptr) {}
  DeviceBuffer(DeviceBuffer&& o) noexcept { *this = std::move(o); }
  DeviceBuffer& operator=(DeviceBuffer&& o) noexcept {
    if (this != &o) {
      reset();
      pool_ = o.pool_;
      bytes_ = o.bytes_;
      ptr_ = o.ptr_;
      o.ptr_ = nullptr;
      o.bytes_ = 0;
    }
    return *this;
  }
  ~DeviceBuffer() { reset(); }
  void reset() {
    if (ptr_) pool_->put(ptr_, bytes_);
    ptr_ = nullptr;
    bytes_ = 0;
  }
  template <typename T = void> T* get() const { return static_cast<T*>(ptr_); }
  size_t bytes() const { return bytes_; }
  explicit operator bool() const { return ptr_ != nullptr; }

 private:
  DevicePool* pool_ = nullptr;
  size_t bytes_ = 0;
  void* ptr_ = nullptr;
};

// The cuBLAS entry points the backend uses, resolved from libcublas.so at first use.
struct Blas {
  decltype(&cublasCreate_v2) create = nullptr;
  decltype(&cublasDestroy_v2) destroy = nullptr;
  decltype(&cublasSetStream_v2) set_stream = nullptr;
  decltype(&cublasSetMathMode) set_math_mode = nullptr;
  decltype(&cublasSgemm_v2) sgemm = nullptr;
  decltype(&cublasSgemmStridedBatched) sgemm_strided_batched = nullptr;
  decltype(&cublasDsyrk_v2) dsyrk = nullptr;
  decltype(&cublasDgemv_v2) dgemv = nullptr;
  // Loads the library once; throws UnsupportedError naming what was tried when it is absent.
  static const Blas& get();
};

// One stream and one cuBLAS handle (FP32 math, no TF32: results must agree with the CPU to 1e-4).
class DeviceContext {
 public:
  DeviceContext();
  ~DeviceContext();
  DeviceContext(const DeviceContext&) = delete;
  DeviceContext& operator=(const DeviceContext&) = delete;
  cudaStream_t stream() const { return stream_; }
  cublasHandle_t blas_handle() const { return handle_; }
  const Blas& blas() const { return *blas_; }
  DevicePool& pool() { return pool_; }
  void sync() const;
  void upload(void* dst, const void* src, size_t bytes) const;
  void download(void* dst, const void* src, size_t bytes) const;  // synchronizes

  // Row-major C[m,n] = alpha·op(A)[m,k]·op(B)[k,n] + beta·C.
  void gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda,
            const float* b, int64_t ldb, float beta, float* c, int64_t ldc) const;
  void gemm_batched(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, const float* a, int64_t lda,
                    int64_t stride_a, const float* b, int64_t ldb, int64_t stride_b, float* c, int64_t ldc,
                    int64_t stride_c, int64_t batch) const;

 private:
  DevicePool pool_;  // declared first: destroyed after anything holding buffers in this context
  const Blas* blas_ = nullptr;
  cudaStream_t stream_ = nullptr;
  cublasHandle_t handle_ = nullptr;
};

}  // namespace oc::cuda
