#include "fastelbo/scatter_pass.hpp"

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "fastelbo/row_block_schedule.hpp"

namespace fastelbo {

namespace {

// Sums of one chunk of rows, about the centring point c.
struct ScatterPartial {
    double sum_weight = 0;
    Vector<double> sum_deviation;  // [D] sum w (x - c)
    RowMatrix<double> sum_outer;   // [D, D] sum w (x - c)(x - c)^T, lower triangle only

    explicit ScatterPartial(Index D)
        : sum_deviation(Vector<double>::Zero(D)), sum_outer(RowMatrix<double>::Zero(D, D)) {}

    void set_zero() {
        sum_weight = 0;
        sum_deviation.setZero();
        sum_outer.setZero();
    }
};

}  // namespace

template <class T>
bool scatter_pass(const ScatterPassRequest<T>& request, ScatterStatistics& statistics) {
    const Index N = request.n_rows, D = request.n_features;
    if (D < 1) throw std::invalid_argument("scatter_pass: need n_features >= 1");
    if (N < 0) throw std::invalid_argument("scatter_pass: need n_rows >= 0");
    if (N > 0 && request.X == nullptr) throw std::invalid_argument("scatter_pass: X is null");
    if (request.center == nullptr) throw std::invalid_argument("scatter_pass: center is null");
    const Eigen::Map<const Vector<double>> center(request.center, D);
    if (!center.allFinite()) throw std::invalid_argument("center must be finite");

    // The sub-block: rows whose deviations are formed, then one rank-k update. A cache's worth
    // of rows, but at least kMinUpdateRows: a rank-k update reads and writes the D x D sums once,
    // and with few rows that traffic bounds it (16 rows at D = 2,000 ran at 9 GFLOP/s).
    // A chunk of sub-blocks is the scheduled, merged and interrupt-polled unit; its partial sums
    // (D x D) are zeroed and merged once per chunk, memory-bound work worth many flops per
    // number, hence kMergeWeight.
    constexpr Index kMinUpdateRows = 256;
    constexpr double kMergeWeight = 8.0;
    const Index sub_block_rows =
        std::max(rows_per_block(static_cast<Index>(sizeof(double) + sizeof(T)) * D), kMinUpdateRows);
    const double partial_size = static_cast<double>(D) * D + D + 1;
    const double flops_per_row = static_cast<double>(D) * (D + 3);
    const RowBlocks chunks{N, rows_per_chunk(sub_block_rows, flops_per_row, kMergeWeight * partial_size)};
    const int threads = resolve_thread_count(request.n_threads);
    ConstRowMatrixMap<T> X(request.X, N, D);

    auto make_partial = [&] { return ScatterPartial(D); };
    auto make_workspace = [&] { return RowMatrix<double>(sub_block_rows, D); };
    auto compute = [&](Index, Index begin, Index rows, ScatterPartial& partial, RowMatrix<double>& deviations) {
        partial.set_zero();
        for (Index sub = begin; sub < begin + rows; sub += sub_block_rows) {
            const Index count = std::min(sub_block_rows, begin + rows - sub);
            for (Index i = 0; i < count; ++i) {
                auto y = deviations.row(i);
                y = X.row(sub + i).template cast<double>() - center.transpose();
                const double w = request.sample_weight ? static_cast<double>(request.sample_weight[sub + i]) : 1.0;
                partial.sum_weight += w;
                partial.sum_deviation += w * y.transpose();
                // Rows scaled by sqrt(w): the rank-k update then sums w y y^T.
                if (request.sample_weight) y *= std::sqrt(w);
            }
            partial.sum_outer.template selfadjointView<Eigen::Lower>().rankUpdate(
                deviations.topRows(count).transpose());
        }
    };

    ScatterPartial total(D);
    auto merge = [&](const ScatterPartial& partial) {
        total.sum_weight += partial.sum_weight;
        total.sum_deviation += partial.sum_deviation;
        total.sum_outer += partial.sum_outer;
    };
    const bool finished =
        for_each_block_ordered(chunks, request.n_threads, make_partial, make_workspace, compute, merge,
                               request.interrupt, chunks_per_thread(8.0 * partial_size, threads));

    statistics.sum_weight = total.sum_weight;
    statistics.mean = center;
    RowMatrix<double>& lower = total.sum_outer;
    if (total.sum_weight > 0) {
        const Vector<double> offset = total.sum_deviation / total.sum_weight;  // mean - c
        statistics.mean += offset;
        lower.noalias() -= total.sum_weight * offset * offset.transpose();
    }
    statistics.scatter = lower.template selfadjointView<Eigen::Lower>();  // exactly symmetric
    return finished;
}

template bool scatter_pass<float>(const ScatterPassRequest<float>&, ScatterStatistics&);
template bool scatter_pass<double>(const ScatterPassRequest<double>&, ScatterStatistics&);

}  // namespace fastelbo
