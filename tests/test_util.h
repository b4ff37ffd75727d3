// Helpers shared by the unit tests.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <filesystem>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "lowbit/core/cpu.h"

namespace lowbit::testing {

// Instruction-set levels this CPU can execute, lowest first.
inline std::vector<cpu::IsaLevel> runnable_isa_levels() {
  std::vector<cpu::IsaLevel> out{cpu::IsaLevel::scalar};
  const uint32_t f = cpu::detected_features();
  if (f & cpu::kAvx2) out.push_back(cpu::IsaLevel::avx2);
  if (f & cpu::kAvx512) out.push_back(cpu::IsaLevel::avx512);
  if ((f & cpu::kAvx512) && (f & (cpu::kAvx512Vnni | cpu::kAvx512Vpopcnt))) out.push_back(cpu::IsaLevel::avx512_icl);
  return out;
}

// Runs fn once per runnable instruction-set level with the cap set to it, then restores the
// cap. Use SCOPED_TRACE-style messages: the level is passed to fn.
inline void for_each_isa(const std::function<void(cpu::IsaLevel)>& fn) {
  const cpu::IsaLevel saved = cpu::max_isa();
  for (cpu::IsaLevel level : runnable_isa_levels()) {
    SCOPED_TRACE("LOWBIT_MAX_ISA=" + cpu::isa_name(level));
    cpu::set_max_isa(level);
    fn(level);
  }
  cpu::set_max_isa(saved);
}

// Awkward sizes for kernel tests: tiny, odd, prime, around vector and packing widths.
inline const std::vector<int64_t>& awkward_sizes() {
  static const std::vector<int64_t> s{1, 2, 3, 5, 7, 13, 16, 17, 31, 33, 63, 64, 65, 97, 127, 128, 129, 257, 511, 513, 1031};
  return s;
}

// A fixture whose tests each get a fresh, empty temporary folder `dir_` (named after the test
// and the run's random seed, so parallel ctest processes never share one), removed afterwards.
class TempDirTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* unit = ::testing::UnitTest::GetInstance();
    dir_ = std::filesystem::temp_directory_path() /
           ("lowbit_" + std::string(unit->current_test_info()->test_suite_name()) + "_" +
            std::to_string(unit->random_seed()) + "_" + unit->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::filesystem::path dir_;
};

}  // namespace lowbit::testing
