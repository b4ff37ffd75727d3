// The per-operation energy table (energy/energy.h). This file is the only place where energy
// numbers live; docs/energy.md lists the same entries and derivations.
//
// Published 45 nm entries (Horowitz, "Computing's energy problem", ISSCC 2014), pJ:
//
//   integer add       8 / 16 / 32 bits   0.03 / 0.05 / 0.1
//   integer multiply  8 / 32 bits        0.2 / 3.1
//   float add         16 / 32 bits       0.4 / 0.9
//   float multiply    16 / 32 bits       1.1 / 3.7
//
// Derived entries (each rule is also the `basis` text the report prints):
//
//   * add / multiply at another width: between two published widths, the power law through
//     both (E = E1 · (w / w1)^p, p fitted to the two points; the 16-bit integer multiply comes
//     out as sqrt(0.2 · 3.1) = 0.787 pJ, p = 1.98, close to the width² growth of an array
//     multiplier). Outside the published widths, from the nearest one in proportion to the
//     width (adds: a ripple-carry adder is one full-adder cell per bit) or to the width squared
//     (multiplies: the partial-product array).
//   * bitwise xor / xnor / and on a w-bit word: w two-input gates, one gate priced as half of
//     a one-bit full adder (its two XOR gates dominate it), the full adder as 1/8 of the 8-bit
//     add: w · 0.03 / 16 pJ (a 64-bit xnor: 0.12 pJ).
//   * popcount of a w-bit word: a tree of w − 1 adders, pairing counts level by level (for 64
//     bits: 32 one-bit, 16 two-bit, 8 three-bit, 4 four-bit, 2 five-bit and 1 six-bit adds,
//     120 full-adder bits in all), each add priced by the integer add rule (64 bits: 0.45 pJ).
//   * comparison (also max, clamp, select-by-sign) of two w-bit values: a w-bit subtraction,
//     priced as the w-bit integer add; for floats too, since IEEE-754 values order like their
//     sign-magnitude bit patterns (this makes the fp32 reference slightly cheaper, never dearer).
//   * exp, floating point, width w: range reduction (n = round(x · log2 e), r = x − n · ln 2:
//     2 multiplies, 2 adds), a Horner polynomial of degree 5 (w > 16) or 3 (w <= 16) for e^r
//     (d multiplies, d adds), and an integer add on the exponent field (8 bits; 5 for w <= 16).
//   * exp, integer (fixed point), width w: the gemmlowp / TFLite exp of a negative fixed-point
//     value: a 4th-order Taylor polynomial on [-1/4, 0) (5 multiplies, 7 adds), the range split
//     (1 and, 2 subtractions) and a barrel shifter over 5 integer bits (per bit: 1 and, 1 test,
//     1 constant multiply, 1 select), the zero test and its select: 10 multiplies, 9 adds,
//     12 bitwise, 6 comparisons, all w bits; a fixed-point multiply (rounding doubling high
//     multiply) counts as one w-bit multiply.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "lowbit/core/error.h"
#include "lowbit/energy/energy.h"

