// Greedy k-means++ seeding with triangle-inequality pruning.
//
// Each step draws `n_local_trials` candidates with probability proportional to w_n * D(x_n)^2 and
// keeps the one that lowers the potential sum_n w_n D(x_n)^2 most. A row can only move closer to a
// candidate y if d(c, y) < 2 D(x_n), where c is the row's nearest chosen centre (triangle
// inequality); rows failing that test are skipped without touching X. Late steps, where every row is
// close to some centre, then read little more than the per-row distances and nearest indices, instead
// of streaming the whole of X once per step. The distances to the candidates are kept, so adding the
// chosen one needs no second pass over X.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <stdexcept>

#include "fastelbo/kmeans.hpp"
#include "fastelbo/kmeans_geometry.hpp"
#include "fastelbo/random.hpp"
#include "fastelbo/row_block_schedule.hpp"

namespace fastelbo {
namespace {

constexpr Index kRowsPerBlock = 1024;
// A seeding pass takes milliseconds and its partials are a few numbers: one parallel region per pass.
constexpr Index kWholePass = Index(1) << 40;

// Index of the first cumulative weight >= target (numpy.searchsorted, side='left'), clipped to N-1.
Index search_cumulative(const std::vector<double>& cumulative, double target) {
    const auto it = std::lower_bound(cumulative.begin(), cumulative.end(), target);
    return std::min<Index>(static_cast<Index>(it - cumulative.begin()), static_cast<Index>(cumulative.size()) - 1);
}

// The seeding reads every row not yet settled once per centre, so it is bound by memory traffic. It
// works on a float32 copy of X about its column mean: half the bytes of float64, and centring keeps
// float32's relative error (~1e-7) on the squared distances that set the sampling probabilities.
// The copy is also scaled by the power of two that brings its largest entry into [0.5, 1): float64
// data of any scale (1e20, 1e-20) would otherwise give squared distances beyond float32's range,
// and a power of two scales every distance exactly, so the seeds do not depend on X's units.
template <class T>
RowMatrix<float> centred_float_copy(const KMeansData<T>& data, int n_threads) {
    const RowVector<double> mean = column_mean(data);
    std::vector<double> row_largest(static_cast<size_t>(data.n_rows));
    parallel_for_each(data.n_rows, n_threads, [&](Index n) {
        row_largest[static_cast<size_t>(n)] = (data.row(n).template cast<double>() - mean).cwiseAbs().maxCoeff();
    });
    const double largest = row_largest.empty() ? 0.0 : *std::max_element(row_largest.begin(), row_largest.end());
    int exponent = 0;
    if (largest > 0) std::frexp(largest, &exponent);
    const double scale = std::ldexp(1.0, -exponent);
    RowMatrix<float> out(data.n_rows, data.n_features);
    parallel_for_each(data.n_rows, n_threads, [&](Index n) {
        out.row(n) = ((data.row(n).template cast<double>() - mean) * scale).template cast<float>();
    });
    return out;
}

template <class T>
class GreedySeeding {
  public:
    GreedySeeding(const KMeansData<T>& data, Index n_clusters, Index n_local_trials, int n_threads,
                  const InterruptPoll& interrupt)
        : data_(data),
          n_candidates_(n_local_trials),
          n_threads_(n_threads),
          interrupt_(interrupt),
          blocks_{data.n_rows, kRowsPerBlock},
          points_(centred_float_copy(data, n_threads)),
          sq_norms_(points_.rowwise().squaredNorm()),
          centres_(n_clusters, data.n_features),
          closest_(data.n_rows),
          nearest_(data.n_rows, 0),
          cumulative_(data.n_rows),
          evaluated_in_step_(data.n_rows, -1),
          candidate_distances_(static_cast<size_t>(data.n_rows) * n_local_trials) {}

    // Sum of w_n * D(x_n)^2 written as running sums into cumulative_ (all ones before any centre).
    double fill_cumulative(bool uniform) {
        double running = 0;
        for (Index n = 0; n < data_.n_rows; ++n) {
            running += weight_of(data_, n) * (uniform ? 1.0 : closest_[n]);
            cumulative_[n] = running;
        }
        return running;
    }

    Index draw(double total, Xoshiro256& rng) const { return search_cumulative(cumulative_, rng.uniform() * total); }

