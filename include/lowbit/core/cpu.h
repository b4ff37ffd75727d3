// CPU feature detection and the instruction-set cap.
//
// Kernels declare the features they need; the dispatcher (dispatch.h) picks the best
// variant whose needs are met by `usable_features()`: the features the CPU reports, less
// anything above the cap set by the LOWBIT_MAX_ISA environment variable (read once) or by
// set_max_isa(). Cap values, lowest first: scalar, avx2, avx512, avx512_icl (Ice Lake /
// Zen 4 level: AVX-512 plus VNNI, VPOPCNTDQ, BITALG, VBMI).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace lowbit::cpu {

enum Feature : uint32_t {
  kNone = 0,
  kPopcnt = 1u << 0,      // scalar POPCNT
  kAvx2 = 1u << 1,        // AVX2 + FMA + BMI2 (Haswell level)
  kAvx512 = 1u << 2,      // AVX-512 F, BW, DQ, VL, CD (Skylake-X level)
  kAvx512Vnni = 1u << 3,  // AVX512_VNNI (vpdpbusd)
  kAvx512Vpopcnt = 1u << 4,  // AVX512_VPOPCNTDQ + AVX512_BITALG
  kAvx512Vbmi = 1u << 5,  // AVX512_VBMI + VBMI2
  kAvxVnni = 1u << 6,     // AVX-VNNI (256-bit vpdpbusd without AVX-512)
};

enum class IsaLevel : int { scalar = 0, avx2 = 1, avx512 = 2, avx512_icl = 3 };

// Features reported by CPUID and enabled by the OS (XCR0), regardless of the cap.
uint32_t detected_features();
// detected_features() limited by the cap.
uint32_t usable_features();
IsaLevel max_isa();
// Caps the instruction set used from now on. Kernels already chosen are chosen again.
void set_max_isa(IsaLevel level);
// Parses "scalar", "avx2", "avx512", "avx512_icl" (also "native"/"max"); throws on others.
IsaLevel parse_isa(const std::string& name);
std::string isa_name(IsaLevel level);
// Names of the bits set in `features`, e.g. {"popcnt", "avx2", "avx512"}.
std::vector<std::string> feature_names(uint32_t features);
// The CPU's brand string, e.g. "Intel(R) Xeon(R) Processor".
std::string brand();
// Bytes of one core's L2 cache as the OS reports it (1 MiB when it does not say).
int64_t l2_cache_bytes();
// Incremented whenever the cap changes; dispatchers use it to refresh cached choices.
uint64_t generation();

}  // namespace lowbit::cpu
