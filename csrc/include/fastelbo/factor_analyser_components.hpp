// Mixture-of-factor-analysers component family for the mixture E-step (Ghahramani & Hinton):
// p(c) = pi_c, p(z | c) = N(0, I_H), p(x | z, c) = N(W_c z + mu_c, Psi_c), Psi_c diagonal.
//
// Log-joints log pi_c + log N(x; mu_c, C_c), C_c = W_c W_c^T + Psi_c, never form C_c or its inverse.
// With M_c = I + W_c^T Psi_c^-1 W_c (H x H), the Woodbury identity and the determinant lemma give
//   e^T C^-1 e = ||e - W m||^2_{Psi^-1} + ||m||^2,   m = M^-1 W^T Psi^-1 e  (the posterior mean of z)
//   log|C|     = log|M| + sum_d log psi_d
// for e = x - mu_c. The quadratic form is written as a sum of non-negative terms, not as the
// difference e^T Psi^-1 e - m^T M m, which cancels catastrophically in float32 when Psi is small
// next to W W^T. Per block of B rows and per component: two B x D x H matrix products, so O(D H)
// per point-component pair.
//
// Accuracy. Rows are centred on mu_c itself, so nothing is expanded about a distant point and rows
// need no home (kGrouped = false). The block's moments are summed about mu_c in the working
// precision and moved, in float64, to the caller's reference points r_c (usually mu_c, where the
// move is exact).
#pragma once

#include <Eigen/Cholesky>
#include <cmath>
#include <vector>

#include "fastelbo/factor_analyser_statistics.hpp"
#include "fastelbo/posterior_row.hpp"
#include "fastelbo/types.hpp"

namespace fastelbo {

// Parameters as caller-owned arrays in the working precision.
template <class T>
struct FactorAnalyserMixtureParams {
    Index n_components = 0;
    Index n_features = 0;
    Index n_factors = 0;
    const T* log_weights = nullptr;     // [K]
    const T* means = nullptr;           // [K, D]
    const T* components = nullptr;      // [K, H, D] loadings: component c's rows are the columns of W_c
    const T* noise_variance = nullptr;  // [K, D] diagonal of Psi_c (all > 0)
};

template <class T>
class FactorAnalysers {
  public:
    using Statistics = FactorAnalyserSums;
    static constexpr bool kGrouped = false;

    struct Workspace {
        RowMatrix<T> centred;    // [B, D] e = x - mu_c
        RowMatrix<T> residual;   // [B, D] e - W_c m
        RowMatrix<T> latent;     // [B, K H] posterior means m of every component, kept for accumulate
        RowMatrix<T> augmented;  // [B, H + 1] q [m, 1]
        RowMatrix<T> first;      // [H + 1, D] sum q [m, 1] e^T
        RowMatrix<T> second;     // [H + 1, H] sum q [m, 1] m^T
        Vector<T> squares;       // [D]      sum q e^2
    };

    explicit FactorAnalysers(const FactorAnalyserMixtureParams<T>& p)
        : K_(p.n_components),
          D_(p.n_features),
          H_(p.n_factors),
          means_(ConstRowMatrixMap<T>(p.means, K_, D_)),
          inverse_noise_(K_, D_),
          projections_(K_),
          loadings_(K_),
          constant_(K_) {
        for (Index c = 0; c < K_; ++c) {
            const RowMatrix<double> loadings =
                ConstRowMatrixMap<T>(p.components + c * H_ * D_, H_, D_).template cast<double>();  // W^T
            const RowVector<double> noise =
                Eigen::Map<const RowVector<T>>(p.noise_variance + c * D_, D_).template cast<double>();
            const RowVector<double> inverse_noise = noise.cwiseInverse();
            const RowMatrix<double> scaled = loadings.array().rowwise() * inverse_noise.array();  // W^T Psi^-1
            RowMatrix<double> M = RowMatrix<double>::Identity(H_, H_);
            M.noalias() += scaled * loadings.transpose();
            const Eigen::LLT<RowMatrix<double>> llt(M);  // M >= I: always positive definite
            const double log_det_M = 2.0 * llt.matrixL().toDenseMatrix().diagonal().array().log().sum();
            const RowMatrix<double> beta = llt.solve(scaled);  // M^-1 W^T Psi^-1, [H, D]
            projections_[c] = beta.transpose().template cast<T>();
            loadings_[c] = loadings.template cast<T>();
            inverse_noise_.row(c) = inverse_noise.template cast<T>();
            const double log_det_noise = noise.array().log().sum();
            constant_(c) = component_constant(static_cast<double>(p.log_weights[c]) - 0.5 * D_ * std::log(2.0 * M_PI) -
                                              0.5 * (log_det_noise + log_det_M));
        }
    }

