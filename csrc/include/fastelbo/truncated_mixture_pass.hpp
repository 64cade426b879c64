// The truncated variational E-step for mixtures with many components (Forster & Lücke, AISTATS
// 2018): every row n keeps a set K_n of C' components, q_n is the posterior restricted to
// K_n, and the pass costs O(N·C'·G·D) instead of O(N·K·D).
//
// The maths of a component and of a (row, component) pair is the exact kernels': the constants, the
// log-joint of a pair expanded about a point or summed directly, a pair's moments
// (gaussian_row_maths.hpp), the posterior of a row (row_maths.hpp) and the tied whitening
// (tied_whitening.hpp). What is this pass's own: the candidate sets and their unions, the grouping
// of rows into items, the choice between expanded and direct evaluation, the neighbour lists and
// where the statistics are summed.
//
// Search. The candidates of row n are S_n = ∪_{c ∈ K_n} G_c ∪ {r_n}: the neighbour lists G_c (G
// components each, c first) of its current components plus one random component r_n. The new K_n
// is the C' candidates with the largest log-joints (ties: smaller index), best first; since
// K_n ⊆ S_n, the truncated free energy log Σ_{c∈K_n} π_c N(x_n; μ_c, Σ_c) never decreases.
//
// Evaluation as matrix products. Rows are grouped by their best component b (K_n[0]) and, within a
// group, by their second component (two stable counting sorts; rows that share it share most
// candidates), and cut into items of at most kRowsPerItem rows. An item gathers its rows (random rows
// of X: prefetched), builds the union U of its rows' neighbour-list candidates (every member c of
// some K_n contributes {c} ∪ G_c, once per item) and every row's S_n as a bit set over U (the union
// of its members' sets: C' word ORs a row, no per-candidate de-duplication), and evaluates all its
// rows against U with one GEMM of features [x~, x~²] (x~ = x − μ_b: rows of a group sit near μ_b,
// which keeps float32 accurate) times a [2D, |U|] parameter block; a random candidate outside U is
// summed directly (its parameters prefetched at the gather). A row uses only its own S_n: the other
// columns are redundant flops at GEMM speed. At large K the limit is parameter traffic, not
// arithmetic: an item reads each of its |U| components once.
//
// Direct evaluation. Where groups are small (K large next to N) an item's rows share few
// candidates, so |U| is many times any row's |S_n|, and building |U| parameter columns plus the GEMM
// costs more than summing every (row, candidate) pair of the rows' own S_n directly, vectorised over
// D ([μ_c, p_c] one contiguous block per component; the parameters of pairs a few ahead prefetched).
// Every item picks the cheaper by a cost model of its own counts (rows, |U|, pairs, D), so the
// choice, like every result, does not depend on the thread count.
//
// Tied covariances are the same expansion after whitening: y~ = x~ U (U the shared precision
// Cholesky factor, one [rows, D] × [D, D] product per item) and m~_c = (μ_c − μ_b) U from μ_c U
// computed once per pass, then features [y~, ||y~||²] against columns [m~_c, −1/2]; the shared
// scatter Σ w q (x − r_c)(x − r_c)ᵀ is one product per item over its (row, kept component) pairs,
// summed per work unit of 16 items (run in order by one thread), then in unit order.
//
// Full covariances whiten per component: an item computes ((x − μ_b) − (μ_c − μ_b)) U_c for every
// column c of U as one [rows, D] × [D, D] product (O(rows·|U|·D²), no expansion), or per pair
// where pairs are few next to rows·|U|.
//
// Neighbour lists. G_b is refreshed from the rows whose best component is b: b first, then the G − 1
// other candidates those rows evaluated with the largest average log-joint (no extra evaluations).
// A group of one item (most groups at large K) refreshes its list inside that item; larger groups
// keep their items' scores until all items have run. Groups without rows keep their list.
//
// Neighbour scores. The refresh is not mergeable as lists, but its inputs are: a pass over one block
// of a larger data set can return, instead of refreshed lists, every group's (b, c, sum, count) of
// log-joints (NeighbourScores); blocks' scores add per (b, c), and the lists are refreshed from the
// sums afterwards by the same rule (fastelbo.mixture._truncated_pass.refresh_neighbours). A group's
// sums are added over its items in item order, exactly as the in-pass refresh adds them.
//
// Statistics without N×K or per-block K×D partials, one of two ways chosen per pass from the row
// counts alone. Where best-component groups average many rows (an item's rows then keep few
// distinct components) and the worst case fits in 1 GiB, every item sums w q, w q (x − r_c) and
// w q (x − r_c)² into one slot per component its rows keep, while its rows are in cache (r the
// reference), and afterwards every component adds its slots in item order, in parallel over
// components. Otherwise (large K: small groups, so slots would approach N·C'·(2D+1) doubles) every
// row's q over its new K_n is kept ([N, C']); after the E-step the (row, component, q) triples are
// transposed to component order and every component sums the same over its own rows, ascending, in
// parallel over components (rows of X prefetched ahead): memory N·C' doubles and indices, whatever
// K and D are. Full covariances always take the second way (the D × D second moments as one
// product per component). The ELBO sums are per item, added in item order. Every output is
// computed by one work item in a fixed order, so results are bitwise identical for any thread count.
#pragma once

#include <cstdint>
#include <vector>

#include "fastelbo/gaussian_components.hpp"
#include "fastelbo/mixture_statistics.hpp"
#include "fastelbo/types.hpp"

namespace fastelbo {

// Every best-component group's candidate scores: for group b (ascending) and every candidate c != b
// its rows evaluated (c ascending), the sum and count of their log-joints.
struct NeighbourScores {
    std::vector<std::int32_t> group, component;
    std::vector<double> sum, count;
};

template <class T>
struct TruncatedPassRequest {
    const T* X = nullptr;  // [N, D] row-major
    Index n_rows = 0;
    const T* sample_weight = nullptr;                 // [N] or null
    Index n_active = 0;                               // C'
    Index n_neighbors = 0;                            // G
    const std::int32_t* active = nullptr;             // [N, C'] K_n in, best first; distinct per row
    const std::int32_t* neighbours = nullptr;         // [K, G] G_c in; distinct per row
    const std::int32_t* random_candidates = nullptr;  // [N] r_n, or null for none
    const double* reference = nullptr;                // [K, D] moments about these, or null: no moments
    std::int32_t* new_active = nullptr;               // [N, C'] out, best first
    double* responsibilities = nullptr;               // [N, C'] out, optional: q_n over new K_n
    double* log_norm = nullptr;                       // [N] out, optional: log Σ_{c∈K_n} π_c N(x_n | c)
    std::int32_t* new_neighbours = nullptr;           // [K, G] out, optional
    NeighbourScores* neighbour_scores = nullptr;      // out, optional: the refresh's inputs instead
    int n_threads = 0;
    InterruptPoll interrupt;
};

// Runs the pass (every covariance type). `statistics`
// receives nk, the ELBO sums (sum_log_norm: the truncated free energy) and, with a reference, the
// moments. Returns false if interrupted.
template <class T>
bool truncated_mixture_pass(const GaussianMixtureParams<T>& params, const TruncatedPassRequest<T>& request,
                            MixtureStatistics& statistics);

}  // namespace fastelbo
