#include "fastelbo/exponential_family_m_step.hpp"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>
#include <vector>

#include "fastelbo/row_block_schedule.hpp"

namespace fastelbo {

namespace {

// Components per work item.
constexpr Index kComponentsPerItem = 8;
// NumPy's pairwise summation: blocks of at most this many values are summed in 8 accumulators.
constexpr Index kPairwiseBlock = 128;

double pairwise_sum(const double* a, Index n) {
    if (n < 8) {
        double s = 0.0;
        for (Index i = 0; i < n; ++i) s += a[i];
        return s;
    }
    if (n <= kPairwiseBlock) {
        double r[8];
        for (int j = 0; j < 8; ++j) r[j] = a[j];
        Index i = 8;
        for (; i < n - (n % 8); i += 8)
            for (int j = 0; j < 8; ++j) r[j] += a[i + j];
        double s = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
        for (; i < n; ++i) s += a[i];
        return s;
    }
    Index half = n / 2;
    half -= half % 8;
    return pairwise_sum(a, half) + pairwise_sum(a + half, n - half);
}

}  // namespace

// NumPy adds the pairwise sum to the reduction's start, +0.0 (so a sum of -0.0 is +0.0).
double numpy_row_sum(const double* a, Index n) { return 0.0 + pairwise_sum(a, n); }

void exponential_family_m_step(const ExponentialFamilyMStep& s) {
    const Index K = s.n_components, D = s.n_features;
    if (K < 1 || D < 1) throw std::invalid_argument("exponential_family_m_step: need K >= 1 and D >= 1");
    if (!s.sx || !s.nk || !s.means || !s.natural || !s.log_partition)
        throw std::invalid_argument("exponential_family_m_step: missing arrays");
    const bool bernoulli = s.family == ExponentialFamily::Bernoulli;
    if (!(s.mean_floor > 0) || (bernoulli && !(s.mean_floor < 0.5)) || !std::isfinite(s.mean_floor))
        throw std::invalid_argument("exponential_family_m_step: mean_floor must be in (0, 0.5) (Bernoulli) or "
                                    "finite and > 0 (Poisson), got " +
                                    std::to_string(s.mean_floor));
    const double lower = s.mean_floor, upper = 1.0 - s.mean_floor;
    const double floor_log = std::log(lower), floor_log1m = std::log1p(-lower);
    const Index n_items = (K + kComponentsPerItem - 1) / kComponentsPerItem;
    const int threads = resolve_thread_count(s.n_threads);
    std::vector<std::vector<double>> scratch(static_cast<size_t>(threads), std::vector<double>(D));

    parallel_for_each(n_items, s.n_threads, [&](Index item) {
        const Index c0 = item * kComponentsPerItem, c1 = std::min(K, c0 + kComponentsPerItem);
        // The means: sx / nk within the floor (NumPy: sx / nk[:, None], then clip or maximum).
        auto floored = [&](double mu) { return bernoulli ? std::min(std::max(mu, lower), upper) : std::max(mu, lower); };
        if (s.sx_transposed) {
            for (Index d = 0; d < D; ++d) {
                const double* column = s.sx + d * K;
                for (Index c = c0; c < c1; ++c) s.means[c * D + d] = floored(column[c] / s.nk[c]);
            }
        } else {
            for (Index c = c0; c < c1; ++c) {
                const double* row = s.sx + c * D;
                double* mu = s.means + c * D;
                const double n = s.nk[c];
                for (Index d = 0; d < D; ++d) mu[d] = floored(row[d] / n);
            }
        }
        double* work = scratch[current_thread_index()].data();
        for (Index c = c0; c < c1; ++c) {
            const double* mu = s.means + c * D;
            double* eta = s.natural + c * D;
            // Sparse data leave most means at the lower floor (a component's rows use few of the
            // columns): their logarithms are computed once (the same values, bitwise).
            if (bernoulli) {
                // NumPy: eta = log(mu); eta -= log1p(-mu); A = -log1p(-mu).
                for (Index d = 0; d < D; ++d) {
                    const bool at_floor = mu[d] == lower;
                    const double l = at_floor ? floor_log1m : std::log1p(-mu[d]);
                    eta[d] = (at_floor ? floor_log : std::log(mu[d])) - l;
                    work[d] = -l;
                }
                s.log_partition[c] = -numpy_row_sum(work, D);
            } else {
                for (Index d = 0; d < D; ++d) eta[d] = mu[d] == lower ? floor_log : std::log(mu[d]);
                s.log_partition[c] = -numpy_row_sum(mu, D);
            }
            if (s.natural_mean_sums) {
                for (Index d = 0; d < D; ++d) work[d] = eta[d] * mu[d];
                s.natural_mean_sums[c] = numpy_row_sum(work, D);
            }
        }
    });
}

}  // namespace fastelbo
