// Gaussian component families for the mixture E-step: each turns a block of rows into log-joints
// log pi_c + log N(x_n; mu_c, Sigma_c) with matrix products, and accumulates the block's first and
// second moments (see mixture_statistics.hpp) from the weighted responsibilities.
//
// Coordinates are shifted by the caller's `shift` (typically the data mean) before any product, so
// that float32 blocks and the second moments stay well conditioned.
//
//   diag / spherical: ||x - mu||^2-expansion. Features z = [x~, x~^2] (diag) or [x~, ||x~||^2]
//                     (spherical) times a (F x K) parameter matrix: one GEMM for the log-joints and one
//                     GEMM (Q^T Z) for all first and second moments.
//   tied:             y = x~ U (U the precision Cholesky factor), then ||y - m_c||^2 by expansion.
//   full:             per component y = (x - mu_c) U_c; second moments by a weighted rank update.
#pragma once

#include <cmath>

#include "fastelbo/mixture_statistics.hpp"
#include "fastelbo/posterior_row.hpp"
#include "fastelbo/types.hpp"

namespace fastelbo {

// Parameters as caller-owned arrays in the working precision (scikit-learn's shapes and
// precision-Cholesky convention: precision = U U^T with U upper triangular).
template <class T>
struct GaussianMixtureParams {
    CovarianceType type = CovarianceType::Full;
    Index n_components = 0;
    Index n_features = 0;
    const T* log_weights = nullptr;          // [K]
    const T* means = nullptr;                // [K, D]
    const T* precisions_cholesky = nullptr;  // full [K, D, D]; tied [D, D]; diag [K, D]; spherical [K]
    const T* shift = nullptr;                // [D] reference point of the statistics (not for full)
};

// A block of rows of X (read-only) and a block of a per-thread work matrix.
template <class T>
using RowBlock = Eigen::Ref<const RowMatrix<T>>;
template <class T>
using WorkBlock = Eigen::Ref<RowMatrix<T>>;

namespace detail {
// A component's log-joint constant in the working precision; log pi_c = -inf (an empty component)
// becomes a finite floor so that q_c = 0 and 0 * log-joint stays 0.
template <class T>
T component_constant(double value) {
    return std::isfinite(value) ? static_cast<T>(value) : log_zero_floor<T>();
}
template <class T>
T half_log_two_pi() {
    return T(0.5) * std::log(T(2) * T(M_PI));
}
}  // namespace detail

// Per-thread rows for the tied and full families: x - centre, and its whitened form (x - centre) U.
template <class T>
struct CentredRows {
    RowMatrix<T> centred;   // [B, D]
    RowMatrix<T> whitened;  // [B, D]

    CentredRows(Index block_rows, Index D) : centred(block_rows, D), whitened(block_rows, D) {}
};

// Bytes per row of a tied / full block: the two [B, D] buffers plus the log-joint row.
template <class T>
Index centred_rows_bytes_per_row(Index K, Index D) {
    return static_cast<Index>(sizeof(T)) * (2 * D + 2 * K);
}

// diag and spherical covariances.
template <class T>
class DiagonalGaussians {
  public:
    struct Workspace {
        RowMatrix<T> features;  // [B, F]
    };

    explicit DiagonalGaussians(const GaussianMixtureParams<T>& p)
        : spherical_(p.type == CovarianceType::Spherical),
          K_(p.n_components),
          D_(p.n_features),
          F_(spherical_ ? D_ + 1 : 2 * D_),
          shift_(ConstVectorMap<T>(p.shift, D_).transpose()),
          projection_(F_, K_),
          constant_(K_) {
        ConstRowMatrixMap<T> means(p.means, K_, D_);
        for (Index c = 0; c < K_; ++c) {
            double log_det = 0, mahalanobis_mean = 0;
            for (Index d = 0; d < D_; ++d) {
                const T u = spherical_ ? p.precisions_cholesky[c] : p.precisions_cholesky[c * D_ + d];
                const double precision = static_cast<double>(u) * u;
                const double centred_mean = static_cast<double>(means(c, d)) - shift_(d);
                projection_(d, c) = static_cast<T>(centred_mean * precision);
                if (!spherical_) projection_(D_ + d, c) = static_cast<T>(-0.5 * precision);
                log_det += std::log(static_cast<double>(u));
                mahalanobis_mean += centred_mean * centred_mean * precision;
            }
            if (spherical_) {
                const double u = p.precisions_cholesky[c];
                projection_(D_, c) = static_cast<T>(-0.5 * u * u);
            }
            constant_(c) = detail::component_constant<T>(static_cast<double>(p.log_weights[c]) -
                                                         D_ * detail::half_log_two_pi<double>() + log_det -
                                                         0.5 * mahalanobis_mean);
        }
    }

