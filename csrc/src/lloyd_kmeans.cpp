// Lloyd's k-means with Hamerly's distance bounds.
//
// Every row keeps an upper bound on the distance to its assigned centre and a lower bound on the
// distance to any other centre; centre moves loosen both. A row whose upper bound is below both the
// lower bound and half the gap from its centre to the next one cannot change label, and is skipped.
// The remaining rows of a block are gathered and their distances to all centres computed as one GEMM,
// so the labels are those of plain Lloyd; only the work shrinks once the clusters settle. Centre sums
// are accumulated over every row in block order, so results are identical for any thread count.
#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <stdexcept>

#include "fastelbo/kmeans.hpp"
#include "fastelbo/kmeans_geometry.hpp"
#include "fastelbo/row_block_schedule.hpp"

namespace fastelbo {
namespace {

constexpr double kInfinity = std::numeric_limits<double>::infinity();

// Half the distance from each centre to its nearest other centre (infinite for a single centre).
Vector<double> half_gaps(const RowMatrix<double>& centres) {
    const Index K = centres.rows();
    Vector<double> out = Vector<double>::Constant(K, kInfinity);
    for (Index j = 0; j < K; ++j)
        for (Index k = j + 1; k < K; ++k) {
            const double half = 0.5 * (centres.row(j) - centres.row(k)).norm();
            out(j) = std::min(out(j), half);
            out(k) = std::min(out(k), half);
        }
    return out;
}

template <class T>
class BoundedLloyd {
  public:
    struct Sums {
        RowMatrix<double> sums;  // [K, D] about shift_
        Vector<double> counts;
        Index changed = 0;
    };

    BoundedLloyd(const KMeansData<T>& data, Index n_clusters, int n_threads, const InterruptPoll& interrupt,
                 std::vector<std::int64_t>& labels)
        : data_(data),
          K_(n_clusters),
          n_threads_(n_threads),
          interrupt_(interrupt),
          shift_(column_mean(data)),
          shift_t_(shift_.template cast<T>()),
          sub_block_rows_(rows_per_block(static_cast<Index>(sizeof(T)) * (data.n_features + n_clusters))),
          blocks_{data.n_rows, rows_per_chunk(sub_block_rows_, 2.0 * n_clusters * data.n_features,
                                              static_cast<double>(n_clusters) * (data.n_features + 1))},
          labels_(labels),
          upper_(data.n_rows, kInfinity),
          lower_(data.n_rows, 0.0) {
        labels_.assign(data.n_rows, -1);
    }

    const RowVector<double>& shift() const { return shift_; }

    // Label every row with its nearest centre (after `moves`, each centre's distance from its
    // previous position) and sum the rows per label.
    bool assign(const RowMatrix<double>& centres, const Vector<double>& moves, Sums& out) {
        const PreparedCentres<T> prepared(centres, shift_);
        const RowMatrix<double> centred = centres.rowwise() - shift_;
        const Vector<double> gaps = half_gaps(centred);
        const double largest_move = moves.size() ? moves.maxCoeff() : 0.0;
        const Index D = data_.n_features;
        out = Sums{RowMatrix<double>::Zero(K_, D), Vector<double>::Zero(K_), 0};
        struct Workspace {
            RowMatrix<T> rows, centred, dist;
            std::vector<Index> unresolved;
            RowVector<double> x;
        };
        const Index B = sub_block_rows_;
        return for_each_block_ordered(
            blocks_, n_threads_, [&] { return Sums{RowMatrix<double>(K_, D), Vector<double>(K_), 0}; },
            [&] { return Workspace{RowMatrix<T>(B, D), RowMatrix<T>(B, D), RowMatrix<T>(B, K_), {}, {}}; },
            [&](Index, Index begin, Index rows, Sums& partial, Workspace& ws) {
                partial.changed = 0;
                for (Index offset = 0; offset < rows; offset += B) {
                    ws.unresolved.clear();
                    for (Index n = begin + offset; n < begin + std::min(rows, offset + B); ++n) {
                        const auto a = labels_[n];
                        if (a >= 0) {
                            upper_[n] += moves(a);
                            lower_[n] -= largest_move;
                            const double bound = std::max(gaps(a), lower_[n]);
                            if (upper_[n] <= bound) continue;
                            shifted_row(data_, n, shift_, ws.x);
                            upper_[n] = (ws.x - centred.row(a)).norm();
                            if (upper_[n] <= bound) continue;
                        }
                        ws.unresolved.push_back(n);
                    }
                    partial.changed += resolve(ws.unresolved, prepared, ws.rows, ws.centred, ws.dist);
                }
                partial.sums.setZero();
                partial.counts.setZero();
                for (Index n = begin; n < begin + rows; ++n) {
                    const double w = weight_of(data_, n);
                    partial.counts(labels_[n]) += w;
                    partial.sums.row(labels_[n]) += w * (data_.row(n).template cast<double>() - shift_);
                }
            },
            [&](const Sums& partial) {
                out.sums += partial.sums;
                out.counts += partial.counts;
                out.changed += partial.changed;
            },
            interrupt_);
    }

