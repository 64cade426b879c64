// The truncated variational E-step for mixtures with many components (shared/THEORY.md §2.1
// truncated q, §4): every row n keeps a set K_n of C' components, q_n is the posterior restricted to
// K_n, and the pass costs O(N·C'·G·D) instead of O(N·K·D).
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
// Tied covariances are the same expansion after whitening: y~ = x~ U (U the shared precision
// Cholesky factor, one [rows, D] × [D, D] product per item) and m~_c = (μ_c − μ_b) U from μ_c U
// computed once per pass, then features [y~, ||y~||²] against columns [m~_c, −1/2]; the shared
// scatter Σ w q (x − r_c)(x − r_c)ᵀ is one product per item over its (row, kept component) pairs,
// summed per work unit of 16 items (run in order by one thread), then in unit order.
//
// Full covariances whiten per component: an item computes ((x − μ_b) − (μ_c − μ_b)) U_c for every
// column c of U as one [rows, D] × [D, D] product (O(rows·|U|·D²), no expansion). Their statistics
// (a D × D matrix per component) are not kept per item: every component sums its own (row, q)
// pairs, rows ascending, with the second moments as one product over them.
//
// Neighbour lists. G_b is refreshed from the rows whose best component is b: b first, then the G − 1
// other candidates those rows evaluated with the largest average log-joint (no extra evaluations).
// Groups without rows keep their list.
//
// Statistics without N×K or per-block K×D partials. While an item's rows are still in cache, it sums
// w q, w q (x − r_c) and w q (x − r_c)² into one slot per component its rows keep with q > 0 (r the
// reference); afterwards every component adds its slots in item order, in parallel over components.
// The ELBO sums are likewise per item, added in item order. Every output is computed by one work item
// in a fixed order, so results are bitwise identical for any thread count.
#pragma once

#include <cstdint>

#include "fastelbo/gaussian_components.hpp"
#include "fastelbo/mixture_statistics.hpp"
#include "fastelbo/types.hpp"

namespace fastelbo {

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
