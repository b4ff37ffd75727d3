// `lowbit info`: what this build is, what the CPU offers, what the cap allows and which
// kernel variant each dispatched operation will run. `--json` prints the same facts as one
// JSON object; the text form is rendered from that object so that the two always agree.
#include <CLI/CLI.hpp>

#include <cstdio>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "cli/cli.h"
#include "lowbit/core/cpu.h"
#include "lowbit/core/dispatch.h"
#include "lowbit/core/threading.h"
#include "lowbit/core/version.h"

namespace lowbit::cli {
namespace {

// Keys keep the order they are written in, so the JSON reads like the text.
using json = nlohmann::ordered_json;

struct InfoOptions {
  bool json = false;
};

json collect() {
  json cpu_info = {
      {"brand", cpu::brand()},
      {"l2_cache_bytes", cpu::l2_cache_bytes()},
      {"features", cpu::feature_names(cpu::detected_features())},
      {"usable_features", cpu::feature_names(cpu::usable_features())},
      {"max_isa", cpu::isa_name(cpu::max_isa())},
      {"max_isa_source", max_isa_source()},
  };
  json kernels = json::array();
  for (const KernelChoice& k : kernel_choices())
    kernels.push_back({{"op", k.op}, {"chosen", k.chosen}, {"available", k.available}});
  return {
      {"version", version()},
      {"compiler", compiler_version()},
      {"onednn_version", onednn_version()},
      {"cpu", cpu_info},
      {"threads", num_threads()},
      {"threads_source", threads_source()},
      {"kernels", kernels},
  };
}

std::string joined(const json& names) {
  std::string out;
  for (const auto& n : names) {
    if (!out.empty()) out += ' ';
    out += n.get<std::string>();
  }
  return out.empty() ? "(none)" : out;
}

std::string source_note(const std::string& source, const char* default_note) {
  if (source == "default") return default_note;
  return "from " + source;
}

void print_text(const json& j) {
  const json& c = j["cpu"];
  auto row = [](const char* key, const std::string& value) {
    std::printf("  %-17s %s\n", key, value.c_str());
  };
  std::printf("lowbit %s\n", j["version"].get<std::string>().c_str());
  row("compiler", j["compiler"]);
  row("oneDNN", j["onednn_version"]);
  row("threads", std::to_string(j["threads"].get<int>()) + " (" +
                     source_note(j["threads_source"], "default: all CPUs this process may use") + ")");

  std::printf("\nCPU\n");
  row("brand", c["brand"]);
  row("L2 per core", std::to_string(c["l2_cache_bytes"].get<int64_t>() >> 10) + " KiB");
  row("features", joined(c["features"]));
  row("max ISA", c["max_isa"].get<std::string>() + " (" +
                     source_note(c["max_isa_source"], "default: the best this CPU supports") + ")");
  row("usable features", joined(c["usable_features"]));

  std::printf("\nKernels (chosen variant, then every variant this CPU can run, best first)\n");
  if (j["kernels"].empty()) {
    std::printf("  (no operation with run-time dispatch is built into this version)\n");
    return;
  }
  std::size_t width = 0;
  for (const auto& k : j["kernels"]) width = std::max(width, k["op"].get<std::string>().size());
  for (const auto& k : j["kernels"]) {
    std::printf("  %-*s  %s\n", static_cast<int>(width), k["op"].get<std::string>().c_str(),
                k["chosen"].get<std::string>().c_str());
    std::printf("  %-*s    runnable: %s\n", static_cast<int>(width), "", joined(k["available"]).c_str());
  }
}

void run(const InfoOptions& opts) {
  const json j = collect();
  if (opts.json) {
    std::cout << j.dump(2) << '\n';
  } else {
    print_text(j);
  }
}

}  // namespace

void add_info_command(CLI::App& app) {
  auto opts = std::make_shared<InfoOptions>();
  CLI::App* cmd = app.add_subcommand(
      "info", "Show the build, the CPU's features, the instruction-set cap, threads and chosen kernels");
  cmd->add_flag("--json", opts->json, "Print one JSON object instead of text");
  cmd->callback([opts] { run(*opts); });
}

}  // namespace lowbit::cli