    // Squared distance of every row to its assigned centre into `distances`; sets their weighted sum.
    bool assigned_distances(const RowMatrix<double>& centres, std::vector<double>& distances, double& total) {
        const RowMatrix<double> centred = centres.rowwise() - shift_;
        distances.resize(data_.n_rows);
        total = 0;
        return for_each_block_ordered(
            blocks_, n_threads_, [] { return 0.0; }, [&] { return RowVector<double>(data_.n_features); },
            [&](Index, Index begin, Index rows, double& partial, RowVector<double>& x) {
                partial = 0;
                for (Index n = begin; n < begin + rows; ++n) {
                    shifted_row(data_, n, shift_, x);
                    distances[n] = (x - centred.row(labels_[n])).squaredNorm();
                    partial += weight_of(data_, n) * distances[n];
                }
            },
            [&](double partial) { total += partial; }, interrupt_);
    }

  private:
    // Full distance rows (one GEMM) for the rows the bounds could not settle; returns the label changes.
    Index resolve(const std::vector<Index>& rows_to_resolve, const PreparedCentres<T>& prepared, RowMatrix<T>& rows,
                  RowMatrix<T>& centred_rows, RowMatrix<T>& dist) {
        const Index m = static_cast<Index>(rows_to_resolve.size());
        if (m == 0) return 0;
        for (Index i = 0; i < m; ++i) rows.row(i) = data_.row(rows_to_resolve[i]);
        block_squared_distances<T>(rows.topRows(m), shift_t_, prepared, centred_rows, dist.topRows(m));
        Index changed = 0;
        for (Index i = 0; i < m; ++i) {
            Index best = 0;
            double first = kInfinity, second = kInfinity;
            for (Index k = 0; k < K_; ++k) {
                const double d = static_cast<double>(dist(i, k));
                if (d < first) {
                    second = first;
                    first = d;
                    best = k;
                } else if (d < second) {
                    second = d;
                }
            }
            const Index n = rows_to_resolve[i];
            changed += (labels_[n] != best);
            labels_[n] = best;
            upper_[n] = std::sqrt(first);
            lower_[n] = std::sqrt(second);
        }
        return changed;
    }

    const KMeansData<T>& data_;
    Index K_;
    int n_threads_;
    const InterruptPoll& interrupt_;
    RowVector<double> shift_;
    RowVector<T> shift_t_;
    Index sub_block_rows_;  // rows whose distances fit a cache-sized GEMM
    RowBlocks blocks_;      // scheduled chunks of sub-blocks: one [K, D] partial per ~4096 rows
    std::vector<std::int64_t>& labels_;
    std::vector<double> upper_;  // >= distance to the assigned centre
    std::vector<double> lower_;  // <= distance to every other centre
};

}  // namespace

template <class T>
KMeansResult lloyd_kmeans(const KMeansData<T>& data, const double* initial_centers, Index K, int max_iter, double tol,
                          int n_threads, const InterruptPoll& interrupt) {
    const Index N = data.n_rows, D = data.n_features;
    if (K < 1 || K > N) throw std::invalid_argument("lloyd_kmeans: need 1 <= n_clusters <= n_samples");
    KMeansResult result;
    result.centers = ConstRowMatrixMap<double>(initial_centers, K, D);
    BoundedLloyd<T> lloyd(data, K, n_threads, interrupt, result.labels);

    typename BoundedLloyd<T>::Sums sums;
    Vector<double> moves = Vector<double>::Zero(K);
    std::vector<double> row_distance;
    bool strict_convergence = false;
    for (int it = 0; it < max_iter; ++it) {
        if (!lloyd.assign(result.centers, moves, sums)) {
            result.interrupted = true;
            return result;
        }
        result.n_iter = it + 1;
        RowMatrix<double> new_centers = result.centers;
        std::vector<Index> empty;
        for (Index k = 0; k < K; ++k) {
            if (sums.counts(k) > 0) {
                new_centers.row(k) = sums.sums.row(k) / sums.counts(k) + lloyd.shift();
            } else {
                empty.push_back(k);
            }
        }
        if (!empty.empty()) {
            // Relocate empty clusters onto the rows farthest from their current centres.
            double unused = 0;
            if (!lloyd.assigned_distances(result.centers, row_distance, unused)) {
                result.interrupted = true;
                return result;
            }
            std::vector<Index> order(N);
            std::iota(order.begin(), order.end(), Index(0));
            std::partial_sort(order.begin(), order.begin() + std::min<Index>(N, empty.size()), order.end(),
                              [&](Index a, Index b) { return row_distance[a] > row_distance[b]; });
            for (size_t e = 0; e < empty.size(); ++e)
                new_centers.row(empty[e]) = data.row(order[e]).template cast<double>();
        }
        moves = (new_centers - result.centers).rowwise().norm();
        const double shift_total = moves.squaredNorm();
        result.centers = new_centers;
        if (it > 0 && sums.changed == 0) {
            strict_convergence = true;
            break;
        }
        if (shift_total <= tol) break;
        if (interrupt && interrupt()) {
            result.interrupted = true;
            return result;
        }
    }
    // Make the labels those of the final centres (unchanged on strict convergence).
    if (!strict_convergence && !lloyd.assign(result.centers, moves, sums)) {
        result.interrupted = true;
        return result;
    }
    if (!lloyd.assigned_distances(result.centers, row_distance, result.inertia)) result.interrupted = true;
    return result;
}

template KMeansResult lloyd_kmeans<float>(const KMeansData<float>&, const double*, Index, int, double, int,
                                          const InterruptPoll&);
template KMeansResult lloyd_kmeans<double>(const KMeansData<double>&, const double*, Index, int, double, int,
                                           const InterruptPoll&);

}  // namespace fastelbo