    // Make row `row` the first centre: every row's distance to it.
    bool add_first_centre(Index row) {
        set_centre(0, row);
        const PreparedCentres<float> prepared(centres_.topRows(1), RowVector<double>::Zero(data_.n_features));
        return for_each_block_ordered(
            blocks_, n_threads_, [] { return 0; }, [&] { return Workspace(1); },
            [&](Index, Index begin, Index rows, int&, Workspace& ws) {
                ws.gather(begin, rows, [](Index) { return true; });
                const auto dist = ws.distances(points_, sq_norms_, prepared);
                for (Index i = 0; i < rows; ++i) closest_[begin + i] = static_cast<double>(dist(i, 0));
            },
            [](int) {}, interrupt_, kWholePass);
    }

    // The potential reduction sum_n w_n max(0, D(x_n)^2 - d(x_n, y_m)^2) of each candidate row y_m.
    // `candidate_rows` holds the n_local_trials rows drawn this step.
    bool candidate_gains(Index n_chosen, const std::vector<Index>& candidate_rows, Vector<double>& gains) {
        const Index M = n_candidates_;
        RowMatrix<double> candidates(M, data_.n_features);
        for (Index m = 0; m < M; ++m) candidates.row(m) = row_about_shift(candidate_rows[m]);
        const RowMatrix<double> separation = centre_separations(n_chosen, candidates);
        const PreparedCentres<float> prepared(candidates, RowVector<double>::Zero(data_.n_features));
        gains = Vector<double>::Zero(M);
        return for_each_block_ordered(
            blocks_, n_threads_, [&] { return Vector<double>(M); }, [&] { return Workspace(M); },
            [&](Index, Index begin, Index rows, Vector<double>& partial, Workspace& ws) {
                partial.setZero();
                ws.gather(begin, rows, [&](Index n) {
                    for (Index m = 0; m < M; ++m)
                        if (separation(nearest_[n], m) < 4.0 * closest_[n]) return true;
                    return false;
                });
                const auto dist = ws.distances(points_, sq_norms_, prepared);
                for (Index i = 0; i < dist.rows(); ++i) {
                    const Index n = ws.gathered[i];
                    evaluated_in_step_[n] = static_cast<std::int32_t>(n_chosen);
                    for (Index m = 0; m < M; ++m) {
                        const double d = static_cast<double>(dist(i, m));
                        candidate_distances_[n * n_candidates_ + m] = static_cast<float>(d);
                        if (d < closest_[n]) partial(m) += weight_of(data_, n) * (closest_[n] - d);
                    }
                }
            },
            [&](const Vector<double>& partial) { gains += partial; }, interrupt_, kWholePass);
    }

    // Make candidate `chosen` of the last candidate_gains call (row `row`) centre number `index`,
    // and move the rows it is now closest to. Rows whose distances that call skipped cannot improve.
    bool add_centre(Index index, Index row, Index chosen) {
        set_centre(index, row);
        return for_each_block_ordered(
            blocks_, n_threads_, [] { return 0; }, [] { return 0; },
            [&](Index, Index begin, Index rows, int&, int&) {
                for (Index n = begin; n < begin + rows; ++n) {
                    if (evaluated_in_step_[n] != index) continue;
                    const double d = candidate_distances_[n * n_candidates_ + chosen];
                    if (d < closest_[n]) {
                        closest_[n] = d;
                        nearest_[n] = static_cast<std::int32_t>(index);
                    }
                }
            },
            [](int) {}, interrupt_, kWholePass);
    }

  private:
    RowVector<double> row_about_shift(Index row) const { return points_.row(row).template cast<double>(); }

    void set_centre(Index index, Index row) { centres_.row(index) = row_about_shift(row); }

    // Squared distances [n_chosen, M] between the chosen centres and `points`.
    RowMatrix<double> centre_separations(Index n_chosen, const Eigen::Ref<const RowMatrix<double>>& points) const {
        RowMatrix<double> out(n_chosen, points.rows());
        for (Index c = 0; c < n_chosen; ++c)
            for (Index m = 0; m < points.rows(); ++m) out(c, m) = (centres_.row(c) - points.row(m)).squaredNorm();
        return out;
    }

