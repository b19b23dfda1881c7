// Progress bars for long work, drawn on stderr only when it is a terminal (quiet otherwise).
#pragma once
#include <cstdint>
#include <string>

namespace oc::cli {

class ProgressBar {
 public:
  ProgressBar();  // enabled iff stderr is a tty
  void update(const std::string& label, int64_t done, int64_t total);
  void finish();
  bool enabled() const { return enabled_; }

 private:
  bool enabled_;
  bool drawn_ = false;
  std::string last_label_;
};

}  // namespace oc::cli
