#include "fastelbo/kmeans.hpp"

#include <algorithm>
#include <numeric>

#include "fastelbo/random.hpp"
#include "fastelbo/row_block_schedule.hpp"

namespace fastelbo {
namespace {

// Centres prepared for distance products: shifted coordinates in the working precision.
template <class T>
struct PreparedCentres {
    RowMatrix<T> centred;  // [M, D]
    Vector<T> sq_norm;     // [M]

    PreparedCentres(const RowMatrix<double>& centres, const RowVector<double>& shift) {
        RowMatrix<double> c = centres.rowwise() - shift;
        centred = c.template cast<T>();
        sq_norm = c.rowwise().squaredNorm().template cast<T>();
    }
};

// Squared distances [B, M] of a block of rows to the centres, clamped at 0 against round-off.
template <class T>
void block_squared_distances(const Eigen::Ref<const RowMatrix<T>>& x, const RowVector<T>& shift,
                             const PreparedCentres<T>& centres, RowMatrix<T>& centred_rows,
                             Eigen::Ref<RowMatrix<T>> out) {
    const Index n = x.rows();
    auto xc = centred_rows.topRows(n);
    xc = x.rowwise() - shift;
    out.noalias() = T(-2) * (xc * centres.centred.transpose());
    out.rowwise() += centres.sq_norm.transpose();
    out.colwise() += xc.rowwise().squaredNorm();
    out = out.cwiseMax(T(0));
}

template <class T>
RowVector<double> column_mean(const KMeansData<T>& data) {
    ConstRowMatrixMap<T> X(data.X, data.n_rows, data.n_features);
    RowVector<double> mean = RowVector<double>::Zero(data.n_features);
    for (Index n = 0; n < data.n_rows; ++n) mean += X.row(n).template cast<double>();
    return mean / static_cast<double>(std::max<Index>(data.n_rows, 1));
}

template <class T>
double weight_of(const KMeansData<T>& data, Index n) {
    return data.sample_weight ? static_cast<double>(data.sample_weight[n]) : 1.0;
}

template <class T>
RowMatrix<double> gather_rows(const KMeansData<T>& data, const std::vector<Index>& rows) {
    ConstRowMatrixMap<T> X(data.X, data.n_rows, data.n_features);
    RowMatrix<double> out(static_cast<Index>(rows.size()), data.n_features);
    for (size_t i = 0; i < rows.size(); ++i) out.row(static_cast<Index>(i)) = X.row(rows[i]).template cast<double>();
    return out;
}

// One blocked pass: distances of every row to `candidates`, written to `distances` [N, M] after
// taking the minimum with `closest` [N]; returns sum_n w_n min(closest_n, d(x_n, candidate_m)) per m.
template <class T>
bool candidate_potentials(const KMeansData<T>& data, const RowVector<double>& shift,
                          const RowMatrix<double>& candidates, const std::vector<double>* closest,
                          RowMatrix<double>& distances, Vector<double>& potentials, int n_threads,
                          const InterruptPoll& interrupt) {
    const Index D = data.n_features, M = candidates.rows();
    ConstRowMatrixMap<T> X(data.X, data.n_rows, D);
    const PreparedCentres<T> prepared(candidates, shift);
    const RowVector<T> shift_t = shift.template cast<T>();
    RowBlocks blocks{data.n_rows, rows_per_block(static_cast<Index>(sizeof(T)) * (D + M))};
    distances.resize(data.n_rows, M);
    potentials = Vector<double>::Zero(M);
    struct Scratch {
        RowMatrix<T> centred, dist;
    };
    return for_each_block_ordered(
        blocks, n_threads, [&] { return Vector<double>(M); },
        [&] { return Scratch{RowMatrix<T>(blocks.block_rows, D), RowMatrix<T>(blocks.block_rows, M)}; },
        [&](Index, Index begin, Index rows, Vector<double>& partial, Scratch& s) {
            auto dist = s.dist.topRows(rows);
            block_squared_distances<T>(X.middleRows(begin, rows), shift_t, prepared, s.centred, dist);
            partial.setZero();
            for (Index i = 0; i < rows; ++i) {
                const Index n = begin + i;
                const double w = weight_of(data, n);
                for (Index m = 0; m < M; ++m) {
                    double d = static_cast<double>(dist(i, m));
                    if (closest) d = std::min(d, (*closest)[n]);
                    distances(n, m) = d;
                    partial(m) += w * d;
                }
            }
        },
        [&](const Vector<double>& partial) { potentials += partial; }, interrupt);
}

// Index of the first cumulative weight >= target (numpy.searchsorted, side='left'), clipped to N-1.
Index search_cumulative(const std::vector<double>& cumulative, double target) {
    const auto it = std::lower_bound(cumulative.begin(), cumulative.end(), target);
    return std::min<Index>(static_cast<Index>(it - cumulative.begin()), static_cast<Index>(cumulative.size()) - 1);
}

}  // namespace

template <class T>
std::vector<Index> kmeans_plusplus(const KMeansData<T>& data, Index n_clusters, Index n_local_trials,
                                   std::uint64_t seed, int n_threads, const InterruptPoll& interrupt) {
    const Index N = data.n_rows;
    if (n_clusters < 1 || n_clusters > N)
        throw std::invalid_argument("kmeans_plusplus: need 1 <= n_clusters <= n_samples");
    n_local_trials = std::max<Index>(n_local_trials, 1);
    Xoshiro256 rng(seed);
    const RowVector<double> shift = column_mean(data);
    std::vector<double> cumulative(N);

    auto draw = [&](const std::vector<double>* closest) {
        double running = 0;
        for (Index n = 0; n < N; ++n) {
            running += weight_of(data, n) * (closest ? (*closest)[n] : 1.0);
            cumulative[n] = running;
        }
        return search_cumulative(cumulative, rng.uniform() * running);
    };

    std::vector<Index> chosen{draw(nullptr)};
    RowMatrix<double> distances;
    Vector<double> potentials;
    if (!candidate_potentials(data, shift, gather_rows(data, chosen), nullptr, distances, potentials, n_threads,
                              interrupt))
        return {};
    std::vector<double> closest(distances.data(), distances.data() + N);

    std::vector<Index> candidates(n_local_trials);
    for (Index c = 1; c < n_clusters; ++c) {
        for (auto& candidate : candidates) candidate = draw(&closest);
        if (!candidate_potentials(data, shift, gather_rows(data, candidates), &closest, distances, potentials,
                                  n_threads, interrupt))
            return {};
        Index best = 0;
        potentials.minCoeff(&best);
        chosen.push_back(candidates[best]);
        for (Index n = 0; n < N; ++n) closest[n] = distances(n, best);
        if (interrupt && interrupt()) return {};
    }
    return chosen;
}

template <class T>
KMeansResult lloyd_kmeans(const KMeansData<T>& data, const double* initial_centers, Index K, int max_iter, double tol,
                          int n_threads, const InterruptPoll& interrupt) {
    const Index N = data.n_rows, D = data.n_features;
    if (K < 1 || K > N) throw std::invalid_argument("lloyd_kmeans: need 1 <= n_clusters <= n_samples");
    ConstRowMatrixMap<T> X(data.X, N, D);
    const RowVector<double> shift = column_mean(data);
    const RowVector<T> shift_t = shift.template cast<T>();
    RowBlocks blocks{N, rows_per_block(static_cast<Index>(sizeof(T)) * (D + K))};

    KMeansResult result;
    result.centers = ConstRowMatrixMap<double>(initial_centers, K, D);
    result.labels.assign(N, -1);
    std::vector<double> row_distance(N);

    struct Partial {
        RowMatrix<double> sums;  // [K, D] in shifted coordinates
        Vector<double> counts;
        double inertia;
        Index changed;
    };
    struct Scratch {
        RowMatrix<T> centred, dist;
    };
    // Assign every row to its nearest centre; returns false if interrupted.
    auto assign = [&](bool update, RowMatrix<double>& sums, Vector<double>& counts, double& inertia, Index& changed) {
        const PreparedCentres<T> prepared(result.centers, shift);
        sums = RowMatrix<double>::Zero(K, D);
        counts = Vector<double>::Zero(K);
        inertia = 0;
        changed = 0;
        return for_each_block_ordered(
            blocks, n_threads, [&] { return Partial{RowMatrix<double>(K, D), Vector<double>(K), 0, 0}; },
            [&] { return Scratch{RowMatrix<T>(blocks.block_rows, D), RowMatrix<T>(blocks.block_rows, K)}; },
            [&](Index, Index begin, Index rows, Partial& p, Scratch& s) {
                auto dist = s.dist.topRows(rows);
                block_squared_distances<T>(X.middleRows(begin, rows), shift_t, prepared, s.centred, dist);
                p.sums.setZero();
                p.counts.setZero();
                p.inertia = 0;
                p.changed = 0;
                for (Index i = 0; i < rows; ++i) {
                    const Index n = begin + i;
                    Index label = 0;
                    const double d = static_cast<double>(dist.row(i).minCoeff(&label));
                    const double w = weight_of(data, n);
                    p.changed += (result.labels[n] != label);
                    result.labels[n] = label;
                    row_distance[n] = d;
                    p.inertia += w * d;
                    if (update) {
                        p.counts(label) += w;
                        p.sums.row(label) += w * s.centred.row(i).template cast<double>();
                    }
                }
            },
            [&](const Partial& p) {
                sums += p.sums;
                counts += p.counts;
                inertia += p.inertia;
                changed += p.changed;
            },
            interrupt);
    };

    RowMatrix<double> sums;
    Vector<double> counts;
    Index changed = 0;
    bool strict_convergence = false;
    for (int it = 0; it < max_iter; ++it) {
        if (!assign(true, sums, counts, result.inertia, changed)) {
            result.interrupted = true;
            return result;
        }
        result.n_iter = it + 1;
        RowMatrix<double> new_centers = result.centers;
        std::vector<Index> empty;
        for (Index k = 0; k < K; ++k) {
            if (counts(k) > 0) {
                new_centers.row(k) = sums.row(k) / counts(k) + shift;
            } else {
                empty.push_back(k);
            }
        }
        if (!empty.empty()) {
            // Relocate empty clusters onto the rows farthest from their current centres.
            std::vector<Index> order(N);
            std::iota(order.begin(), order.end(), Index(0));
            std::partial_sort(order.begin(), order.begin() + std::min<Index>(N, empty.size()), order.end(),
                              [&](Index a, Index b) { return row_distance[a] > row_distance[b]; });
            for (size_t e = 0; e < empty.size(); ++e)
                new_centers.row(empty[e]) = X.row(order[e]).template cast<double>();
        }
        const double shift_total = (new_centers - result.centers).squaredNorm();
        result.centers = new_centers;
        if (it > 0 && changed == 0) {
            strict_convergence = true;
            break;
        }
        if (shift_total <= tol) break;
        if (interrupt && interrupt()) {
            result.interrupted = true;
            return result;
        }
    }
    if (!strict_convergence) {
        // Make labels and inertia consistent with the final centres.
        if (!assign(false, sums, counts, result.inertia, changed)) result.interrupted = true;
    }
    return result;
}

template std::vector<Index> kmeans_plusplus<float>(const KMeansData<float>&, Index, Index, std::uint64_t, int,
                                                   const InterruptPoll&);
template std::vector<Index> kmeans_plusplus<double>(const KMeansData<double>&, Index, Index, std::uint64_t, int,
                                                    const InterruptPoll&);
template KMeansResult lloyd_kmeans<float>(const KMeansData<float>&, const double*, Index, int, double, int,
                                          const InterruptPoll&);
template KMeansResult lloyd_kmeans<double>(const KMeansData<double>&, const double*, Index, int, double, int,
                                           const InterruptPoll&);

}  // namespace fastelbo
