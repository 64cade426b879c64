// The E-step pass of mixtures whose components are products of one-dimensional exponential-family
// distributions with sufficient statistic T(x) = x (Bernoulli, Poisson), over rows stored as CSR.
//
// For a row x_n with non-zeros nnz(n), component c has
//   log p(x_n, c) = log pi_c + b_c + sum_{d in nnz(n)} x_nd eta_cd + log h(x_n),
// eta_cd the natural parameter, b_c = -sum_d A(eta_cd) minus the log-partition summed over all D
// columns, and log h the base measure (Bernoulli: 0; Poisson: -sum_d log(x_nd!)). Zeros contribute
// nothing but through b_c, so a row costs O(nnz(n) K + K): eta is stored transposed (D x K,
// contiguous in c), and each non-zero is one contiguous multiply-add over the K log-joints. log h
// does not depend on c: it leaves the posterior alone and is added to log p(x_n) only.
//
// Each non-zero's row of eta is asked for (prefetched) a few non-zeros ahead: the columns are known
// in advance, where the hardware cannot guess them. Where eta is larger than the caches, a column
// with few entries off the mean floor is read as those entries' deviations from the floor's value
// (floored_natural_columns.hpp): a rare column then costs a few cache lines from memory, not K / 8.
// There (whether or not any column is floored), a block's log-joints are summed column by column:
// its non-zeros sorted by column, each column's row of eta read once and added to every row of the
// block that holds the column (a block of a few MiB of log-joints). Each row still adds its terms
// in ascending column order, its own order where its columns are ascending (canonical CSR), so the
// sums are bitwise the row-by-row ones; a block with a row whose columns are not ascending is
// summed row by row.
//
// Determinism. Rows are cut into blocks whose boundaries depend on the data alone (rows and
// non-zeros, never the thread count). A round of consecutive blocks runs in two phases:
//   1. every block (in parallel) computes its rows' log-joints -> posteriors into the round's buffer
//      of weighted responsibilities (a row with at most K / 4 non-zero ones as (component, value)
//      pairs, any other as its K values), its per-row outputs, and its own partial ELBO sums and nk;
//      partials are then merged serially in block order;
//   2. the round's contribution to sx is added. Where sx is larger than the caches, in one of two
//      orders. Column by column, where the round's rows of K values hold enough of its non-zeros to
//      pay for sorting them: the round's non-zeros are grouped by column (a stable counting sort:
//      rows ascending, run as one more item of phase 1 where the previous round was added so too)
//      and added in parallel over disjoint ranges of columns to a D x K accumulator, added to sx at
//      the end of the pass: every row of it is read and written once per round, summed over the
//      round's rows in order, instead of once per non-zero. With few components (K <= 128) both the
//      accumulator and a copy of the round's responsibilities are cut into tiles of 8 components
//      and added tile by tile, so that a tile of the responsibilities stays in the core's own cache
//      meanwhile. Else component by component: the round's (row, responsibility) pairs are grouped
//      by component (rows ascending) and each range of components adds its rows' non-zeros to its
//      own rows of sx (K x D), which stay in the caches meanwhile; no sort is needed, and once the
//      posteriors are sharp every round is added so. Where sx is small, each thread adds the
//      round's non-zeros in row order to its own range of components (of the D x K accumulator).
//      Components whose responsibility is exactly 0 (underflow: the posteriors of long rows are
//      often one-hot) are skipped where they are most of a row's; adding 0 changes no sum. A round
//      holds about kRoundBufferBytes of responsibilities (so that phase 2 reads them from the
//      caches): the more rows are stored as pairs, the more rows a round takes (from the previous
//      round's bytes per row, at most kMaxRoundGrowth times the rows of K values), and the fewer
//      times a row of sx is read and written per pass.
// Blocks and column ranges are handed to threads as they come free (a paused thread then delays
// one item, not a fixed share); each writes only its own outputs.
// Every sum is therefore formed in the same order for any number of threads (sx[c, d] adds its
// terms in row order within each of its two accumulators, rounds and ranges cut from the data
// alone; a pass whose rounds all take one order adds them in row order), and sx needs no
// per-thread copy. Memory: the parameters, sx (K x D, the caller's) and, once a round is added
// column by column, a D x K accumulator (and for K <= 128 the round's tiled copy of its
// responsibilities: its rows times K, rounded up to whole tiles, 8 bytes each); a round buffer of
// about 8 MiB of responsibilities (at most kMaxRoundGrowth times that, should a round sized after
// rows with few non-zero responsibilities meet rows with many), 16 bytes per non-zero of the round
// (at most kRoundNonZeros) or per pair (at most twice the round buffer), D + 1 column counts, and
// the sparse columns' deviations (at most 12 K D / 4 bytes); summed column by column, per thread a
// block's log-joints (about 4 MiB) and 32 bytes per non-zero of the block (at most
// kRoundNonZeros); never N x K or N x D.
//
// Interrupts are polled between blocks and between the column or component ranges of phase 2; both are
// bounded in work (about kBlockWork multiply-adds per block, 64 times that summed column by column,
// a round's phase 2 a sixteenth of the round's multiply-adds per range), so Ctrl-C is honoured
// within tens of milliseconds whatever the shape (a
// single row cannot be split: its work is at most D K, the size of the parameters).
//
// Truncated EM (exponential_family_truncated_pass below). Every row n keeps a set K_n of C'
// components; its candidates S_n = K_n ∪ ∪_{c∈K_n} G_c ∪ {r_n} (the neighbour lists G_c, G
// components each, c first, and one random component r_n) are evaluated, the C' largest log-joints
// kept (ties: smaller index; K_n ⊆ S_n, so the truncated free energy never decreases), and q_n is the
// posterior restricted to the new K_n (posterior_row.hpp on C' values). A row costs
// O(|S_n| (nnz(n) + 1)), whatever K is. Its candidates are summed four at a time, each its own
// chain of additions over the row's non-zeros in order (the same sums as one at a time), so that one
// chain's latency and another's cache misses overlap.
//
// Layout. The truncated pass reads eta as K x D (a component's natural parameters contiguous), the
// estimator's own layout of the means: a (row, candidate) pair gathers nnz(n) entries of eta either
// way (one cache line each, as a row's columns and its candidates are scattered), so nothing is
// gained by transposing, which would cost a K x D copy per pass, the truncated pass's largest cost
// at small C' G; and sx, summed per component (below), is then a contiguous row per component.
//
// Determinism without per-thread K x D copies. Rows are grouped by their best component b = K_n[0]
// (a stable counting sort: rows ascending within a group) and cut into items of at most
// kTruncatedItemRows rows; items run in parallel and keep their ELBO sums and, per candidate c != b
// their rows evaluated, the sum and count of the log-joints without log h (a term of the row alone)
// (the neighbour scores: the refresh's inputs, truncated_candidates.hpp), added per group in item
// order. The weighted q_n over the new K_n
// ([N, C']) is kept; afterwards the (row, component) pairs are sorted by component (rows ascending)
// and every component sums its nk and sx row over its own rows, in parallel over components. Every
// output is thus computed by one work item in a fixed order: bitwise the same for any thread count.
// Memory: N C' doubles and indices, the scores, and sx; never N x K.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "fastelbo/floored_natural_columns.hpp"
#include "fastelbo/types.hpp"

