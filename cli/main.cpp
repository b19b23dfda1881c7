// onnx-compress: entry point. Dispatches to subcommands; turns errors into one-line messages.
#include <iostream>

#include "cli/command.h"
#include "engine/kernel.h"
#include "graph/errors.h"

namespace oc::cli {

std::map<std::string, Command>& registry() {
  static std::map<std::string, Command> r;
  return r;
}

bool parse_args(const std::vector<std::string>& args, const std::string& usage, po::options_description& opts,
                const std::vector<std::pair<std::string, int>>& positional, po::variables_map& vm) {
  opts.add_options()("help,h", "show this help");
  po::positional_options_description pos;
  for (const auto& [name, count] : positional) pos.add(name.c_str(), count);
  po::store(po::command_line_parser(args).options(opts).positional(pos).run(), vm);
  if (vm.count("help")) {
    std::cout << "usage: " << usage << "\n\n" << opts << "\n";
    return false;
  }
  po::notify(vm);
  return true;
}

std::map<std::string, std::vector<int64_t>> parse_input_shapes(const std::vector<std::string>& specs) {
  std::map<std::string, std::vector<int64_t>> out;
  for (const auto& s : specs) {
    auto eq = s.rfind('=');
    if (eq == std::string::npos || eq == 0)
      throw InvalidArgument("--input-shape '" + s + "': expected NAME=D0,D1,... (e.g. input=1,3,224,224)");
    std::vector<int64_t> dims;
    std::string rest = s.substr(eq + 1), item;
    size_t start = 0;
    while (start <= rest.size()) {
      size_t comma = rest.find(',', start);
      item = rest.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
      try {
        size_t used = 0;
        long long v = std::stoll(item, &used);
        if (used != item.size() || v < 0) throw std::invalid_argument("");
        dims.push_back(v);
      } catch (const std::exception&) {
        throw InvalidArgument("--input-shape '" + s + "': '" + item + "' is not a dimension");
      }
      if (comma == std::string::npos) break;
      start = comma + 1;
    }
    out[s.substr(0, eq)] = dims;
  }
  return out;
}

}  // namespace oc::cli

#include <unistd.h>
bool oc::cli::stdout_is_tty() { return ::isatty(1) != 0; }
bool oc::cli::stderr_is_tty() { return ::isatty(2) != 0; }

static void print_usage() {
  std::cout << "onnx-compress " OC_VERSION " - prune, quantize and inspect ONNX models\n\nusage: onnx-compress COMMAND [options]\n\ncommands:\n";
  for (const auto& [name, c] : oc::cli::registry()) std::cout << "  " << name << std::string(name.size() < 12 ? 12 - name.size() : 1, ' ') << c.summary << "\n";
  std::cout << "\n'onnx-compress COMMAND --help' shows a command's options.\n";
}

int main(int argc, char** argv) {
  oc::keep_freed_activations();
  if (argc < 2 || std::string(argv[1]) == "--help" || std::string(argv[1]) == "-h" || std::string(argv[1]) == "help") {
    print_usage();
    return argc < 2 ? 2 : 0;
  }
  if (std::string(argv[1]) == "--version") {
    std::cout << "onnx-compress " OC_VERSION "\n";
    return 0;
  }
  auto& reg = oc::cli::registry();
  auto it = reg.find(argv[1]);
  if (it == reg.end()) {
    std::cerr << "onnx-compress: error: unknown command '" << argv[1] << "' (see onnx-compress --help)\n";
    return 2;
  }
  std::vector<std::string> args(argv + 2, argv + argc);
  try {
    return it->second.run(args);
  } catch (const boost::program_options::error& e) {
    std::cerr << "onnx-compress " << it->first << ": error: " << e.what() << " (see --help)\n";
    return 2;
  } catch (const oc::InvalidArgument& e) {
    std::cerr << "onnx-compress " << it->first << ": error: " << e.what() << "\n";
    return 2;
  } catch (const oc::Error& e) {
    std::cerr << "onnx-compress " << it->first << ": error: " << e.what() << "\n";
    return 1;
  } catch (const std::bad_alloc&) {
    std::cerr << "onnx-compress " << it->first << ": error: out of memory\n";
    return 1;
  } catch (const std::exception& e) {
    std::cerr << "onnx-compress " << it->first << ": internal error: " << e.what() << "\n";
    return 3;
  }
}
