#include "cli/progress.h"

#include <iostream>

#include "cli/command.h"

namespace oc::cli {

ProgressBar::ProgressBar() : enabled_(stderr_is_tty()) {}

void ProgressBar::update(const std::string& label, int64_t done, int64_t total) {
  if (!enabled_) return;
  if (drawn_ && label != last_label_) std::cerr << "\n";
  last_label_ = label;
  const int width = 30;
  int filled = total > 0 ? static_cast<int>(width * done / total) : 0;
  std::cerr << "\r" << label << " [" << std::string(static_cast<size_t>(filled), '#')
            << std::string(static_cast<size_t>(width - filled), '.') << "] " << done << "/" << total << std::flush;
  drawn_ = true;
}

void ProgressBar::finish() {
  if (enabled_ && drawn_) std::cerr << "\n";
  drawn_ = false;
}

}  // namespace oc::cli
