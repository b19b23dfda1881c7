// engine/buffer_pool.h: large activation buffers are reused by the next output of about their size,
// and a reused buffer's old bytes never reach a result.
#include <catch2/catch.hpp>

#include "engine/buffer_pool.h"
#include "engine/executor.h"
#include "graph/normalize.h"
#include "tests/support.h"

using namespace oc;
using namespace oc::test;

TEST_CASE("buffer pool: a kept buffer serves the next take of about its size, zeroed on request", "[executor][pool]") {
  buffer_pool::clear();
  const size_t n = buffer_pool::kMinBytes;
  std::vector<uint8_t> a(n + 4096, 7);
  const uint8_t* p = a.data();
  buffer_pool::give(std::move(a));
  CHECK(buffer_pool::kept_bytes() == n + 4096);
  std::vector<uint8_t> tiny = buffer_pool::take(n / 4);  // small: never from the pool
  CHECK(buffer_pool::kept_bytes() == n + 4096);
  std::vector<uint8_t> b = buffer_pool::take(n, /*zero=*/false);
  CHECK(b.data() == p);
  CHECK(b.size() == n);
  CHECK(b[0] == 7);  // old bytes: the caller writes every one
  CHECK(buffer_pool::kept_bytes() == 0);
  buffer_pool::give(std::move(b));
  std::vector<uint8_t> c = buffer_pool::take(n + 4096);  // grows within capacity, all zeroed
  CHECK(c.data() == p);
  CHECK(std::all_of(c.begin(), c.end(), [](uint8_t v) { return v == 0; }));
  buffer_pool::give(std::vector<uint8_t>(1024));  // small: freed, not kept
  CHECK(buffer_pool::kept_bytes() == 0);
  buffer_pool::clear();
}

TEST_CASE("runs whose activations come from the pool give a fresh executor's numbers", "[executor][pool]") {
  // Conv outputs of 16 x 256 x 256 floats (4 MiB): large enough to be pooled between and across runs.
  Model m = new_model(13);
  Graph& g = m.graph;
  g.inputs.push_back(tensor_value("x", {1, 3, 256, 256}));
  g.add_initializer(random_tensor("w1", {16, 3, 3, 3}, 1, -0.5f, 0.5f));
  g.add_initializer(random_tensor("w2", {16, 16, 3, 3}, 2, -0.5f, 0.5f));
  g.add_initializer(random_tensor("w3", {16, 16, 1, 1}, 3, -0.5f, 0.5f));
  g.add_initializer(random_tensor("dw", {16, 1, 3, 3}, 4, -0.5f, 0.5f));
  // dense 3x3, dense 3x3, depthwise 3x3 and 1x1: each path of the conv kernel (in N,C,H,W runs the
  // last two are its own loops, which need a zeroed output)
  for (auto [x, w, y] : {std::tuple{"x", "w1", "c1"}, {"c1", "w2", "c2"}, {"c2", "dw", "d"}, {"d", "w3", "c3"}}) {
    Node n = make_node("Conv", {x, w}, {y});
    n.set_attr_ints("pads", {1, 1, 1, 1});
    if (std::string(w) == "w3") n.set_attr_ints("pads", {0, 0, 0, 0});
    if (std::string(w) == "dw") n.set_attr_int("group", 16);
    g.add_node(n);
  }
  g.add_node(make_node("Relu", {"c3"}, {"r"}));
  g.add_node(make_node("Add", {"r", "c2"}, {"y"}));
  g.outputs = {tensor_value("y", {1, 16, 256, 256})};
  normalize(m);
  const std::map<std::string, Tensor> a = {{"x", random_tensor("x", {1, 3, 256, 256}, 5)}};
  const std::map<std::string, Tensor> b = {{"x", random_tensor("x", {1, 3, 256, 256}, 6, -3.f, 1.f)}};
  for (bool cl : {false, true}) {
    INFO("channels-last " << cl);
    ExecutorOptions o;
    o.num_threads = 1;
    o.channels_last = cl;
    Tensor want;
    {
      Executor fresh(m, o);
      want = fresh.run(b).at("y");
    }
    Executor ex(m, o);
    ex.run(a);
    CHECK(buffer_pool::kept_bytes() > 0);  // a's activations wait for b's
    CHECK(bitwise_equal(ex.run(b).at("y"), want));
    CHECK(bitwise_equal(ex.run(b).at("y"), want));
  }
  CHECK(buffer_pool::kept_bytes() == 0);  // emptied with the executors
}