    Index bytes_per_row() const { return static_cast<Index>(sizeof(T)) * (F_ + 2 * K_); }

    Workspace make_workspace(Index block_rows) const { return Workspace{RowMatrix<T>(block_rows, F_)}; }

    void log_joint(const RowBlock<T>& x, Workspace& ws, WorkBlock<T> lj) const {
        const Index n = x.rows();
        auto z = ws.features.topRows(n);
        z.leftCols(D_) = x.rowwise() - shift_;
        if (spherical_) {
            z.col(D_) = z.leftCols(D_).rowwise().squaredNorm();
        } else {
            z.rightCols(D_) = z.leftCols(D_).array().square();
        }
        lj.noalias() = z * projection_;
        lj.rowwise() += constant_.transpose();
    }

    // Adds the block's moments to `out`. The shifted features are still in the workspace from
    // log_joint; the products accumulate straight into `out` (no extra pass over [K, F]).
    void accumulate(const RowBlock<T>&, const WorkBlock<T>& q, Workspace& ws, BlockStatistics<T>& out, const T*) const {
        const auto z = ws.features.topRows(q.rows());
        out.sx.noalias() += q.transpose() * z.leftCols(D_);
        if (spherical_) {
            out.sxx.noalias() += q.transpose() * z.col(D_);
        } else {
            Eigen::Map<RowMatrix<T>>(out.sxx.data(), K_, D_).noalias() += q.transpose() * z.rightCols(D_);
        }
    }

  private:
    bool spherical_;
    Index K_, D_, F_;
    RowVector<T> shift_;
    Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic> projection_;  // [F, K]
    Vector<T> constant_;                                           // [K]
};

// One covariance shared by all components.
template <class T>
class TiedGaussians {
  public:
    using Workspace = CentredRows<T>;  // x - shift and (x - shift) U

    explicit TiedGaussians(const GaussianMixtureParams<T>& p)
        : K_(p.n_components),
          D_(p.n_features),
          shift_(ConstVectorMap<T>(p.shift, D_).transpose()),
          chol_(ConstRowMatrixMap<T>(p.precisions_cholesky, D_, D_)),
          whitened_means_(K_, D_),
          constant_(K_) {
        ConstRowMatrixMap<T> means(p.means, K_, D_);
        RowMatrix<double> centred_means = means.template cast<double>().rowwise() - shift_.template cast<double>();
        RowMatrix<double> wm = centred_means * chol_.template cast<double>();
        whitened_means_ = wm.template cast<T>();
        const double log_det = chol_.diagonal().template cast<double>().array().log().sum();
        for (Index c = 0; c < K_; ++c) {
            constant_(c) = detail::component_constant<T>(static_cast<double>(p.log_weights[c]) -
                                                         D_ * detail::half_log_two_pi<double>() + log_det -
                                                         0.5 * wm.row(c).squaredNorm());
        }
    }

    Index bytes_per_row() const { return centred_rows_bytes_per_row<T>(K_, D_); }
    Workspace make_workspace(Index block_rows) const { return Workspace(block_rows, D_); }

    void log_joint(const RowBlock<T>& x, Workspace& ws, WorkBlock<T> lj) const {
        const Index n = x.rows();
        auto xc = ws.centred.topRows(n);
        auto y = ws.whitened.topRows(n);
        xc = x.rowwise() - shift_;
        y.noalias() = xc * chol_;
        lj.noalias() = y * whitened_means_.transpose();
        lj.colwise() -= T(0.5) * y.rowwise().squaredNorm();
        lj.rowwise() += constant_.transpose();
    }

