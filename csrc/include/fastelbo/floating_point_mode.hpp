// Flush-to-zero / denormals-are-zero for the kernels' own threads, restored on scope exit.
//
// Sharp posteriors make exp(log-joint - max) land on subnormal floats for many point-component
// pairs, and some cores (Intel's among them) pay ~100 cycles for every operation on a subnormal. The
// kernels therefore compute with subnormals flushed to zero: terms below the smallest normal number
// (~2.2e-308 in float64, ~1.2e-38 in float32) are dropped, which changes no reported quantity beyond
// round-off. The mode is a per-thread register: every thread that runs kernel code sets it for the
// duration of its work and restores exactly what it found, so the caller's floating-point
// environment (and that of pooled OpenMP threads) is untouched afterwards.
#pragma once

#include <cstdint>

#if defined(__SSE__) || defined(_M_X64) || (defined(_M_IX86_FP) && _M_IX86_FP >= 1)
#include <xmmintrin.h>
#define FASTELBO_FP_MODE_SSE 1
#endif

namespace fastelbo {

namespace floating_point_control {
#if defined(FASTELBO_FP_MODE_SSE)
// MXCSR: FTZ (bit 15) flushes subnormal results, DAZ (bit 6) treats subnormal inputs as zero.
constexpr std::uint64_t kFlushBits = (1u << 15) | (1u << 6);
inline std::uint64_t read() {
    return _mm_getcsr();
}
inline void write(std::uint64_t value) {
    _mm_setcsr(static_cast<unsigned int>(value));
}
#elif defined(__aarch64__)
// FPCR.FZ (bit 24) flushes subnormal inputs and results of the FP/SIMD units.
constexpr std::uint64_t kFlushBits = std::uint64_t(1) << 24;
inline std::uint64_t read() {
    std::uint64_t value;
    __asm__ __volatile__("mrs %0, fpcr" : "=r"(value));
    return value;
}
inline void write(std::uint64_t value) {
    __asm__ __volatile__("msr fpcr, %0" : : "r"(value));
}
#else
// No portable control: the kernels still compute correctly, only slower on subnormals.
constexpr std::uint64_t kFlushBits = 0;
inline std::uint64_t read() {
    return 0;
}
inline void write(std::uint64_t) {}
#endif
}  // namespace floating_point_control

// Whether the calling thread flushes subnormals (false where the mode cannot be controlled).
inline bool flushes_subnormals() {
    using namespace floating_point_control;
    return kFlushBits != 0 && (read() & kFlushBits) == kFlushBits;
}

// Sets or clears the calling thread's flush mode (for tests of the restore).
inline void set_flushing_subnormals(bool on) {
    using namespace floating_point_control;
    write(on ? (read() | kFlushBits) : (read() & ~kFlushBits));
}

class FlushSubnormalsScope {
  public:
    FlushSubnormalsScope() : saved_(floating_point_control::read()) {
        floating_point_control::write(saved_ | floating_point_control::kFlushBits);
    }
    ~FlushSubnormalsScope() { floating_point_control::write(saved_); }
    FlushSubnormalsScope(const FlushSubnormalsScope&) = delete;
    FlushSubnormalsScope& operator=(const FlushSubnormalsScope&) = delete;

  private:
    std::uint64_t saved_;
};

}  // namespace fastelbo