namespace fastelbo {

enum class ExponentialFamily { Bernoulli, Poisson };

inline ExponentialFamily parse_exponential_family(const std::string& name) {
    if (name == "bernoulli") return ExponentialFamily::Bernoulli;
    if (name == "poisson") return ExponentialFamily::Poisson;
    throw std::invalid_argument("family must be 'bernoulli' or 'poisson'; got '" + name + "'");
}

// Rows in compressed sparse row form: row n holds data[k] at column indices[k] for k in
// [indptr[n], indptr[n + 1]). I is int32 or int64.
template <class I>
struct CsrRows {
    const std::int64_t* indptr = nullptr;  // [N + 1], indptr[0] == 0, non-decreasing
    const I* indices = nullptr;            // [nnz], in [0, D)
    const double* data = nullptr;          // [nnz]
    Index n_rows = 0;
    Index n_features = 0;
};

struct ExponentialFamilyMixtureParams {
    ExponentialFamily family = ExponentialFamily::Bernoulli;
    Index n_components = 0;
    Index n_features = 0;
    const double* log_weights = nullptr;         // [K] log pi_c (-inf: an empty component)
    const double* natural_transposed = nullptr;  // [D, K] eta_cd at d * K + c
    const double* log_partition = nullptr;       // [K] b_c = -sum_d A(eta_cd)
    // eta of at most this many bytes has no sparse column (floored_natural_columns.hpp); tests set
    // 0 to split small eta too.
    double cached_natural_bytes = kCachedNaturalBytes;
};

// What an exact pass did, for tests: the blocks whose log-joints were summed column by column, and
// the rounds whose moments were added column by column (of which sorted only after their
// posteriors, not while phase 1 ran) and component by component.
struct ExponentialFamilyPassCounts {
    Index blocks_by_column = 0, rounds_by_column = 0, rounds_sorted_late = 0, rounds_by_component = 0;
};

struct ExponentialFamilyPassRequest {
    const double* sample_weight = nullptr;  // [N] or null for unit weights
    double* sx = nullptr;                   // [K, D] in/out: sum_n w_n q_nc x_nd added at c * D + d; null: no moments
    double* log_norm = nullptr;             // [N] out: log p(x_n) (log h included), optional
    double* responsibilities = nullptr;     // [N, K] out: q_n, optional
    std::int64_t* labels = nullptr;         // [N] out: argmax_c log-joint, optional
    int n_threads = 0;                      // <= 0: the OpenMP default
    InterruptPoll interrupt;
    // sx skips the components whose responsibility is exactly 0 (adding 0 changes no sum, so sx is
    // bitwise the same either way); false adds every term (for tests).
    bool skip_zero_responsibilities = true;
    // With skip_zero_responsibilities, sx also leaves out a term w_n q_nc x_nd where w_n q_nc times
    // the row's largest value is below this: every entry of sx then misses at most N times it (the
    // caller picks it so that no M-step mean moves by a rounding unit). 0: only exact zeros.
    double negligible_responsibility = 0;
    // Where eta is split (larger than the caches), sum a block's log-joints column by column
    // (bitwise the same as row by row); false sums row by row (for tests).
    bool group_by_column = true;
    // out, optional: what the pass did (for tests).
    ExponentialFamilyPassCounts* counts = nullptr;
};

// The pass's sums (float64). sx is the caller's accumulator (request.sx).
struct ExponentialFamilyStatistics {
    double sum_weight = 0, sum_log_norm = 0, sum_entropy = 0;
    double sum_log_base = 0;  // sum_n w_n log h(x_n), the data term's sum
    Vector<double> nk;        // [K] sum_n w_n q_nc

