// The mixture E-step pass: for every fixed-size, cache-sized row block, log-joints ->
// responsibilities -> per-row outputs and additive statistics. Blocks are grouped into chunks
// (rows_per_chunk) that run in parallel, each summing its blocks in turn; chunk partials are merged
// in order.
//
// The N x K responsibility matrix is never materialised unless the caller asks for it
// (`responsibilities` non-null); memory is O(block_rows * K) per thread plus the statistics.
#pragma once

#include <algorithm>
#include <cstdint>
#include <type_traits>

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
    const Index sub_block_rows = rows_per_block(components.bytes_per_row());
    RowBlocks chunks{request.n_rows, rows_per_chunk(sub_block_rows)};
    ConstRowMatrixMap<T> X(request.X, request.n_rows, D);
    const bool with_moments = request.compute_moments;
    // float64 sums accumulate in place; float32 sums are moved to float64 after every sub-block.
    constexpr bool accumulate_in_place = std::is_same_v<T, double>;

    struct Workspace {
        typename Components::Workspace model;
        RowMatrix<T> log_joint;        // [B, K], overwritten by the (weighted) responsibilities
        Vector<T> scratch;             // [K]
        BlockStatistics<T> sub_block;  // a sub-block's sums, when not accumulating in place
    };
    auto make_workspace = [&] {
        return Workspace{components.make_workspace(sub_block_rows), RowMatrix<T>(sub_block_rows, K), Vector<T>(K),
                         BlockStatistics<T>(type, K, D, with_moments && !accumulate_in_place)};
    };
    auto make_partial = [&] { return MixtureStatistics(type, K, D, with_moments); };

    // Adds the sums of rows [begin, begin + rows) to `out`.
    auto add_sub_block = [&](Index begin, Index rows, BlockStatistics<T>& out, Workspace& ws) {
        const auto x = X.middleRows(begin, rows);
        auto lj = ws.log_joint.topRows(rows);
        components.log_joint(x, ws.model, lj);
        for (Index i = 0; i < rows; ++i) {
            const Index n = begin + i;
            T* row = lj.row(i).data();
            const RowPosterior post = posterior_from_log_joint_row(row, K, ws.scratch.data());
            const double w = request.sample_weight ? static_cast<double>(request.sample_weight[n]) : 1.0;
            out.sum_weight += w;
            out.sum_log_norm += w * post.log_norm;
            out.sum_entropy += w * post.entropy;
            if (request.log_norm) request.log_norm[n] = static_cast<T>(post.log_norm);
            if (request.labels) request.labels[n] = static_cast<std::int64_t>(post.argmax);
            if (request.responsibilities) std::copy(row, row + K, request.responsibilities + n * K);
            if (request.sample_weight) lj.row(i) *= request.sample_weight[n];
        }
        out.nk += lj.colwise().sum().transpose();
        if (with_moments) {
            components.accumulate(x, lj, ws.model, out,
                                  request.sample_weight ? request.sample_weight + begin : nullptr);
        }
    };

    auto compute = [&](Index, Index begin, Index rows, MixtureStatistics& partial, Workspace& ws) {
        partial.set_zero();
        for (Index offset = 0; offset < rows; offset += sub_block_rows) {
            const Index n = std::min(sub_block_rows, rows - offset);
            if constexpr (accumulate_in_place) {
                add_sub_block(begin + offset, n, partial, ws);
            } else {
                ws.sub_block.set_zero();
                add_sub_block(begin + offset, n, ws.sub_block, ws);
                partial.merge(ws.sub_block);
            }
        }
    };

    statistics = MixtureStatistics(type, K, D, with_moments);
    auto merge = [&](const MixtureStatistics& partial) { statistics.merge(partial); };
    const bool finished = for_each_block_ordered(chunks, request.n_threads, make_partial, make_workspace, compute,
                                                 merge, request.interrupt);
    statistics.symmetrise_second_moments(type, K, D);
    return finished;
}

}  // namespace fastelbo
