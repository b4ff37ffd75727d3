// Run-time kernel dispatch.
//
// Each operation keeps a table of variants, best first, each with the CPU features it needs.
// `select()` returns the first variant the CPU can run under the current cap. Tests walk
// `runnable()` to check every variant this machine can execute against the scalar reference.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "lowbit/core/cpu.h"
#include "lowbit/core/error.h"

namespace lowbit {

template <typename Fn>
struct KernelVariant {
  const char* name;   // e.g. "bgemm_avx512_vpopcnt_4x4"
  uint32_t needs;     // cpu::Feature bits
  Fn fn;
};

// Registry of chosen kernels for `lowbit info`: one line per operation.
struct KernelChoice {
  std::string op;
  std::string chosen;
  std::vector<std::string> available;  // runnable variants on this CPU, best first
};

class KernelTableBase {
 public:
  virtual ~KernelTableBase() = default;
  virtual KernelChoice choice() const = 0;
};
// Tables register themselves on construction; define them with static storage duration.
void register_kernel_table(const KernelTableBase* table);
std::vector<KernelChoice> kernel_choices();

template <typename Fn>
class KernelTable final : public KernelTableBase {
 public:
  // `variants` must list the best first and end with a portable variant (needs == 0).
  KernelTable(const char* op, std::span<const KernelVariant<Fn>> variants)
      : op_(op), variants_(variants) {
    register_kernel_table(this);
  }
  KernelChoice choice() const override {
    KernelChoice c{op_, select().name, {}};
    for (const auto* v : runnable()) c.available.push_back(v->name);
    return c;
  }

  const KernelVariant<Fn>& select() const {
    const uint64_t gen = cpu::generation();
    if (cached_ == nullptr || cached_gen_ != gen) {
      const uint32_t have = cpu::usable_features();
      const KernelVariant<Fn>* pick = nullptr;
      for (const auto& v : variants_)
        if ((v.needs & have) == v.needs) { pick = &v; break; }
      LOWBIT_CHECK(pick != nullptr, "no runnable kernel for ", op_);
      cached_ = pick;
      cached_gen_ = gen;
    }
    return *cached_;
  }
  // Every variant runnable on this CPU (ignoring the cap), best first.
  std::vector<const KernelVariant<Fn>*> runnable() const {
    std::vector<const KernelVariant<Fn>*> out;
    const uint32_t have = cpu::detected_features();
    for (const auto& v : variants_)
      if ((v.needs & have) == v.needs) out.push_back(&v);
    return out;
  }
  const char* op() const { return op_; }
  std::span<const KernelVariant<Fn>> all() const { return variants_; }

 private:
  const char* op_;
  std::span<const KernelVariant<Fn>> variants_;
  mutable const KernelVariant<Fn>* cached_ = nullptr;
  mutable uint64_t cached_gen_ = ~0ull;
};

}  // namespace lowbit
