// Grouped (non-depthwise) convolutions: a unit removes the same slot from every group, so the
// conv keeps its group count and every group stays the same width.
#include <catch2/catch.hpp>

#include "graph/channel_deps.h"
#include "graph/onnx_io.h"
#include "prune_check.h"
#include "support.h"

using namespace oc;
using namespace oc::test;

namespace {

// x[1,8,10,10] -> conv a (8->12) -> relu -> grouped conv (group 4: 12->8, 3x3) -> relu -> conv c (8->6) -> y
Model grouped_model(uint64_t seed) {
  Model m = new_model(13);
  Graph& g = m.graph;
  auto w = [&](const std::string& name, std::vector<int64_t> dims) {
    g.add_initializer(random_tensor(name, dims, seed++, -0.5f, 0.5f));
  };
  g.inputs.push_back(tensor_value("x", {1, 8, 10, 10}));
  w("a", {12, 8, 1, 1}); w("a.b", {12});
  w("gw", {8, 3, 3, 3}); w("gw.b", {8});
  w("c", {6, 8, 1, 1}); w("c.b", {6});
  g.add_node(make_node("Conv", {"x", "a", "a.b"}, {"a1"}));
  g.add_node(make_node("Relu", {"a1"}, {"a2"}));
  Node gc = make_node("Conv", {"a2", "gw", "gw.b"}, {"g1"});
  gc.set_attr_int("group", 4);
  gc.set_attr_ints("pads", {1, 1, 1, 1});
  g.add_node(gc);
  g.add_node(make_node("Relu", {"g1"}, {"g2"}));
  g.add_node(make_node("Conv", {"g2", "c", "c.b"}, {"y"}));
  g.outputs.push_back(tensor_value("y", {1, 6, 10, 10}));
  return m;
}

}  // namespace

TEST_CASE("grouped conv units take the same slot from every group", "[prune]") {
  Model m = grouped_model(1);
  ChannelDeps d = build_channel_deps(m);
  // a's 12 outputs are 4 groups of 3 input slots: 3 units of 4 channels; the grouped conv's 8
  // outputs are 4 groups of 2: 2 units of 4 channels.
  REQUIRE(d.unit_of("a2", 0) == d.unit_of("a2", 3));
  CHECK(d.unit_of("a2", 0) == d.unit_of("a2", 9));
  CHECK(d.unit_of("a2", 0) != d.unit_of("a2", 1));
  CHECK(d.unit_of("g1", 1) == d.unit_of("g1", 7));
  CHECK(d.unit_of("g1", 0) != d.unit_of("g1", 1));
  CHECK(d.groups[d.spaces.at("a2").group].num_units == 3);
  CHECK(d.groups[d.spaces.at("g1").group].num_units == 2);
  for (uint64_t seed : {1, 2, 3}) prune_equals_mask(grouped_model(seed + 10), "grouped", seed, {}, 0.5);
}
