// The dense M-step maths of the Bernoulli and Poisson mixtures, O(K D): from the statistics sx
// (sum_n w_n q_nc x_nd) and nk (sum_n w_n q_nc, floored) the means mu_cd = sx_cd / nk_c kept within
// the floor, their natural parameters eta_cd and the per-component sums every pass and the entropy
// decomposition read:
//   Bernoulli: mu in [floor, 1 - floor], eta = log(mu) - log1p(-mu), A(eta) = -log1p(-mu)
//   Poisson:   mu >= floor,              eta = log(mu),               A(eta) = mu
//   b_c = -sum_d A(eta_cd)         (the pass's per-component constant)
//   m_c = sum_d eta_cd mu_cd       (sum_d H~_cd = -b_c - m_c, the pseudo-entropy sums)
//
// Every entry is computed as NumPy computes it in the estimator's reference maths (the same
// divisions, the same clip, the C library's log and log1p, bitwise), and every row sum as NumPy's
// np.sum over a contiguous row: the pairwise sum (blocks of 128 in eight interleaved accumulators,
// halves at multiples of 8). A component is computed by one work item
// from its own row alone, so the result is bitwise the same for any thread count. Work items are
// blocks of components, run in parallel with subnormals flushed (row_block_schedule.hpp).
#pragma once

#include <cstdint>

#include "fastelbo/exponential_family_mixture_pass.hpp"
#include "fastelbo/types.hpp"

namespace fastelbo {

struct ExponentialFamilyMStep {
    ExponentialFamily family = ExponentialFamily::Bernoulli;
    Index n_components = 0;
    Index n_features = 0;
    const double* sx = nullptr;       // [K, D] at c * D + d, or [D, K] at d * K + c if sx_transposed
    bool sx_transposed = false;
    const double* nk = nullptr;       // [K], > 0
    double mean_floor = 0;            // Bernoulli: in (0, 0.5); Poisson: > 0
    double* means = nullptr;          // [K, D] out
    double* natural = nullptr;        // [K, D] out
    double* log_partition = nullptr;  // [K] out: b_c = -sum_d A(eta_cd)
    double* natural_mean_sums = nullptr;  // [K] out, optional: sum_d eta_cd mu_cd
    int n_threads = 0;
};

// NumPy's float64 sum of n contiguous values (np.sum of a contiguous row, NumPy 2): the pairwise
// sum (below 8 values in order; up to 128 in eight interleaved accumulators; beyond, two halves split
// at a multiple of 8).
double numpy_row_sum(const double* a, Index n);

// Throws std::invalid_argument on inconsistent arguments, before any work.
void exponential_family_m_step(const ExponentialFamilyMStep& step);

}  // namespace fastelbo
