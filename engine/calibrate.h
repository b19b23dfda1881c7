// One calibration pass: run the executor over every batch of a CalibrationSource with the
// observers a CalibrationPlan asks for, and return their statistics as plain data.
#pragma once
#include <functional>
#include <memory>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "engine/calib_data.h"
#include "engine/calibration_plan.h"
#include "engine/executor.h"
#include "engine/observers.h"
#include "engine/statistics.h"

namespace oc {

// Called after each batch with samples done and the total (and once with 0 before the first).
// Throw oc::Cancelled from it to stop.
using ProgressFn = std::function<void(int64_t done, int64_t total)>;

// Builds the plan's observers, validating every name against the model (main and nested graphs)
// (InvalidArgument naming the first unknown value or node; UnsupportedError for layers without a
// Gram). `aliases` receives the layers that share another layer's observer.
struct ObserverAlias {
  bool gram;           // true: stats.grams, false: stats.columns
  std::string layer;   // copies the statistic of
  std::string source;
  bool from_gram = false;  // columns taken from the diagonal of stats.grams[source]
};
// `on_device`: min/max and Gram observers take GPU values in place (the CUDA backend's).
std::vector<std::unique_ptr<Observer>> make_observers(const Model& model, const CalibrationPlan& plan,
                                                      std::vector<ObserverAlias>* aliases = nullptr,
                                                      bool on_device = false);

// A plan's observers by the values they watch, with the hook that feeds them: what every calibration
// loop (whole model, by segments, GPTQ's sequential stages) builds around its runs.
class ObserverSet {
 public:
  ObserverSet(const Model& model, const CalibrationPlan& plan, bool on_device = false);
  const std::set<std::string>& watch() const { return watch_; }
  const std::unordered_map<std::string, std::vector<Observer*>>& by_value() const { return by_value_; }
  // Feeds a value to its observers; empty when nothing is watched (an empty watch set means "every
  // value" to the executor, so a loop passes no hook instead).
  ValueHook hook();
  void end_batch();
  // Each observer's statistic, with the aliased layers' copies; an observer is freed once stored, so
  // its accumulator and the stored copy overlap one at a time. The set is empty afterwards.
  CalibrationStats store();

 private:
  std::vector<ObserverAlias> aliases_;  // before observers_: make_observers fills it while they are built
  std::vector<std::unique_ptr<Observer>> observers_;
  std::unordered_map<std::string, std::vector<Observer*>> by_value_;
  std::set<std::string> watch_;
};

// The Gram's diagonal as column squares (what a ColumnSquaresObserver of the same layer gives, to
// the Gram's rounding).
ColumnStat gram_diagonal(const GramStat& g);

// `model` must be normalized. The source is rewound and read to its end.
CalibrationStats calibrate(const Model& model, CalibrationSource& source, const CalibrationPlan& plan,
                           const ProgressFn& progress = nullptr, const ExecutorOptions& exec = {});

}  // namespace oc
