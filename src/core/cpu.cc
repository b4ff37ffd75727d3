#include "lowbit/core/cpu.h"

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <mutex>
#if defined(__unix__)
#include <unistd.h>
#endif

#include "lowbit/core/error.h"

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

namespace lowbit::cpu {
namespace {

#if defined(__x86_64__) || defined(__i386__)
uint64_t xgetbv0() {
  uint32_t eax, edx;
  __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
  return (static_cast<uint64_t>(edx) << 32) | eax;
}

uint32_t detect() {
  uint32_t a, b, c, d;
  if (!__get_cpuid(1, &a, &b, &c, &d)) return kNone;
  const bool popcnt = c & (1u << 23);
  const bool fma = c & (1u << 12);
  const bool osxsave = c & (1u << 27);
  const bool avx = c & (1u << 28);
  uint32_t f = popcnt ? kPopcnt : kNone;
  if (!osxsave || !avx) return f;
  const uint64_t xcr0 = xgetbv0();
  const bool os_ymm = (xcr0 & 0x6) == 0x6;
  const bool os_zmm = (xcr0 & 0xe6) == 0xe6;
  if (__get_cpuid_max(0, nullptr) < 7) return f;
  __cpuid_count(7, 0, a, b, c, d);
  const uint32_t b7 = b, c7 = c;
  __cpuid_count(7, 1, a, b, c, d);
  const uint32_t a71 = a;
  const bool avx2 = b7 & (1u << 5), bmi1 = b7 & (1u << 3), bmi2 = b7 & (1u << 8);
  if (os_ymm && avx2 && fma && bmi1 && bmi2) f |= kAvx2;
  if ((f & kAvx2) && (a71 & (1u << 4))) f |= kAvxVnni;
  const bool f512 = b7 & (1u << 16), dq = b7 & (1u << 17), cd = b7 & (1u << 28),
             bw = b7 & (1u << 30), vl = b7 & (1u << 31);
  if ((f & kAvx2) && os_zmm && f512 && dq && cd && bw && vl) {
    f |= kAvx512;
    if (c7 & (1u << 11)) f |= kAvx512Vnni;
    if ((c7 & (1u << 14)) && (c7 & (1u << 12))) f |= kAvx512Vpopcnt;
    if ((c7 & (1u << 1)) && (c7 & (1u << 6))) f |= kAvx512Vbmi;
  }
  return f;
}
#else
uint32_t detect() { return kNone; }
#endif

uint32_t mask_for(IsaLevel level) {
  switch (level) {
    case IsaLevel::scalar: return kPopcnt;
    case IsaLevel::avx2: return kPopcnt | kAvx2 | kAvxVnni;
    case IsaLevel::avx512: return kPopcnt | kAvx2 | kAvxVnni | kAvx512;
    case IsaLevel::avx512_icl: return ~0u;
  }
  return ~0u;
}

std::atomic<int> g_cap{-1};
std::atomic<uint64_t> g_generation{0};
std::once_flag g_env_once;

void read_env_cap() {
  std::call_once(g_env_once, [] {
    const char* env = std::getenv("LOWBIT_MAX_ISA");
    int cap = static_cast<int>(IsaLevel::avx512_icl);
    if (env != nullptr && *env != '\0') cap = static_cast<int>(parse_isa(env));
    int expected = -1;
    g_cap.compare_exchange_strong(expected, cap);
  });
}

}  // namespace

uint32_t detected_features() {
  static const uint32_t f = detect();
  return f;
}

IsaLevel max_isa() {
  read_env_cap();
  return static_cast<IsaLevel>(g_cap.load());
}

uint32_t usable_features() { return detected_features() & mask_for(max_isa()); }

void set_max_isa(IsaLevel level) {
  read_env_cap();
  g_cap.store(static_cast<int>(level));
  g_generation.fetch_add(1);
}

uint64_t generation() {
  read_env_cap();
  return g_generation.load();
}

IsaLevel parse_isa(const std::string& name) {
  if (name == "scalar") return IsaLevel::scalar;
  if (name == "avx2") return IsaLevel::avx2;
  if (name == "avx512") return IsaLevel::avx512;
  if (name == "avx512_icl" || name == "native" || name == "max") return IsaLevel::avx512_icl;
  fail("unknown instruction-set level '", name,
       "' (LOWBIT_MAX_ISA expects one of: scalar, avx2, avx512, avx512_icl, native)");
}

std::string isa_name(IsaLevel level) {
  switch (level) {
    case IsaLevel::scalar: return "scalar";
    case IsaLevel::avx2: return "avx2";
    case IsaLevel::avx512: return "avx512";
    case IsaLevel::avx512_icl: return "avx512_icl";
  }
  return "?";
}

std::vector<std::string> feature_names(uint32_t f) {
  std::vector<std::string> out;
  if (f & kPopcnt) out.emplace_back("popcnt");
  if (f & kAvx2) out.emplace_back("avx2");
  if (f & kAvxVnni) out.emplace_back("avx_vnni");
  if (f & kAvx512) out.emplace_back("avx512");
  if (f & kAvx512Vnni) out.emplace_back("avx512_vnni");
  if (f & kAvx512Vpopcnt) out.emplace_back("avx512_vpopcntdq");
  if (f & kAvx512Vbmi) out.emplace_back("avx512_vbmi");
  return out;
}

int64_t l2_cache_bytes() {
  static const int64_t bytes = [] {
#if defined(_SC_LEVEL2_CACHE_SIZE)
    const long v = sysconf(_SC_LEVEL2_CACHE_SIZE);
    if (v > 0) return static_cast<int64_t>(v);
#endif
    return int64_t{1} << 20;
  }();
  return bytes;
}

std::string brand() {
#if defined(__x86_64__) || defined(__i386__)
  uint32_t regs[12] = {};
  if (__get_cpuid_max(0x80000000, nullptr) < 0x80000004) return "unknown";
  for (uint32_t i = 0; i < 3; ++i)
    __get_cpuid(0x80000002 + i, &regs[i * 4], &regs[i * 4 + 1], &regs[i * 4 + 2], &regs[i * 4 + 3]);
  char s[49];
  std::memcpy(s, regs, 48);
  s[48] = '\0';
  std::string out(s);
  const auto first = out.find_first_not_of(' ');
  return first == std::string::npos ? "unknown" : out.substr(first, out.find_last_not_of(' ') - first + 1);
#else
  return "unknown";
#endif
}

}  // namespace lowbit::cpu
