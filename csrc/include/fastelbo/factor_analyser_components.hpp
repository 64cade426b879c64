// Mixture-of-factor-analysers component family for the mixture E-step (Ghahramani & Hinton):
// p(c) = pi_c, p(z | c) = N(0, I_H), p(x | z, c) = N(W_c z + mu_c, Psi_c), Psi_c diagonal.
//
// Log-joints log pi_c + log N(x; mu_c, C_c), C_c = W_c W_c^T + Psi_c, never form C_c or its inverse.
// With M_c = I + W_c^T Psi_c^-1 W_c = L L^T (H x H), the Woodbury identity and the determinant lemma
// give, for e = x - mu_c and the posterior mean m = M^-1 W^T Psi^-1 e of z,
//   e^T C^-1 e = e^T Psi^-1 e - ||u||^2,               u = L^-1 W^T Psi^-1 e,  m = L^-T u   (float64)
//              = ||e - W m||^2_{Psi^-1} + ||m||^2                                          (float32)
//   log|C|     = log|M| + sum_d log psi_d
// The difference form costs one B x D x H product per block of B rows and component; it loses about
// log10(1 + ||W^T Psi^-1 W||) digits to cancellation, which float64 can spare (a component whose
// noise sits at a 1e-6 floor under unit loadings in 64 dimensions keeps ~8) and float32 cannot.
// float32 therefore uses the second form, a sum of non-negative terms, at two products. Either way
// O(D H) per point-component pair.
//
// Products. float64 does the O(D H) work of every component at once, as two GEMMs per block over
// all K H columns (a block's rows are packed once, not once per component): u of every component
// from the rows about the block's centroid p, u_c = (x - p) P_c - (mu_c - p) P_c, and the moments
// [q u of every component]^T (x - p) and q^T [x - p, (x - p)^2]; the moments of u become those of
// m = L^-T u once per pass (`finish`), not per row. e^T Psi^-1 e stays a sum over x - mu_c itself.
// float32 works component by component on x - mu_c (the accurate form above needs e - W m anyway).
//
// Accuracy. The quadratic e^T Psi^-1 e is always summed from rows centred on mu_c itself. float64's
// u and moments are taken about the block's centroid, which loses about log10(|x - p| / |x - mu_c|)
// digits (none from an offset shared by the rows: p carries it). float32 centres everything on
// mu_c. Either way the block's moments are moved, in float64, to the caller's reference points r_c;
// rows need no home (kGrouped = false).

#pragma once

