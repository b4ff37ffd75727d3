// Function-level target attributes for fast paths.
//
// The library is compiled for baseline x86-64; a kernel that uses wider instructions carries
// one of these attributes on every function it defines (helpers included) and is only ever
// called through a KernelTable after the CPU was found to support it. Using attributes rather
// than per-file -m flags keeps inline library code (std::min, templates) compiled for the
// baseline, so the linker can never pick an AVX-512 copy of it for the portable path.
#pragma once

#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#define LOWBIT_X86 1
#define LOWBIT_TARGET_AVX2 __attribute__((target("avx2,fma,bmi,bmi2,popcnt,lzcnt,f16c")))
#define LOWBIT_TARGET_AVX512 \
  __attribute__((target("avx2,fma,bmi,bmi2,popcnt,lzcnt,f16c,avx512f,avx512bw,avx512dq,avx512vl,avx512cd")))
#define LOWBIT_TARGET_AVX512_VNNI \
  __attribute__((target("avx2,fma,bmi,bmi2,popcnt,lzcnt,f16c,avx512f,avx512bw,avx512dq,avx512vl,avx512cd,avx512vnni")))
#define LOWBIT_TARGET_AVX512_VPOPCNT \
  __attribute__((target("avx2,fma,bmi,bmi2,popcnt,lzcnt,f16c,avx512f,avx512bw,avx512dq,avx512vl,avx512cd,avx512vpopcntdq,avx512bitalg")))
#define LOWBIT_TARGET_AVX512_ICL                                                                 \
  __attribute__((target("avx2,fma,bmi,bmi2,popcnt,lzcnt,f16c,avx512f,avx512bw,avx512dq,avx512vl," \
                        "avx512cd,avx512vnni,avx512vpopcntdq,avx512bitalg,avx512vbmi,avx512vbmi2")))
#else
#define LOWBIT_X86 0
#endif
