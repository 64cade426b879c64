// Which x86-64 micro-architecture levels (psABI x86-64-v2, -v3, -v4) this CPU *and* its operating
// system support, for choosing among the kernel builds at import.
//
// A level needs its instructions (CPUID bits) and, for AVX and AVX-512, the OS's promise to save the
// wider registers on a context switch (XCR0 via XGETBV, itself advertised by CPUID.1:ECX.OSXSAVE).
// Compile this file for the baseline instruction set only: it runs before anything else is known.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#if defined(_MSC_VER) && (defined(_M_X64) || defined(_M_IX86))
#include <immintrin.h>
#include <intrin.h>
#define FASTELBO_X86 1
#elif defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#define FASTELBO_X86 1
#endif

namespace fastelbo {

#if defined(FASTELBO_X86)
namespace x86 {

struct Registers {
    std::uint32_t eax = 0, ebx = 0, ecx = 0, edx = 0;
};

inline Registers cpuid(std::uint32_t leaf, std::uint32_t subleaf = 0) {
    Registers r;
#if defined(_MSC_VER)
    int regs[4];
    __cpuidex(regs, static_cast<int>(leaf), static_cast<int>(subleaf));
    r.eax = regs[0], r.ebx = regs[1], r.ecx = regs[2], r.edx = regs[3];
#else
    __cpuid_count(leaf, subleaf, r.eax, r.ebx, r.ecx, r.edx);
#endif
    return r;
}

// XCR0: the register state the OS saves. Only call when CPUID says OSXSAVE.
inline std::uint64_t xcr0() {
#if defined(_MSC_VER)
    return _xgetbv(0);
#else
    std::uint32_t eax, edx;
    __asm__ __volatile__("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
    return (static_cast<std::uint64_t>(edx) << 32) | eax;
#endif
}

inline bool bit(std::uint32_t reg, int b) {
    return (reg >> b) & 1u;
}

}  // namespace x86
#endif

// The supported levels, lowest first ("v2", "v3", "v4"); empty off x86-64 or below x86-64-v2.
inline std::vector<std::string> supported_x86_64_levels() {
    std::vector<std::string> levels;
#if defined(FASTELBO_X86)
    using x86::bit;
    const std::uint32_t max_leaf = x86::cpuid(0).eax;
    if (max_leaf < 1) return levels;
    const x86::Registers l1 = x86::cpuid(1);
    const x86::Registers l7 = max_leaf >= 7 ? x86::cpuid(7, 0) : x86::Registers{};
    const std::uint32_t max_extended = x86::cpuid(0x80000000u).eax;
    const x86::Registers e1 = max_extended >= 0x80000001u ? x86::cpuid(0x80000001u) : x86::Registers{};

    // x86-64-v2: CMPXCHG16B, LAHF/SAHF, POPCNT, SSE3, SSSE3, SSE4.1, SSE4.2.
    const bool v2 = bit(l1.ecx, 13) && bit(e1.ecx, 0) && bit(l1.ecx, 23) && bit(l1.ecx, 0) && bit(l1.ecx, 9) &&
                    bit(l1.ecx, 19) && bit(l1.ecx, 20);
    if (!v2) return levels;
    levels.emplace_back("v2");

    const bool osxsave = bit(l1.ecx, 27);
    const std::uint64_t xcr0 = osxsave ? x86::xcr0() : 0;
    const bool os_saves_avx = (xcr0 & 0x6) == 0x6;       // XMM and YMM state
    const bool os_saves_avx512 = (xcr0 & 0xE6) == 0xE6;  // plus opmask, ZMM_Hi256, Hi16_ZMM

    // x86-64-v3: AVX, AVX2, BMI1, BMI2, F16C, FMA, LZCNT (ABM), MOVBE, XSAVE.
    const bool v3 = os_saves_avx && bit(l1.ecx, 28) && bit(l7.ebx, 5) && bit(l7.ebx, 3) && bit(l7.ebx, 8) &&
                    bit(l1.ecx, 29) && bit(l1.ecx, 12) && bit(e1.ecx, 5) && bit(l1.ecx, 22) && bit(l1.ecx, 26);
    if (!v3) return levels;
    levels.emplace_back("v3");

    // x86-64-v4: AVX512F, AVX512BW, AVX512CD, AVX512DQ, AVX512VL.
    const bool v4 =
        os_saves_avx512 && bit(l7.ebx, 16) && bit(l7.ebx, 30) && bit(l7.ebx, 28) && bit(l7.ebx, 17) && bit(l7.ebx, 31);
    if (v4) levels.emplace_back("v4");
#endif
    return levels;
}

}  // namespace fastelbo