    // Rows of a block that might move closer to a point, gathered for one distance GEMM.
    struct Workspace {
        std::vector<Index> gathered;
        RowMatrix<float> rows, dist;

        explicit Workspace(Index n_points) : dist(kRowsPerBlock, n_points) {}

        template <class MightImprove>
        void gather(Index begin, Index n_rows, MightImprove might_improve) {
            gathered.clear();
            for (Index n = begin; n < begin + n_rows; ++n)
                if (might_improve(n)) gathered.push_back(n);
        }

        // Squared distances [gathered, M] as ||x||^2 - 2 x.c + ||c||^2, clamped at 0 against round-off.
        Eigen::Ref<RowMatrix<float>> distances(const RowMatrix<float>& points, const Vector<float>& sq_norms,
                                               const PreparedCentres<float>& centres) {
            const Index m = static_cast<Index>(gathered.size());
            auto out = dist.topRows(m);
            if (m == 0) return out;
            const bool contiguous = gathered.back() - gathered.front() + 1 == m;
            if (contiguous) {
                out.noalias() = -2.0f * (points.middleRows(gathered.front(), m) * centres.centred.transpose());
            } else {
                rows.resize(kRowsPerBlock, points.cols());
                for (Index i = 0; i < m; ++i) rows.row(i) = points.row(gathered[i]);
                out.noalias() = -2.0f * (rows.topRows(m) * centres.centred.transpose());
            }
            out.rowwise() += centres.sq_norm.transpose();
            for (Index i = 0; i < m; ++i) out.row(i).array() += sq_norms(gathered[i]);
            out = out.cwiseMax(0.0f);
            return out;
        }
    };

    const KMeansData<T>& data_;
    Index n_candidates_;  // n_local_trials
    int n_threads_;
    const InterruptPoll& interrupt_;
    RowBlocks blocks_;
    RowMatrix<float> points_;            // X about its column mean, in float32 (see centred_float_copy)
    Vector<float> sq_norms_;             // ||row||^2 of points_
    RowMatrix<double> centres_;          // chosen centres about the column mean, [K, D]
    std::vector<double> closest_;        // squared distance of each row to its nearest chosen centre
    std::vector<std::int32_t> nearest_;  // index of that centre
    std::vector<double> cumulative_;
    // The last candidate_gains call: per row, the step it computed distances in (-1: never) and
    // those distances [N, M], so add_centre need not read X again.
    std::vector<std::int32_t> evaluated_in_step_;
    std::vector<float> candidate_distances_;
};

}  // namespace

template <class T>
std::vector<Index> kmeans_plusplus(const KMeansData<T>& data, Index n_clusters, Index n_local_trials,
                                   std::uint64_t seed, int n_threads, const InterruptPoll& interrupt) {
    if (n_clusters < 1 || n_clusters > data.n_rows)
        throw std::invalid_argument("kmeans_plusplus: need 1 <= n_clusters <= n_samples");
    n_local_trials = std::max<Index>(n_local_trials, 1);
    Xoshiro256 rng(seed);
    GreedySeeding<T> seeding(data, n_clusters, n_local_trials, n_threads, interrupt);

    std::vector<Index> chosen{seeding.draw(seeding.fill_cumulative(true), rng)};
    if (!seeding.add_first_centre(chosen[0])) return {};
    std::vector<Index> candidates(n_local_trials);
    Vector<double> gains;
    for (Index c = 1; c < n_clusters; ++c) {
        const double total = seeding.fill_cumulative(false);
        for (auto& candidate : candidates) candidate = seeding.draw(total, rng);
        if (!seeding.candidate_gains(c, candidates, gains)) return {};
        Index best = 0;
        gains.maxCoeff(&best);  // the first of equal gains, as argmin of the potentials
        chosen.push_back(candidates[best]);
        if (!seeding.add_centre(c, candidates[best], best)) return {};
        if (interrupt && interrupt()) return {};
    }
    return chosen;
}

template std::vector<Index> kmeans_plusplus<float>(const KMeansData<float>&, Index, Index, std::uint64_t, int,
                                                   const InterruptPoll&);
template std::vector<Index> kmeans_plusplus<double>(const KMeansData<double>&, Index, Index, std::uint64_t, int,
                                                    const InterruptPoll&);

}  // namespace fastelbo
