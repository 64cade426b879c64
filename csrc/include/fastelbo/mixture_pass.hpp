// The mixture E-step pass: for every fixed-size, cache-sized block of rows, log-joints ->
// responsibilities -> per-row outputs and additive statistics. Blocks are grouped into chunks
// (rows_per_polled_chunk) that run in parallel, each summing its blocks in turn; chunk partials are merged
// in order.
//
// The expansion families expand every run of rows about the run's centroid (gaussian_components.hpp,
// "Accuracy"). A run is the part of a chunk whose rows share a home component (the family's
// centring().home): rows
// are then visited grouped by home (a stable counting sort, fixed by the labels alone, so results
// stay bitwise identical for any thread count). Without homes rows are visited in order and a run is
// a whole chunk.
//
// The N x K responsibility matrix is never materialised unless the caller asks for it
// (`responsibilities` non-null); memory is O(block_rows * K) per thread plus the statistics.
//
// A model family is a row kernel plus a statistics layout; the pass knows neither Gaussians nor
// factor analysers. The family (a "Components" class) provides
//   using Statistics                  its additive sums (sum_weight, sum_log_norm, sum_entropy and
//                                     nk [K] are read by the pass; merge(), set_zero())
//   kGrouped                          whether it expands runs of rows about a shared point
//   bytes_per_row(), flops_per_row()  sizes the blocks and chunks
//   make_workspace(block_rows)        per-thread buffers
//   log_joint(x, [point,] ws, lj)     [B, K] log pi_c + log p(x_n | c)
//   centring()                        its RowCentring: the reference points and the rows' homes
//   accumulate(x, q, w, ws, sums)     moments of the block from the weighted q (ungrouped: about
//                                     the reference points)
//   (grouped only) expand_about(point, ws), flush(group sums, point, sums)
//   (optional, grouped) refine_log_joints(x, ws, lj) -> rows it re-evaluated without the expansion,
//                     accumulate_refined(x, q, point, ws, sums, nk): their moments, directly
// and the layout (e.g. MixtureSumsLayout) makes the sums: make(with_moments), make_empty(),
// partial_size() (numbers in one partial) and finish(sums) after the ordered merge. The points the
// moments are taken about (centring().reference) are always the caller's explicit choice, given to
// the family, not to the pass: the pass knows rows, weights and outputs only.
#pragma once

#include <algorithm>
#include <cstdint>
#include <string>
#include <type_traits>
#include <vector>

#include "fastelbo/posterior_row.hpp"
#include "fastelbo/row_block_schedule.hpp"
#include "fastelbo/row_centring.hpp"
#include "fastelbo/types.hpp"

namespace fastelbo {

template <class T>
struct MixturePassRequest {
    const T* X = nullptr;  // [N, D] row-major
    Index n_rows = 0;
    const T* sample_weight = nullptr;    // [N] or null for unit weights
    bool compute_moments = true;         // sx, sxx (nk and the ELBO sums are always computed)
    bool refine = true;                  // re-evaluate rows the expansion cannot hold (see gaussian_components.hpp);
                                         // false only for a rough labelling (always on with moments)
    T* log_norm = nullptr;               // [N] out: log p(x_n), optional
    T* responsibilities = nullptr;       // [N, K] out: q_n, optional
    std::int64_t* labels = nullptr;      // [N] out: argmax_c log-joint, optional
    int n_threads = 0;                   // <= 0: the OpenMP default
    InterruptPoll interrupt;
};

// Throws std::invalid_argument unless every home label lies in [0, K).
inline void check_home_labels(const std::int64_t* home, Index n_rows, Index K) {
    for (Index n = 0; n < n_rows; ++n) {
        if (home[n] < 0 || home[n] >= K) {
            throw std::invalid_argument("home labels must lie in [0, " + std::to_string(K) + "), got " +
                                        std::to_string(home[n]) + " at row " + std::to_string(n));
        }
    }
}

// The order a pass visits rows in: grouped by home component (stable counting sort) or as given.
class RowVisitOrder {
  public:
    // Rows in order, one group.
    explicit RowVisitOrder(Index n_rows) : n_rows_(n_rows) {}

    // Rows grouped by `home` (values in [0, K), else std::invalid_argument).
    RowVisitOrder(const std::int64_t* home, Index n_rows, Index K) : n_rows_(n_rows), group_end_(K + 1, 0) {
        check_home_labels(home, n_rows, K);
        for (Index n = 0; n < n_rows; ++n) ++group_end_[home[n] + 1];
        for (Index g = 0; g < K; ++g) group_end_[g + 1] += group_end_[g];
        std::vector<Index> next(group_end_.begin(), group_end_.end() - 1);
        rows_.resize(n_rows);
        groups_.resize(n_rows);
        for (Index n = 0; n < n_rows; ++n) {
            const Index g = home[n];
            rows_[next[g]] = n;
            groups_[next[g]++] = static_cast<std::int32_t>(g);
        }
        group_end_.erase(group_end_.begin());
    }

