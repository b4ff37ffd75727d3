// Global options: --threads and --max-isa, with LOWBIT_NUM_THREADS and LOWBIT_MAX_ISA as
// their environment counterparts (read by the library itself when no option is given).
#include <CLI/CLI.hpp>

#include <cstdlib>

#include "cli/cli.h"
#include "lowbit/core/cpu.h"
#include "lowbit/core/error.h"
#include "lowbit/core/threading.h"

namespace lowbit::cli {
namespace {

GlobalOptions g_options;

bool env_set(const char* name) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0';
}

void apply(const GlobalOptions& o) {
  if (o.max_isa) cpu::set_max_isa(cpu::parse_isa(*o.max_isa));
  if (o.threads) set_num_threads(*o.threads);
}

}  // namespace

const GlobalOptions& global_options() { return g_options; }

void add_global_options(CLI::App& app) {
  app.add_option("--threads", g_options.threads,
                 "Worker threads, >= 1 (default: LOWBIT_NUM_THREADS, else all CPUs this process may use)")
      ->type_name("N");
  app.add_option("--max-isa", g_options.max_isa,
                 "Cap the instruction set: scalar, avx2, avx512, avx512_icl or native "
                 "(default: LOWBIT_MAX_ISA, else native)")
      ->type_name("LEVEL")
      ->check(CLI::Validator(
          [](std::string& s) -> std::string {
            try {
              cpu::parse_isa(s);
              return {};
            } catch (const Error& e) {
              return e.what();
            }
          },
          "", "instruction-set level"));
  // Runs once parsing is complete and before the chosen command's callback.
  app.parse_complete_callback([] { apply(g_options); });
}

std::string threads_source() {
  if (g_options.threads) return "--threads";
  if (env_set("LOWBIT_NUM_THREADS")) return "LOWBIT_NUM_THREADS";
  return "default";
}

std::string max_isa_source() {
  if (g_options.max_isa) return "--max-isa";
  if (env_set("LOWBIT_MAX_ISA")) return "LOWBIT_MAX_ISA";
  return "default";
}

}  // namespace lowbit::cli
