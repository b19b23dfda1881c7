// A MAC target the --round-to steps jump over by more than kPruneOvershootLimit is an error naming
// the nearest plans (never a silent overshoot); --best-effort writes the plan below and says so.
#include <catch2/catch.hpp>

#include "graph/errors.h"
#include "prune/prune.h"
#include "support.h"

using namespace oc;
using namespace oc::test;

namespace {

// x[1,8,8,8] -> conv a (8->16, 3x3) -> relu -> conv b (16->4, 1x1) -> y: one group of 16 channels,
// so --round-to 8 can keep 8 or 16 of them (about 0.5 or 1.0 of the MACs).
Model coarse_model() {
  Model m = new_model(13);
  Graph& g = m.graph;
  g.inputs.push_back(tensor_value("x", {1, 8, 8, 8}));
  g.add_initializer(random_tensor("a", {16, 8, 3, 3}, 1));
  g.add_initializer(random_tensor("b", {4, 16, 1, 1}, 2));
  Node a = make_node("Conv", {"x", "a"}, {"a1"}, "conv_a");
  a.set_attr_ints("pads", {1, 1, 1, 1});
  g.add_node(a);
  g.add_node(make_node("Relu", {"a1"}, {"a2"}, "relu"));
  g.add_node(make_node("Conv", {"a2", "b"}, {"y"}, "conv_b"));
  g.outputs.push_back(tensor_value("y", {1, 4, 8, 8}));
  return m;
}

}  // namespace

TEST_CASE("a target the --round-to steps overshoot by more than 0.03 fails unless --best-effort", "[prune]") {
  PruneOptions o;
  o.target_macs = 0.75;
  o.criterion = Criterion::L1;
  {
    Model m = coarse_model();
    std::string msg;
    try {
      prune_model(m, o);
    } catch (const Error& e) {
      msg = e.what();
    }
    INFO(msg);
    CHECK_THAT(msg, Catch::Contains("target 0.750 of MACs cannot be met within 0.03 at --round-to 8") &&
                        Catch::Contains("the nearest plans keep 0.5") && Catch::Contains("1.000") &&
                        Catch::Contains("--best-effort"));
    CHECK(msg.find('\n') == std::string::npos);
  }
  {
    Model m = coarse_model();
    PruneOptions be = o;
    be.best_effort = true;
    PruneReport r = prune_model(m, be);
    CHECK(r.target["status"] == "overshot");
    CHECK(r.target["reached"].get<double>() < 0.75 - kPruneOvershootLimit);
    CHECK_THAT(r.target["note"].get<std::string>(), Catch::StartsWith("best effort: target 0.750 of MACs cannot be met"));
  }
  {
    Model m = coarse_model();
    PruneOptions fine = o;
    fine.round_to = 1;
    PruneReport r = prune_model(m, fine);
    CHECK(r.target["status"] == "met");
    CHECK(std::fabs(r.target["reached"].get<double>() - 0.75) <= kPruneTargetTolerance);
  }
}
