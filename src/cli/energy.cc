// `lowbit energy MODEL [--json] [--steps T]`: counts the operations of one inference of a model
// file (any kind with a registered counter: feedforward, lstm, lstm_lm, memn2n, ...), prices them
// with the 45 nm energy table (energy/energy.h, docs/energy.md), and reports the energy per part
// and per operation, the same network's energy in fp32, and the gain fp32 / model. `--steps T`
// counts T inferences (time steps or tokens of a recurrent model). `--json` prints one object with
// energy_pj, float_energy_pj, gain and the per-operation breakdown. `lowbit energy --table` prints
// the energy table itself.
#include <CLI/CLI.hpp>

#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "cli/cli.h"
#include "lowbit/core/error.h"
#include "lowbit/energy/energy.h"
#include "lowbit/io/model_file.h"

namespace lowbit::cli {
namespace {

using json = nlohmann::ordered_json;

struct EnergyOptions {
  std::string model;
  bool json = false;
  bool table = false;
  int64_t steps = 1;
};

json lines_json(const std::vector<energy::OpLine>& lines, bool with_where) {
  json out = json::array();
  for (const auto& l : lines) {
    json e = json::object();
    if (with_where) e["where"] = l.where;
    e["op"] = std::string(energy::op_kind_name(l.kind));
    e["arith"] = std::string(energy::arith_name(l.arith));
    e["bits"] = l.bits;
    e["count"] = l.count;
    e["pj_each"] = l.pj_each;
    e["pj"] = l.pj;
    if (!with_where) e["price_basis"] = l.basis;
    out.push_back(e);
  }
  return out;
}

void run_energy(const EnergyOptions& o) {
  if (o.table) {
    LOWBIT_CHECK(o.model.empty() && !o.json, "--table prints the energy table only (no MODEL, no --json)");
    std::cout << energy::format_table();
    return;
  }
  LOWBIT_CHECK(!o.model.empty(), "a model file is required (or --table for the energy table)");
  LOWBIT_CHECK(o.steps >= 1, "--steps ", o.steps, " (expected a count >= 1)");
  const io::ModelFile file = io::load(o.model);
  energy::EnergyReport r;
  try {
    r = energy::energy_report(file, o.steps);
  } catch (const Error& e) {
    fail(o.model, ": ", e.what());
  }
  if (!o.json) {
    std::cout << "model " << o.model << "\n" << energy::format_report(r);
    return;
  }
  json j = json::object();
  j["model"] = o.model;
  j["kind"] = r.kind;
  j["inference"] = r.inference;
  j["steps"] = r.steps;
  j["energy_pj"] = r.energy_pj;
  j["float_energy_pj"] = r.float_energy_pj;
  j["gain"] = r.gain;
  j["energy_pj_per_inference"] = r.energy_pj / static_cast<double>(r.steps);
  j["float_energy_pj_per_inference"] = r.float_energy_pj / static_cast<double>(r.steps);
  j["ops"] = lines_json(r.model_by_op, false);
  j["float_ops"] = lines_json(r.float_by_op, false);
  j["parts"] = lines_json(r.model_ops, true);
  j["float_parts"] = lines_json(r.float_ops, true);
  j["assumptions"] = r.assumptions;
  std::cout << j.dump(2) << '\n';
}

}  // namespace

void add_energy_command(CLI::App& app) {
  auto opts = std::make_shared<EnergyOptions>();
  CLI::App* cmd = app.add_subcommand(
      "energy", "Operations and energy (45 nm table) of one inference of a model file, and the gain over fp32");
  cmd->add_option("model", opts->model, "Model file (feedforward, lstm, lstm_lm, memn2n, ...)");
  cmd->add_flag("--json", opts->json, "Print one JSON object instead of text");
  cmd->add_flag("--table", opts->table, "Print the per-operation energy table and how each entry is derived");
  cmd->add_option("--steps", opts->steps,
                  "Count T inferences (time steps / tokens of a recurrent model; default 1)");
  cmd->callback([opts] { run_energy(*opts); });
}

}  // namespace lowbit::cli
