// AFK-MC² seeding (see afkmc2.hpp).
//
// Each chain's proposals and acceptance draws come from one Xoshiro256 stream in a fixed order, and
// the only parallel work is the distance of the chain's m rows to the chosen centres, reduced by an
// exact minimum: results are bitwise identical for any thread count.
#include "fastelbo/afkmc2.hpp"

#include <algorithm>
#include <limits>
#include <stdexcept>

#include "fastelbo/kmeans_geometry.hpp"
#include "fastelbo/random.hpp"
#include "fastelbo/row_block_schedule.hpp"

namespace fastelbo {
namespace {

// Centres per distance block: one GEMM of [m, D] x [D, 256] per block and thread.
constexpr Index kCentresPerBlock = 256;

// Index of the first running sum >= target (numpy.searchsorted, side='left'), clipped to N-1.
Index draw_from_cumulative(const std::vector<double>& cumulative, double target) {
    const auto it = std::lower_bound(cumulative.begin(), cumulative.end(), target);
    return std::min<Index>(static_cast<Index>(it - cumulative.begin()), static_cast<Index>(cumulative.size()) - 1);
}

std::vector<double> running_sums(const Vector<double>& values) {
    std::vector<double> out(values.size());
    double running = 0;
    for (Index n = 0; n < values.size(); ++n) out[n] = running += values(n);
    return out;
}

// Squared distance of every row to row `first_row`, in float64.
template <class T>
Vector<double> squared_distances_to_row(const KMeansData<T>& data, Index first_row, int n_threads) {
    const RowVector<double> centre = data.row(first_row).template cast<double>();
    Vector<double> out(data.n_rows);
    parallel_for_each(data.n_rows, n_threads,
                      [&](Index n) { out(n) = (data.row(n).template cast<double>() - centre).squaredNorm(); });
    return out;
}

}  // namespace

template <class T>
Vector<double> afkmc2_proposal(const KMeansData<T>& data, Index first_row, int n_threads) {
    if (first_row < 0 || first_row >= data.n_rows) throw std::invalid_argument("afkmc2: first_row out of range");
    const Vector<double> distance = squared_distances_to_row(data, first_row, n_threads);
    double total_weight = 0, total_potential = 0;  // serial sums in row order: deterministic
    for (Index n = 0; n < data.n_rows; ++n) {
        total_weight += weight_of(data, n);
        total_potential += weight_of(data, n) * distance(n);
    }
    Vector<double> q(data.n_rows);
    for (Index n = 0; n < data.n_rows; ++n) {
        const double w = weight_of(data, n);
        // All rows on the first centre: the distance term is 0/0, and the uniform term is all there is.
        q(n) =
            total_potential > 0 ? 0.5 * w * distance(n) / total_potential + 0.5 * w / total_weight : w / total_weight;
    }
    return q;
}

template <class T>
std::vector<Index> afkmc2(const KMeansData<T>& data, Index n_clusters, Index chain_length, std::uint64_t seed,
                          int n_threads, const InterruptPoll& interrupt) {
    if (n_clusters < 1 || n_clusters > data.n_rows)
        throw std::invalid_argument("afkmc2: need 1 <= n_clusters <= n_samples");
    if (chain_length < 1) throw std::invalid_argument("afkmc2: chain_length must be >= 1");
    const Index N = data.n_rows, D = data.n_features, m = chain_length;
    FlushSubnormalsScope flush;  // the serial chain steps too (parallel_for_each sets its own threads)
    Xoshiro256 rng(seed);

    Vector<double> weights(N);
    for (Index n = 0; n < N; ++n) weights(n) = weight_of(data, n);
    const std::vector<double> weight_sums = running_sums(weights);
    const Index first = draw_from_cumulative(weight_sums, rng.uniform() * weight_sums.back());
    std::vector<Index> chosen{first};
    if (n_clusters == 1) return chosen;

    const Vector<double> q = afkmc2_proposal(data, first, n_threads);
    const std::vector<double> q_sums = running_sums(q);

    // Centres and chain rows about the first centre (small numbers for the expansion below).
    const RowVector<double> shift = data.row(first).template cast<double>();
    RowMatrix<double> centres(n_clusters, D);
    Vector<double> centre_sq_norms(n_clusters);
    auto add_centre = [&](Index index, Index row) {
        centres.row(index) = data.row(row).template cast<double>() - shift;
        centre_sq_norms(index) = centres.row(index).squaredNorm();
    };
    add_centre(0, first);

    RowMatrix<double> chain_rows(m, D);
    Vector<double> chain_sq_norms(m);
    std::vector<Index> proposals(m);
    std::vector<double> acceptance(m);
    const Index max_blocks = (n_clusters + kCentresPerBlock - 1) / kCentresPerBlock;
    RowMatrix<double> block_minima(max_blocks, m);
    const int threads = resolve_thread_count(n_threads);
    std::vector<RowMatrix<double>> products(std::max(threads, 1), RowMatrix<double>(m, kCentresPerBlock));
    InterruptPoller poller(interrupt);

    for (Index k = 1; k < n_clusters; ++k) {
        // All random numbers of the chain, in a fixed order: proposal, then its acceptance draw.
        for (Index j = 0; j < m; ++j) {
            proposals[j] = draw_from_cumulative(q_sums, rng.uniform() * q_sums.back());
            acceptance[j] = j == 0 ? 0.0 : rng.uniform();
        }
        for (Index j = 0; j < m; ++j) {
            chain_rows.row(j) = data.row(proposals[j]).template cast<double>() - shift;
            chain_sq_norms(j) = chain_rows.row(j).squaredNorm();
        }
        // D(y_j)² = min_c ||y_j - c||², by blocks of centres; the minimum is exact in any order.
        const Index n_blocks = (k + kCentresPerBlock - 1) / kCentresPerBlock;
        parallel_for_each(n_blocks, n_threads, [&](Index b) {
            const Index begin = b * kCentresPerBlock, size = std::min(kCentresPerBlock, k - begin);
            auto product = products[current_thread_index()].leftCols(size);
            product.noalias() = chain_rows * centres.middleRows(begin, size).transpose();
            for (Index j = 0; j < m; ++j) {
                double best = std::numeric_limits<double>::infinity();
                for (Index c = 0; c < size; ++c)
                    best = std::min(best, chain_sq_norms(j) - 2 * product(j, c) + centre_sq_norms(begin + c));
                block_minima(b, j) = std::max(best, 0.0);
            }
        });
        const Vector<double> potential = block_minima.topRows(n_blocks).colwise().minCoeff().transpose();
        // Metropolis–Hastings: accept y over x with probability min(1, π(y) q(x) / (π(x) q(y))).
        Index current = proposals[0];
        double current_potential = potential(0);
        for (Index j = 1; j < m; ++j) {
            const Index y = proposals[j];
            const double gain = weights(y) * potential(j) * q(current);
            if (gain > acceptance[j] * weights(current) * current_potential * q(y)) {
                current = y;
                current_potential = potential(j);
            }
        }
        chosen.push_back(current);
        add_centre(k, current);
        poller.between_items();
        if (poller.stopped()) return {};
    }
    return chosen;
}

template Vector<double> afkmc2_proposal<float>(const KMeansData<float>&, Index, int);
template Vector<double> afkmc2_proposal<double>(const KMeansData<double>&, Index, int);
template std::vector<Index> afkmc2<float>(const KMeansData<float>&, Index, Index, std::uint64_t, int,
                                          const InterruptPoll&);
template std::vector<Index> afkmc2<double>(const KMeansData<double>&, Index, Index, std::uint64_t, int,
                                           const InterruptPoll&);

}  // namespace fastelbo
