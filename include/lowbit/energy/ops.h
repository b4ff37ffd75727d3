// Operation counting for the energy model.
//
// A counter walks one deployable model (a model file) and tallies, for one inference, every
// arithmetic operation by kind, number type and bit width. It fills two tallies: the model as
// it runs (integer, fixed-point and bit operations) and the same network computed entirely in
// 32-bit float, which is what the energy gain is measured against. Pricing the tallies with a
// per-operation energy table is done by energy/energy.h.
//
// Each model kind (the "kind" key of the file's "model" metadata) registers one counter.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace lowbit::io {
struct ModelFile;
}

namespace lowbit::energy {

enum class OpKind : uint8_t {
  add,       // addition or subtraction (accumulations included)
  multiply,  // multiplication
  bitwise,   // xor / xnor / and on a packed word of `bits` bits
  popcount,  // population count of a `bits`-bit word
  exp,       // exponential (softmax, sigmoid, tanh); fixed-point versions are counted here too
  compare,   // comparison, max, clamp, sign test
};
enum class Arith : uint8_t { integer, floating };

std::string_view op_kind_name(OpKind k);  // "add", "multiply", "bitwise", "popcount", "exp", "compare"

struct OpCount {
  OpKind kind;
  Arith arith;
  int bits;            // operand width: 1..64
  uint64_t count = 0;  // operations per inference
  std::string where;   // the part of the model, e.g. "layers.0" or "hop 2 addressing"
};

// One inference's operations. Entries with the same (kind, arith, bits, where) are merged.
class OpTally {
 public:
  void add(OpKind kind, Arith arith, int bits, uint64_t count, std::string_view where) {
    if (count == 0) return;
    for (auto& e : entries_) {
      if (e.kind == kind && e.arith == arith && e.bits == bits && e.where == where) {
        e.count += count;
        return;
      }
    }
    entries_.push_back(OpCount{kind, arith, bits, count, std::string(where)});
  }
  // `macs` multiply-accumulates: one multiply and one add each.
  void mac(Arith arith, int mul_bits, int acc_bits, uint64_t macs, std::string_view where) {
    add(OpKind::multiply, arith, mul_bits, macs, where);
    add(OpKind::add, arith, acc_bits, macs, where);
  }
  const std::vector<OpCount>& entries() const { return entries_; }

 private:
  std::vector<OpCount> entries_;
};

// Fills `model` (the model as deployed) and `float_reference` (the same network in fp32).
using Counter = std::function<void(const io::ModelFile& file, OpTally& model, OpTally& float_reference)>;

inline std::map<std::string, Counter>& counter_registry() {
  static std::map<std::string, Counter> registry;
  return registry;
}
// Registers the counter for a model kind; call from a static initialiser in the runtime's file.
inline bool register_counter(const std::string& kind, Counter counter) {
  counter_registry()[kind] = std::move(counter);
  return true;
}

}  // namespace lowbit::energy
