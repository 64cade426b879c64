// k-means initialisation kernels: greedy k-means++ seeding and Lloyd iterations, both blocked over
// rows with squared distances as matrix products (||x||^2 - 2 x.c + ||c||^2 about a common shift)
// and deterministic, thread-count independent reductions.
#pragma once

#include <cstdint>
#include <vector>

#include "fastelbo/types.hpp"

namespace fastelbo {

template <class T>
struct KMeansData {
    const T* X = nullptr;  // row-major, n_features columns
    Index n_rows = 0;      // the rows clustered
    Index n_features = 0;
    const T* sample_weight = nullptr;  // [n_rows] or null
    // [n_rows] or null: row n is X's row source_rows[n], so a subset of X's rows, in any order, is
    // clustered without copying it; null: X has n_rows rows, taken in order.
    const std::int64_t* source_rows = nullptr;

    Eigen::Map<const RowVector<T>> row(Index n) const {
        return Eigen::Map<const RowVector<T>>(X + (source_rows ? source_rows[n] : n) * n_features, n_features);
    }
};

struct KMeansResult {
    std::vector<std::int64_t> labels;  // [N]
    RowMatrix<double> centers;         // [K, D]
    double inertia = 0;                // sum_n w_n ||x_n - c_{label_n}||^2
    int n_iter = 0;
    bool interrupted = false;
};

// Greedy k-means++ (each new centre is the best of `n_local_trials` candidates drawn with
// probability proportional to w_n * D(x_n)^2). Returns the row indices of the chosen centres, or an
// empty vector if interrupted.
template <class T>
std::vector<Index> kmeans_plusplus(const KMeansData<T>& data, Index n_clusters, Index n_local_trials,
                                   std::uint64_t seed, int n_threads, const InterruptPoll& interrupt);

// Lloyd iterations from `initial_centers` [K, D] until the labels stop changing or the total squared
// centre shift is <= tol. Empty clusters are moved onto the points farthest from their centres.
template <class T>
KMeansResult lloyd_kmeans(const KMeansData<T>& data, const double* initial_centers, Index n_clusters, int max_iter,
                          double tol, int n_threads, const InterruptPoll& interrupt);

}  // namespace fastelbo
