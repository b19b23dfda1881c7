// Subcommand registry: each cli/cmd_*.cpp registers itself with one static Command entry.
#pragma once
#include <boost/program_options.hpp>
#include <functional>
#include <map>
#include <string>
#include <vector>

namespace oc::cli {

namespace po = boost::program_options;

struct Command {
  std::string name;
  std::string summary;
  std::function<int(const std::vector<std::string>& args)> run;
};

std::map<std::string, Command>& registry();

struct RegisterCommand {
  explicit RegisterCommand(Command c) { registry()[c.name] = std::move(c); }
};

// Parses `args` against `opts` with the given positional names; prints help and returns false on
// --help. Throws po::error on bad options.
bool parse_args(const std::vector<std::string>& args, const std::string& usage, po::options_description& opts,
                const std::vector<std::pair<std::string, int>>& positional, po::variables_map& vm);

// "name=1,3,224,224" (repeatable) -> {name: dims}
std::map<std::string, std::vector<int64_t>> parse_input_shapes(const std::vector<std::string>& specs);

// Is stdout a terminal (progress bars only there)?
bool stdout_is_tty();
bool stderr_is_tty();

}  // namespace oc::cli