    bool identity() const { return rows_.empty(); }
    Index row(Index position) const { return identity() ? position : rows_[position]; }
    // First position after `position` that belongs to another group (or n_rows).
    Index run_end(Index position) const { return identity() ? n_rows_ : group_end_[groups_[position]]; }

  private:
    Index n_rows_;
    std::vector<Index> rows_;           // position -> row
    std::vector<std::int32_t> groups_;  // position -> group
    std::vector<Index> group_end_;      // group -> end position
};

// Whether a family re-evaluates rows that its expansion about a run's point cannot hold.
template <class Components, class = void>
struct refines_log_joints : std::false_type {};
template <class Components>
struct refines_log_joints<Components, std::void_t<decltype(&Components::refine_log_joints)>> : std::true_type {};

// Whether a family keeps a part of each row's log-joints common to all components apart from them
// (row_offsets(ws): one per row of the block, added to the row's log-normaliser).
template <class Components, class = void>
struct keeps_row_offsets : std::false_type {};
template <class Components>
struct keeps_row_offsets<Components, std::void_t<decltype(&Components::row_offsets)>> : std::true_type {};

// Runs the pass for one component family (DiagonalGaussians, TiedGaussians, FullGaussians,
// FactorAnalysers, ...) whose statistics `layout` describes. nk and the scalar ELBO terms are always
// summed; the moments only if request.compute_moments. Returns false if interrupted; `statistics`
// then holds a partial sum only.
template <class T, class Components, class Layout>
bool run_mixture_pass(const Components& components, const Layout& layout, Index K, Index D,
                      const MixturePassRequest<T>& request, typename Layout::Statistics& statistics) {
    using Statistics = typename Layout::Statistics;
    static_assert(std::is_same_v<typename Components::Statistics, Statistics>,
                  "the family and the layout must agree on the statistics type");
    constexpr bool grouped = Components::kGrouped;
    constexpr bool refines = grouped && refines_log_joints<Components>::value;
    const bool with_moments = request.compute_moments;
    const bool refine = request.refine || with_moments;
    const RowCentring& centring = components.centring();
    if (with_moments && centring.reference == nullptr)
        throw std::invalid_argument("the mixture pass needs reference points to compute moments");
    // A family that groups nothing ignores the homes, but they are still the caller's labels to check.
    if (!grouped && centring.home) check_home_labels(centring.home, request.n_rows, K);
    const RowVisitOrder order =
        grouped && centring.home ? RowVisitOrder(centring.home, request.n_rows, K) : RowVisitOrder(request.n_rows);

    const Index sub_block_rows = rows_per_block(components.bytes_per_row());
    const double partial_size = layout.partial_size();
    const RowBlocks chunks{request.n_rows, rows_per_polled_chunk(sub_block_rows, components.flops_per_row(),
                                                                 partial_size, request.n_rows)};
    const int threads = resolve_thread_count(request.n_threads);
    ConstRowMatrixMap<T> X(request.X, request.n_rows, D);

    struct Workspace {
        typename Components::Workspace model;
        RowMatrix<T> rows;          // [B, D] gathered rows (grouped order)
        Vector<T> weights;          // [B] gathered sample weights
        RowMatrix<T> log_joint;     // [B, K], overwritten by the (weighted) responsibilities
        Vector<T> scratch;          // [K]
        Statistics group_sums;      // moments of the current run about its expansion point (grouped)
        Vector<double> refined_nk;  // [K] responsibilities of a block's refined rows
    };
    auto make_workspace = [&] {
        return Workspace{components.make_workspace(sub_block_rows),
                         RowMatrix<T>(order.identity() ? 0 : sub_block_rows, D),
                         Vector<T>(order.identity() ? 0 : sub_block_rows),
                         RowMatrix<T>(sub_block_rows, K),
                         Vector<T>(K),
                         grouped && with_moments ? layout.make(true) : layout.make_empty(),
                         Vector<double>(refines ? K : 0)};
    };
    auto make_partial = [&] { return layout.make(with_moments); };

    // The centroid of the rows at positions [begin, end), in float64 rounded to T.
    auto centroid = [&](Index begin, Index end) {
        RowVector<double> sum = RowVector<double>::Zero(D);
        for (Index p = begin; p < end; ++p) sum += X.row(order.row(p)).template cast<double>();
        return RowVector<T>((sum / static_cast<double>(end - begin)).template cast<T>());
    };

    // Adds the sums of the rows at positions [begin, begin + count) of one run to `partial`.
    auto add_sub_block = [&](Index begin, Index count, const RowVector<T>& point, Statistics& partial, Workspace& ws) {
        const T* weights = nullptr;
        auto x = [&]() -> RowBlock<T> {
            if (order.identity()) {
                if (request.sample_weight) weights = request.sample_weight + begin;
                return X.middleRows(begin, count);
            }
            for (Index i = 0; i < count; ++i) {
                const Index n = order.row(begin + i);
                ws.rows.row(i) = X.row(n);
                if (request.sample_weight) ws.weights(i) = request.sample_weight[n];
            }
            if (request.sample_weight) weights = ws.weights.data();
            return ws.rows.topRows(count);
        }();
        auto lj = ws.log_joint.topRows(count);
        [[maybe_unused]] Index refined = 0;
        if constexpr (grouped) {
            components.log_joint(x, point, ws.model, lj);
            if constexpr (refines) {
                if (refine) refined = components.refine_log_joints(x, ws.model, lj);
            }
        } else {
            components.log_joint(x, ws.model, lj);
        }
        const double* offsets = nullptr;
        if constexpr (keeps_row_offsets<Components>::value) offsets = components.row_offsets(ws.model);
        for (Index i = 0; i < count; ++i) {
            const Index n = order.row(begin + i);
            T* row = lj.row(i).data();
            const RowPosterior post = posterior_from_log_joint_row(row, K, ws.scratch.data());
            const double log_norm = offsets ? post.log_norm + offsets[i] : post.log_norm;
            const double w = weights ? static_cast<double>(weights[i]) : 1.0;
            partial.sum_weight += w;
            partial.sum_log_norm += w * log_norm;
            partial.sum_entropy += w * post.entropy;
            if (request.log_norm) request.log_norm[n] = static_cast<T>(log_norm);
            if (request.labels) request.labels[n] = static_cast<std::int64_t>(post.argmax);
            if (request.responsibilities) std::copy(row, row + K, request.responsibilities + n * K);
            if (weights) lj.row(i) *= weights[i];
        }
        if constexpr (refines) {
            // Their moments in float64 into the run's sums, and the same q into both nk (so that the
            // flush and the M-step's scatter sxx - sx sx^T / nk cancel exactly); the GEMMs leave them out.
            if (with_moments && refined > 0) {
                ws.refined_nk.setZero();
                components.accumulate_refined(x, lj, point, ws.model, ws.group_sums, ws.refined_nk);
                ws.group_sums.nk += ws.refined_nk;
                partial.nk += ws.refined_nk;
            }
        }
        const Vector<double> nk = lj.colwise().sum().transpose().template cast<double>();
        partial.nk += nk;
        if (!with_moments) return;
        if constexpr (grouped) {
            ws.group_sums.nk += nk;
            components.accumulate(x, lj, weights, ws.model, ws.group_sums);
        } else {
            components.accumulate(x, lj, weights, ws.model, partial);
        }
    };

    // A chunk: runs of one group each, cut into sub-blocks; a run's moments are flushed at its end.
    auto compute = [&](Index, Index begin, Index rows, Statistics& partial, Workspace& ws, InterruptPoller& poller) {
        partial.set_zero();
        const Index end = begin + rows;
        for (Index run_begin = begin; run_begin < end && !poller.stopped();) {
            const Index run_end = std::min(end, order.run_end(run_begin));
            RowVector<T> point;
            if constexpr (grouped) {
                point = centroid(run_begin, run_end);
                components.expand_about(point, ws.model);
            }
            for (Index p = run_begin; p < run_end && !poller.stopped(); p += sub_block_rows) {
                add_sub_block(p, std::min(sub_block_rows, run_end - p), point, partial, ws);
                poller.between_items();
            }
            if constexpr (grouped) {
                if (with_moments) components.flush(ws.group_sums, point, partial);
            }
            run_begin = run_end;
        }
    };

    statistics = layout.make(with_moments);
    auto merge = [&](const Statistics& partial) { statistics.merge(partial); };
    const bool finished =
        for_each_block_ordered(chunks, request.n_threads, make_partial, make_workspace, compute, merge,
                               request.interrupt, chunks_per_thread(8.0 * partial_size, threads));
    layout.finish(statistics);
    return finished;
}

}  // namespace fastelbo