    explicit ExponentialFamilyStatistics(Index K = 0) : nk(Vector<double>::Zero(K)) {}
    void set_zero() {
        sum_weight = sum_log_norm = sum_entropy = sum_log_base = 0;
        nk.setZero();
    }
    void merge(const ExponentialFamilyStatistics& block) {
        sum_weight += block.sum_weight;
        sum_log_norm += block.sum_log_norm;
        sum_entropy += block.sum_entropy;
        sum_log_base += block.sum_log_base;
        nk += block.nk;
    }
};

// Throws std::invalid_argument on inconsistent arguments (before any work), naming the first bad
// one. Returns false if interrupted; the statistics and sx then hold a partial sum only.
template <class I>
bool exponential_family_mixture_pass(const ExponentialFamilyMixtureParams& params, const CsrRows<I>& rows,
                                     const ExponentialFamilyPassRequest& request,
                                     ExponentialFamilyStatistics& statistics);

// Every best-component group's candidate scores: for group b (ascending) and every candidate c != b
// its rows evaluated (c ascending), the sum and count of their log-joints.
struct ExponentialFamilyNeighbourScores {
    std::vector<std::int32_t> group, component;
    std::vector<double> sum, count;
};

struct ExponentialFamilyTruncatedRequest {
    const double* sample_weight = nullptr;               // [N] or null for unit weights
    const double* natural = nullptr;                     // [K, D] eta_cd at c * D + d
    Index n_active = 0;                                  // C'
    Index n_neighbors = 0;                               // G
    const std::int32_t* active = nullptr;                // [N, C'] K_n in, best first; distinct per row
    const std::int32_t* neighbours = nullptr;            // [K, G] G_c; distinct per row
    const std::int32_t* random_candidates = nullptr;     // [N] r_n, or null for none
    std::int32_t* new_active = nullptr;                  // [N, C'] out, best first
    double* sx = nullptr;                                // [K, D] out (overwritten), or null: no moments
    double* log_norm = nullptr;                          // [N] out, optional: log Σ_{c∈K_n} π_c p(x_n | c)
    ExponentialFamilyNeighbourScores* scores = nullptr;  // out, optional
    int n_threads = 0;
    InterruptPoll interrupt;
};

// One truncated E-step (see the top of this file). params.natural_transposed is not read (the
// request's natural is). `statistics` receives the ELBO sums (sum_log_norm: the truncated free
// energy, log h included) and nk. Throws std::invalid_argument on inconsistent arguments before any
// work; returns false if interrupted.
template <class I>
bool exponential_family_truncated_pass(const ExponentialFamilyMixtureParams& params, const CsrRows<I>& rows,
                                       const ExponentialFamilyTruncatedRequest& request,
                                       ExponentialFamilyStatistics& statistics);

extern template bool exponential_family_truncated_pass<std::int32_t>(const ExponentialFamilyMixtureParams&,
                                                                     const CsrRows<std::int32_t>&,
                                                                     const ExponentialFamilyTruncatedRequest&,
                                                                     ExponentialFamilyStatistics&);
extern template bool exponential_family_truncated_pass<std::int64_t>(const ExponentialFamilyMixtureParams&,
                                                                     const CsrRows<std::int64_t>&,
                                                                     const ExponentialFamilyTruncatedRequest&,
                                                                     ExponentialFamilyStatistics&);

extern template bool exponential_family_mixture_pass<std::int32_t>(const ExponentialFamilyMixtureParams&,
                                                                   const CsrRows<std::int32_t>&,
                                                                   const ExponentialFamilyPassRequest&,
                                                                   ExponentialFamilyStatistics&);
extern template bool exponential_family_mixture_pass<std::int64_t>(const ExponentialFamilyMixtureParams&,
                                                                   const CsrRows<std::int64_t>&,
                                                                   const ExponentialFamilyPassRequest&,
                                                                   ExponentialFamilyStatistics&);

}  // namespace fastelbo
