// The data-only statistics of linear-Gaussian factor models (PPCA, factor analysis): the weighted
// mean and the weighted scatter matrix sum_n w_n (x_n - mean)(x_n - mean)^T, in one blocked pass
// over the rows of X. Every EM iteration of those models then costs O(D^2 H), whatever N is.
//
// Accuracy: deviations are taken about an explicit centring point c (the caller picks it, e.g. a
// data row) in float64, so float32 data far from the origin loses nothing to cancellation; the
// scatter about the mean is then sum w (x - c)(x - c)^T - W (mean - c)(mean - c)^T, a correction
// that is small whenever c lies within the data.
//
// Determinism: blocks have a fixed, shape-only size and their partials merge in block order
// (row_block_schedule.hpp), so results are bitwise identical for any thread count.
#pragma once

#include "fastelbo/types.hpp"

namespace fastelbo {

template <class T>
struct ScatterPassRequest {
    const T* X = nullptr;  // [N, D] row-major
    Index n_rows = 0;
    Index n_features = 0;
    const T* sample_weight = nullptr;  // [N] non-negative, or null for unit weights
    const double* center = nullptr;    // [D] the centring point of the float64 accumulation
    int n_threads = 0;                 // <= 0: the OpenMP default
    InterruptPoll interrupt;
};

struct ScatterStatistics {
    double sum_weight = 0;      // W = sum_n w_n
    Vector<double> mean;        // [D] (1/W) sum_n w_n x_n; the centring point when W == 0
    RowMatrix<double> scatter;  // [D, D] sum_n w_n (x_n - mean)(x_n - mean)^T, symmetric
};

// Throws std::invalid_argument on inconsistent arguments (before any work). Returns false if the
// pass was interrupted through request.interrupt; `statistics` is then incomplete.
template <class T>
bool scatter_pass(const ScatterPassRequest<T>& request, ScatterStatistics& statistics);

extern template bool scatter_pass<float>(const ScatterPassRequest<float>&, ScatterStatistics&);
extern template bool scatter_pass<double>(const ScatterPassRequest<double>&, ScatterStatistics&);

}  // namespace fastelbo
