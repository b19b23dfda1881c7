// `prune` and `quantize` are one-step recipes: their flags become the step's options (keyed by
// long option name), so the subcommand and a recipe step take options exactly the same way,
// and both write the shared report format.
#pragma once
#include <string>
#include <vector>

#include "cli/command.h"
#include "engine/image_data.h"

namespace oc::cli {

// Adds the options every step command has (model, -o, --calib, --report, --html, ...) to `opts`.
void add_common_step_options(po::options_description& opts);
// Image preprocessing and bad-sample options (--mean, --std, --bgr, --resize, --skip-bad-samples),
// shared by prune, quantize, compress and evaluate; image_options reads them back.
void add_image_options(po::options_description& opts);
ImageOptions image_options(const po::variables_map& vm);
// Runs `kind` with the step options found in `vm` (every option not in the common set).
int run_step_command(const std::string& kind, const po::variables_map& vm);

}  // namespace oc::cli
