// Mixture-of-factor-analysers component family for the mixture E-step (Ghahramani & Hinton):
// p(c) = pi_c, p(z | c) = N(0, I_H), p(x | z, c) = N(W_c z + mu_c, Psi_c), Psi_c diagonal.
//
// Log-joints log pi_c + log N(x; mu_c, C_c), C_c = W_c W_c^T + Psi_c, never form C_c or its inverse.
// With the whitened loadings W~ = Psi^-1/2 W and the QR factorisation [W~; I] = [Q_1; Q_2] R, so
// that R^T R = M = I + W~^T W~ (H x H) without forming M (which would square its condition number),
// the Woodbury identity and the determinant lemma give, for e = x - mu_c, x~ = Psi^-1/2 e and the
// posterior mean m = R^-1 u of z, u = Q_1^T x~,
//   e^T C^-1 e = ||x~||^2 - ||u||^2                           (difference form)
//              = ||x~ - W~ m||^2 + ||m||^2                     (sum form)
//   log|C|     = 2 sum_h log|R_hh| + sum_d log psi_d
// The difference form costs one B x D x H product per block of B rows and component; it loses about
// log10(1 + ||W~||^2) digits to cancellation: nothing much while the noise is not tiny relative to
// the loadings, every digit at a Heywood boundary (a noise variance at its floor). The sum form, of
// non-negative terms, cannot cancel; it is also insensitive to errors in m (it is the minimum over m,
// so an error d in m adds only ||R d||^2), at one more product. float32 always uses the sum form;
// float64 fits use it for the components whose ||W~||_F^2 exceeds kDifferenceFormLimit, and passes
// that only score rows (no moments) for every component. Either way O(D H) per point-component pair.
//
// Products. float64 does the O(D H) work of every component at once, as two GEMMs per block over
// all K H columns (a block's rows are packed once, not once per component): u of every component
// from the rows about the block's centroid p, u_c = (x - p) P_c - (mu_c - p) P_c, and the moments
// [q u of every component]^T (x - p) and q^T [x - p, (x - p)^2]; the moments of u become those of
// m = R^-1 u once per pass (`finish`), not per row. e^T Psi^-1 e stays a sum over x - mu_c itself;
// the sum form's components take m from u and add e - W m (one B x H x D product each).
// float32 works component by component on x - mu_c (the sum form needs e - W m anyway), and sums the
// moments of the residuals e - W m, on the noise's scale, turned into those of e in float64 (add_component).
//
// Accuracy. The quadratic is always summed from rows centred on mu_c itself. float64's u and
// moments are taken about the block's centroid, which loses about log10(|x - p| / |x - mu_c|)
// digits (none from an offset shared by the rows: p carries it). float32 centres everything on
// mu_c. Either way the block's moments are moved, in float64, to the caller's reference points r_c;
// rows need no home (kGrouped = false).

#pragma once

#include <Eigen/Cholesky>
#include <Eigen/QR>
#include <cmath>
#include <type_traits>
#include <vector>

