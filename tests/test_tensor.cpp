#include <catch2/catch.hpp>
#include <fstream>

#include "engine/npy.h"
#include "graph/tensor.h"
#include "support.h"

using namespace oc;

TEST_CASE("4-bit packing round-trips every value, low nibble first", "[tensor]") {
  std::vector<int8_t> s, u;
  for (int i = 0; i < 33; ++i) { s.push_back(static_cast<int8_t>(i % 16 - 8)); u.push_back(static_cast<int8_t>(i % 16)); }
  Tensor ts = Tensor::from_4bit("s", DType::Int4, {33}, s);
  Tensor tu = Tensor::from_4bit("u", DType::UInt4, {33}, u);
  CHECK(ts.bytes.size() == 17);
  for (int i = 0; i < 33; ++i) {
    CHECK(ts.get_4bit(i) == s[static_cast<size_t>(i)]);
    CHECK(tu.get_4bit(i) == u[static_cast<size_t>(i)]);
  }
  CHECK((tu.bytes[0] & 0x0F) == 0);
  CHECK((tu.bytes[0] >> 4) == 1);
  auto f = ts.to_float();
  CHECK(f[0] == -8.f);
  CHECK(f[15] == 7.f);
}

TEST_CASE("fp16 and bf16 conversion", "[tensor]") {
  std::vector<float> v = {0.f, 1.f, -2.5f, 65504.f, 1e-4f};
  Tensor h = Tensor::from_float_as("h", DType::Float16, {5}, v);
  auto back = h.to_float();
  for (size_t i = 0; i < v.size(); ++i) CHECK(back[i] == Approx(v[i]).epsilon(1e-3));
  Tensor b = Tensor::from_float_as("b", DType::BFloat16, {5}, v);
  CHECK(b.to_float()[2] == -2.5f);
  CHECK_THROWS_AS(h.data<float>(), Error);
}

TEST_CASE("npy round trip and npz reading", "[npy]") {
  auto dir = test::temp_dir("npy");
  Tensor t = Tensor::from_float("t", {2, 3}, {1, 2, 3, 4, 5, 6});
  write_npy(dir / "t.npy", t);
  Tensor r = read_npy(dir / "t.npy");
  CHECK(r.dims == t.dims);
  CHECK(r.bytes == t.bytes);
  Tensor s = Tensor::from_int64("s", {}, {42});
  write_npy(dir / "s.npy", s);
  CHECK(read_npy(dir / "s.npy").to_int64() == std::vector<int64_t>{42});
  CHECK(safe_file_name("a/b:c d.x") == "a_b_c_d.x");
  std::ofstream(dir / "bad.npy") << "nope";
  CHECK_THROWS_AS(read_npy(dir / "bad.npy"), InvalidArgument);
}
