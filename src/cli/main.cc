// Entry point of the `lowbit` program: creates the application, registers the global
// options and every command (each in its own file, see cli.h), and runs the one asked for.
//
// Errors: a lowbit::Error, or a command-line parse error, becomes one line on stderr,
// "lowbit: error: ...", and a non-zero exit status (parse errors keep CLI11's status codes).
#include <CLI/CLI.hpp>

#include <exception>
#include <iostream>
#include <string>

#include "cli/cli.h"
#include "lowbit/core/error.h"
#include "lowbit/core/version.h"

namespace {

// One line: newlines in a message would split it.
std::string one_line(std::string s) {
  for (char& ch : s)
    if (ch == '\n' || ch == '\r') ch = ' ';
  while (!s.empty() && s.back() == ' ') s.pop_back();
  return s;
}

int report(const std::string& message, int status) {
  std::cerr << "lowbit: error: " << one_line(message) << '\n';
  return status;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"lowbit: train low-bit neural networks (binary, k-bit, int8) and run them with "
               "bit-packed integer kernels.",
               "lowbit"};
  app.set_version_flag("--version", "lowbit " + lowbit::version(), "Print the version and exit");
  app.fallthrough();  // global options are accepted after the command name too

  lowbit::cli::add_global_options(app);
  lowbit::cli::add_info_command(app);
  lowbit::cli::add_bench_commands(app);
  lowbit::cli::add_train_command(app);
  lowbit::cli::add_export_command(app);
  lowbit::cli::add_eval_command(app);
  lowbit::cli::add_energy_command(app);
  lowbit::cli::add_run_command(app);
  lowbit::cli::add_quantize_command(app);
  lowbit::cli::add_explain_command(app);

  // Set after the commands are added: subcommands copy their parent's footer when created.
  app.footer(
      "Environment:\n"
      "  LOWBIT_MAX_ISA=LEVEL    cap the instruction set (as --max-isa)\n"
      "  LOWBIT_NUM_THREADS=N    worker threads (as --threads)\n\n"
      "Run 'lowbit COMMAND --help' for a command's options.\n");

  try {
    app.parse(argc, argv);
  } catch (const CLI::Success& e) {  // --help, --version
    // CLI11 answers --help before it rejects unknown words, so `lowbit no-such-command
    // --help` would print the main help and succeed; scripts rely on it failing.
    if (const auto extra = app.remaining(); !extra.empty()) {
      std::string words;
      for (const auto& w : extra) words += (words.empty() ? "" : " ") + w;
      return report("unknown command or argument: " + words + " (run 'lowbit --help')",
                    static_cast<int>(CLI::ExitCodes::ExtrasError));
    }
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    return report(std::string(e.what()) + " (run 'lowbit --help')", e.get_exit_code());
  } catch (const lowbit::Error& e) {
    return report(e.what(), 1);
  } catch (const std::exception& e) {
    return report(std::string("unexpected failure: ") + e.what(), 2);
  }
  // Not required through CLI11 so that a misspelt command is reported as such.
  if (app.get_subcommands().empty())
    return report("a command is required (run 'lowbit --help')",
                  static_cast<int>(CLI::ExitCodes::RequiredError));
  return 0;
}
