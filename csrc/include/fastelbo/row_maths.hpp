// The per-row maths of a mixture E-step, shared by the CPU kernels and the CUDA kernels: no Eigen,
// no allocation, every function callable from host and device code.
//
// A row of log-joints l_c = log pi_c + log p(x | c) becomes, with t_c = l_c - max_c l_c, e_c = exp(t_c)
// (set to exactly 0 below the underflow cutoff) and s = sum_c e_c:
//   log p(x) = max + log s,   q_c = e_c / s,   H[q] = log s - (sum_c e_c t_c) / s.
// How the sums s and sum_c e_c t_c are formed (vectorised on the CPU, a warp's fixed shuffle tree on
// the GPU) is the caller's; what is done with them is here, once.
#pragma once

#include <cmath>
#include <limits>

#if defined(__CUDACC__)
#define FASTELBO_HOST_DEVICE __host__ __device__
#else
#define FASTELBO_HOST_DEVICE
#endif

namespace fastelbo {

// t_c below log(smallest normal number) (about -708 in float64, -87 in float32) gives e_c = 0: a
// clamped exp would otherwise return a tiny non-zero value (see posterior_row.hpp).
template <class T>
FASTELBO_HOST_DEVICE inline T underflow_cutoff() {
    return std::log(std::numeric_limits<T>::min());
}

// e_c = exp(t_c), or exactly 0 below the cutoff.
template <class T>
FASTELBO_HOST_DEVICE inline T kept_exponential(T t, T exp_t, T cutoff) {
    return t < cutoff ? T(0) : exp_t;
}

// What a row's posterior needs once its sums are known.
template <class T>
struct RowPosteriorTerms {
    T inv_s;          // 1 / s, the factor that turns e_c into q_c
    double log_norm;  // log p(x) = max + log s
    double entropy;   // H[q] = log s - (sum_c e_c t_c) / s
};

// log p(x) = max + log s, in float64.
template <class T>
FASTELBO_HOST_DEVICE inline double row_log_norm(T max, T log_s) {
    return static_cast<double>(max) + static_cast<double>(log_s);
}

// H[q] = log s - (sum_c e_c t_c) / s, in float64 (`et` = sum_c e_c t_c, `inv_s` = 1 / s).
template <class T>
FASTELBO_HOST_DEVICE inline double row_entropy(T log_s, T et, T inv_s) {
    return static_cast<double>(log_s) - static_cast<double>(et * inv_s);
}

// `max` the row's largest log-joint, `s` = sum_c e_c, `et` = sum_c e_c t_c.
template <class T>
FASTELBO_HOST_DEVICE inline RowPosteriorTerms<T> row_posterior_terms(T max, T s, T et) {
    const T inv_s = T(1) / s;
    const T log_s = std::log(s);
    return RowPosteriorTerms<T>{inv_s, row_log_norm(max, log_s), row_entropy(log_s, et, inv_s)};
}

// A finite stand-in for log(0): keeps 0 * log-joint at 0 instead of NaN.
template <class T>
FASTELBO_HOST_DEVICE inline T log_zero_floor() {
    return std::numeric_limits<T>::lowest() / T(16);
}

// 0.5 log(2 pi), the per-dimension constant of a Gaussian's log-normaliser.
FASTELBO_HOST_DEVICE inline double half_log_two_pi() {
    return 0.5 * std::log(2.0 * 3.14159265358979323846);
}

// log pi_c - D/2 log(2 pi) + log|U_c|: the part of a Gaussian component's log-joint that does not
// depend on the row (U_c the precision Cholesky factor, log|U_c| = sum of its log-diagonal).
// log pi_c - D/2 log(2 pi) is one fused multiply-add, written out: left to the compiler, whether it is
// fused depends on the code around it (a call inside a loop over components got one rounding, the
// same call with D hoisted out of the loop two), and every kernel must get the same constant.
FASTELBO_HOST_DEVICE inline double gaussian_log_joint_constant(double log_weight, long long n_features,
                                                               double log_det_precision_cholesky) {
    return ::fma(-static_cast<double>(n_features), half_log_two_pi(), log_weight) + log_det_precision_cholesky;
}

// A log-joint constant in the working precision; log pi_c = -inf (an empty component) becomes a
// finite floor so that q_c = 0 and 0 * log-joint stays 0. NaN and +inf (a NaN log-weight, an
// infinite precision factor) stay as they are, so that the pass reports them rather than treating
// the component as empty.
template <class T>
FASTELBO_HOST_DEVICE inline T finite_component_constant(double value) {
    return value == -std::numeric_limits<double>::infinity() ? log_zero_floor<T>() : static_cast<T>(value);
}

}  // namespace fastelbo