    Index bytes_per_row() const { return static_cast<Index>(sizeof(T)) * (2 * D_ + K_ * H_ + 2 * K_ + H_ + 1); }
    double flops_per_row() const {
        return static_cast<double>(K_) * (6.0 * D_ * H_ + 2.0 * H_ * H_ + 12.0 * D_ + 20.0);
    }

    Workspace make_workspace(Index block_rows) const {
        return Workspace{RowMatrix<T>(block_rows, D_),
                         RowMatrix<T>(block_rows, D_),
                         RowMatrix<T>(block_rows, K_ * H_),
                         RowMatrix<T>(block_rows, H_ + 1),
                         RowMatrix<T>(H_ + 1, D_),
                         RowMatrix<T>(H_ + 1, H_),
                         Vector<T>(D_)};
    }

    void log_joint(const RowBlock<T>& x, Workspace& ws, WorkBlock<T> lj) const {
        const Index n = x.rows();
        auto e = ws.centred.topRows(n);
        auto r = ws.residual.topRows(n);
        for (Index c = 0; c < K_; ++c) {
            auto m = ws.latent.block(0, c * H_, n, H_);
            e = x.rowwise() - means_.row(c);
            m.noalias() = e * projections_[c];
            r = e;
            r.noalias() -= m * loadings_[c];
            lj.col(c).noalias() = r.array().square().matrix() * inverse_noise_.row(c).transpose();
            lj.col(c) += m.rowwise().squaredNorm();
            lj.col(c) = (T(-0.5) * lj.col(c).array() + constant_(c)).matrix();
        }
    }

    // Adds the block's moments (see factor_analyser_statistics.hpp) about the reference points to
    // `acc`. `q` holds the weighted responsibilities; the posterior means are still in the workspace
    // from log_joint. Components without responsibility in the block are skipped (their sums are 0).
    void accumulate(const RowBlock<T>& x, const WorkBlock<T>& q, const T*, Workspace& ws, Statistics& acc,
                    const double* reference) const {
        const Index n = x.rows();
        auto e = ws.centred.topRows(n);
        auto augmented = ws.augmented.topRows(n);
        for (Index c = 0; c < K_; ++c) {
            const auto qc = q.col(c);
            const double n_c = static_cast<double>(qc.sum());
            if (n_c == 0) continue;
            const auto m = ws.latent.block(0, c * H_, n, H_);
            e = x.rowwise() - means_.row(c);
            augmented.leftCols(H_) = m.array().colwise() * qc.array();
            augmented.col(H_) = qc;
            ws.first.noalias() = augmented.transpose() * e;
            ws.second.noalias() = augmented.transpose() * m;
            ws.squares.noalias() = e.array().square().matrix().transpose() * qc;

            // Moments about mu_c -> about r_c, in float64: x~ = e + delta, delta = mu_c - r_c.
            const RowMatrix<double> first = ws.first.template cast<double>();
            const RowMatrix<double> second = ws.second.template cast<double>();
            const RowVector<double> delta =
                means_.row(c).template cast<double>() - Eigen::Map<const RowVector<double>>(reference + c * D_, D_);
            const auto s1 = first.row(H_);
            acc.sx.row(c) += s1 + n_c * delta;
            acc.sxx.row(c) += ws.squares.transpose().template cast<double>() +
                              (delta.array() * (2.0 * s1.array() + n_c * delta.array())).matrix();
            acc.szx.middleRows(c * H_, H_) += first.topRows(H_) + second.row(H_).transpose() * delta;
            acc.sz.row(c) += second.row(H_);
            acc.szz.middleRows(c * H_, H_) += second.topRows(H_);
        }
    }

  private:
    // log pi_c = -inf (an empty component) becomes a finite floor so that q_c = 0.
    static T component_constant(double value) {
        return std::isfinite(value) ? static_cast<T>(value) : log_zero_floor<T>();
    }

    Index K_, D_, H_;
    RowMatrix<T> means_;                     // [K, D]
    RowMatrix<T> inverse_noise_;             // [K, D]
    std::vector<RowMatrix<T>> projections_;  // [D, H] per component: (M^-1 W^T Psi^-1)^T
    std::vector<RowMatrix<T>> loadings_;     // [H, D] per component: W^T
    Vector<T> constant_;                     // [K] log pi_c - D/2 log 2 pi - 1/2 log|C_c|
};

}  // namespace fastelbo
