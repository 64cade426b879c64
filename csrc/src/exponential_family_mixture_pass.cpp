#include "fastelbo/exponential_family_mixture_pass.hpp"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "fastelbo/multiply_add.hpp"
#include "fastelbo/posterior_row.hpp"
#include "fastelbo/prefetch.hpp"
#include "fastelbo/register_gather.hpp"
#include "fastelbo/row_block_schedule.hpp"
#include "fastelbo/row_maths.hpp"
#include "fastelbo/truncated_candidates.hpp"

namespace fastelbo {

namespace {

// Multiply-adds (non-zeros times K, plus K per row) a block holds at most, unless one row alone
// exceeds it: about a millisecond, the unit between two interrupt polls.
constexpr double kBlockWork = 1 << 20;
// Bytes of weighted responsibilities one round keeps for its second phase (a row with few non-zero
// ones keeps 12 bytes per non-zero, any other 8 K): the round's rows are then read from the caches.
constexpr double kRoundBufferBytes = 8.0 * 1024 * 1024;
// A round holds at most this many times the rows of kRoundBufferBytes of dense rows, however few
// non-zeros the previous round's rows had: the memory a round takes stays bounded whatever comes.
constexpr Index kMaxRoundGrowth = 16;
// Non-zeros one round groups by column for its second phase (8 or 16 bytes each), unless a block
// alone holds more. Each round reads and writes the sums of every column it holds, so fewer rounds
// save that; at 2^21 a round's non-zeros and its tile of responsibilities leave the core's cache.
// With the log-joints summed in registers, at N = 1M, D = 50,000, K = 100 (Zipf word counts) a pass
// took 3.32-3.72 s (mean 3.53, six passes) against 3.55-3.98 s (mean 3.75) with 2^19, and 2^21 was
// slower than either (again with 8-byte records: 8.7 s against 5.4 s, median of eight alternating
// passes on a busy machine); N = 300k at K = 100 and 1,000 measured the same with 2^19 and 2^20
// (before the registers, 2^20 and 2^21 cost an N = 100k, K = 100 pass 10-20 %).
constexpr std::int64_t kRoundNonZeros = std::int64_t{1} << 20;

// A column's scatter visits, for a row whose non-zero responsibilities are at most 1 /
// kSparseScatterShare of the K, only those (one scalar update each), else all K (contiguous).
constexpr Index kSparseScatterShare = 4;
// A pass of fewer multiply-adds ((non-zeros + rows) K) runs on one thread: a few milliseconds,
// where waking the other threads costs as much, and more on a busy machine.
constexpr double kParallelWork = 1 << 23;
// sx of at most this many bytes stays in the caches: its rows are then updated per non-zero in row
// order (no grouping by column, whose counting sort would cost more than it saves).
constexpr double kCachedScatterBytes = 4.0 * 1024 * 1024;
// Column ranges per round of the scatter: the unit of parallel work and of interrupt polling
// (fixed, so that they never depend on the thread count; sx is bitwise the same for any split).
// An item's non-zeros are read once per tile of components: 64 items keep a round's share of them
// (2^20 / 64 of 8 bytes) in the core's cache beside the tile of responsibilities, where 16 did not.
// With 8-byte records, at N = 1M, D = 50,000, K = 100 (Zipf word counts) the second phase's best of
// three passes took 2.7, 2.7 and 3.6 G cycles in three sets, against 3.2, 3.2 and 3.7 with 16 items.
constexpr Index kScatterItems = 64;
// A round's rows stored as K values are added column by column (their non-zeros sorted) where their
// non-zeros times K are at least this many times the round's non-zeros, else as K pairs each. At
// N = 300k, D = 50,000, K = 100 (Zipf word counts) a non-zero took about 8 ns to sort, 1.4 ns per
// pair to add component by component and 0.3 ns per component to add column by column.
constexpr double kSortedNonZeroCost = 8;
// Components per work item of the final sx += dense_sx^T where dense_sx is not tiled (two cache
// lines of each row of dense_sx).
constexpr Index kTransposeComponents = 16;
// With at most kMaxTiledComponents components, a round added column by column is added a tile of
// kTileComponents components at a time (one cache line of float64): the round's responsibilities
// are copied tile by tile ([tile, row, component]), so that a tile of them (64 bytes per row) and a
// range's non-zeros stay in the core's own cache while the range's columns are added, each
// column's tile of sums in registers. At N = 1M, D = 50,000, K = 100 (Zipf word counts, spread
// posteriors) the best pass of each of four alternating sets took 3.7-3.9 s so, against 3.9-4.2 s
// reading a row's K values per non-zero from the cache both cores share (medians 1-7 % apart, on a
// machine whose runs vary by 10 %). At K = 1,000 a column holds a few of a round's non-zeros, and
// the loop per column and tile cost more than the tiles save (47-50 s against 36-37 s). A record
// and tile take 4.5-5 cycles however the work is ordered: summing two columns at a time (two
// chains of multiply-adds) or handing out the work tile by tile across column ranges measured the
// same, in the pass and in a stand-alone loop over one round.
constexpr Index kTileComponents = 8;
constexpr Index kMaxTiledComponents = 128;
// Where eta is larger than the caches (the columns split, floored_natural_columns.hpp) a block's
// log-joints are summed column by column (gather_block_log_joints): a block of at most
// kGroupedBlockBytes of log-joints and at most kGroupedBlockWork multiply-adds. A column's row of
// eta is then read once per block, not once per non-zero: at D = 50,000 and K = 1,000 on Zipf word
// counts a block of 512 rows holds about 0.3 distinct columns per non-zero, and the product took
// 0.64-0.73 of the time of row by row (blocks of 128 rows: 0.8-0.9; 2,048: 1.3, out of the caches).
constexpr double kGroupedBlockBytes = 4.0 * 1024 * 1024;
constexpr double kGroupedBlockWork = 64.0 * kBlockWork;
// Non-zeros ahead of the one summed whose row of eta is asked for, and at most how many of its values
// (16 cache lines: the hardware prefetcher follows a long row once its first lines are read).
constexpr std::int64_t kPrefetchDistance = 4;
constexpr Index kPrefetchValues = 16 * 8;

// A non-zero of a round grouped by column: its value and its row in the round, in one record, so
// that the sort's scattered writes touch one cache line per non-zero, not two. Where every value of
// the round is exact in float32 (counts below 2^24, ones: nearly always) the record takes 8 bytes,
// else 16: the sort writes, and the second phase reads once per tile of components, half the bytes.
// At N = 1M, D = 50,000, K = 100 (Zipf word counts) the sort took 1.6-1.9 G cycles against 2.0-2.1
// G with 16-byte records; with 64 scatter items too, ten alternating passes took a median 4.16 s
// against 4.41 s (Poisson) and 3.55 s against 3.99 s (Bernoulli) on a busy machine.
template <class Value>
struct ColumnEntry {
    Value value;
    std::int32_t row;
};

// Whether x converts to float32 and back unchanged (NaN does not).
inline bool exact_in_float(double x) {
    return std::fabs(x) <= std::numeric_limits<float>::max() && static_cast<double>(static_cast<float>(x)) == x;
}

// Non-zeros ahead of the one stored whose slot is asked for, for writing: a round's slots spread
// over megabytes, one column's cursor to the next. On a round of Zipf word counts (1M non-zeros,
// D = 50,000) the stores took 8.8 cycles per non-zero against 14 without (8 ahead: 12).
constexpr std::int64_t kScatterPrefetch = 32;

// The round's non-zeros of rows [row_begin, row_end) in `entries`, grouped by column, rows ascending
// (a stable counting sort: `column_next` holds each column's first slot and is advanced).
template <class Value, class I>
void scatter_round_by_column(const CsrRows<I>& rows, Index row_begin, Index row_end,
                             std::vector<std::int64_t>& column_next, std::vector<ColumnEntry<Value>>& entries) {
    const std::int64_t end = rows.indptr[row_end];
    entries.resize(static_cast<size_t>(end - rows.indptr[row_begin]));
    for (Index n = row_begin; n < row_end; ++n)
        for (std::int64_t k = rows.indptr[n]; k < rows.indptr[n + 1]; ++k) {
            // Where a later non-zero's column stands now: its slot, or a few slots before it.
            if (k + kScatterPrefetch < end)
                prefetch_for_writing(entries.data() + column_next[rows.indices[k + kScatterPrefetch]]);
            const std::int64_t e = column_next[rows.indices[k]]++;
            entries[e] = {static_cast<Value>(rows.data[k]), static_cast<std::int32_t>(n - row_begin)};
        }
}

// A round's weighted responsibilities of one block's rows, as the rows come: a row with at most
// K / kSparseScatterShare non-zero ones as (component, value) pairs, any other as its K values.
struct BlockResponsibilities {
    std::vector<double> values;
    std::vector<std::int32_t> components;
};

// Where a round row's responsibilities lie in its block's BlockResponsibilities: `count` values
// from `value_offset`, and as many components from `component_offset` unless `dense` (count K).
struct RoundRowLayout {
    Index block = 0, value_offset = 0, component_offset = 0, count = 0;
    bool dense = true;
};

// A round row's responsibilities, read by phase 2: `count` values, of `components` unless dense.
struct RoundRow {
    const double* values = nullptr;
    const std::int32_t* components = nullptr;
    Index count = 0;
    bool dense = true;
};

// Cuts [0, n) into kScatterItems ranges of about equal counts, from `begin` [n + 1], the counts'
// running sums (begin[n] the total): item i covers [ranges[i], ranges[i + 1]).
template <class Offset>
void equal_count_ranges(const std::vector<Offset>& begin, Index n, std::vector<Index>& ranges) {
    ranges[0] = 0;
    for (Index item = 1; item < kScatterItems; ++item) {
        const Offset target = begin[static_cast<size_t>(n)] * static_cast<Offset>(item) / static_cast<Offset>(kScatterItems);
        const Index at = static_cast<Index>(std::lower_bound(begin.begin(), begin.end(), target) - begin.begin());
        ranges[item] = std::clamp<Index>(at, ranges[item - 1], n);
    }
    ranges[kScatterItems] = n;
}

// Asks for the first cache line of a sparse column's deviations (components and values).
inline void prefetch_deviations(const FlooredNaturalColumns& split, Index d) {
    const std::int64_t j = split.begin[static_cast<size_t>(d)];
    prefetch_elements(split.component.data() + j, 1);
    prefetch_elements(split.deviation.data() + j, 1);
}

// Asks for the first cache lines of a round row's responsibilities (and of its components).
inline void prefetch_round_row(const RoundRow& r, Index K) {
    prefetch_elements(r.values, std::min<Index>(r.dense ? K : r.count, kPrefetchValues));
    if (!r.dense) prefetch_elements(r.components, 1);
}

// Pairs ahead of the one added whose row's non-zeros are asked for (add_weighted_rows).
constexpr Index kPairPrefetch = 4;

// Asks for the cache lines of row n's column indices and values (reads indptr[n], indptr[n + 1]).
template <class I>
inline void prefetch_row_entries(const CsrRows<I>& rows, Index n) {
    const std::int64_t begin = rows.indptr[n], end = rows.indptr[n + 1];
    prefetch_elements(rows.indices + begin, static_cast<Index>(end - begin));
    prefetch_elements(rows.data + begin, static_cast<Index>(end - begin));
}

// One component's moments over its (row, weight) pairs e in [e_begin, e_end), in order:
// sx_c[d] += weight(e) x_nd over the non-zeros of row n = row(e) (sx_c: the component's D sums, or
// null for none); returns the sum of the weights. The rows lie anywhere in X, so the rows a few
// pairs ahead are asked for: first where their non-zeros begin (and their weight), then, once that
// has come, the non-zeros. row(e) is an Index, weight(e) a const double&.
template <class I, class RowOf, class WeightOf>
double add_weighted_rows(const CsrRows<I>& rows, Index e_begin, Index e_end, RowOf row, WeightOf weight,
                         double* sx_c) {
    double sum = 0;
    for (Index e = e_begin; e < e_end; ++e) {
        if (sx_c && e + 2 * kPairPrefetch < e_end) {
            prefetch_elements(rows.indptr + row(e + 2 * kPairPrefetch), 1);
            prefetch_elements(&weight(e + 2 * kPairPrefetch), 1);
        }
        if (sx_c && e + kPairPrefetch < e_end) prefetch_row_entries(rows, row(e + kPairPrefetch));
        const Index n = row(e);
        const double w = weight(e);
        sum += w;
        if (sx_c)
            for (std::int64_t k = rows.indptr[n]; k < rows.indptr[n + 1]; ++k)
                sx_c[rows.indices[k]] = multiply_add(w, rows.data[k], sx_c[rows.indices[k]]);
    }
    return sum;
}

// What the pass's row loop inlines is not left to the compiler's estimate: gather_log_joints always
// (left to g++ 12 once the sparse columns' loop came in, an N = 1M, K = 100 pass took 10-20 %
// longer), keep_round_row never (see there).
#if defined(__GNUC__) || defined(__clang__)
#define FASTELBO_ALWAYS_INLINE __attribute__((always_inline)) inline
#define FASTELBO_NOINLINE __attribute__((noinline))
#elif defined(_MSC_VER)
#define FASTELBO_ALWAYS_INLINE __forceinline
#define FASTELBO_NOINLINE __declspec(noinline)
#else
#define FASTELBO_ALWAYS_INLINE inline
#define FASTELBO_NOINLINE
#endif

// row[c] += x times a sparse column d's deviations from the floor (components ascending).
FASTELBO_ALWAYS_INLINE void add_column_deviations(const FlooredNaturalColumns& split, Index d, double x, double* row) {
    const std::int64_t j1 = split.begin[static_cast<size_t>(d) + 1];
    for (std::int64_t j = split.begin[static_cast<size_t>(d)]; j < j1; ++j) {
        double& sum = row[split.component[static_cast<size_t>(j)]];
        sum = multiply_add(x, split.deviation[static_cast<size_t>(j)], sum);
    }
}

// row[c] += floor_value times the row's sum of x over sparse columns (the floor the deviations left out).
FASTELBO_ALWAYS_INLINE void add_floor_shift(const FlooredNaturalColumns& split, double floored_sum, Index K,
                                            double* row) {
    if (floored_sum == 0) return;
    const double shift = split.floor_value * floored_sum;
    for (Index c = 0; c < K; ++c) row[c] += shift;
}

// row[c] += the row's log-joint terms (floored_natural_columns.hpp) for its non-zeros k in order:
// x_k eta[d_k, c] over the K components of a dense column (one multiply-add per (k, c), the same
// sum for every c as one AXPY per non-zero), x_k times the few deviations of a sparse one, then
// floor_value times the sparse columns' sum of x. The next non-zeros' parameters are asked for
// ahead: their columns are known, where the hardware cannot guess them. Where `padded` holds eta
// (every column dense), its sums are kept in registers (register_gather.hpp): the same bits.
// visit(x_k) is called for each non-zero in order (the Poisson base measure's sum rides along).
template <class I, class Visit>
FASTELBO_ALWAYS_INLINE void gather_log_joints(const double* eta, const PaddedRows& padded,
                                              const FlooredNaturalColumns& split, Index K, const CsrRows<I>& rows,
                                              std::int64_t begin, std::int64_t end, double* row, Visit& visit) {
    if (!padded.empty()) {
        gather_rows_in_registers(padded, rows.indices, rows.data, begin, end, kPrefetchDistance, row, visit);
        return;
    }
    const Index ahead = std::min<Index>(K, kPrefetchValues);
    if (!split.any_sparse) {
        // Every column dense (eta in the caches, or no column floored): the plain loop, without a
        // test per non-zero (30 % of the pass at K = 100 otherwise). The same sums.
        for (std::int64_t k = begin; k < std::min(end, begin + kPrefetchDistance); ++k)
            prefetch_elements(eta + static_cast<Index>(rows.indices[k]) * K, ahead);
        for (std::int64_t k = begin; k < end; ++k) {
            if (k + kPrefetchDistance < end)
                prefetch_elements(eta + static_cast<Index>(rows.indices[k + kPrefetchDistance]) * K, ahead);
            const double x = rows.data[k];
            visit(x);
            const double* e = eta + static_cast<Index>(rows.indices[k]) * K;
            for (Index c = 0; c < K; ++c) row[c] = multiply_add(x, e[c], row[c]);
        }
        return;
    }
    auto prefetch = [&](std::int64_t k) {
        const Index d = static_cast<Index>(rows.indices[k]);
        if (split.is_sparse(d))
            prefetch_deviations(split, d);
        else
            prefetch_elements(eta + d * K, ahead);
    };
    for (std::int64_t k = begin; k < std::min(end, begin + kPrefetchDistance); ++k) prefetch(k);
    double floored_sum = 0;
    for (std::int64_t k = begin; k < end; ++k) {
        if (k + kPrefetchDistance < end) prefetch(k + kPrefetchDistance);
        const double x = rows.data[k];
        visit(x);
        const Index d = static_cast<Index>(rows.indices[k]);
        if (split.is_sparse(d)) {
            floored_sum += x;
            add_column_deviations(split, d, x, row);
        } else {
            const double* e = eta + d * K;
            for (Index c = 0; c < K; ++c) row[c] = multiply_add(x, e[c], row[c]);
        }
    }
    add_floor_shift(split, floored_sum, K, row);
}

// A non-zero of a block grouped by column: its column, its row in the block and its value.
struct BlockEntry {
    std::uint32_t column;
    std::int32_t row;
    double value;
};

// One thread's workspace of gather_block_log_joints.
struct BlockGatherWorkspace {
    std::vector<BlockEntry> entries, sorted;
    std::vector<double> floored_sums;  // [rows] a row's sum of x over sparse columns
    std::vector<double> log_joints;    // [rows, K]
};

// The log-joints of the rows [n_begin, n_end), into workspace.log_joints (row i at i * K): bitwise
// gather_log_joints' of every row, whose terms it adds in the same order, but column by column. The
// block's non-zeros are sorted by column (a stable radix sort: rows ascending within a column), and
// each column's row of eta (or its deviations) is read once and added to every row holding the
// column. A row's terms are thus added in ascending column order, which is its own order when its
// columns are ascending; returns false (nothing summed) where a row's are not, and the caller sums
// the block row by row.
template <class I>
bool gather_block_log_joints(const double* eta, const FlooredNaturalColumns& split, Index K, Index D,
                             const CsrRows<I>& rows, Index n_begin, Index n_end, const Vector<double>& constant,
                             BlockGatherWorkspace& ws) {
    const std::int64_t nnz_begin = rows.indptr[n_begin], nnz_end = rows.indptr[n_end];
    const size_t m = static_cast<size_t>(nnz_end - nnz_begin);
    ws.entries.resize(m);
    for (Index n = n_begin; n < n_end; ++n) {
        const std::int64_t begin = rows.indptr[n], end = rows.indptr[n + 1];
        for (std::int64_t k = begin; k < end; ++k) {
            if (k > begin && rows.indices[k] <= rows.indices[k - 1]) return false;
            ws.entries[static_cast<size_t>(k - nnz_begin)] = {static_cast<std::uint32_t>(rows.indices[k]),
                                                              static_cast<std::int32_t>(n - n_begin), rows.data[k]};
        }
    }
    // Least significant byte first: each pass is stable, so rows stay ascending within a column.
    ws.sorted.resize(m);
    for (int shift = 0; (static_cast<std::uint64_t>(D - 1) >> shift) != 0; shift += 8) {
        std::int64_t start[257] = {0};
        for (const BlockEntry& e : ws.entries) ++start[((e.column >> shift) & 255) + 1];
        for (int b = 0; b < 256; ++b) start[b + 1] += start[b];
        for (const BlockEntry& e : ws.entries) ws.sorted[static_cast<size_t>(start[(e.column >> shift) & 255]++)] = e;
        ws.entries.swap(ws.sorted);
    }

    const Index n_rows = n_end - n_begin;
    ws.log_joints.resize(static_cast<size_t>(n_rows * K));
    ws.floored_sums.assign(static_cast<size_t>(n_rows), 0.0);
    for (Index i = 0; i < n_rows; ++i) std::copy(constant.data(), constant.data() + K, ws.log_joints.data() + i * K);
    const Index ahead = std::min<Index>(K, kPrefetchValues);
    const BlockEntry* entries = ws.entries.data();
    for (size_t i = 0; i < m;) {
        const std::uint32_t d = entries[i].column;
        size_t j = i + 1;
        while (j < m && entries[j].column == d) ++j;
        // The column after this one is asked for while this one is added.
        if (j < m && !split.is_sparse(entries[j].column)) prefetch_elements(eta + static_cast<Index>(entries[j].column) * K, ahead);
        if (split.is_sparse(d)) {
            for (size_t e = i; e < j; ++e) {
                const double x = entries[e].value;
                ws.floored_sums[static_cast<size_t>(entries[e].row)] += x;
                add_column_deviations(split, d, x, ws.log_joints.data() + static_cast<Index>(entries[e].row) * K);
            }
        } else {
            const double* column = eta + static_cast<Index>(d) * K;
            for (size_t e = i; e < j; ++e) {
                const double x = entries[e].value;
                double* row = ws.log_joints.data() + static_cast<Index>(entries[e].row) * K;
                for (Index c = 0; c < K; ++c) row[c] = multiply_add(x, column[c], row[c]);
            }
        }
        i = j;
    }
    for (Index i = 0; i < n_rows; ++i)
        add_floor_shift(split, ws.floored_sums[static_cast<size_t>(i)], K, ws.log_joints.data() + i * K);
    return true;
}

// body(i) for every i in [0, n) on up to n_threads threads, as parallel_for_each, but items are
// handed out one at a time as threads come free: on a busy machine a thread the OS has paused then
// holds up one item, not a static half of them. Every item writes only its own outputs, so the
// results do not depend on which thread ran it.
template <class Body>
void parallel_for_each_dynamic(Index n, int n_threads, Body body) {
    const int threads = static_cast<int>(std::min<Index>(resolve_thread_count(n_threads), std::max<Index>(n, 1)));
    if (threads <= 1) {
        parallel_for_each(n, 1, body);
        return;
    }
#ifdef FASTELBO_OPENMP
#pragma omp parallel num_threads(threads)
    {
        FlushSubnormalsScope flush;
#pragma omp for schedule(dynamic, 1)
        for (Index i = 0; i < n; ++i) body(i);
    }
#endif
}

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

// log(x!) of a count x >= 0, read from a table below kTabulatedCounts (filled by log_factorial
// itself, so bitwise the same): the counts of sparse data are mostly small, and a table read costs
// far less than lgamma. Built only where a pass needs it (Poisson): an empty one is never called.
class LogFactorials {
public:
    static LogFactorials tabulated() {
        LogFactorials table;
        table.values_.resize(kTabulatedCounts);
        for (int x = 0; x < kTabulatedCounts; ++x) table.values_[x] = log_factorial(static_cast<double>(x));
        return table;
    }
    double operator()(double x) const {
        return x >= 0 && x < kTabulatedCounts && x == std::trunc(x) ? values_[static_cast<int>(x)] : log_factorial(x);
    }

private:
    static constexpr int kTabulatedCounts = 256;
    std::vector<double> values_;
};

// Appends a round row's weighted responsibilities `row` to its block's buffer and says where they
// lie: a row with at most max_kept kept ones as (component, value) pairs, any other as its K values.
// Kept: non-zero, and not negligible (w_n q_nc max_d x_nd at least `negligible`); adding 0 changes
// no sum, and the negligible terms together move sx by at most N `negligible`. Out of line: inlined
// in the pass's row loop, it made the log-joints' gather 10-25 % slower at K = 100.
template <class I>
FASTELBO_NOINLINE void keep_round_row(const double* row, Index K, const CsrRows<I>& rows, std::int64_t begin,
                                      std::int64_t end, Index max_kept, double negligible, Index block,
                                      BlockResponsibilities& kept, RoundRowLayout& layout) {
    double largest = 0;
    for (std::int64_t k = begin; k < end; ++k) largest = std::max(largest, rows.data[k]);
    auto keep = [largest, negligible](double q) { return q != 0.0 && q * largest >= negligible; };
    Index m = 0;
    for (Index c = 0; c < K && m <= max_kept; ++c) m += keep(row[c]);
    layout.block = block;
    layout.value_offset = static_cast<Index>(kept.values.size());
    layout.component_offset = static_cast<Index>(kept.components.size());
    layout.dense = m > max_kept;
    if (layout.dense) {
        layout.count = K;
        kept.values.insert(kept.values.end(), row, row + K);
        return;
    }
    layout.count = m;
    for (Index c = 0; c < K; ++c) {
        if (!keep(row[c])) continue;
        kept.values.push_back(row[c]);
        kept.components.push_back(static_cast<std::int32_t>(c));
    }
}

// Block starts (and N at the end): at most `max_rows` rows and about `max_work` multiply-adds each.
// Fixed by the rows' non-zero counts and K alone, so the partial sums, and their merge order, are
// the same for any thread count.
template <class I>
std::vector<Index> block_bounds(const CsrRows<I>& rows, Index K, Index max_rows, double max_work) {
    std::vector<Index> bounds{0};
    Index in_block = 0;
    double work = 0;
    for (Index n = 0; n < rows.n_rows; ++n) {
        const double row_work = static_cast<double>(rows.indptr[n + 1] - rows.indptr[n] + 1) * static_cast<double>(K);
        if (in_block > 0 && (in_block == max_rows || work + row_work > max_work)) {
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
void check_arguments(const ExponentialFamilyMixtureParams& params, const CsrRows<I>& rows, const double* natural) {
    const Index K = params.n_components, D = params.n_features;
    if (K < 1 || D < 1) throw std::invalid_argument("exponential_family_mixture_pass: need K >= 1 and D >= 1");
    if (rows.n_features != D)
        throw std::invalid_argument("exponential_family_mixture_pass: the rows have " +
                                    std::to_string(rows.n_features) + " columns, the parameters " + std::to_string(D));
    if (!params.log_weights || !natural || !params.log_partition)
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
}

}  // namespace

template <class I>
bool exponential_family_mixture_pass(const ExponentialFamilyMixtureParams& params, const CsrRows<I>& rows,
                                     const ExponentialFamilyPassRequest& request,
                                     ExponentialFamilyStatistics& statistics) {
    check_arguments(params, rows, params.natural_transposed);
    const Index K = params.n_components, D = params.n_features, N = rows.n_rows;
    const bool poisson = params.family == ExponentialFamily::Poisson;
    const LogFactorials log_factorials = poisson ? LogFactorials::tabulated() : LogFactorials();
    statistics = ExponentialFamilyStatistics(K);

    // log pi_c + b_c, every row's starting log-joint; an empty component's -inf becomes a finite floor.
    Vector<double> constant(K);
    for (Index c = 0; c < K; ++c)
        constant[c] = finite_component_constant<double>(params.log_weights[c]) + params.log_partition[c];

    const double work = static_cast<double>(rows.indptr[N] + N) * static_cast<double>(K);
    const int n_threads = work < kParallelWork ? 1 : request.n_threads;
    const int threads = resolve_thread_count(n_threads);
    const double* const eta = params.natural_transposed;
    const FlooredNaturalColumns split = split_natural_columns(eta, K, D, true, true, params.cached_natural_bytes, n_threads);
    // Blocks summed column by column (where eta is beyond the caches) take more rows. Whether any
    // column is floored does not matter: right after a start whose responsibilities are spread, no
    // entry of eta may be, and a dense column's row of eta is then what the grouping saves reading.
    const bool grouped =
        request.group_by_column && split.beyond_caches && static_cast<std::uint64_t>(D - 1) <= 0xFFFFFFFFu;
    const Index max_block_rows =
        grouped ? std::max<Index>(16, static_cast<Index>(kGroupedBlockBytes / (8.0 * static_cast<double>(K))))
                : rows_per_block(16 * K);
    // A block summed column by column keeps 32 bytes per non-zero (its entries, sorted): at most
    // kRoundNonZeros of them, whatever K.
    const double max_block_work =
        grouped ? std::min(kGroupedBlockWork, static_cast<double>(kRoundNonZeros) * static_cast<double>(K)) : kBlockWork;
    const std::vector<Index> bounds = block_bounds(rows, K, max_block_rows, max_block_work);
    const Index n_blocks = static_cast<Index>(bounds.size()) - 1;
    // A round: as many blocks as kRoundBufferBytes of responsibilities hold (always at least one
    // block), rows of K values at first, then as many as the previous round's rows took on average.
    const Index dense_round_rows =
        std::max<Index>(max_block_rows, static_cast<Index>(kRoundBufferBytes / (8.0 * static_cast<double>(K))));
    Index round_rows_limit = dense_round_rows;
    const bool moments = request.sx != nullptr;
    const bool by_column = 8.0 * static_cast<double>(D) * static_cast<double>(K) > kCachedScatterBytes;
    const Index n_ranges = std::clamp<Index>(K / 8, 1, threads);

    // The round's responsibilities: per block (reused round after round), and per round row.
    std::vector<BlockResponsibilities> block_responsibilities;
    std::vector<RoundRowLayout> round_layout;
    std::vector<RoundRow> round_rows;
    const Index max_kept = request.skip_zero_responsibilities ? K / kSparseScatterShare : 0;
    // The round's non-zeros grouped by column (rows ascending within a column): column_begin [D + 1],
    // and per entry its row in the round and its value.
    std::vector<std::int64_t> column_begin(moments && by_column ? D + 1 : 0), column_next(moments && by_column ? D : 0);
    std::vector<ColumnEntry<float>> narrow_entries;
    std::vector<ColumnEntry<double>> wide_entries;
    bool narrow_round = true;  // which of the two holds this round's
    std::vector<Index> item_columns(kScatterItems + 1);
    // The round's (row, weighted responsibility) pairs grouped by component (rows ascending within a
    // component): pair_begin [K + 1], and per pair its row in X and its value.
    std::vector<Index> pair_begin(moments && by_column ? K + 1 : 0), pair_next, item_components(kScatterItems + 1);
    std::vector<Index> pair_row;
    std::vector<double> pair_value;

    std::vector<ExponentialFamilyStatistics> partials;
    // Per-thread rows: a row's log-joints are reduced (max, sums) at the same memory alignment
    // whatever its position in the round, which depends on the thread count.
    std::vector<Vector<double>> scratch(static_cast<size_t>(threads), Vector<double>(K));
    // Rows summed row by row with every column dense, whose sums fit in registers, read eta in
    // cache-line rows (register_gather.hpp); a row's log-joints then take the padding's sums too
    // (zeros, never read).
    const PaddedRows padded_eta = !split.any_sparse && !grouped && sums_fit_in_registers(K)
                                      ? PaddedRows(eta, D, K, rows.indptr[N] - rows.indptr[0], n_threads)
                                      : PaddedRows();
    std::vector<Vector<double>> row_buffer(static_cast<size_t>(threads),
                                           Vector<double>::Zero(padded_eta.empty() ? K : padded_eta.stride()));
    std::vector<BlockGatherWorkspace> block_gather(grouped ? static_cast<size_t>(threads) : 0);
    // sx (K x D, the caller's) takes the rounds added component by component; dense_sx (D x K) the
    // rounds added column by column (every round where sx is in the caches), and is added to sx at
    // the end. It is allocated when first needed: once the posteriors are sharp, no round is.
    double* const sx = request.sx;
    std::vector<double> dense_sx(moments && !by_column ? static_cast<size_t>(D * K) : 0, 0.0);
    // Where sx is larger than the caches and K at most kMaxTiledComponents, dense_sx is tiled:
    // [tile, column, component in the tile], and so is the round's copy of its responsibilities,
    // tiled_round [tile, round row, component in the tile] (a row's kept components where it keeps
    // few, 0 elsewhere).
    constexpr Index W = kTileComponents;
    const bool tiled = by_column && K <= kMaxTiledComponents;
    const Index n_tiles = (K + W - 1) / W;
    std::vector<double> tiled_round;
    // Whether this round's non-zeros are sorted by column while phase 1 runs: where the previous
    // round was added column by column (a round that turns out to be, unsorted, sorts after phase 1).
    bool expect_column_order = true;

    std::atomic<Index> blocks_by_column{0};
    ExponentialFamilyPassCounts counts;
    InterruptPoller poller(request.interrupt);
    for (Index first = 0; first < n_blocks && !poller.stopped();) {
        // The round's blocks [first, last) and rows [row_begin, row_end). Without moments a round
        // is a bounded share of the pass's blocks: its partials are merged at its end.
        Index last = first + 1;
        const Index max_round_blocks = moments ? n_blocks : 64 * static_cast<Index>(threads);
        while (last < n_blocks && last - first < max_round_blocks &&
               (!moments || (bounds[last + 1] - bounds[first] <= round_rows_limit &&
                             rows.indptr[bounds[last + 1]] - rows.indptr[bounds[first]] <= kRoundNonZeros)))
            ++last;
        const Index row_begin = bounds[first], row_end = bounds[last];
        if (static_cast<Index>(partials.size()) < last - first)
            partials.resize(static_cast<size_t>(last - first), ExponentialFamilyStatistics(K));
        if (moments) {
            if (static_cast<Index>(block_responsibilities.size()) < last - first)
                block_responsibilities.resize(static_cast<size_t>(last - first));
            round_layout.resize(static_cast<size_t>(row_end - row_begin));
            round_rows.resize(static_cast<size_t>(row_end - row_begin));
        }

        // The round's non-zeros by column, rows ascending (a stable counting sort), and column ranges
        // of about equal non-zeros. It reads only X, so it runs as one more phase-1 item: a thread
        // sorts while the others sum, where a serial sort between the phases left them idle.
        const bool sort_round = moments && by_column && expect_column_order;
        auto group_round_by_column = [&]() {
            const std::int64_t nnz_begin = rows.indptr[row_begin], nnz_end = rows.indptr[row_end];
            std::fill(column_begin.begin(), column_begin.end(), 0);
            for (std::int64_t k = nnz_begin; k < nnz_end; ++k) ++column_begin[rows.indices[k] + 1];
            bool exact = true;
            for (std::int64_t k = nnz_begin; k < nnz_end; ++k) exact &= exact_in_float(rows.data[k]);
            for (Index d = 0; d < D; ++d) column_begin[d + 1] += column_begin[d];
            std::copy(column_begin.begin(), column_begin.end() - 1, column_next.begin());
            narrow_round = exact;
            if (exact)
                scatter_round_by_column(rows, row_begin, row_end, column_next, narrow_entries);
            else
                scatter_round_by_column(rows, row_begin, row_end, column_next, wide_entries);
            equal_count_ranges(column_begin, D, item_columns);
        };

        // The round's (row, weighted responsibility) pairs by component, rows ascending (a stable
        // counting sort; a row of K values gives its non-zero ones, a row without non-zeros none),
        // and component ranges of about equal pairs.
        auto group_round_by_component = [&]() {
            auto for_each_pair = [&](auto visit) {
                for (Index i = 0; i < row_end - row_begin; ++i) {
                    const RoundRow& r = round_rows[static_cast<size_t>(i)];
                    if (rows.indptr[row_begin + i + 1] == rows.indptr[row_begin + i]) continue;  // adds nothing
                    for (Index j = 0; j < r.count; ++j) {
                        if (r.dense && r.values[j] == 0) continue;
                        visit(r.dense ? j : static_cast<Index>(r.components[j]), row_begin + i, r.values[j]);
                    }
                }
            };
            std::fill(pair_begin.begin(), pair_begin.end(), 0);
            for_each_pair([&](Index c, Index, double) { ++pair_begin[static_cast<size_t>(c) + 1]; });
            for (Index c = 0; c < K; ++c) pair_begin[c + 1] += pair_begin[c];
            const Index n_pairs = pair_begin[K];
            pair_row.resize(static_cast<size_t>(n_pairs));
            pair_value.resize(static_cast<size_t>(n_pairs));
            pair_next.assign(pair_begin.begin(), pair_begin.end() - 1);
            for_each_pair([&](Index c, Index n, double value) {
                const Index e = pair_next[static_cast<size_t>(c)]++;
                pair_row[static_cast<size_t>(e)] = n;
                pair_value[static_cast<size_t>(e)] = value;
            });
            equal_count_ranges(pair_begin, K, item_components);
        };

        // Phase 1: posteriors, per-row outputs and partial sums, block by block (and the sort).
        const Index sort_items = sort_round ? 1 : 0;
        parallel_for_each_dynamic(last - first + sort_items, n_threads, [&](Index item) {
            if (poller.stopped()) return;
            if (item < sort_items) {
                group_round_by_column();
                return;
            }
            const Index b = item - sort_items;
            ExponentialFamilyStatistics& partial = partials[b];
            partial.set_zero();
            BlockResponsibilities* kept = moments ? &block_responsibilities[static_cast<size_t>(b)] : nullptr;
            if (kept) {
                kept->values.clear();
                kept->components.clear();
            }
            double* work = scratch[current_thread_index()].data();
            double* row = row_buffer[current_thread_index()].data();
            const Index block_begin = bounds[first + b], block_end = bounds[first + b + 1];
            BlockGatherWorkspace* gathered =
                grouped && gather_block_log_joints(eta, split, K, D, rows, block_begin, block_end, constant,
                                                   block_gather[current_thread_index()])
                    ? &block_gather[current_thread_index()]
                    : nullptr;
            if (gathered) ++blocks_by_column;
            for (Index n = block_begin; n < block_end; ++n) {
                Eigen::Map<Eigen::Array<double, Eigen::Dynamic, 1>> lj(row, K);
                const std::int64_t begin = rows.indptr[n], end = rows.indptr[n + 1];
                // log h(x_n): -sum_k log(x_k!) (Poisson) in the order of the row's non-zeros,
                // summed while its log-joints are, where a loop of its own after them took 0.9 G
                // cycles per pass at N = 1M, K = 100; 0 (Bernoulli).
                double log_base = 0;
                auto add_log_base = [&](double x) {
                    log_base -= log_factorials(x);
                };
                auto no_log_base = [](double) {};
                if (gathered) {
                    // Copied into the thread's row, so that it is reduced at the row path's alignment.
                    const double* summed = gathered->log_joints.data() + (n - block_begin) * K;
                    std::copy(summed, summed + K, row);
                    if (poisson)
                        for (std::int64_t k = begin; k < end; ++k) add_log_base(rows.data[k]);
                } else {
                    lj = constant.array();
                    if (poisson)
                        gather_log_joints(eta, padded_eta, split, K, rows, begin, end, row, add_log_base);
                    else
                        gather_log_joints(eta, padded_eta, split, K, rows, begin, end, row, no_log_base);
                }
                const RowPosterior post = posterior_from_log_joint_row(row, K, work);
                const double w = request.sample_weight ? request.sample_weight[n] : 1.0;
                const double log_norm = post.log_norm + log_base;
                partial.sum_weight += w;
                partial.sum_log_norm = multiply_add(w, log_norm, partial.sum_log_norm);
                partial.sum_entropy = multiply_add(w, post.entropy, partial.sum_entropy);
                partial.sum_log_base = multiply_add(w, log_base, partial.sum_log_base);
                if (request.log_norm) request.log_norm[n] = log_norm;
                if (request.labels) request.labels[n] = static_cast<std::int64_t>(post.argmax);
                if (request.responsibilities) std::copy(row, row + K, request.responsibilities + n * K);
                if (request.sample_weight) lj *= w;
                partial.nk += lj.matrix();
                if (kept)
                    keep_round_row(row, K, rows, begin, end, max_kept, request.negligible_responsibility, b, *kept,
                                   round_layout[static_cast<size_t>(n - row_begin)]);
            }
            poller.between_items();
        });
        if (poller.stopped()) break;
        for (Index b = 0; b < last - first; ++b) statistics.merge(partials[b]);
        std::int64_t dense_non_zeros = 0;
        if (moments) {
            // The rows' responsibilities in place, and the next round's rows from these' bytes.
            double bytes = 0;
            for (Index i = 0; i < row_end - row_begin; ++i) {
                const RoundRowLayout& layout = round_layout[static_cast<size_t>(i)];
                const BlockResponsibilities& block = block_responsibilities[static_cast<size_t>(layout.block)];
                round_rows[static_cast<size_t>(i)] = {block.values.data() + layout.value_offset,
                                                      block.components.data() + layout.component_offset,
                                                      layout.count, layout.dense};
                bytes += layout.dense ? 8.0 * static_cast<double>(K) : 12.0 * static_cast<double>(layout.count);
                if (layout.dense) dense_non_zeros += rows.indptr[row_begin + i + 1] - rows.indptr[row_begin + i];
            }
            const double per_row = std::max(bytes / static_cast<double>(row_end - row_begin), 12.0);
            round_rows_limit = std::clamp<Index>(static_cast<Index>(kRoundBufferBytes / per_row), max_block_rows,
                                                 kMaxRoundGrowth * dense_round_rows);
        }

        if (moments && !by_column) {
            // Phase 2 (sx in the caches): sx[d, :] += x_nd w_n q_n per non-zero, rows in order, each
            // thread on its own range of components.
            parallel_for_each(n_ranges, n_threads, [&](Index r) {
                if (poller.stopped()) return;
                const Index c0 = r * K / n_ranges, c1 = (r + 1) * K / n_ranges;
                for (Index i = 0; i < row_end - row_begin; ++i) {
                    const RoundRow& r = round_rows[static_cast<size_t>(i)];
                    for (std::int64_t k = rows.indptr[row_begin + i]; k < rows.indptr[row_begin + i + 1]; ++k) {
                        double* s = dense_sx.data() + static_cast<Index>(rows.indices[k]) * K;
                        const double x = rows.data[k];
                        if (!r.dense) {
                            for (Index j = 0; j < r.count; ++j) {
                                const Index c = r.components[j];
                                if (c >= c0 && c < c1) s[c] = multiply_add(x, r.values[j], s[c]);
                            }
                        } else {
                            for (Index c = c0; c < c1; ++c) s[c] = multiply_add(x, r.values[c], s[c]);
                        }
                    }
                }
                poller.between_items();
            });
        } else if (moments) {
            // Phase 2, where sx is larger than the caches, in one of two orders (each work item owns
            // its outputs, and adds its terms over the round's rows in order):
            //  - column by column, where rows stored as K values hold enough of the round's
            //    non-zeros to pay for sorting them (a sorted non-zero costs about
            //    kSortedNonZeroCost scalar multiply-adds): dense_sx[d, :] += x_nd w_n q_n over the
            //    round's non-zeros grouped by column, a range of columns per item. Every row of
            //    dense_sx is read and written once per round, and a row of K values is one
            //    contiguous multiply-add per non-zero.
            //  - else component by component: sx[c, :] += w_n q_nc x_n over the round's rows that
            //    keep c, a range of components per item. A component's D sums stay in the caches
            //    while its rows' non-zeros are added, one scalar multiply-add each, and no sort is
            //    needed: once the posteriors are sharp (a row keeps a few components), every round.
            const std::int64_t round_non_zeros = rows.indptr[row_end] - rows.indptr[row_begin];
            const bool column_order = dense_non_zeros > 0 && static_cast<double>(dense_non_zeros) * static_cast<double>(K) >=
                                                                 kSortedNonZeroCost * static_cast<double>(round_non_zeros);
            expect_column_order = column_order;
            if (column_order) {
                ++counts.rounds_by_column;
                if (!sort_round) {
                    group_round_by_column();
                    ++counts.rounds_sorted_late;
                }
                if (dense_sx.empty()) dense_sx.assign(static_cast<size_t>(tiled ? n_tiles * D * W : D * K), 0.0);
                if (tiled) {
                    // The round's responsibilities in tiles: a row of K values copied (zeros past K),
                    // a row of pairs as zeros with its kept components set.
                    const Index R = row_end - row_begin;
                    tiled_round.resize(static_cast<size_t>(n_tiles * R * W));
                    parallel_for_each(kScatterItems, n_threads, [&](Index item) {
                        for (Index i = item * R / kScatterItems; i < (item + 1) * R / kScatterItems; ++i) {
                            const RoundRow& r = round_rows[static_cast<size_t>(i)];
                            for (Index t = 0; t < n_tiles; ++t) {
                                double* to = tiled_round.data() + (t * R + i) * W;
                                const Index c0 = t * W, c1 = r.dense ? std::min(K, c0 + W) : c0;
                                std::copy(r.values + c0, r.values + c1, to);
                                std::fill(to + (c1 - c0), to + W, 0.0);
                            }
                            if (!r.dense)
                                for (Index j = 0; j < r.count; ++j) {
                                    const Index c = r.components[j];
                                    tiled_round[static_cast<size_t>(((c / W) * R + i) * W + c % W)] = r.values[j];
                                }
                        }
                    });
                }
            } else {
                ++counts.rounds_by_component;
                group_round_by_component();
            }
            parallel_for_each_dynamic(kScatterItems, n_threads, [&](Index item) {
                if (poller.stopped()) return;
                if (!column_order) {
                    for (Index c = item_components[item]; c < item_components[item + 1]; ++c)
                        add_weighted_rows(
                            rows, pair_begin[c], pair_begin[c + 1], [&](Index e) { return pair_row[static_cast<size_t>(e)]; },
                            [&](Index e) -> const double& { return pair_value[static_cast<size_t>(e)]; }, sx + c * D);
                    poller.between_items();
                    return;
                }
                // The round's records, 8 or 16 bytes each (ColumnEntry).
                auto add_columns = [&](const auto& entries) {
                    if (!tiled) {
                        for (Index d = item_columns[item]; d < item_columns[item + 1]; ++d) {
                            const std::int64_t e_begin = column_begin[d], e_end = column_begin[d + 1];
                            double* s = dense_sx.data() + d * K;
                            for (std::int64_t e = e_begin; e < e_end; ++e) {
                                if (e + kPrefetchDistance < e_end)
                                    prefetch_round_row(round_rows[entries[e + kPrefetchDistance].row], K);
                                const RoundRow& r = round_rows[static_cast<size_t>(entries[e].row)];
                                const double x = entries[e].value;
                                if (!r.dense) {
                                    for (Index j = 0; j < r.count; ++j) {
                                        const Index c = r.components[j];
                                        s[c] = multiply_add(x, r.values[j], s[c]);
                                    }
                                } else {
                                    for (Index c = 0; c < K; ++c) s[c] = multiply_add(x, r.values[c], s[c]);
                                }
                            }
                        }
                        return;
                    }
                    // Tile by tile over the range's columns; a column's tile of sums adds its non-zeros'
                    // terms in row order (0 for a component a row does not keep: no sum changes).
                    const Index R = row_end - row_begin;
                    for (Index t = 0; t < n_tiles; ++t) {
                        const double* tile = tiled_round.data() + t * R * W;
                        for (Index d = item_columns[item]; d < item_columns[item + 1]; ++d) {
                            const std::int64_t e_begin = column_begin[d], e_end = column_begin[d + 1];
                            if (e_begin == e_end) continue;
                            double* sums = dense_sx.data() + (t * D + d) * W;
                            double acc[W];
                            std::copy(sums, sums + W, acc);
                            for (std::int64_t e = e_begin; e < e_end; ++e) {
                                const double x = entries[e].value;
                                const double* q = tile + static_cast<Index>(entries[e].row) * W;
                                for (Index c = 0; c < W; ++c) acc[c] = multiply_add(x, q[c], acc[c]);
                            }
                            std::copy(acc, acc + W, sums);
                        }
                    }
                };
                if (narrow_round)
                    add_columns(narrow_entries);
                else
                    add_columns(wide_entries);
                poller.between_items();
            });
        }
        first = last;
    }
    if (!dense_sx.empty() && !poller.stopped() && tiled) {
        // sx[c, d] += dense_sx[tile, d, c - tile start], a tile per item: its D x W sums read in
        // order, each of its components' rows of sx written in order.
        parallel_for_each(n_tiles, n_threads, [&](Index t) {
            const double* from = dense_sx.data() + t * D * W;
            const Index c0 = t * W, c1 = std::min(K, c0 + W);
            for (Index d = 0; d < D; ++d)
                for (Index c = c0; c < c1; ++c) sx[c * D + d] += from[d * W + (c - c0)];
        });
    } else if (!dense_sx.empty() && !poller.stopped()) {
        // sx[c, d] += dense_sx[d, c], a range of components per item (a few cache lines of each row
        // of dense_sx, and a contiguous run of each of the range's rows of sx).
        const Index n_items = (K + kTransposeComponents - 1) / kTransposeComponents;
        parallel_for_each(n_items, n_threads, [&](Index item) {
            const Index c0 = item * kTransposeComponents, c1 = std::min(K, c0 + kTransposeComponents);
            for (Index d = 0; d < D; ++d)
                for (Index c = c0; c < c1; ++c) sx[c * D + d] += dense_sx[static_cast<size_t>(d * K + c)];
        });
    }
    counts.blocks_by_column = blocks_by_column.load();
    if (request.counts) *request.counts = counts;
    return !poller.stopped();
}

namespace {

// Rows per work item of the truncated pass: items are the unit of parallel work and of interrupt
// polling (a row costs about C' G (nnz + 1) multiply-adds), and a group's scores are added over
// its items in order.
constexpr Index kTruncatedItemRows = 256;
// Components per work item of the truncated pass's statistics.
constexpr Index kStatisticsComponents = 16;
// Candidates of a row the truncated pass sums together, each its own chain of additions: at N = 1M,
// K = 1,000 on Zipf word counts 4 took 0.82 of one-at-a-time's time (one thread), 8 more than 4.
constexpr Index kLanes = 4;

template <class I>
void check_truncated_arguments(const ExponentialFamilyMixtureParams& params, const CsrRows<I>& rows,
                               const ExponentialFamilyTruncatedRequest& r) {
    check_arguments(params, rows, r.natural);
    const Index K = params.n_components, N = rows.n_rows, C = r.n_active, G = r.n_neighbors;
    if (C < 1 || C > K)
        throw std::invalid_argument("n_active must be in [1, " + std::to_string(K) + "], got " + std::to_string(C));
    if (G < 1 || G > K)
        throw std::invalid_argument("n_neighbors must be in [1, " + std::to_string(K) + "], got " + std::to_string(G));
    if (!r.active || !r.neighbours || !r.new_active)
        throw std::invalid_argument("exponential_family_truncated_pass: active, neighbours or new_active is null");
    auto check_sets = [K](const std::int32_t* sets, Index n, Index width, const std::string& name) {
        std::vector<Index> seen(K, -1);
        for (Index i = 0; i < n; ++i)
            for (Index j = 0; j < width; ++j) {
                const std::int32_t c = sets[i * width + j];
                if (c < 0 || c >= K)
                    throw std::invalid_argument(name + "[" + std::to_string(i) + ", " + std::to_string(j) + "] = " +
                                                std::to_string(c) + " is not a component of " + std::to_string(K));
                if (seen[c] == i)
                    throw std::invalid_argument(name + "[" + std::to_string(i) + "] lists component " +
                                                std::to_string(c) + " twice");
                seen[c] = i;
            }
    };
    check_sets(r.active, N, C, "active");
    check_sets(r.neighbours, K, G, "neighbours");
    if (r.random_candidates)
        for (Index n = 0; n < N; ++n)
            if (r.random_candidates[n] < 0 || r.random_candidates[n] >= K)
                throw std::invalid_argument("random_candidates[" + std::to_string(n) +
                                            "] = " + std::to_string(r.random_candidates[n]) +
                                            " is not a component of " + std::to_string(K));
}

}  // namespace

template <class I>
bool exponential_family_truncated_pass(const ExponentialFamilyMixtureParams& params, const CsrRows<I>& rows,
                                       const ExponentialFamilyTruncatedRequest& r,
                                       ExponentialFamilyStatistics& statistics) {
    check_truncated_arguments(params, rows, r);
    const Index K = params.n_components, D = params.n_features, N = rows.n_rows, C = r.n_active, G = r.n_neighbors;
    const bool poisson = params.family == ExponentialFamily::Poisson;
    const LogFactorials log_factorials = poisson ? LogFactorials::tabulated() : LogFactorials();
    statistics = ExponentialFamilyStatistics(K);
    std::vector<double> constant(K);
    for (Index c = 0; c < K; ++c)
        constant[c] = finite_component_constant<double>(params.log_weights[c]) + params.log_partition[c];

    // Rows grouped by their best component, cut into items.
    std::vector<Index> identity(N), order, group_begin;
    for (Index n = 0; n < N; ++n) identity[n] = n;
    std::vector<std::int32_t> best(N);
    for (Index n = 0; n < N; ++n) best[n] = r.active[n * C];
    counting_sort(identity, best.data(), K, order, group_begin);
    std::vector<Index> item_begin, group_first_item(K + 1, 0);
    std::vector<std::int32_t> item_group;
    for (Index c = 0; c < K; ++c) {
        group_first_item[c] = static_cast<Index>(item_group.size());
        for (Index p = group_begin[c]; p < group_begin[c + 1]; p += kTruncatedItemRows) {
            item_begin.push_back(p);
            item_group.push_back(static_cast<std::int32_t>(c));
        }
    }
    group_first_item[K] = static_cast<Index>(item_group.size());
    item_begin.push_back(N);
    const Index n_items = static_cast<Index>(item_group.size());

    struct Workspace {
        std::vector<Index> stamp;  // [K] the last row that listed a component among its candidates
        std::vector<std::int32_t> candidates;
        std::vector<Candidate> kept;
        std::vector<double> q, exponentials;
        std::vector<double> offsets;  // [nnz(n)] per non-zero of the row: floor_value or 0
        std::vector<double> score_sum, score_count;  // [K] the item's scores
        std::vector<std::int32_t> touched;
    };
    const int threads = resolve_thread_count(r.n_threads);
    std::vector<Workspace> workspaces(static_cast<size_t>(threads));
    for (Workspace& ws : workspaces) {
        ws.stamp.assign(K, -1);
        ws.kept.resize(C);
        ws.q.resize(C);
        ws.exponentials.resize(C);
        if (r.scores) {
            ws.score_sum.assign(K, 0.0);
            ws.score_count.assign(K, 0.0);
        }
    }
    std::vector<ExponentialFamilyStatistics> item_sums(n_items, ExponentialFamilyStatistics(0));
    std::vector<std::vector<CandidateScore>> item_scores(r.scores ? n_items : 0);
    std::vector<double> weighted_q(N * C);  // w_n q_n over the new K_n
    const ConstRowMatrixMap<double> natural(r.natural, K, D);
    // The exact pass's split of the columns, so that a (row, component) log-joint is bitwise its.
    const FlooredNaturalColumns split = split_natural_columns(r.natural, K, D, false, false, params.cached_natural_bytes, r.n_threads);

    InterruptPoller poller(r.interrupt);
    parallel_for_each(n_items, r.n_threads, [&](Index item) {
        if (poller.stopped()) return;
        Workspace& ws = workspaces[current_thread_index()];
        ExponentialFamilyStatistics& sums = item_sums[item];
        const std::int32_t b = item_group[item];
        for (Index p = item_begin[item]; p < item_begin[item + 1]; ++p) {
            const Index n = order[p];
            const std::int64_t begin = rows.indptr[n], end = rows.indptr[n + 1];
            // S_n: the members of K_n first (whatever the lists say), then their lists, then r_n.
            ws.candidates.clear();
            auto add = [&](std::int32_t c) {
                if (ws.stamp[c] == n) return;
                ws.stamp[c] = n;
                ws.candidates.push_back(c);
            };
            const std::int32_t* active = r.active + n * C;
            for (Index j = 0; j < C; ++j) add(active[j]);
            for (Index j = 0; j < C; ++j) {
                const std::int32_t* list = r.neighbours + static_cast<Index>(active[j]) * G;
                for (Index g = 0; g < G; ++g) add(list[g]);
            }
            if (r.random_candidates) add(r.random_candidates[n]);

            // Per non-zero, what its column's entries are read relative to: floor_value in a sparse
            // column (x (eta - floor_value) is 0 at the floor, a term the exact pass skips), 0 in a
            // dense one (eta - 0 is eta); the shift adds the floor back as the exact pass does.
            double floored_sum = 0;
            const double* offsets = nullptr;  // indexed by k, from begin to end
            if (split.any_sparse) {
                ws.offsets.resize(static_cast<size_t>(end - begin));
                for (std::int64_t k = begin; k < end; ++k) {
                    const bool sparse = split.is_sparse(static_cast<Index>(rows.indices[k]));
                    ws.offsets[static_cast<size_t>(k - begin)] = sparse ? split.floor_value : 0.0;
                    if (sparse) floored_sum += rows.data[k];
                }
                offsets = ws.offsets.data() - begin;
            }
            const double shift = split.floor_value * floored_sum;

            Index kept = 0;
            // A pair's nnz(n) entries of eta lie in as many cache lines anywhere in the K x D
            // parameters. Candidates are summed kLanes at a time, each its own chain of additions
            // over the row's non-zeros in order (the same sum as the exact pass's log-joint of
            // (n, c)), so that one chain's latency and another's cache misses overlap.
            const Index n_candidates = static_cast<Index>(ws.candidates.size());
            for (Index j0 = 0; j0 < n_candidates; j0 += kLanes) {
                const Index lanes = std::min<Index>(kLanes, n_candidates - j0);
                double lj[kLanes];
                const double* eta[kLanes];
                for (Index l = 0; l < kLanes; ++l) {
                    // Spare lanes repeat the last candidate (summed, never used).
                    const std::int32_t c = ws.candidates[j0 + std::min(l, lanes - 1)];
                    eta[l] = natural.data() + static_cast<Index>(c) * D;
                    lj[l] = constant[c];
                }
                if (offsets) {
                    for (std::int64_t k = begin; k < end; ++k) {
                        const Index d = static_cast<Index>(rows.indices[k]);
                        const double x = rows.data[k], offset = offsets[k];
                        for (Index l = 0; l < kLanes; ++l) lj[l] = multiply_add(x, eta[l][d] - offset, lj[l]);
                    }
                } else {
                    // No column split (every offset 0): the same sums without the offsets' loads.
                    for (std::int64_t k = begin; k < end; ++k) {
                        const Index d = static_cast<Index>(rows.indices[k]);
                        const double x = rows.data[k];
                        for (Index l = 0; l < kLanes; ++l) lj[l] = multiply_add(x, eta[l][d], lj[l]);
                    }
                }
                for (Index l = 0; l < lanes; ++l) {
                    const std::int32_t c = ws.candidates[j0 + l];
                    if (floored_sum != 0) lj[l] += shift;
                    keep_if_better(ws.kept.data(), kept, C, {lj[l], c});
                    if (r.scores && c != b) {
                        if (ws.score_count[c] == 0) ws.touched.push_back(c);
                        ws.score_sum[c] += lj[l];
                        ws.score_count[c] += 1;
                    }
                }
            }
            double log_base = 0;
            if (poisson) {
                for (std::int64_t k = begin; k < end; ++k) log_base -= log_factorials(rows.data[k]);
            }
            for (Index j = 0; j < C; ++j) ws.q[j] = ws.kept[j].log_joint;
            const RowPosterior post = posterior_from_log_joint_row(ws.q.data(), C, ws.exponentials.data());
            const double w = r.sample_weight ? r.sample_weight[n] : 1.0;
            const double log_norm = post.log_norm + log_base;
            sums.sum_weight += w;
            sums.sum_log_norm = multiply_add(w, log_norm, sums.sum_log_norm);
            sums.sum_entropy = multiply_add(w, post.entropy, sums.sum_entropy);
            sums.sum_log_base = multiply_add(w, log_base, sums.sum_log_base);
            if (r.log_norm) r.log_norm[n] = log_norm;
            for (Index j = 0; j < C; ++j) {
                r.new_active[n * C + j] = ws.kept[j].component;
                weighted_q[n * C + j] = w * ws.q[j];
            }
        }
        if (r.scores) {
            std::vector<CandidateScore>& out = item_scores[item];
            for (const std::int32_t c : ws.touched) {
                out.push_back({c, ws.score_sum[c], ws.score_count[c]});
                ws.score_sum[c] = ws.score_count[c] = 0;
            }
            ws.touched.clear();
        }
        poller.between_items();
    });
    if (poller.stopped()) return false;
    for (Index item = 0; item < n_items; ++item) {
        const ExponentialFamilyStatistics& s = item_sums[item];
        statistics.sum_weight += s.sum_weight;
        statistics.sum_log_norm += s.sum_log_norm;
        statistics.sum_entropy += s.sum_entropy;
        statistics.sum_log_base += s.sum_log_base;
    }

    if (r.scores) {
        ExponentialFamilyNeighbourScores& out = *r.scores;
        out = ExponentialFamilyNeighbourScores{};
        std::vector<double> sum(K, 0.0), count(K, 0.0);
        std::vector<std::int32_t> touched;
        for (Index b = 0; b < K; ++b) {
            const Index first = group_first_item[b], last = group_first_item[b + 1];
            if (first == last) continue;
            add_group_scores(item_scores.data() + first, item_scores.data() + last, sum, count, touched);
            std::sort(touched.begin(), touched.end());
            for (const std::int32_t c : touched) {
                out.group.push_back(static_cast<std::int32_t>(b));
                out.component.push_back(c);
                out.sum.push_back(sum[c]);
                out.count.push_back(count[c]);
                sum[c] = count[c] = 0;
            }
        }
    }

    // nk and sx per component over its own (row, slot) pairs, rows ascending.
    std::vector<Index> pairs(N * C), by_component, component_begin;
    for (Index k = 0; k < N * C; ++k) pairs[k] = k;
    counting_sort(pairs, r.new_active, K, by_component, component_begin);
    const Index n_ranges = (K + kStatisticsComponents - 1) / kStatisticsComponents;
    RowMatrixMap<double> sx(r.sx, r.sx ? K : 0, D);
    parallel_for_each(n_ranges, r.n_threads, [&](Index range) {
        if (poller.stopped()) return;
        const Index c_end = std::min(K, (range + 1) * kStatisticsComponents);
        for (Index c = range * kStatisticsComponents; c < c_end; ++c) {
            if (r.sx) sx.row(c).setZero();
            statistics.nk[c] = add_weighted_rows(
                rows, component_begin[c], component_begin[c + 1], [&](Index e) { return by_component[e] / C; },
                [&](Index e) -> const double& { return weighted_q[by_component[e]]; }, r.sx ? r.sx + c * D : nullptr);
        }
        poller.between_items();
    });
    return !poller.stopped();
}

template bool exponential_family_truncated_pass<std::int32_t>(const ExponentialFamilyMixtureParams&,
                                                              const CsrRows<std::int32_t>&,
                                                              const ExponentialFamilyTruncatedRequest&,
                                                              ExponentialFamilyStatistics&);
template bool exponential_family_truncated_pass<std::int64_t>(const ExponentialFamilyMixtureParams&,
                                                              const CsrRows<std::int64_t>&,
                                                              const ExponentialFamilyTruncatedRequest&,
                                                              ExponentialFamilyStatistics&);

template bool exponential_family_mixture_pass<std::int32_t>(const ExponentialFamilyMixtureParams&,
                                                            const CsrRows<std::int32_t>&,
                                                            const ExponentialFamilyPassRequest&,
                                                            ExponentialFamilyStatistics&);
template bool exponential_family_mixture_pass<std::int64_t>(const ExponentialFamilyMixtureParams&,
                                                            const CsrRows<std::int64_t>&,
                                                            const ExponentialFamilyPassRequest&,
                                                            ExponentialFamilyStatistics&);

}  // namespace fastelbo
