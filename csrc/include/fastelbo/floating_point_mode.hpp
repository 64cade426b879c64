// Flush-to-zero / denormals-are-zero for the kernels' own threads, restored on scope exit.
//
// Sharp posteriors make exp(log-joint - max) land on subnormal floats for many point-component
// pairs, and some cores (Intel's among them) pay ~100 cycles for every operation on a subnormal. The
// kernels therefore compute with subnormals flushed to zero: terms below the smallest normal number
// (~2.2e-308 in float64, ~1.2e-38 in float32) are dropped, which changes no reported quantity beyond
// round-off. The mode is a per-thread register: every thread that runs kernel code sets it for the
// duration of its work and restores exactly what it found, so the caller's floating-point
// environment (and that of pooled OpenMP threads) is untouched afterwards.
//
// A new thread starts with a copy of the mode of the thread that creates it (Linux copies the
// whole register state on clone), and OpenMP creates its pool threads from the thread that enters a
// parallel region, when it asks for a larger team than before, and keeps them for the life of that
// thread (each thread that enters regions has a pool of its own). A region entered while its
// thread flushes would therefore start pool threads that flush for good: each would save
// "flushing" as the mode to restore. Hence the rule: threads are
// started, and the caller's code (Python signal handlers, run by an interrupt poll) is run, in the
// mode the thread had before its outermost FlushSubnormalsScope (CallersFloatingPointMode).
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

namespace floating_point_control {
// The calling thread's FlushSubnormalsScope nesting depth, and its mode before the outermost one.
struct ThreadScopes {
    int depth = 0;
    std::uint64_t callers_mode = 0;
};
inline ThreadScopes& thread_scopes() {
    static thread_local ThreadScopes scopes;
    return scopes;
}
// `value` with its flush bits replaced by those of `flush_from`.
inline std::uint64_t with_flush_bits_of(std::uint64_t value, std::uint64_t flush_from) {
    return (value & ~kFlushBits) | (flush_from & kFlushBits);
}
}  // namespace floating_point_control

// Flushes subnormals on the calling thread for the scope's lifetime; restores the mode it found.
class FlushSubnormalsScope {
  public:
    FlushSubnormalsScope() : saved_(floating_point_control::read()) {
        auto& scopes = floating_point_control::thread_scopes();
        if (scopes.depth++ == 0) scopes.callers_mode = saved_;
        floating_point_control::write(saved_ | floating_point_control::kFlushBits);
    }
    ~FlushSubnormalsScope() {
        floating_point_control::write(saved_);
        --floating_point_control::thread_scopes().depth;
    }
    FlushSubnormalsScope(const FlushSubnormalsScope&) = delete;
    FlushSubnormalsScope& operator=(const FlushSubnormalsScope&) = delete;

  private:
    std::uint64_t saved_;
};

// For its lifetime, gives the calling thread back the flush mode it had before its outermost
// FlushSubnormalsScope (nothing changes outside one), then returns to the flush mode it found.
// Held while a thread enters an OpenMP parallel region, so that pool threads created there start
// in the caller's mode, and while the caller's code runs (an interrupt poll). Only the flush bits
// change: exception flags raised meanwhile are kept.
class CallersFloatingPointMode {
  public:
    CallersFloatingPointMode() : saved_(floating_point_control::read()) {
        using namespace floating_point_control;
        const ThreadScopes& scopes = thread_scopes();
        active_ = scopes.depth > 0;
        if (active_) write(with_flush_bits_of(saved_, scopes.callers_mode));
    }
    ~CallersFloatingPointMode() {
        using namespace floating_point_control;
        if (active_) write(with_flush_bits_of(read(), saved_));
    }
    CallersFloatingPointMode(const CallersFloatingPointMode&) = delete;
    CallersFloatingPointMode& operator=(const CallersFloatingPointMode&) = delete;

  private:
    std::uint64_t saved_;
    bool active_ = false;
};

}  // namespace fastelbo
