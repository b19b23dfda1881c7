// Atomic file writes: data goes to a temporary file beside the target (same folder, so the
// rename stays on one file system) and is renamed over it only when complete, so a failed or
// interrupted write never leaves a partial output. Used for models, reports and .npy files.
#pragma once
#include <filesystem>
#include <string>

namespace oc {

// "<name>.tmp-<pid>" beside `p`: unique per process, matched by the .gitignore pattern *.tmp-*.
std::filesystem::path temp_path_for(const std::filesystem::path& p);

// Writes `bytes` to `p` atomically; throws SaveError naming `p` (the temporary file is removed).
void write_file_atomic(const std::filesystem::path& p, const std::string& bytes);

}  // namespace oc