#include <Eigen/Cholesky>
#include <cmath>
#include <type_traits>
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
    // The cancelling (one-product) form of the quadratic and the all-component products, in float64
    // only (see above).
    static constexpr bool kDifferenceForm = std::is_same_v<T, double>;

    struct Workspace {
        RowMatrix<T> centred;    // float64: [B, 2 D] [x - p, (x - p)^2]; float32: [B, D] e = x - mu_c
        RowMatrix<T> residual;   // [B, D] e - W_c m (float32)
        RowMatrix<T> latent;     // [B, K H] u (float64; then q u) or m (float32) of every component
        RowMatrix<T> means;      // [B, H] q u of one component (float64)
        RowMatrix<T> augmented;  // [B, H + 1] q [m, 1] (float32)
        RowMatrix<T> first;      // float64: [K H, D] sum q u (x - p)^T; float32: [H + 1, D] sum q [m, 1] e^T
        RowMatrix<T> second;     // float64: [K, 2 D] sum q [x - p, (x - p)^2]; float32: [H + 1, H]
        Vector<T> squares;       // [D] sum q e^2 (float32)
        RowVector<T> point;      // [D] p, the block's centroid (float64)
        RowVector<T> offsets;    // [K H] (mu_c - p) P_c of every component (float64)
    };

    explicit FactorAnalysers(const FactorAnalyserMixtureParams<T>& p)
        : K_(p.n_components),
          D_(p.n_features),
          H_(p.n_factors),
          means_(ConstRowMatrixMap<T>(p.means, K_, D_)),
          inverse_noise_(K_, D_),
          projections_(kDifferenceForm ? 0 : K_),
          stacked_projections_(kDifferenceForm ? D_ : 0, kDifferenceForm ? K_ * H_ : 0),
          unwhitening_(kDifferenceForm ? K_ : 0),
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
            if constexpr (kDifferenceForm) {
                // u = L^-1 W^T Psi^-1 e; m = L^-T u, i.e. m^T = u^T L^-1 as rows.
                const RowMatrix<double> whitened = llt.matrixL().solve(scaled);  // [H, D]
                stacked_projections_.middleCols(c * H_, H_) = whitened.transpose().template cast<T>();
                unwhitening_[c] = llt.matrixL().solve(RowMatrix<double>::Identity(H_, H_)).template cast<T>();
            } else {
                const RowMatrix<double> beta = llt.solve(scaled);  // M^-1 W^T Psi^-1, [H, D]
                projections_[c] = beta.transpose().template cast<T>();
            }
            loadings_[c] = loadings.template cast<T>();
            inverse_noise_.row(c) = inverse_noise.template cast<T>();
            const double log_det_noise = noise.array().log().sum();
            constant_(c) = component_constant(static_cast<double>(p.log_weights[c]) - 0.5 * D_ * std::log(2.0 * M_PI) -
                                              0.5 * (log_det_noise + log_det_M));
        }
    }

    Index bytes_per_row() const {
        return static_cast<Index>(sizeof(T)) * ((kDifferenceForm ? 3 : 2) * D_ + K_ * H_ + 2 * K_ + H_ + 1);
    }
    double flops_per_row() const {
        return static_cast<double>(K_) * ((kDifferenceForm ? 4.0 : 6.0) * D_ * H_ + 4.0 * H_ * H_ + 12.0 * D_ + 20.0);
    }

    Workspace make_workspace(Index block_rows) const {
        const Index B = block_rows, K = K_, D = D_, H = H_;
        if constexpr (kDifferenceForm) {
            return Workspace{RowMatrix<T>(B, 2 * D), RowMatrix<T>(0, D),     RowMatrix<T>(B, K * H), RowMatrix<T>(B, H),
                             RowMatrix<T>(0, H + 1), RowMatrix<T>(K * H, D), RowMatrix<T>(K, 2 * D), Vector<T>(0),
                             RowVector<T>(D),        RowVector<T>(K * H)};
        } else {
            return Workspace{RowMatrix<T>(B, D),     RowMatrix<T>(B, D),     RowMatrix<T>(B, K * H), RowMatrix<T>(0, H),
                             RowMatrix<T>(B, H + 1), RowMatrix<T>(H + 1, D), RowMatrix<T>(H + 1, H), Vector<T>(D),
                             RowVector<T>(0),        RowVector<T>(0)};
        }
    }

    void log_joint(const RowBlock<T>& x, Workspace& ws, WorkBlock<T> lj) const {
        const Index n = x.rows();
        if constexpr (kDifferenceForm) {
            // u of every component in one product, about the block's centroid p.
            ws.point = (x.colwise().sum() / static_cast<T>(n)).eval();
            auto shifted = ws.centred.topLeftCorner(n, D_);
            shifted = x.rowwise() - ws.point;
            for (Index c = 0; c < K_; ++c)
                ws.offsets.segment(c * H_, H_).noalias() =
                    (means_.row(c) - ws.point) * stacked_projections_.middleCols(c * H_, H_);
            auto latent = ws.latent.topRows(n);
            latent.noalias() = shifted * stacked_projections_;
            latent.rowwise() -= ws.offsets;
            for (Index c = 0; c < K_; ++c) {
                // e^T Psi^-1 e - ||u||^2, the first term summed over e = x - mu_c itself.
                lj.col(c) = ((x.rowwise() - means_.row(c)).array().square().rowwise() * inverse_noise_.row(c).array())
                                .rowwise()
                                .sum()
                                .matrix();
                lj.col(c) -= latent.middleCols(c * H_, H_).rowwise().squaredNorm();
                lj.col(c) = (T(-0.5) * lj.col(c).array() + constant_(c)).matrix();
            }
        } else {
            auto e = ws.centred.topRows(n);
            for (Index c = 0; c < K_; ++c) {
                auto latent = ws.latent.block(0, c * H_, n, H_);
                e = x.rowwise() - means_.row(c);
                latent.noalias() = e * projections_[c];
                auto r = ws.residual.topRows(n);
                r = e;
                r.noalias() -= latent * loadings_[c];
                lj.col(c).noalias() = r.array().square().matrix() * inverse_noise_.row(c).transpose();
                lj.col(c) += latent.rowwise().squaredNorm();  // ||e - W m||^2_{Psi^-1} + ||m||^2
                lj.col(c) = (T(-0.5) * lj.col(c).array() + constant_(c)).matrix();
            }
        }
    }

    // Adds the block's moments (see factor_analyser_statistics.hpp) about the reference points to
    // `acc` (in float64 those of u; see finish). `q` holds the weighted responsibilities; the
    // posterior means (float64: u, the block's centroid and the rows about it) are still in the
    // workspace from log_joint.
    void accumulate(const RowBlock<T>& x, const WorkBlock<T>& q, const T*, Workspace& ws, Statistics& acc,
                    const double* reference) const {
        if constexpr (kDifferenceForm) {
            accumulate_all_components(x, q, ws, acc, reference);
        } else {
            // Components without responsibility in the block are skipped (their sums are 0).
            const Index n = x.rows();
            for (Index c = 0; c < K_; ++c) {
                const auto qc = q.col(c);
                const double n_c = static_cast<double>(qc.sum());
                if (n_c == 0) continue;
                add_component(c, n_c, x, qc, ws.latent.block(0, c * H_, n, H_), ws, acc, reference);
            }
        }
    }

    // float64 sums the moments of u = L^T m (see accumulate): turns those of a whole pass into the
    // moments of m, sum q m x~^T = L^-T sum q u x~^T, sum q m = L^-T sum q u and sum q m m^T =
    // L^-T (sum q u u^T) L^-1, once per pass instead of once per row and component.
    void finish(Statistics& sums) const {
        if constexpr (kDifferenceForm) {
            if (sums.szx.rows() == 0) return;  // no moments
            for (Index c = 0; c < K_; ++c) {
                const RowMatrix<double>& inverse_factor = unwhitening_[c];  // L^-1 (T is double here)
                auto szx = sums.szx.middleRows(c * H_, H_);
                auto szz = sums.szz.middleRows(c * H_, H_);
                szx = (inverse_factor.transpose() * szx).eval();
                szz = (inverse_factor.transpose() * szz * inverse_factor).eval();
                sums.sz.row(c) = (sums.sz.row(c) * inverse_factor).eval();
            }
        }
    }

  private:
    // float64: the moments of u (m = L^-T u; `finish` turns them into those of m once per pass): q u
    // and sum q u u^T per component, then every component's moments in two products about the
    // block's centroid p, moved in float64 to the reference points.
    void accumulate_all_components(const RowBlock<T>& x, const WorkBlock<T>& q, Workspace& ws, Statistics& acc,
                                   const double* reference) const {
        const Index n = x.rows();
        auto weighted = ws.means.topRows(n);
        for (Index c = 0; c < K_; ++c) {
            auto latent = ws.latent.block(0, c * H_, n, H_);
            weighted = latent.array().colwise() * q.col(c).array();
            acc.szz.middleRows(c * H_, H_) += (weighted.transpose() * latent).template cast<double>();
            latent = weighted;  // q u, in place of u
        }
        auto centred = ws.centred.topRows(n);
        centred.rightCols(D_) = centred.leftCols(D_).array().square();
        ws.first.noalias() = ws.latent.topRows(n).transpose() * centred.leftCols(D_);
        ws.second.noalias() = q.transpose() * centred;

        // Moments about p -> about r_c, in float64: x~ = (x - p) + delta, delta = p - r_c.
        const RowVector<double> point = ws.point.template cast<double>();
        for (Index c = 0; c < K_; ++c) {
            const double n_c = static_cast<double>(q.col(c).sum());
            const RowVector<double> delta = point - Eigen::Map<const RowVector<double>>(reference + c * D_, D_);
            const RowVector<double> s1 = ws.second.row(c).leftCols(D_).template cast<double>();
            const Vector<double> s_z =  // sum q u of this block
                ws.latent.block(0, c * H_, n, H_).colwise().sum().transpose().template cast<double>();
            move_to_reference(c, n_c, delta, s1, ws.second.row(c).rightCols(D_).template cast<double>(),
                              ws.first.middleRows(c * H_, H_).template cast<double>(), s_z, acc);
        }
    }

    // float32: adds component c's moments of the block, centred on mu_c: q_c the weighted
    // responsibilities (sum n_c > 0), m the rows' posterior means of z.
    template <class Responsibilities, class Means>
    void add_component(Index c, double n_c, const RowBlock<T>& x, const Responsibilities& qc, const Means& m,
                       Workspace& ws, Statistics& acc, const double* reference) const {
        const Index n = x.rows();
        auto e = ws.centred.topRows(n);
        auto augmented = ws.augmented.topRows(n);
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
        move_to_reference(c, n_c, delta, first.row(H_), ws.squares.transpose().template cast<double>(),
                          first.topRows(H_), second.row(H_).transpose(), acc);
        acc.szz.middleRows(c * H_, H_) += second.topRows(H_);
    }

    // Adds component c's moments of a block, taken about a point p (weight n_c, sums s1 = sum q e,
    // s2 = sum q e², first = sum q z e^T [H, D], s_z = sum q z [H], e = x - p), to `acc` about the
    // reference r_c, in float64: x~ = e + delta, delta = p - r_c.
    template <class Sum, class Squares, class First, class LatentSum>
    void move_to_reference(Index c, double n_c, const RowVector<double>& delta, const Sum& s1, const Squares& s2,
                           const First& first, const LatentSum& s_z, Statistics& acc) const {
        acc.sx.row(c) += s1 + n_c * delta;
        acc.sxx.row(c) += s2 + (delta.array() * (2.0 * s1.array() + n_c * delta.array())).matrix();
        acc.szx.middleRows(c * H_, H_) += first + s_z * delta;
        acc.sz.row(c) += s_z.transpose();
    }

    // log pi_c = -inf (an empty component) becomes a finite floor so that q_c = 0.
    static T component_constant(double value) {
        return std::isfinite(value) ? static_cast<T>(value) : log_zero_floor<T>();
    }

    Index K_, D_, H_;
    RowMatrix<T> means_;                     // [K, D]
    RowMatrix<T> inverse_noise_;             // [K, D]
    std::vector<RowMatrix<T>> projections_;  // float32: [D, H] per component, (M^-1 W^T Psi^-1)^T
    RowMatrix<T> stacked_projections_;       // float64: [D, K H] every component's (L^-1 W^T Psi^-1)^T side by side
    std::vector<RowMatrix<T>> unwhitening_;  // [H, H] per component: L^-1 (float64 only)
    std::vector<RowMatrix<T>> loadings_;     // [H, D] per component: W^T
    Vector<T> constant_;                     // [K] log pi_c - D/2 log 2 pi - 1/2 log|C_c|
};

}  // namespace fastelbo
