// The mixture E-step pass: for every fixed-size row block, log-joints -> responsibilities ->
// per-row outputs and additive statistics, blocks in parallel, partials merged in block order.
//
// The N x K responsibility matrix is never materialised unless the caller asks for it
// (`responsibilities` non-null); memory is O(block_rows * K) per thread plus the statistics.
#pragma once

#include <cstdint>

#include "fastelbo/mixture_statistics.hpp"
#include "fastelbo/posterior_row.hpp"
#include "fastelbo/row_block_schedule.hpp"
#include "fastelbo/types.hpp"

namespace fastelbo {

template <class T>
struct MixturePassRequest {
    const T* X = nullptr;  // [N, D] row-major
    Index n_rows = 0;
    const T* sample_weight = nullptr;  // [N] or null for unit weights
    bool compute_moments = true;       // sx, sxx (nk and the ELBO sums are always computed)
    T* log_norm = nullptr;             // [N] out: log p(x_n), optional
    T* responsibilities = nullptr;     // [N, K] out: q_n, optional
    std::int64_t* labels = nullptr;    // [N] out: argmax_c log-joint, optional
    int n_threads = 0;                 // <= 0: the OpenMP default
    InterruptPoll interrupt;
};

// Runs the pass for one component family (DiagonalGaussians, TiedGaussians, FullGaussians, ...).
// nk and the scalar ELBO terms are always summed; the moments only if request.compute_moments.
// Returns false if interrupted; `statistics` then holds a partial sum only.
template <class T, class Components>
bool run_mixture_pass(const Components& components, CovarianceType type, Index K, Index D,
                      const MixturePassRequest<T>& request, MixtureStatistics& statistics) {
    const Index bytes_per_row = components.bytes_per_row();
    RowBlocks blocks{request.n_rows, rows_per_block(bytes_per_row)};
    ConstRowMatrixMap<T> X(request.X, request.n_rows, D);
    const bool with_moments = request.compute_moments;

    struct Workspace {
        typename Components::Workspace model;
        RowMatrix<T> log_joint;  // [B, K], overwritten by the (weighted) responsibilities
        Vector<T> scratch;       // [K]
    };
    auto make_workspace = [&] {
        return Workspace{components.make_workspace(blocks.block_rows), RowMatrix<T>(blocks.block_rows, K),
                         Vector<T>(K)};
    };
    auto make_partial = [&] { return BlockStatistics<T>(type, K, D, with_moments); };

    auto compute = [&](Index, Index begin, Index rows, BlockStatistics<T>& partial, Workspace& ws) {
        const auto x = X.middleRows(begin, rows);
        auto lj = ws.log_joint.topRows(rows);
        components.log_joint(x, ws.model, lj);
        double sum_weight = 0, sum_log_norm = 0, sum_entropy = 0;
        for (Index i = 0; i < rows; ++i) {
            const Index n = begin + i;
            T* row = lj.row(i).data();
            const RowPosterior post = posterior_from_log_joint_row(row, K, ws.scratch.data());
            const double w = request.sample_weight ? static_cast<double>(request.sample_weight[n]) : 1.0;
            sum_weight += w;
            sum_log_norm += w * post.log_norm;
            sum_entropy += w * post.entropy;
            if (request.log_norm) request.log_norm[n] = static_cast<T>(post.log_norm);
            if (request.labels) request.labels[n] = static_cast<std::int64_t>(post.argmax);
            if (request.responsibilities) std::copy(row, row + K, request.responsibilities + n * K);
            if (request.sample_weight) lj.row(i) *= request.sample_weight[n];
        }
        partial.sum_weight = sum_weight;
        partial.sum_log_norm = sum_log_norm;
        partial.sum_entropy = sum_entropy;
        partial.nk = lj.colwise().sum().transpose();
        if (with_moments) {
            components.accumulate(x, lj, ws.model, partial,
                                  request.sample_weight ? request.sample_weight + begin : nullptr);
        }
    };

    statistics = MixtureStatistics(type, K, D, with_moments);
    auto merge = [&](const BlockStatistics<T>& partial) { statistics.merge(partial); };
    const bool finished = for_each_block_ordered(blocks, request.n_threads, make_partial, make_workspace, compute,
                                                 merge, request.interrupt);
    statistics.symmetrise_second_moments(type, K, D);
    return finished;
}

}  // namespace fastelbo