#include "fastelbo/factor_analyser_statistics.hpp"
#include "fastelbo/posterior_row.hpp"
#include "fastelbo/row_centring.hpp"
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
    // The all-component products and the cancelling (one-product) form of the quadratic, in float64
    // only (see above).
    static constexpr bool kDifferenceForm = std::is_same_v<T, double>;
    // float64 components whose ||Psi^-1/2 W||_F^2 exceeds this use the sum form: the difference form
    // would lose more than about 4 of float64's 16 digits.
    static constexpr double kDifferenceFormLimit = 1e4;

    struct Workspace {
        RowMatrix<T> centred;    // float64: [B, 2 D] [x - p, (x - p)^2]; float32: [B, D] e = x - mu_c, or r
        RowMatrix<T> residual;   // [B, D] e - W_c m (float32; float64 if a component uses the sum form)
        RowMatrix<T> posterior;  // [B, H] m of one component (float64 sum form)
        RowMatrix<T> latent;     // [B, K H] u (float64; then q u) or m (float32) of every component
        RowMatrix<T> means;      // [B, H] q u of one component (float64)
        RowMatrix<T> augmented;  // [B, H + 1] q [m, 1] (float32)
        RowMatrix<T> first;      // float64: [K H, D] sum q u (x - p)^T; float32: [H + 1, D] sum q [m, 1] e^T
        RowMatrix<T> second;     // float64: [K, 2 D] sum q [x - p, (x - p)^2]; float32: [H + 1, H]
        Vector<T> squares;       // [D] sum q e^2 (float32)
        RowVector<T> point;      // [D] p, the block's centroid (float64)
        RowVector<T> offsets;    // [K H] (mu_c - p) P_c of every component (float64)
    };

    // `centring.reference`: the points moments are taken about (rows need no home: each is centred on
    // every mean). `sum_form_everywhere`: the sum form for every component (inference: scores at
    // full accuracy for one more product; fits keep the cheaper difference form where it holds 12
    // digits).
    FactorAnalysers(const FactorAnalyserMixtureParams<T>& p, RowCentring centring, bool sum_form_everywhere = false)
        : K_(p.n_components),
          D_(p.n_features),
          H_(p.n_factors),
          means_(ConstRowMatrixMap<T>(p.means, K_, D_)),
          inverse_noise_(K_, D_),
          projections_(K_),
          sum_form_(K_, !kDifferenceForm),
          stacked_projections_(kDifferenceForm ? D_ : 0, kDifferenceForm ? K_ * H_ : 0),
          unwhitening_(kDifferenceForm ? K_ : 0),
          loadings_(K_),
          constant_(K_),
          centring_{centring.reference, nullptr} {
        for (Index c = 0; c < K_; ++c) {
            const RowMatrix<double> loadings =
                ConstRowMatrixMap<T>(p.components + c * H_ * D_, H_, D_).template cast<double>();  // W^T
            const RowVector<double> noise =
                Eigen::Map<const RowVector<T>>(p.noise_variance + c * D_, D_).template cast<double>();
            const RowVector<double> inverse_sd = noise.cwiseSqrt().cwiseInverse();
            // [W~; I] = Q R, W~ = Psi^-1/2 W: R^T R = M = I + W~^T W~ without forming M.
            Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic> stacked(D_ + H_, H_);
            stacked.topRows(D_) = (loadings.array().rowwise() * inverse_sd.array()).matrix().transpose();
            stacked.bottomRows(H_).setIdentity();
            const double whitened_norm = stacked.topRows(D_).squaredNorm();  // ||W~||_F^2
            const Eigen::HouseholderQR<Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic>> qr(stacked);
            const RowMatrix<double> R = qr.matrixQR().topRows(H_).template triangularView<Eigen::Upper>();
            const RowMatrix<double> Q1 =  // [D, H], the rows of Q that belong to W~
                (qr.householderQ() * Eigen::MatrixXd::Identity(D_ + H_, H_)).topRows(D_);
            const RowMatrix<double> whitening = (Q1.array().colwise() * inverse_sd.transpose().array()).matrix();
            // m^T = u^T R^-T as rows; u = e^T Psi^-1/2 Q_1.
            const RowMatrix<double> unwhitening =
                R.template triangularView<Eigen::Upper>().transpose().solve(RowMatrix<double>::Identity(H_, H_));
            const double log_det_M = 2.0 * R.diagonal().array().abs().log().sum();
            if constexpr (kDifferenceForm) {
                stacked_projections_.middleCols(c * H_, H_) = whitening.template cast<T>();
                unwhitening_[c] = unwhitening.template cast<T>();
                sum_form_[c] = sum_form_everywhere || whitened_norm > kDifferenceFormLimit;
                any_sum_form_ = any_sum_form_ || sum_form_[c];
            }
            // m^T = e^T Psi^-1/2 Q_1 R^-T as rows (M^-1 W^T Psi^-1 e, transposed).
            projections_[c] = (whitening * unwhitening).template cast<T>();
            loadings_[c] = loadings.template cast<T>();
            inverse_noise_.row(c) = noise.cwiseInverse().template cast<T>();
            const double log_det_noise = noise.array().log().sum();
            constant_(c) = component_constant(static_cast<double>(p.log_weights[c]) - 0.5 * D_ * std::log(2.0 * M_PI) -
                                              0.5 * (log_det_noise + log_det_M));
        }
    }

    Index bytes_per_row() const {
        return static_cast<Index>(sizeof(T)) * ((kDifferenceForm ? (any_sum_form_ ? 4 : 3) : 2) * D_ + K_ * H_ +
                                                2 * K_ + (kDifferenceForm && any_sum_form_ ? 2 : 1) * H_ + 1);
    }
    double flops_per_row() const {
        return static_cast<double>(K_) * ((kDifferenceForm ? 4.0 : 6.0) * D_ * H_ + 4.0 * H_ * H_ + 12.0 * D_ + 20.0);
    }

    Workspace make_workspace(Index block_rows) const {
        const Index B = block_rows, K = K_, D = D_, H = H_;
        if constexpr (kDifferenceForm) {
            const Index S = any_sum_form_ ? B : 0;
            return Workspace{RowMatrix<T>(B, 2 * D), RowMatrix<T>(S, D),     RowMatrix<T>(S, H),
                             RowMatrix<T>(B, K * H), RowMatrix<T>(B, H),     RowMatrix<T>(0, H + 1),
                             RowMatrix<T>(K * H, D), RowMatrix<T>(K, 2 * D), Vector<T>(0),
                             RowVector<T>(D),        RowVector<T>(K * H)};
        } else {
            return Workspace{RowMatrix<T>(B, D),     RowMatrix<T>(B, D),     RowMatrix<T>(0, H),
                             RowMatrix<T>(B, K * H), RowMatrix<T>(0, H),     RowMatrix<T>(B, H + 1),
                             RowMatrix<T>(H + 1, D), RowMatrix<T>(H + 1, H), Vector<T>(D),
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
                if (sum_form_[c]) {
                    // ||e - W m||^2_{Psi^-1} + ||m||^2 with m = R^-1 u (u keeps serving the moments).
                    auto m = ws.posterior.topRows(n);
                    m.noalias() = latent.middleCols(c * H_, H_) * unwhitening_[c];
                    auto r = ws.residual.topRows(n);
                    r = x.rowwise() - means_.row(c);
                    r.noalias() -= m * loadings_[c];
                    lj.col(c).noalias() = r.array().square().matrix() * inverse_noise_.row(c).transpose();
                    lj.col(c) += m.rowwise().squaredNorm();
                } else {
                    // e^T Psi^-1 e - ||u||^2, the first term summed over e = x - mu_c itself.
                    lj.col(c) =
                        ((x.rowwise() - means_.row(c)).array().square().rowwise() * inverse_noise_.row(c).array())
                            .rowwise()
                            .sum()
                            .matrix();
                    lj.col(c) -= latent.middleCols(c * H_, H_).rowwise().squaredNorm();
                }
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
    void accumulate(const RowBlock<T>& x, const WorkBlock<T>& q, const T*, Workspace& ws, Statistics& acc) const {
        const double* reference = centring_.reference;
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

    // float64 sums the moments of u = R m (see accumulate): turns those of a whole pass into the
    // moments of m, sum q m x~^T = R^-1 sum q u x~^T, sum q m = R^-1 sum q u and sum q m m^T =
    // R^-1 (sum q u u^T) R^-T, once per pass instead of once per row and component.
    void finish(Statistics& sums) const {
        if constexpr (kDifferenceForm) {
            if (sums.szx.rows() == 0) return;  // no moments
            for (Index c = 0; c < K_; ++c) {
                const RowMatrix<double>& inverse_factor = unwhitening_[c];  // R^-T (T is double here)
                auto szx = sums.szx.middleRows(c * H_, H_);
                auto szz = sums.szz.middleRows(c * H_, H_);
                szx = (inverse_factor.transpose() * szx).eval();
                szz = (inverse_factor.transpose() * szz * inverse_factor).eval();
                sums.sz.row(c) = (sums.sz.row(c) * inverse_factor).eval();
            }
        }
    }

    const RowCentring& centring() const { return centring_; }

  private:
    // float64: the moments of u (m = R^-1 u; `finish` turns them into those of m once per pass): q u
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
    // responsibilities (sum n_c > 0), m the rows' posterior means of z. The block's sums are taken
    // of the residuals r = e - W m, not of e: sum q e^2 is about ||W||^2 / psi times larger than the
    // noise it must resolve (an elongated component's factor variance can be 1e7 times its noise,
    // all of float32's digits), while r is on the noise's own scale. The sums of e follow in float64:
    //   sum q e = sum q r + W sum q m,  sum q m e^T = sum q m r^T + (sum q m m^T) W^T,
    //   sum q e^2 = sum q r^2 + 2 diag(W sum q m r^T) + diag(W (sum q m m^T) W^T).
    template <class Responsibilities, class Means>
    void add_component(Index c, double n_c, const RowBlock<T>& x, const Responsibilities& qc, const Means& m,
                       Workspace& ws, Statistics& acc, const double* reference) const {
        const Index n = x.rows();
        auto r = ws.centred.topRows(n);
        auto augmented = ws.augmented.topRows(n);
        r = x.rowwise() - means_.row(c);
        r.noalias() -= m * loadings_[c];
        augmented.leftCols(H_) = m.array().colwise() * qc.array();
        augmented.col(H_) = qc;
        ws.first.noalias() = augmented.transpose() * r;
        ws.second.noalias() = augmented.transpose() * m;
        ws.squares.noalias() = r.array().square().matrix().transpose() * qc;

        const RowMatrix<double> loadings = loadings_[c].template cast<double>();  // W^T, [H, D]
        const RowMatrix<double> first_r = ws.first.template cast<double>();      // [sum q m r^T; sum q r^T]
        const RowMatrix<double> second = ws.second.template cast<double>();      // [sum q m m^T; sum q m^T]
        const RowMatrix<double> szz = second.topRows(H_);
        const RowMatrix<double> szx = first_r.topRows(H_) + szz * loadings;  // sum q m e^T
        const RowVector<double> s1 = first_r.row(H_) + second.row(H_) * loadings;
        const RowVector<double> s2 =
            ws.squares.transpose().template cast<double>() +
            (2.0 * (loadings.array() * first_r.topRows(H_).array()).colwise().sum() +
             (loadings.array() * (szz * loadings).array()).colwise().sum())
                .matrix();

        // Moments about mu_c -> about r_c, in float64: x~ = e + delta, delta = mu_c - r_c.
        const RowVector<double> delta =
            means_.row(c).template cast<double>() - Eigen::Map<const RowVector<double>>(reference + c * D_, D_);
        move_to_reference(c, n_c, delta, s1, s2, szx, second.row(H_).transpose(), acc);
        acc.szz.middleRows(c * H_, H_) += szz;
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
    std::vector<RowMatrix<T>> projections_;  // [D, H] per component, (M^-1 W^T Psi^-1)^T (float32 uses it)
    std::vector<bool> sum_form_;             // per component: the quadratic in the sum form
    bool any_sum_form_ = false;
    RowMatrix<T> stacked_projections_;       // float64: [D, K H] every component's Psi^-1/2 Q_1 side by side
    std::vector<RowMatrix<T>> unwhitening_;  // [H, H] per component: R^-T (float64 only)
    std::vector<RowMatrix<T>> loadings_;     // [H, D] per component: W^T
    Vector<T> constant_;                     // [K] log pi_c - D/2 log 2 pi - 1/2 log|C_c|
    RowCentring centring_;
};

}  // namespace fastelbo
