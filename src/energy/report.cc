// Counting and pricing one model file, and the text form of the report (energy/energy.h).
#include <algorithm>
#include <cstdio>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <string>
#include <tuple>

#include "lowbit/core/error.h"
#include "lowbit/energy/energy.h"
#include "lowbit/io/model_file.h"

namespace lowbit::energy {

namespace {

using json = nlohmann::json;

std::map<std::string, std::string>& unit_registry() {
  static std::map<std::string, std::string> r;
  return r;
}

std::vector<OpLine> priced(const OpTally& t, int64_t steps, std::set<std::string>& assumptions) {
  std::vector<OpLine> out;
  // Parts in the order they first appear, the lines of each part together.
  std::vector<std::string> parts;
  for (const OpCount& e : t.entries())
    if (std::find(parts.begin(), parts.end(), e.where) == parts.end()) parts.push_back(e.where);
  std::vector<const OpCount*> order;
  for (const auto& part : parts)
    for (const OpCount& e : t.entries())
      if (e.where == part) order.push_back(&e);
  for (const OpCount* ep : order) {
    const OpCount& e = *ep;
    const OpPrice p = op_price(e.kind, e.arith, e.bits);
    if (p.basis != "Horowitz 45 nm") assumptions.insert(p.basis);
    const uint64_t n = e.count * static_cast<uint64_t>(steps);
    out.push_back(OpLine{e.where, e.kind, e.arith, e.bits, n, p.pj, static_cast<double>(n) * p.pj, p.basis});
  }
  return out;
}

// Lines merged over parts, ordered by kind, arithmetic and width.
std::vector<OpLine> by_op(const std::vector<OpLine>& lines) {
  std::map<std::tuple<int, int, int>, OpLine> m;
  for (const OpLine& l : lines) {
    const auto key = std::make_tuple(static_cast<int>(l.kind), static_cast<int>(l.arith), l.bits);
    auto it = m.find(key);
    if (it == m.end()) {
      OpLine s = l;
      s.where.clear();
      m.emplace(key, s);
    } else {
      it->second.count += l.count;
      it->second.pj += l.pj;
    }
  }
  std::vector<OpLine> out;
  for (auto& [k, v] : m) out.push_back(v);
  return out;
}

double total(const std::vector<OpLine>& lines) {
  double s = 0;
  for (const OpLine& l : lines) s += l.pj;
  return s;
}

std::string fmt(const char* f, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}

std::string op_name(const OpLine& l) {
  return detail::cat(op_kind_name(l.kind), " ", arith_name(l.arith), l.bits);
}

void table(std::ostringstream& os, const std::vector<OpLine>& lines, bool with_where, bool with_basis) {
  std::size_t wcol = 4;
  for (const OpLine& l : lines) wcol = std::max(wcol, l.where.size());
  char buf[512];
  if (with_where) {
    std::snprintf(buf, sizeof buf, "  %-*s  %-16s %16s %10s %14s\n", static_cast<int>(wcol), "part", "operation",
                  "count", "pJ each", "pJ");
  } else {
    std::snprintf(buf, sizeof buf, "  %-16s %16s %10s %14s%s\n", "operation", "count", "pJ each", "pJ",
                  with_basis ? "  price" : "");
  }
  os << buf;
  for (const OpLine& l : lines) {
    if (with_where) {
      std::snprintf(buf, sizeof buf, "  %-*s  %-16s %16llu %10.5g %14.6g\n", static_cast<int>(wcol), l.where.c_str(),
                    op_name(l).c_str(), static_cast<unsigned long long>(l.count), l.pj_each, l.pj);
    } else {
      std::snprintf(buf, sizeof buf, "  %-16s %16llu %10.5g %14.6g%s%s\n", op_name(l).c_str(),
                    static_cast<unsigned long long>(l.count), l.pj_each, l.pj, with_basis ? "  " : "",
                    with_basis ? l.basis.c_str() : "");
    }
    os << buf;
  }
}

}  // namespace

void register_inference_unit(const std::string& kind, const std::string& text) { unit_registry()[kind] = text; }

std::string inference_unit(const std::string& kind) {
  const auto& r = unit_registry();
  const auto it = r.find(kind);
  return it == r.end() ? "one inference" : it->second;
}

std::vector<std::string> registered_kinds() {
  std::vector<std::string> out;
  for (const auto& [k, v] : counter_registry()) out.push_back(k);
  return out;
}

std::string model_kind(const io::ModelFile& file) {
  const json meta = json::parse(file.metadata, nullptr, false);
  LOWBIT_CHECK(!meta.is_discarded() && meta.is_object(), "model metadata is not a JSON object");
  LOWBIT_CHECK(meta.contains("model") && meta["model"].is_object(),
               "metadata has no \"model\" object (not a network file?)");
  const json& m = meta["model"];
  LOWBIT_CHECK(m.contains("kind") && m["kind"].is_string(), "model metadata has no string \"kind\"");
  return m["kind"].get<std::string>();
}

EnergyReport price_report(const std::string& kind, const OpTally& model, const OpTally& float_reference,
                          int64_t steps) {
  LOWBIT_CHECK(steps >= 1, "energy: steps=", steps, " (expected >= 1)");
  EnergyReport r;
  r.kind = kind;
  r.inference = inference_unit(kind);
  r.steps = steps;
  std::set<std::string> assumptions;
  r.model_ops = priced(model, steps, assumptions);
  r.float_ops = priced(float_reference, steps, assumptions);
  r.model_by_op = by_op(r.model_ops);
  r.float_by_op = by_op(r.float_ops);
  r.energy_pj = total(r.model_ops);
  r.float_energy_pj = total(r.float_ops);
  LOWBIT_CHECK(r.energy_pj > 0, "energy: the counter for kind \"", kind, "\" counted no operations");
  r.gain = r.float_energy_pj / r.energy_pj;
  r.assumptions.assign(assumptions.begin(), assumptions.end());
  return r;
}

EnergyReport energy_report(const io::ModelFile& file, int64_t steps) {
  const std::string kind = model_kind(file);
  const auto& reg = counter_registry();
  const auto it = reg.find(kind);
  if (it == reg.end()) {
    std::string known;
    for (const auto& k : registered_kinds()) known += (known.empty() ? "" : ", ") + k;
    fail("no energy counter for model kind \"", kind, "\" (counters exist for: ", known.empty() ? "none" : known, ")");
  }
  OpTally model, reference;
  it->second(file, model, reference);
  return price_report(kind, model, reference, steps);
}

std::string format_report(const EnergyReport& r) {
  std::ostringstream os;
  os << "kind " << r.kind << "; counted: " << r.steps << " x " << r.inference << "\n";
  os << "energy per operation: 45 nm table (docs/energy.md); computation only, no memory access\n\n";
  os << "model, by part:\n";
  table(os, r.model_ops, true, false);
  os << "\nmodel, by operation:\n";
  table(os, r.model_by_op, false, true);
  os << "\nfp32 reference (the same network in 32-bit float), by operation:\n";
  table(os, r.float_by_op, false, true);
  os << "\n";
  os << "model energy          " << fmt("%.6g", r.energy_pj) << " pJ (" << fmt("%.6g", r.energy_pj / r.steps)
     << " pJ per inference)\n";
  os << "fp32 reference energy " << fmt("%.6g", r.float_energy_pj) << " pJ ("
     << fmt("%.6g", r.float_energy_pj / r.steps) << " pJ per inference)\n";
  os << "gain (fp32 / model)   " << fmt("%.2f", r.gain) << "x\n";
  if (!r.assumptions.empty()) {
    os << "\nprices not in the published table, derived as:\n";
    for (const auto& a : r.assumptions) os << "  - " << a << "\n";
  }
  return os.str();
}

}  // namespace lowbit::energy
