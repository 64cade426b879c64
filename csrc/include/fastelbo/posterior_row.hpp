// One row of log-joints -> responsibilities, log-normaliser and entropy, in one sweep.
//
// With t_c = l_c - max_c l_c, e_c = exp(t_c) and s = sum_c e_c:
//   log p(x) = max + log s,   q_c = e_c / s,   H[q] = -sum_c q_c log q_c = log s - (sum_c e_c t_c) / s.
// The entropy needs no second exp or log; a component with e_c = 0 contributes exactly 0 as long as
// l_c is finite, which the callers guarantee by flooring log-weights of empty components.
//
// Terms with t_c below log(smallest normal number) (about -708 in float64, -87 in float32), i.e.
// smaller than ~1e-308 / ~1e-38 times the row's largest term, are set to exactly 0: a vectorised exp
// clamps its argument and would otherwise return a tiny non-zero value, giving a component of weight
// 0 a responsibility of ~2^-1024 and inflating the entropy by e_c * t_c.
#pragma once

#include <algorithm>
#include <cmath>
#include <limits>

#include "fastelbo/row_maths.hpp"
#include "fastelbo/types.hpp"

namespace fastelbo {

struct RowPosterior {
    double log_norm;
    double entropy;
    Index argmax;
};

// The largest of a row's log-joints `value` (K, summed in float64), or NaN where they cannot be
// rounded relative to it (round_relative_to): one is NaN, or every one lies at or below T's floor
// for log 0 (the row's log-likelihood is below what that floor lets T tell apart, or the only
// components above it are empty).
template <class T>
inline double largest_log_joint(const double* value, Index K) {
    double largest = -std::numeric_limits<double>::infinity();
    bool nan = false;
    for (Index k = 0; k < K; ++k) {
        nan = nan || std::isnan(value[k]);
        largest = std::max(largest, value[k]);
    }
    return nan || !(largest > static_cast<double>(log_zero_floor<T>())) ? std::numeric_limits<double>::quiet_NaN()
                                                                       : largest;
}

// Rounds a row's log-joints `value` to T in `out` relative to their `largest` (largest_log_joint),
// which the family keeps apart (row_offsets: the pass adds it to the row's log-normaliser). The
// posterior reads only the differences, which T then holds to its own precision however far the
// row lies (rounded whole, float32 log-joints of -5e5 are 0.03 apart). Log-joints at T's floor
// (empty components) stay there.
template <class T>
inline void round_relative_to(const double* value, Index K, double largest, T* out) {
    const double floor = static_cast<double>(log_zero_floor<T>());
    for (Index k = 0; k < K; ++k)
        out[k] = static_cast<T>(value[k] > floor ? std::max(value[k] - largest, floor) : floor);
}

// round_relative_to the row's largest log-joint, which is returned. Where largest_log_joint
// refuses the row, it is written NaN and 0 returned, so that the pass reports it as it reports an
// overflow.
template <class T>
inline double round_relative_to_largest(const double* value, Index K, T* out) {
    const double largest = largest_log_joint<T>(value, K);
    if (std::isnan(largest)) {
        std::fill(out, out + K, std::numeric_limits<T>::quiet_NaN());
        return 0.0;
    }
    round_relative_to(value, K, largest, out);
    return largest;
}

// Overwrites `row` (length K) with the responsibilities. `scratch` holds at least K values.
template <class T>
inline RowPosterior posterior_from_log_joint_row(T* row, Index K, T* scratch) {
    Eigen::Map<Eigen::Array<T, Eigen::Dynamic, 1>> l(row, K);
    Eigen::Map<Eigen::Array<T, Eigen::Dynamic, 1>> e(scratch, K);
    const T max = l.maxCoeff();
    l -= max;
    e = l.exp();
    const T cutoff = underflow_cutoff<T>();
    for (Index c = 0; c < K; ++c) e[c] = kept_exponential(l[c], e[c], cutoff);  // compiles to a vector blend
    // The label is the first component of largest responsibility, so that it is argmax q even where
    // log-joints that differ give the same q (a float32 gap below 6e-8 rounds exp to 1): a vectorised
    // maximum, then the first index holding it (Eigen's indexed maxCoeff is a scalar loop with a
    // branch per entry, a sixth of a diag pass on AVX2).
    const T largest = e.maxCoeff();
    Index argmax = 0;
    while (argmax + 1 < K && !(e[argmax] == largest)) ++argmax;
    const T s = e.sum();
    const T et = (e * l).sum();
    const T inv_s = T(1) / s;
    l = e * inv_s;
    const T log_s = std::log(s);
    return RowPosterior{row_log_norm(max, log_s), row_entropy(log_s, et, inv_s), argmax};
}

}  // namespace fastelbo
