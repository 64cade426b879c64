#include "fastelbo/exponential_family_mixture_pass.hpp"

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "fastelbo/posterior_row.hpp"
#include "fastelbo/row_block_schedule.hpp"
#include "fastelbo/row_maths.hpp"

namespace fastelbo {

namespace {

// Multiply-adds (non-zeros times K, plus K per row) a block holds at most, unless one row alone
// exceeds it: about a millisecond, the unit between two interrupt polls.
constexpr double kBlockWork = 1 << 20;
// Bytes of weighted responsibilities one round keeps for its second phase.
constexpr double kRoundBufferBytes = 8.0 * 1024 * 1024;

// log(x!) for a count x >= 0. lgamma_r where the C library has it: std::lgamma writes the global
// signgam, a data race between the pass's threads.
inline double log_factorial(double x) {
#if defined(__GLIBC__) || defined(__APPLE__)
    int sign;
    return ::lgamma_r(x + 1.0, &sign);
#else
    return std::lgamma(x + 1.0);
#endif
}

// log(x!) of the counts below kTabulatedCounts, from log_factorial itself (so bitwise the same):
// the counts of sparse data are mostly small, and a table read costs far less than lgamma.
constexpr int kTabulatedCounts = 256;
inline bool tabulated(double x) {
    return x >= 0 && x < kTabulatedCounts && x == std::trunc(x);
}
std::vector<double> log_factorial_table() {
    std::vector<double> table(kTabulatedCounts);
    for (int x = 0; x < kTabulatedCounts; ++x) table[x] = log_factorial(static_cast<double>(x));
    return table;
}

// Block starts (and N at the end): at most `max_rows` rows and about kBlockWork multiply-adds each.
// Fixed by the rows' non-zero counts and K alone, so the partial sums, and their merge order, are
// the same for any thread count.
template <class I>
std::vector<Index> block_bounds(const CsrRows<I>& rows, Index K, Index max_rows) {
    std::vector<Index> bounds{0};
    Index in_block = 0;
    double work = 0;
    for (Index n = 0; n < rows.n_rows; ++n) {
        const double row_work = static_cast<double>(rows.indptr[n + 1] - rows.indptr[n] + 1) * static_cast<double>(K);
        if (in_block > 0 && (in_block == max_rows || work + row_work > kBlockWork)) {
            bounds.push_back(n);
            in_block = 0;
            work = 0;
        }
        ++in_block;
        work += row_work;
    }
    if (rows.n_rows > 0) bounds.push_back(rows.n_rows);
    return bounds;
}

template <class I>
void check_arguments(const ExponentialFamilyMixtureParams& params, const CsrRows<I>& rows,
                     const ExponentialFamilyPassRequest& request) {
    const Index K = params.n_components, D = params.n_features;
    if (K < 1 || D < 1) throw std::invalid_argument("exponential_family_mixture_pass: need K >= 1 and D >= 1");
    if (rows.n_features != D)
        throw std::invalid_argument("exponential_family_mixture_pass: the rows have " +
                                    std::to_string(rows.n_features) + " columns, the parameters " + std::to_string(D));
    if (!params.log_weights || !params.natural_transposed || !params.log_partition)
        throw std::invalid_argument("exponential_family_mixture_pass: missing parameter arrays");
    if (!rows.indptr) throw std::invalid_argument("exponential_family_mixture_pass: indptr is null");
    if (rows.indptr[0] != 0) throw std::invalid_argument("indptr[0] must be 0, got " + std::to_string(rows.indptr[0]));
    for (Index n = 0; n < rows.n_rows; ++n) {
        if (rows.indptr[n + 1] < rows.indptr[n])
            throw std::invalid_argument("indptr must be non-decreasing; indptr[" + std::to_string(n + 1) +
                                        "] = " + std::to_string(rows.indptr[n + 1]) + " < indptr[" + std::to_string(n) +
                                        "] = " + std::to_string(rows.indptr[n]));
    }
    const std::int64_t nnz = rows.indptr[rows.n_rows];
    if (nnz > 0 && (!rows.indices || !rows.data))
        throw std::invalid_argument("exponential_family_mixture_pass: indices or data is null");
    for (std::int64_t k = 0; k < nnz; ++k) {
        if (rows.indices[k] < 0 || rows.indices[k] >= D)
            throw std::invalid_argument("indices[" + std::to_string(k) + "] = " + std::to_string(rows.indices[k]) +
                                        " is not a column of the " + std::to_string(D) + " columns");
    }
    (void)request;
}

}  // namespace

template <class I>
bool exponential_family_mixture_pass(const ExponentialFamilyMixtureParams& params, const CsrRows<I>& rows,
                                     const ExponentialFamilyPassRequest& request,
                                     ExponentialFamilyStatistics& statistics) {
    check_arguments(params, rows, request);
    const Index K = params.n_components, N = rows.n_rows;
    const bool poisson = params.family == ExponentialFamily::Poisson;
    const std::vector<double> log_factorials = poisson ? log_factorial_table() : std::vector<double>();
    statistics = ExponentialFamilyStatistics(K);

    // log pi_c + b_c, every row's starting log-joint; an empty component's -inf becomes a finite floor.
    Vector<double> constant(K);
    for (Index c = 0; c < K; ++c)
        constant[c] = finite_component_constant<double>(params.log_weights[c]) + params.log_partition[c];

    const Index max_block_rows = rows_per_block(16 * K);
    const std::vector<Index> bounds = block_bounds(rows, K, max_block_rows);
    const Index n_blocks = static_cast<Index>(bounds.size()) - 1;
    const int threads = resolve_thread_count(request.n_threads);
    // A round: up to 4 blocks per thread, within the buffer's rows (always at least one block).
    const Index round_rows_limit =
        std::max<Index>(max_block_rows, static_cast<Index>(kRoundBufferBytes / (8.0 * static_cast<double>(K))));
    const Index max_round_blocks = 4 * static_cast<Index>(threads);

    RowMatrix<double> round_q(std::min<Index>(round_rows_limit, std::max<Index>(N, 1)), K);
    std::vector<ExponentialFamilyStatistics> partials(
        static_cast<size_t>(std::min(max_round_blocks, std::max<Index>(n_blocks, 1))), ExponentialFamilyStatistics(K));
    // Per-thread rows: a row's log-joints are reduced (max, sums) at the same memory alignment
    // whatever its position in the round, which depends on the thread count.
    std::vector<Vector<double>> scratch(static_cast<size_t>(threads), Vector<double>(K));
    std::vector<Vector<double>> row_buffer(static_cast<size_t>(threads), Vector<double>(K));
    const ConstRowMatrixMap<double> natural(params.natural_transposed, params.n_features, K);
    RowMatrixMap<double> sx(request.sx_transposed, request.sx_transposed ? params.n_features : 0, K);
    const Index n_ranges = std::clamp<Index>(K / 8, 1, threads);

    InterruptPoller poller(request.interrupt);
    for (Index first = 0; first < n_blocks && !poller.stopped();) {
        // The round's blocks [first, last) and rows [row_begin, row_end).
        Index last = first + 1;
        while (last < n_blocks && last - first < max_round_blocks && bounds[last + 1] - bounds[first] <= round_q.rows())
            ++last;
        const Index row_begin = bounds[first], row_end = bounds[last];

        // Phase 1: posteriors, per-row outputs and partial sums, block by block.
        parallel_for_each(last - first, request.n_threads, [&](Index b) {
            if (poller.stopped()) return;
            ExponentialFamilyStatistics& partial = partials[b];
            partial.set_zero();
            double* work = scratch[current_thread_index()].data();
            double* row = row_buffer[current_thread_index()].data();
            for (Index n = bounds[first + b]; n < bounds[first + b + 1]; ++n) {
                Eigen::Map<Eigen::Array<double, Eigen::Dynamic, 1>> lj(row, K);
                lj = constant.array();
                double log_base = 0;
                for (std::int64_t k = rows.indptr[n]; k < rows.indptr[n + 1]; ++k) {
                    const double x = rows.data[k];
                    lj += x * natural.row(rows.indices[k]).transpose().array();
                    if (poisson) log_base -= tabulated(x) ? log_factorials[static_cast<int>(x)] : log_factorial(x);
                }
                const RowPosterior post = posterior_from_log_joint_row(row, K, work);
                const double w = request.sample_weight ? request.sample_weight[n] : 1.0;
                const double log_norm = post.log_norm + log_base;
                partial.sum_weight += w;
                partial.sum_log_norm += w * log_norm;
                partial.sum_entropy += w * post.entropy;
                partial.sum_log_base += w * log_base;
                if (request.log_norm) request.log_norm[n] = log_norm;
                if (request.labels) request.labels[n] = static_cast<std::int64_t>(post.argmax);
                if (request.responsibilities) std::copy(row, row + K, request.responsibilities + n * K);
                if (request.sample_weight) lj *= w;
                partial.nk += lj.matrix();
                if (request.sx_transposed) round_q.row(n - row_begin) = lj.matrix().transpose();
            }
            poller.between_items();
        });
        if (poller.stopped()) break;
        for (Index b = 0; b < last - first; ++b) statistics.merge(partials[b]);

        // Phase 2: sx += x_n (w_n q_n)^T over the round's rows in order, each thread on its own
        // components.
        if (request.sx_transposed) {
            parallel_for_each(n_ranges, request.n_threads, [&](Index r) {
                if (poller.stopped()) return;
                const Index c0 = r * K / n_ranges, width = (r + 1) * K / n_ranges - c0;
                for (Index n = row_begin; n < row_end; ++n) {
                    const auto q = round_q.row(n - row_begin).segment(c0, width);
                    for (std::int64_t k = rows.indptr[n]; k < rows.indptr[n + 1]; ++k)
                        sx.row(rows.indices[k]).segment(c0, width) += rows.data[k] * q;
                }
                poller.between_items();
            });
        }
        first = last;
    }
    return !poller.stopped();
}

template bool exponential_family_mixture_pass<std::int32_t>(const ExponentialFamilyMixtureParams&,
                                                            const CsrRows<std::int32_t>&,
                                                            const ExponentialFamilyPassRequest&,
                                                            ExponentialFamilyStatistics&);
template bool exponential_family_mixture_pass<std::int64_t>(const ExponentialFamilyMixtureParams&,
                                                            const CsrRows<std::int64_t>&,
                                                            const ExponentialFamilyPassRequest&,
                                                            ExponentialFamilyStatistics&);

}  // namespace fastelbo
