// The additive sufficient statistics of one E-step pass over a mixture model.
//
// Everything the M-step and the ELBO / entropy decomposition need is a sum over rows, so partial
// statistics of row blocks (or of chunks processed elsewhere) merge by addition. Totals are float64
// whatever the working precision.
//
// First and second moments are taken about per-component reference points r_c (an explicit argument
// of the pass; fastelbo passes the current means) so that the M-step forms scatter matrices from
// small, centred numbers instead of E[x^2] - E[x]^2:
//   nk[c]  = sum_n w_n q_nc
//   sx[c]  = sum_n w_n q_nc (x_n - r_c)
//   sxx    full: [K, D, D] sum_n w_n q_nc (x_n - r_c)(x_n - r_c)^T
//          tied: [D, D]    sum_c sum_n w_n q_nc (x_n - r_c)(x_n - r_c)^T
//          diag: [K, D]    sum_n w_n q_nc (x_n - r_c)^2
//          spherical: [K]  sum_n w_n q_nc ||x_n - r_c||^2
// plus the ELBO terms sum_n w_n, sum_n w_n log p(x_n) (the log-normaliser) and sum_n w_n H[q_n].
#pragma once

#include <vector>

#include "fastelbo/types.hpp"

namespace fastelbo {

// Shape of the second moments, which is also scikit-learn's shape of the covariance parameters:
// full [K, D, D]; tied [D, D]; diag [K, D]; spherical [K].
inline std::vector<Index> covariance_shape(CovarianceType type, Index K, Index D) {
    switch (type) {
        case CovarianceType::Full: return {K, D, D};
        case CovarianceType::Tied: return {D, D};
        case CovarianceType::Diag: return {K, D};
        case CovarianceType::Spherical: return {K};
    }
    return {};
}

inline Index second_moment_size(CovarianceType type, Index K, Index D) {
    Index size = 1;
    for (Index extent : covariance_shape(type, K, D)) size *= extent;
    return size;
}

// Sums whose arrays are in precision T (the scalar ELBO terms are always double).
template <class T>
struct MixtureSums {
    double sum_weight = 0, sum_log_norm = 0, sum_entropy = 0;
    Vector<T> nk;
    RowMatrix<T> sx;
    Vector<T> sxx;

    // Moments (sx, sxx) are sized only if `with_moments`; nk always is.
    MixtureSums(CovarianceType type, Index K, Index D, bool with_moments)
        : nk(Vector<T>::Zero(K)),
          sx(RowMatrix<T>::Zero(with_moments ? K : 0, D)),
          sxx(Vector<T>::Zero(with_moments ? second_moment_size(type, K, D) : 0)) {}

    void set_zero() {
        sum_weight = sum_log_norm = sum_entropy = 0;
        nk.setZero();
        sx.setZero();
        sxx.setZero();
    }

    template <class U>
    void merge(const MixtureSums<U>& block) {
        sum_weight += block.sum_weight;
        sum_log_norm += block.sum_log_norm;
        sum_entropy += block.sum_entropy;
        nk += block.nk.template cast<T>();
        sx += block.sx.template cast<T>();
        sxx += block.sxx.template cast<T>();
    }

    // Rank updates fill only the lower triangle of full / tied second moments; mirror it.
    void symmetrise_second_moments(CovarianceType type, Index K, Index D) {
        if (sxx.size() == 0) return;
        const Index matrices = type == CovarianceType::Full ? K : (type == CovarianceType::Tied ? 1 : 0);
        for (Index c = 0; c < matrices; ++c) {
            Eigen::Map<RowMatrix<T>> m(sxx.data() + c * D * D, D, D);
            m.template triangularView<Eigen::StrictlyUpper>() = m.transpose();
        }
    }
};

using MixtureStatistics = MixtureSums<double>;

// The statistics layout of the Gaussian families (see "Statistics layout" in mixture_pass.hpp): the
// covariance type fixes the shape of the second moments.
struct MixtureSumsLayout {
    using Statistics = MixtureStatistics;

    CovarianceType type;
    Index K, D;

    Statistics make(bool with_moments) const { return Statistics(type, K, D, with_moments); }
    // Holds nothing (a stand-in where a workspace needs no sums).
    Statistics make_empty() const { return Statistics(type, 0, D, false); }
    // Numbers in one partial with moments: the unit of the merge cost and of a partial's memory.
    double partial_size() const {
        return static_cast<double>(K) * (D + 1) + static_cast<double>(second_moment_size(type, K, D));
    }
    // After the ordered merge.
    void finish(Statistics& statistics) const { statistics.symmetrise_second_moments(type, K, D); }
};

}  // namespace fastelbo