    // Adds the block's moments to `out`. Second moments of a tied model are data-only:
    // sum_n w_n (x_n - shift)(x_n - shift)^T (lower triangle).
    void accumulate(const RowBlock<T>& x, const WorkBlock<T>& q, Workspace& ws, BlockStatistics<T>& out,
                    const T* sample_weight) const {
        const Index n = x.rows();
        auto xc = ws.centred.topRows(n);
        out.sx.noalias() += q.transpose() * xc;
        Eigen::Map<RowMatrix<T>> sxx(out.sxx.data(), D_, D_);
        if (sample_weight != nullptr) {
            auto scaled = ws.whitened.topRows(n);  // the whitened rows are no longer needed
            scaled = xc.array().colwise() * ConstVectorMap<T>(sample_weight, n).array().sqrt();
            sxx.template selfadjointView<Eigen::Lower>().rankUpdate(scaled.transpose());
        } else {
            sxx.template selfadjointView<Eigen::Lower>().rankUpdate(xc.transpose());
        }
    }

  private:
    Index K_, D_;
    RowVector<T> shift_;
    RowMatrix<T> chol_;
    RowMatrix<T> whitened_means_;
    Vector<T> constant_;
};

// One full covariance per component; statistics about each component's own (previous) mean.
template <class T>
class FullGaussians {
  public:
    using Workspace = CentredRows<T>;  // x - mu_c and (x - mu_c) U_c, then sqrt(q) (x - mu_c)

    explicit FullGaussians(const GaussianMixtureParams<T>& p)
        : K_(p.n_components),
          D_(p.n_features),
          means_(ConstRowMatrixMap<T>(p.means, K_, D_)),
          chols_(K_),
          constant_(K_) {
        for (Index c = 0; c < K_; ++c) {
            chols_[c] = ConstRowMatrixMap<T>(p.precisions_cholesky + c * D_ * D_, D_, D_);
            const double log_det = chols_[c].diagonal().template cast<double>().array().log().sum();
            constant_(c) = detail::component_constant<T>(static_cast<double>(p.log_weights[c]) -
                                                         D_ * detail::half_log_two_pi<double>() + log_det);
        }
    }

    Index bytes_per_row() const { return centred_rows_bytes_per_row<T>(K_, D_); }
    Workspace make_workspace(Index block_rows) const { return Workspace(block_rows, D_); }

    void log_joint(const RowBlock<T>& x, Workspace& ws, WorkBlock<T> lj) const {
        const Index n = x.rows();
        auto xc = ws.centred.topRows(n);
        auto y = ws.whitened.topRows(n);
        for (Index c = 0; c < K_; ++c) {
            xc = x.rowwise() - means_.row(c);
            y.noalias() = xc * chols_[c];
            lj.col(c) = (-T(0.5) * y.rowwise().squaredNorm()).array() + constant_(c);
        }
    }

    void accumulate(const RowBlock<T>& x, const WorkBlock<T>& q, Workspace& ws, BlockStatistics<T>& out,
                    const T*) const {
        const Index n = x.rows();
        auto xc = ws.centred.topRows(n);
        auto scaled = ws.whitened.topRows(n);
        for (Index c = 0; c < K_; ++c) {
            xc = x.rowwise() - means_.row(c);
            out.sx.row(c).noalias() += q.col(c).transpose() * xc;
            scaled = xc.array().colwise() * q.col(c).array().sqrt();
            Eigen::Map<RowMatrix<T>> sxx(out.sxx.data() + c * D_ * D_, D_, D_);
            sxx.template selfadjointView<Eigen::Lower>().rankUpdate(scaled.transpose());
        }
    }

  private:
    Index K_, D_;
    RowMatrix<T> means_;
    std::vector<RowMatrix<T>> chols_;
    Vector<T> constant_;
};

}  // namespace fastelbo
