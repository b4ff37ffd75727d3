// The energy model: a per-operation energy table (45 nm, after Horowitz, ISSCC 2014), the pricing
// of an operation tally (energy/ops.h), and the report of one model file: every operation of one
// inference by part, kind and width, its energy, and the gain against the same network in fp32.
//
// The table (src/energy/table.cc, documented in docs/energy.md) holds the published entries
//
//   pJ          8-bit int  16-bit int  32-bit int  16-bit fp  32-bit fp
//   add         0.03       0.05        0.1         0.4        0.9
//   multiply    0.2        -           3.1         1.1        3.7
//
// and fills every other (kind, arithmetic, width) by a stated rule: power-law interpolation in
// width between published widths, scaling with width (adds) or width squared (multiplies)
// outside them, bitwise operations as one-bit gates priced from the 8-bit add, popcount as an
// adder tree, comparison as a subtraction, and exp (and the fixed-point exp) as the multiplies,
// adds, selects and comparisons of its usual polynomial algorithm. op_price() says which rule
// priced an entry, and the report lists the rules it used.
//
// Only computation is priced: no memory, register-file or data-movement energy.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "lowbit/energy/ops.h"

namespace lowbit::io {
struct ModelFile;
}

namespace lowbit::energy {

// The energy of one operation and where that number comes from: "Horowitz 45 nm" for a
// published entry, else a one-line statement of the rule that derived it.
struct OpPrice {
  double pj = 0;
  std::string basis;
};

// Prices one operation. bits must be 1..64; bitwise and popcount are integer-only. Throws
// lowbit::Error otherwise.
OpPrice op_price(OpKind kind, Arith arith, int bits);
inline double op_energy_pj(OpKind kind, Arith arith, int bits) { return op_price(kind, arith, bits).pj; }

// The table at the usual widths (int 1, 8, 16, 32, 64 bits; fp 16, 32), one line per entry with
// its price and basis, as `lowbit energy --table` prints it.
std::string format_table();

// Total energy of a tally in pJ: Σ count · op_energy_pj.
double price(const OpTally& tally);

// "int" or "fp".
std::string_view arith_name(Arith a);

// One priced line of a report.
struct OpLine {
  std::string where;  // the part of the model ("" in the per-kind summaries)
  OpKind kind;
  Arith arith;
  int bits;
  uint64_t count;   // for the report's number of inferences (steps)
  double pj_each;
  double pj;        // count · pj_each
  std::string basis;
};

struct EnergyReport {
  std::string kind;       // the model's "kind"
  std::string inference;  // what one inference is for this kind
  int64_t steps = 1;      // number of inferences counted (time steps / tokens for recurrent kinds)
  std::vector<OpLine> model_ops;     // by part, in the counter's order
  std::vector<OpLine> float_ops;     // the fp32 reference, by part
  std::vector<OpLine> model_by_op;   // merged over parts: one line per (kind, arith, bits)
  std::vector<OpLine> float_by_op;
  double energy_pj = 0;
  double float_energy_pj = 0;
  double gain = 0;  // float_energy_pj / energy_pj
  std::vector<std::string> assumptions;  // the derivation of every non-published price used
};

// The "kind" of a model file's "model" metadata; throws when the metadata has none.
std::string model_kind(const io::ModelFile& file);
// Kinds with a registered counter, sorted.
std::vector<std::string> registered_kinds();

// What one inference means for a kind, for the report ("one inference" when not registered).
void register_inference_unit(const std::string& kind, const std::string& text);
std::string inference_unit(const std::string& kind);

// Runs the kind's counter on `file` and prices both tallies, every count multiplied by
// `steps` (>= 1). Throws lowbit::Error for a kind with no counter (naming the registered ones)
// and for metadata the counter cannot read.
EnergyReport energy_report(const io::ModelFile& file, int64_t steps = 1);
// Prices two tallies that a counter produced (the part of energy_report after counting).
EnergyReport price_report(const std::string& kind, const OpTally& model, const OpTally& float_reference,
                          int64_t steps = 1);

// The report as text: per-part table, per-kind summaries of the model and the fp32 reference,
// totals, gain and the pricing assumptions used.
std::string format_report(const EnergyReport& report);

}  // namespace lowbit::energy