namespace lowbit::energy {

namespace {

struct Anchor {
  int bits;
  double pj;
};

// Published entries.
constexpr Anchor kIntAdd[] = {{8, 0.03}, {16, 0.05}, {32, 0.1}};
constexpr Anchor kIntMul[] = {{8, 0.2}, {32, 3.1}};
constexpr Anchor kFpAdd[] = {{16, 0.4}, {32, 0.9}};
constexpr Anchor kFpMul[] = {{16, 1.1}, {32, 3.7}};

constexpr const char* kPublished = "Horowitz 45 nm";

// Degree of the fp exp polynomial and width of the exponent field for a float of `bits` bits.
int fp_exp_degree(int bits) { return bits <= 16 ? 3 : 5; }
int fp_exponent_bits(int bits) { return bits <= 16 ? 5 : 8; }

template <std::size_t N>
OpPrice scaled(const Anchor (&a)[N], int w, double outside_exponent, const char* what) {
  for (const Anchor& x : a)
    if (x.bits == w) return {x.pj, kPublished};
  if (w < a[0].bits) {
    return {a[0].pj * std::pow(static_cast<double>(w) / a[0].bits, outside_exponent),
            detail::cat(what, " scaled from ", a[0].bits, " bits by (width ratio)^", outside_exponent)};
  }
  if (w > a[N - 1].bits) {
    return {a[N - 1].pj * std::pow(static_cast<double>(w) / a[N - 1].bits, outside_exponent),
            detail::cat(what, " scaled from ", a[N - 1].bits, " bits by (width ratio)^", outside_exponent)};
  }
  for (std::size_t i = 0; i + 1 < N; ++i) {
    if (w > a[i].bits && w < a[i + 1].bits) {
      const double p = std::log(a[i + 1].pj / a[i].pj) / std::log(static_cast<double>(a[i + 1].bits) / a[i].bits);
      return {a[i].pj * std::pow(static_cast<double>(w) / a[i].bits, p),
              detail::cat(what, " interpolated between ", a[i].bits, " and ", a[i + 1].bits,
                          " bits (power law through both)")};
    }
  }
  fail("energy table: no rule for ", what, " of ", w, " bits");  // unreachable
}

double int_add(int w) { return scaled(kIntAdd, w, 1.0, "int add").pj; }

// Bits of the full-adder cells in a popcount tree of w one-bit inputs, and its price: counts
// are paired level by level (an odd one waits for the next level), each pairing one add as wide
// as the wider operand.
double popcount_pj(int w) {
  std::vector<int> widths(static_cast<std::size_t>(w), 1);
  double pj = 0;
  while (widths.size() > 1) {
    std::vector<int> next;
    for (std::size_t i = 0; i + 1 < widths.size(); i += 2) {
      const int b = std::max(widths[i], widths[i + 1]);
      pj += int_add(b);
      next.push_back(b + 1);
    }
    if (widths.size() % 2) next.push_back(widths.back());
    widths = std::move(next);
  }
  return pj;
}

}  // namespace

std::string_view op_kind_name(OpKind k) {
  switch (k) {
    case OpKind::add: return "add";
    case OpKind::multiply: return "multiply";
    case OpKind::bitwise: return "bitwise";
    case OpKind::popcount: return "popcount";
    case OpKind::exp: return "exp";
    case OpKind::compare: return "compare";
  }
  return "?";
}

std::string_view arith_name(Arith a) { return a == Arith::integer ? "int" : "fp"; }

OpPrice op_price(OpKind kind, Arith arith, int bits) {
  LOWBIT_CHECK(bits >= 1 && bits <= 64, "energy table: ", op_kind_name(kind), " of ", bits,
               " bits (expected a width of 1..64)");
  const bool fp = arith == Arith::floating;
  switch (kind) {
    case OpKind::add:
      return fp ? scaled(kFpAdd, bits, 1.0, "fp add") : scaled(kIntAdd, bits, 1.0, "int add");
    case OpKind::multiply:
      return fp ? scaled(kFpMul, bits, 2.0, "fp multiply") : scaled(kIntMul, bits, 2.0, "int multiply");
    case OpKind::bitwise:
      LOWBIT_CHECK(!fp, "energy table: bitwise operations are integer-only (got a floating one of ", bits, " bits)");
      return {bits * (int_add(8) / 8) / 2,
              detail::cat(bits, bits == 1 ? " one-bit gate" : " one-bit gates", ", each half a full adder (1/8 of the 8-bit int add)")};
    case OpKind::popcount:
      LOWBIT_CHECK(!fp, "energy table: popcount is integer-only (got a floating one of ", bits, " bits)");
      return {popcount_pj(bits), detail::cat("adder tree of ", bits - 1, " small int adds")};
    case OpKind::compare:
      return {int_add(bits), fp ? detail::cat("priced as the ", bits, "-bit int add (IEEE values order like their bit patterns)")
                                 : detail::cat("priced as the ", bits, "-bit int add (a subtraction)")};
    case OpKind::exp: {
      if (fp) {
        const int d = fp_exp_degree(bits);
        const double pj = (2 + d) * scaled(kFpMul, bits, 2.0, "").pj + (2 + d) * scaled(kFpAdd, bits, 1.0, "").pj +
                          int_add(fp_exponent_bits(bits));
        return {pj, detail::cat("range reduction + degree-", d, " polynomial: ", 2 + d, " fp", bits, " multiplies, ",
                                2 + d, " fp", bits, " adds, 1 int", fp_exponent_bits(bits), " add")};
      }
      const double pj = 10 * scaled(kIntMul, bits, 2.0, "").pj + 9 * int_add(bits) +
                        12 * op_price(OpKind::bitwise, Arith::integer, bits).pj + 6 * int_add(bits);
      return {pj, detail::cat("fixed-point exp (Taylor polynomial + barrel shifter): 10 multiplies, 9 adds, "
                              "12 bitwise, 6 compares of ", bits, " bits")};
    }
  }
  fail("energy table: unknown operation kind");
}

std::string format_table() {
  std::string out = "45 nm energy per operation (pJ); computation only\n";
  char buf[512];
  std::snprintf(buf, sizeof buf, "  %-10s %-5s %5s %10s  %s\n", "operation", "type", "bits", "pJ", "basis");
  out += buf;
  const OpKind kinds[] = {OpKind::add, OpKind::multiply, OpKind::compare, OpKind::bitwise, OpKind::popcount,
                          OpKind::exp};
  for (const OpKind k : kinds) {
    for (const int bits : {1, 8, 16, 32, 64}) {
      if (bits == 1 && (k == OpKind::multiply || k == OpKind::exp || k == OpKind::popcount)) continue;
      const OpPrice p = op_price(k, Arith::integer, bits);
      std::snprintf(buf, sizeof buf, "  %-10s %-5s %5d %10.5g  %s\n", std::string(op_kind_name(k)).c_str(), "int",
                    bits, p.pj, p.basis.c_str());
      out += buf;
    }
    if (k == OpKind::bitwise || k == OpKind::popcount) continue;
    for (const int bits : {16, 32}) {
      const OpPrice p = op_price(k, Arith::floating, bits);
      std::snprintf(buf, sizeof buf, "  %-10s %-5s %5d %10.5g  %s\n", std::string(op_kind_name(k)).c_str(), "fp",
                    bits, p.pj, p.basis.c_str());
      out += buf;
    }
  }
  return out;
}

double price(const OpTally& tally) {
  double pj = 0;
  for (const OpCount& e : tally.entries()) pj += static_cast<double>(e.count) * op_energy_pj(e.kind, e.arith, e.bits);
  return pj;
}

}  // namespace lowbit::energy
