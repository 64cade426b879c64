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
// Determinism. Rows are cut into blocks whose boundaries depend on the data alone (rows and
// non-zeros, never the thread count). A round of consecutive blocks runs in two phases:
//   1. every block (in parallel) computes its rows' log-joints -> posteriors into the round's buffer
//      of weighted responsibilities, its per-row outputs, and its own partial ELBO sums and nk;
//      partials are then merged serially in block order;
//   2. the round's contribution to sx (D x K) is added in parallel over disjoint ranges of
//      components, each thread visiting the round's rows in order.
// Every sum is therefore formed in the same order for any number of threads, and sx needs no
// per-thread copy (one D x K accumulator, owned by the caller). Memory: the parameters, sx, and a
// round buffer of at most a few MiB of responsibilities; never N x K or N x D.
//
// Interrupts are polled between blocks and between the component ranges of phase 2; both are
// bounded in work (about kBlockWork multiply-adds per block, a round's phase 2 about that times the
// blocks per thread), so Ctrl-C is honoured within milliseconds whatever the shape (a single row
// cannot be split: its work is at most D K, the size of the parameters).
//
// The row's log-joints are computed over all K components (row_log_joints); a candidate set per row
// (truncated EM) would gather the same columns of eta for the row's components only, with the same
// posterior and outputs.
#pragma once

#include <cstdint>
#include <string>

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
};

struct ExponentialFamilyPassRequest {
    const double* sample_weight = nullptr;  // [N] or null for unit weights
    double* sx_transposed = nullptr;        // [D, K] in/out: sum_n w_n q_nc x_nd added at d * K + c; null: no moments
    double* log_norm = nullptr;             // [N] out: log p(x_n) (log h included), optional
    double* responsibilities = nullptr;     // [N, K] out: q_n, optional
    std::int64_t* labels = nullptr;         // [N] out: argmax_c log-joint, optional
    int n_threads = 0;                      // <= 0: the OpenMP default
    InterruptPoll interrupt;
};

// The pass's sums (float64). sx is the caller's accumulator (request.sx_transposed).
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

extern template bool exponential_family_mixture_pass<std::int32_t>(const ExponentialFamilyMixtureParams&,
                                                                   const CsrRows<std::int32_t>&,
                                                                   const ExponentialFamilyPassRequest&,
                                                                   ExponentialFamilyStatistics&);
extern template bool exponential_family_mixture_pass<std::int64_t>(const ExponentialFamilyMixtureParams&,
                                                                   const CsrRows<std::int64_t>&,
                                                                   const ExponentialFamilyPassRequest&,
                                                                   ExponentialFamilyStatistics&);

}  // namespace fastelbo
