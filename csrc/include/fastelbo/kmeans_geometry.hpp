// Shared pieces of the k-means kernels: squared distances of a block of rows to a set of centres as
// one matrix product about a common shift, exact row-to-point distances, and sample weights.
#pragma once

#include <algorithm>

#include "fastelbo/kmeans.hpp"

namespace fastelbo {

// Centres prepared for distance products: shifted coordinates in the working precision.
template <class T>
struct PreparedCentres {
    RowMatrix<T> centred;  // [M, D]
    Vector<T> sq_norm;     // [M]

    PreparedCentres(const RowMatrix<double>& centres, const RowVector<double>& shift) {
        RowMatrix<double> c = centres.rowwise() - shift;
        centred = c.template cast<T>();
        sq_norm = c.rowwise().squaredNorm().template cast<T>();
    }
};

// Squared distances [B, M] of a block of rows to the centres (||x||^2 - 2 x.c + ||c||^2 as one
// GEMM), clamped at 0 against round-off. `centred_rows` receives the shifted rows.
template <class T>
void block_squared_distances(const Eigen::Ref<const RowMatrix<T>>& x, const RowVector<T>& shift,
                             const PreparedCentres<T>& centres, RowMatrix<T>& centred_rows,
                             Eigen::Ref<RowMatrix<T>> out) {
    const Index n = x.rows();
    auto xc = centred_rows.topRows(n);
    xc = x.rowwise() - shift;
    out.noalias() = T(-2) * (xc * centres.centred.transpose());
    out.rowwise() += centres.sq_norm.transpose();
    out.colwise() += xc.rowwise().squaredNorm();
    out = out.cwiseMax(T(0));
}

template <class T>
RowVector<double> column_mean(const KMeansData<T>& data) {
    RowVector<double> mean = RowVector<double>::Zero(data.n_features);
    for (Index n = 0; n < data.n_rows; ++n) mean += data.row(n).template cast<double>();
    return mean / static_cast<double>(std::max<Index>(data.n_rows, 1));
}

template <class T>
double weight_of(const KMeansData<T>& data, Index n) {
    return data.sample_weight ? static_cast<double>(data.sample_weight[n]) : 1.0;
}

// Row n of X in float64 coordinates about `shift`.
template <class T>
void shifted_row(const KMeansData<T>& data, Index n, const RowVector<double>& shift, RowVector<double>& out) {
    out = data.row(n).template cast<double>() - shift;
}

}  // namespace fastelbo
