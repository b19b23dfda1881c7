// ExecutorOptions::denormals_as_zero (engine/denormals.h): CPU runs treat denormal float32 values
// as zero on every thread that computes, and leave each thread's floating-point environment as it
// found it (the library is embedded in other programs).
#include <catch2/catch.hpp>
#include <cmath>
#include <vector>
#include <xmmintrin.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "engine/denormals.h"
#include "engine/executor.h"
#include "support.h"

using namespace oc;
using namespace oc::test;

namespace {

constexpr unsigned kFtzDaz = 0x8040;

// MXCSR's FTZ/DAZ bits on each of `n` OpenMP threads (the calling thread first).
std::vector<unsigned> team_bits(int n) {
  std::vector<unsigned> bits(static_cast<size_t>(n), ~0u);
#ifdef _OPENMP
#pragma omp parallel num_threads(n)
  bits[static_cast<size_t>(omp_get_thread_num())] = _mm_getcsr() & kFtzDaz;
#else
  bits[0] = _mm_getcsr() & kFtzDaz;
#endif
  return bits;
}

}  // namespace

TEST_CASE("the executor computes denormals as zero on every thread and restores each thread's MXCSR", "[executor][denormals]") {
  // y = x · c over a tensor large enough that the elementwise kernel splits it across threads.
  const int64_t n = int64_t(1) << 20;
  const float tiny = 1e-39f;  // denormal (< 2^-126 ≈ 1.18e-38)
  REQUIRE(std::fpclassify(tiny) == FP_SUBNORMAL);
  Model m = new_model(13);
  m.graph.inputs.push_back(tensor_value("x", {n}));
  m.graph.outputs.push_back(tensor_value("y", {n}));
  m.graph.add_initializer(Tensor::from_float("c", {1}, {1.0f}));
  m.graph.add_node(make_node("Mul", {"x", "c"}, {"y"}, "mul"));
  const std::map<std::string, Tensor> in = {{"x", Tensor::from_float("x", {n}, std::vector<float>(static_cast<size_t>(n), tiny))}};

  const std::vector<unsigned> before = team_bits(2);
  for (unsigned b : before) REQUIRE(b == 0u);  // the test process computes with denormals
  for (bool flush : {true, false}) {
    INFO("denormals_as_zero " << flush);
    ExecutorOptions eo;
    eo.num_threads = 2;
    eo.denormals_as_zero = flush;
    Executor ex(m, eo);
    const std::vector<float> y = ex.run(in).at("y").to_float();
    int64_t zeros = 0, kept = 0;
    for (float v : y) zeros += v == 0.f, kept += v == tiny;
    if (flush) CHECK(zeros == n);  // the workers' share too
    else CHECK(kept == n);
    CHECK(team_bits(2) == before);
  }

  // The guard alone: set inside, the old bits back after, also when the caller had set them.
  {
    DenormalsAsZero guard(2);
    for (unsigned b : team_bits(2)) CHECK(b == kFtzDaz);
    volatile float a = tiny, one = 1.f;
    CHECK(a * one == 0.f);
  }
  CHECK(team_bits(2) == before);
  const unsigned caller = _mm_getcsr();
  _mm_setcsr(caller | kFtzDaz);
  { DenormalsAsZero guard(2); }
  CHECK((_mm_getcsr() & kFtzDaz) == kFtzDaz);
  _mm_setcsr(caller);
}
