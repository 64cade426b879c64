// Gaussian component families for the mixture E-step: each turns a block of rows into log-joints
// log pi_c + log N(x_n; mu_c, Sigma_c) with matrix products, and accumulates the block's first and
// second moments (see mixture_statistics.hpp) from the weighted responsibilities.
//
//   diag / spherical: ||x - mu||^2-expansion. Features z = [x~, x~^2] (diag) or [x~, ||x~||^2]
//                     (spherical) times a (F x K) parameter matrix: one GEMM for the log-joints and one
//                     GEMM (Q^T Z) for all first and second moments.
//   tied:             y = x~ U (U the precision Cholesky factor), then ||y - m_c||^2 by expansion,
//                     its term ||y||^2, common to the row's components, kept apart (row_offsets).
//   full:             per component y = (x - mu_c) U_c; second moments by a weighted rank update.
//
// Accuracy. An expansion ||x - mu||^2 = ||x~||^2 - 2 x~.mu~ + ||mu~||^2 about a point p (x~ = x - p)
// loses the digits of ||x~||^2 / ||x - mu||^2, and so do moments about p: fatal in float32 when rows
// sit far from p. The expansion families ("grouped") therefore expand each run of rows about the
// run's own centroid (`expand_about`); the mixture pass makes runs of rows that share a home
// component when the caller names one, so that rows far apart never share a point. Moments are
// summed about that point in the working precision and converted, in float64, to the caller's
// reference points r_c when the run ends (`flush`). Full covariances need no expansion; their moments
// are taken per sub-block about each component's local weighted mean and converted to r_c.
//
// Where a run's point cannot hold a component (FarExpansion): a component c whose mean lies m_c =
// ||mu_c - p||^2_{P_c} > kMaxExpansionCondition<T> from the point, in its own metric, gets
// log-joints with an error up to about eps * (m_c + ||x~||^2_{P_c}) - thousands of nats in float32
// for a tight component 1e5 of its widths away. That is harmless where the component's log-joint is
// far below the row's best (its responsibility is exactly 0 either way), but not where it may
// matter: such rows (`refine_log_joints`) get all their log-joints re-evaluated in float64 (then
// rounded to T relative to the row's largest), and their moments summed in float64 about the run's
// point (`accumulate_refined`) instead of in T; the run's flush moves them to the reference points
// with the others (one shift, so that the M-step's scatter cancels exactly). float64 sums them
// directly (x - mu_c, no expansion). float32's diag/spherical family expands them in float64 about
// the same point, with products (about 9 digits more than float32's expansion, at a fraction of the
// direct sums' cost where many rows qualify, as with broad starting components), and sums directly
// only the components beyond float64's own kMaxExpansionCondition. Homes make these rows rare once
// the components have found their clusters (a row far from its run's point has the wrong home);
// without them the rule still holds.
#pragma once

#include <cmath>
#include <limits>
#include <utility>
#include <vector>

#include "fastelbo/gaussian_row_maths.hpp"
#include "fastelbo/mixture_statistics.hpp"
#include "fastelbo/posterior_row.hpp"
#include "fastelbo/row_centring.hpp"
#include "fastelbo/row_maths.hpp"
#include "fastelbo/tied_whitening.hpp"
#include "fastelbo/types.hpp"

namespace fastelbo {

// Moments of a run of rows about its expansion point, in float64 (the group accumulator).
using GroupSums = MixtureSums<double>;

// The largest squared distance m_c = ||mu_c - p||^2_{P_c} of a component from an expansion point
// at which the expansion keeps the log-joints accurate (about log10 of it digits are lost: 2 of
// float32's 7, 5 of float64's 16). Beyond it, a component is "far" from the point.
template <class T>
constexpr double kMaxExpansionCondition = std::is_same_v<T, float> ? 1e2 : 1e5;

// Which rows of a block a component far from the current expansion point may matter to (see
// "Accuracy" above). A far component's expanded log-joint l may be off by up to its error bound
// e = (4 + 2D) eps (|constant| + m_c + 1 + ||x~||^2 * scale_c), the working precision's epsilon times
// the magnitudes of the terms summed (with a factor for the GEMM's sums); it may matter to a row if
// l + e is not below the row's largest log-joint by more than the posterior's underflow cut-off
// (beyond which a responsibility is exactly 0). The test is vectorised over components, with
// near components masked by an offset of -inf.
template <class T>
struct FarExpansion {
    bool any = false;                           // whether the current point has a far component
    Eigen::Array<T, 1, Eigen::Dynamic> offset;  // [K] far: e without the row's part; near: -inf
    Eigen::Array<T, 1, Eigen::Dynamic> slope;   // [K] far: e per unit of the row's ||x~||^2; near: 0
    std::vector<Index> rows;                    // rows of the current block that need re-evaluation

    explicit FarExpansion(Index K = 0) : offset(K), slope(K) {}

    // Starts a new expansion point; then set() every component.
    void reset() { any = false; }

    // Component c about the current point: its log-joint constant, m_c, and the factor `scale` that
    // bounds its metric ||x~||^2_{P_c} <= scale * (the row norm find_rows gets).
    void set(Index c, Index D, double constant, double condition, double scale) {
        const bool far = condition > kMaxExpansionCondition<T>;
        const double factor = (4.0 + 2.0 * static_cast<double>(D)) * std::numeric_limits<T>::epsilon();
        offset(c) =
            far ? static_cast<T>(factor * (std::abs(constant) + condition + 1.0)) : -std::numeric_limits<T>::infinity();
        slope(c) = far ? static_cast<T>(factor * scale) : T(0);
        any = any || far;
    }

    // Lists in `rows` the rows of `lj` that a far component may matter to; `row_norms(i)` is row
    // i's ||x~||^2 in the unit set() assumed.
    template <class Norms>
    void find_rows(const WorkBlock<T>& lj, const Norms& row_norms) {
        rows.clear();
        if (!any) return;
        const T cutoff = std::log(std::numeric_limits<T>::min());
        for (Index i = 0; i < lj.rows(); ++i) {
            const T row_norm = std::min(static_cast<T>(row_norms(i)), std::numeric_limits<T>::max());  // 0 * inf
            const T reach = (lj.row(i).array() + offset + row_norm * slope).maxCoeff();
            if (reach >= lj.row(i).maxCoeff() + cutoff) rows.push_back(i);
        }
    }
};

// diag and spherical covariances.
template <class T>
class DiagonalGaussians {
  public:
    using Statistics = MixtureStatistics;
    static constexpr bool kGrouped = true;
    // float32 re-evaluates rows a far component may matter to by a float64 expansion (products);
    // float64 sums them directly.
    static constexpr bool kFloat64Refine = !std::is_same_v<T, double>;

    struct Workspace {
        RowMatrix<T> features;                                        // [B, F]: x~ and x~^2 (or ||x~||^2)
        Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic> projection;  // [F, K] about the current point
        Vector<T> constant;                                           // [K]
        RowMatrix<T> first, second;                                   // float32 moment products [K, D], [K, D|1]
        FarExpansion<T> far;
        // The rows a far component may matter to, in float64 (see refine_log_joints).
        RowVector<double> point;                                             // [D] the expansion point
        Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic> projection64;  // [F, K] as projection
        Vector<double> constant64;                                           // [K] as constant
        std::vector<Index> beyond64;     // components too far for a float64 expansion: summed directly
        RowMatrix<double> far_features;  // [B, F] z of the refined rows
        RowMatrix<double> far_values;    // [B, K] their log-joints, then their responsibilities
        Vector<double> row_offset;       // [B] float32: a refined row's largest log-joint (row_offsets), else 0
    };

    explicit DiagonalGaussians(const GaussianMixtureParams<T>& p, RowCentring centring = {})
        : DiagonalGaussians(p, gaussian_constants(p, EmptyComponents::Infinite), centring) {}

    Index bytes_per_row() const { return static_cast<Index>(sizeof(T)) * (F_ + 2 * K_ + D_); }
    double flops_per_row() const { return 4.0 * F_ * K_ + 20.0 * K_; }

    Workspace make_workspace(Index block_rows) const {
        Workspace ws{RowMatrix<T>(block_rows, F_),
                     decltype(Workspace::projection)(F_, K_),
                     Vector<T>(K_),
                     RowMatrix<T>(),
                     RowMatrix<T>(),
                     FarExpansion<T>(K_),
                     RowVector<double>(D_),
                     decltype(Workspace::projection64)(F_, K_),
                     Vector<double>(K_),
                     {},
                     RowMatrix<double>(kFloat64Refine ? block_rows : 0, F_),
                     RowMatrix<double>(kFloat64Refine ? block_rows : 0, K_),
                     Vector<double>(kFloat64Refine ? block_rows : 0)};
        // The squared-feature rows of the projection do not depend on the expansion point.
        for (Index c = 0; c < K_; ++c)
            squared_feature_entries(&precision_(c, 0), D_, spherical_, ws.projection64.col(c));
        ws.projection.bottomRows(F_ - D_) = ws.projection64.bottomRows(F_ - D_).template cast<T>();
        if constexpr (!std::is_same_v<T, double>) {
            ws.first.resize(K_, D_);
            ws.second.resize(K_, spherical_ ? 1 : D_);
        }
        return ws;
    }

    // Prepares the workspace to expand rows about `point`.
    void expand_about(const RowVector<T>& point, Workspace& ws) const {
        ws.far.reset();
        ws.point = point.template cast<double>();
        ws.beyond64.clear();
        for (Index c = 0; c < K_; ++c) {
            const double mahalanobis_mean =
                expansion_column(means_ + c * D_, &precision_(c, 0), ws.point, D_, ws.projection64.col(c));
            ws.constant64(c) = gaussian_log_joint(base_constant_(c), mahalanobis_mean);
            ws.constant(c) = finite_component_constant<T>(ws.constant64(c));
            ws.far.set(c, D_, base_constant_(c), mahalanobis_mean, max_precision_(c));
            if constexpr (kFloat64Refine) {
                if (mahalanobis_mean > kMaxExpansionCondition<double>) ws.beyond64.push_back(c);
            }
        }
        ws.projection.topRows(D_) = ws.projection64.topRows(D_).template cast<T>();
    }

    void log_joint(const RowBlock<T>& x, const RowVector<T>& point, Workspace& ws, WorkBlock<T> lj) const {
        const Index n = x.rows();
        ws.far.rows.clear();
        auto z = ws.features.topRows(n);
        z.leftCols(D_) = x.rowwise() - point;
        if (spherical_) {
            z.col(D_) = z.leftCols(D_).rowwise().squaredNorm();
        } else {
            z.rightCols(D_) = z.leftCols(D_).array().square();
        }
        lj.noalias() = z * ws.projection;
        lj.rowwise() += ws.constant.transpose();
        if constexpr (kFloat64Refine) ws.row_offset.head(n).setZero();
    }

    // float32: each refined row's largest log-joint, left out of the log-joints refine_log_joints
    // writes (0 for the others); the pass adds it to the row's log-normaliser. float64 writes its
    // refined log-joints whole.
    const double* row_offsets(const Workspace& ws) const {
        return kFloat64Refine ? ws.row_offset.data() : nullptr;
    }

    // Sums directly, in float64, the log-joints of the rows of the block that a far component may
    // matter to (see "Accuracy"), lists them in ws.far.rows, and returns their number.
    Index refine_log_joints(const RowBlock<T>& x, Workspace& ws, WorkBlock<T> lj) const {
        if (!ws.far.any) return 0;
        const auto z = ws.features.topRows(x.rows());
        if (spherical_) {
            ws.far.find_rows(lj, z.col(D_));
        } else {
            ws.far.find_rows(lj, z.rightCols(D_).rowwise().sum());
        }
        const Index r = static_cast<Index>(ws.far.rows.size());
        if (r == 0) return 0;
        if constexpr (!kFloat64Refine) {
            // float64 expands only components within kMaxExpansionCondition<double>: the far ones
            // are summed directly for every listed row.
            for (Index i : ws.far.rows) {
                for (Index c = 0; c < K_; ++c) lj(i, c) = direct_log_joint(x, i, c);
            }
        } else {
            // float32: the listed rows expanded in float64 about the same point (features and one
            // product), which holds ~9 more digits than float32's expansion; components beyond
            // even float64's reach are summed directly. Each row is rounded to float32 relative to
            // its largest log-joint (round_relative_to_largest), so that far rows keep float32's
            // digits in the differences. The features stay for accumulate_refined.
            auto features = ws.far_features.topRows(r);
            for (Index k = 0; k < r; ++k) {
                const auto centred = x.row(ws.far.rows[k]).template cast<double>() - ws.point;
                features.row(k).head(D_) = centred;
                if (spherical_) {
                    features(k, D_) = centred.squaredNorm();
                } else {
                    features.row(k).tail(D_) = centred.array().square().matrix();
                }
            }
            auto values = ws.far_values.topRows(r);
            values.noalias() = features * ws.projection64;
            values.rowwise() += ws.constant64.transpose();
            for (Index k = 0; k < r; ++k) {
                const Index i = ws.far.rows[k];
                for (Index c : ws.beyond64) values(k, c) = direct_log_joint(x, i, c);
                ws.row_offset(i) = round_relative_to_largest(&values(k, 0), K_, &lj(i, 0));
            }
        }
        return r;
    }

    // log pi_c + log N(x_i; mu_c, Sigma_c) summed directly in float64 (x - mu_c, no expansion).
    double direct_log_joint(const RowBlock<T>& x, Index i, Index c) const {
        const auto mean = Eigen::Map<const RowVector<T>>(means_ + c * D_, D_).template cast<double>().array();
        return gaussian_log_joint(base_constant_(c), diagonal_squared_distance(x.row(i).template cast<double>().array(),
                                                                               mean, precision_.row(c).array()));
    }

    // Adds the rows listed by refine_log_joints to the run's sums `acc` in float64 (moments about
    // the expansion point, as `accumulate` takes them, so that the run's flush moves all of them to
    // the reference points at once) and their responsibilities to `nk` (which the caller adds to
    // acc.nk and the pass's nk), then zeroes their (weighted) responsibilities in q so that
    // `accumulate` leaves them out.
    void accumulate_refined(const RowBlock<T>& x, WorkBlock<T> q, const RowVector<T>& point, Workspace& ws,
                            GroupSums& acc, Vector<double>& nk) const {
        if constexpr (kFloat64Refine) {
            // float32: the float64 features refine_log_joints left, in two float64 products.
            const Index r = static_cast<Index>(ws.far.rows.size());
            if (r == 0) return;
            auto weights = ws.far_values.topRows(r);
            for (Index k = 0; k < r; ++k) {
                weights.row(k) = q.row(ws.far.rows[k]).template cast<double>();
                q.row(ws.far.rows[k]).setZero();
            }
            const auto features = ws.far_features.topRows(r);
            nk += weights.colwise().sum().transpose();
            acc.sx.noalias() += weights.transpose() * features.leftCols(D_);
            Eigen::Map<RowMatrix<double>>(acc.sxx.data(), K_, F_ - D_).noalias() +=
                weights.transpose() * features.rightCols(F_ - D_);
            return;
        }
        if (ws.far.rows.empty()) return;
        RowVector<double> centred(D_);
        for (Index i : ws.far.rows) {
            centred = x.row(i).template cast<double>() - point.template cast<double>();
            for (Index c = 0; c < K_; ++c) {
                const double weight = static_cast<double>(q(i, c));
                if (weight == 0) continue;
                nk(c) += weight;
                add_first_moment(weight, centred, &acc.sx(c, 0));
                add_second_moment(weight, centred, spherical_, acc.sxx.data() + (spherical_ ? c : c * D_));
            }
            q.row(i).setZero();
        }
    }

    // Adds the block's moments about the expansion point to `acc`. The features are still in the
    // workspace from log_joint.
    void accumulate(const RowBlock<T>&, const WorkBlock<T>& q, const T*, Workspace& ws, GroupSums& acc) const {
        const auto z = ws.features.topRows(q.rows());
        if constexpr (std::is_same_v<T, double>) {
            acc.sx.noalias() += q.transpose() * z.leftCols(D_);
            if (spherical_) {
                acc.sxx.noalias() += q.transpose() * z.col(D_);
            } else {
                Eigen::Map<RowMatrix<double>>(acc.sxx.data(), K_, D_).noalias() += q.transpose() * z.rightCols(D_);
            }
        } else {
            ws.first.noalias() = q.transpose() * z.leftCols(D_);
            ws.second.noalias() = q.transpose() * z.rightCols(F_ - D_);
            acc.sx += ws.first.template cast<double>();
            Eigen::Map<RowMatrix<double>>(acc.sxx.data(), K_, F_ - D_) += ws.second.template cast<double>();
        }
    }

    // Moves `acc` (about `point_t`) into `out` about the reference points r_c:
    //   s1' = s1 + n delta,  s2' = s2 + 2 delta s1 + n delta^2  (delta = point - r_c), then clears acc.
    void flush(GroupSums& acc, const RowVector<T>& point_t, MixtureStatistics& out) const {
        const double* reference = centring_.reference;
        const RowVector<double> point = point_t.template cast<double>();
        for (Index c = 0; c < K_; ++c) {
            const double n = acc.nk(c);
            if (n == 0) continue;  // no responsibility: every moment is exactly zero
            double spherical_second = 0;
            for (Index d = 0; d < D_; ++d) {
                const double delta = point(d) - reference[c * D_ + d];
                const double s1 = acc.sx(c, d);
                out.sx(c, d) += s1 + n * delta;
                if (spherical_) {
                    spherical_second += delta * (2 * s1 + n * delta);
                } else {
                    out.sxx(c * D_ + d) += acc.sxx(c * D_ + d) + delta * (2 * s1 + n * delta);
                }
            }
            if (spherical_) out.sxx(c) += acc.sxx(c) + spherical_second;
        }
        acc.set_zero();
    }

    const RowCentring& centring() const { return centring_; }

  private:
    const T* means_;  // [K, D]
    bool spherical_;
    Index K_, D_, F_;
    DiagonalGaussians(const GaussianMixtureParams<T>& p, GaussianConstants constants, RowCentring centring)
        : means_(p.means),
          spherical_(p.type == CovarianceType::Spherical),
          K_(p.n_components),
          D_(p.n_features),
          F_(spherical_ ? D_ + 1 : 2 * D_),
          precision_(std::move(constants.precision)),
          max_precision_(precision_.rowwise().maxCoeff()),
          base_constant_(std::move(constants.base)),
          centring_(centring) {}

    RowMatrix<double> precision_;   // [K, D]
    Vector<double> max_precision_;  // [K] largest precision of each component
    Vector<double> base_constant_;  // [K] log pi_c - D/2 log(2 pi) + log|U_c|
    RowCentring centring_;
};

// One covariance shared by all components.
template <class T>
class TiedGaussians {
  public:
    using Statistics = MixtureStatistics;
    static constexpr bool kGrouped = true;

    struct Workspace {
        RowMatrix<T> centred;         // [B, D] x~ = x - point
        RowMatrix<T> whitened;        // [B, D] x~ U
        RowMatrix<T> whitened_means;  // [K, D] (mu_c - point) U
        Vector<T> constant;           // [K]
        RowMatrix<T> first, scatter;  // float32 moment products [K, D], [D, D]
        FarExpansion<T> far;
        RowVector<double> whitened_row;  // [D] a refined row x U in float64
        Vector<double> row_offset;       // [B] the part of each row's log-joints common to all (row_offsets)
        Vector<double> distances;        // [K] a refined row's ||y - m_c||^2, then its log-joints
    };

    // The squared norm of a refined row y (whitened about the components' centre) up to which its
    // log-joints are summed whole (rounding the differences between components by at most eps *
    // 2**26 = 1.5e-8 nats); beyond it they are taken relative to the nearest component, exactly,
    // at twice the cost.
    static constexpr double kRoundedDistanceLimit = 67108864.0;  // 2**26

    explicit TiedGaussians(const GaussianMixtureParams<T>& p, RowCentring centring = {})
        : K_(p.n_components),
          D_(p.n_features),
          chol_(ConstRowMatrixMap<T>(p.precisions_cholesky, D_, D_)),
          chol64_(chol_.template cast<double>()),
          whitened_(whitened_about_centre(ConstRowMatrixMap<T>(p.means, K_, D_), chol64_)),
          base_constant_(gaussian_constants(p, EmptyComponents::Infinite).base),
          centring_(centring) {}

    Index bytes_per_row() const { return static_cast<Index>(sizeof(T)) * (3 * D_ + 2 * K_); }
    double flops_per_row() const { return 3.0 * D_ * D_ + 4.0 * K_ * D_ + 20.0 * K_; }

    Workspace make_workspace(Index block_rows) const {
        Workspace ws{RowMatrix<T>(block_rows, D_),
                     RowMatrix<T>(block_rows, D_),
                     RowMatrix<T>(K_, D_),
                     Vector<T>(K_),
                     RowMatrix<T>(),
                     RowMatrix<T>(),
                     FarExpansion<T>(K_),
                     RowVector<double>(D_),
                     Vector<double>(block_rows),
                     Vector<double>(K_)};
        if constexpr (!std::is_same_v<T, double>) {
            ws.first.resize(K_, D_);
            ws.scatter.resize(D_, D_);
        }
        return ws;
    }

    void expand_about(const RowVector<T>& point, Workspace& ws) const {
        const RowVector<double> point64 = point.template cast<double>();
        const RowVector<double> whitened_point = (point64 - whitened_.centre) * chol64_;
        const double point_norm = whitened_point.norm();
        RowMatrix<double> relative(K_, D_);
        for (Index c = 0; c < K_; ++c) whitened_.relative_to(c, point64, whitened_point, point_norm, relative.row(c));
        ws.whitened_means = relative.template cast<T>();
        ws.far.reset();
        for (Index c = 0; c < K_; ++c) {
            const double condition = relative.row(c).squaredNorm();
            ws.constant(c) = finite_component_constant<T>(gaussian_log_joint(base_constant_(c), condition));
            ws.far.set(c, D_, base_constant_(c), condition, 1.0);
        }
    }

    void log_joint(const RowBlock<T>& x, const RowVector<T>& point, Workspace& ws, WorkBlock<T> lj) const {
        const Index n = x.rows();
        ws.far.rows.clear();
        auto xc = ws.centred.topRows(n);
        auto y = ws.whitened.topRows(n);
        xc = x.rowwise() - point;
        y.noalias() = xc * chol_;
        lj.noalias() = y * ws.whitened_means.transpose();
        // -1/2 ||y||^2 is common to a row's log-joints: kept apart (row_offsets), so that the
        // differences between components, all the posterior reads, are not rounded at its scale
        // (a row 1e17 away from the data tied every component).
        ws.row_offset.head(n) = (T(-0.5) * y.rowwise().squaredNorm()).template cast<double>();
        lj.rowwise() += ws.constant.transpose();
    }

    // The part of each row's log-joint common to all components, left out of the log-joints that
    // log_joint and refine_log_joints write; the pass adds it to the row's log-normaliser.
    const double* row_offsets(const Workspace& ws) const { return ws.row_offset.data(); }

    // As DiagonalGaussians::refine_log_joints: log pi_c + log N summed directly in float64 (the row
    // whitened as x U, no expansion) for the rows a far component may matter to.
    Index refine_log_joints(const RowBlock<T>& x, Workspace& ws, WorkBlock<T> lj) const {
        if (!ws.far.any) return 0;
        ws.far.find_rows(lj, ws.whitened.topRows(x.rows()).rowwise().squaredNorm());
        for (Index i : ws.far.rows) {
            const auto& y = ws.whitened_row;
            ws.whitened_row.noalias() = (x.row(i).template cast<double>() - whitened_.centre) * chol64_;
            auto& values = ws.distances;
            if (y.squaredNorm() <= kRoundedDistanceLimit) {
                // Near the components' centre: each log-joint whole in float64, rounded to T
                // relative to the row's largest (its offset).
                for (Index c = 0; c < K_; ++c)
                    values(c) = gaussian_log_joint(base_constant_(c), (y - whitened_.means.row(c)).squaredNorm());
                ws.row_offset(i) = round_relative_to_largest(values.data(), K_, &lj(i, 0));
                continue;
            }
            // Far from it: relative to the nearest component r, ||y - m_c||^2 - ||y - m_r||^2 as
            // (m_r - m_c).(2y - m_c - m_r), without the rounding of two squares at the scale of
            // ||y||^2; the row's offset is -1/2 ||y - m_r||^2 plus the largest of these log-joints.
            auto& distances = ws.distances;
            Index nearest = 0;
            for (Index c = 0; c < K_; ++c) {
                distances(c) = (y - whitened_.means.row(c)).squaredNorm();
                if (distances(c) < distances(nearest)) nearest = c;
            }
            const auto m_r = whitened_.means.row(nearest);
            const double nearest_distance = distances(nearest);
            for (Index c = 0; c < K_; ++c) {
                const auto m_c = whitened_.means.row(c);
                values(c) = gaussian_log_joint(base_constant_(c), (m_r - m_c).dot(2.0 * y - m_c - m_r));
            }
            ws.row_offset(i) = -0.5 * nearest_distance + round_relative_to_largest(values.data(), K_, &lj(i, 0));
        }
        return static_cast<Index>(ws.far.rows.size());
    }

    // As DiagonalGaussians::accumulate_refined; the data scatter's lower triangle gets
    // w (x - point)(x - point)^T. `accumulate` leaves these rows out of the data scatter too.
    void accumulate_refined(const RowBlock<T>& x, WorkBlock<T> q, const RowVector<T>& point, Workspace& ws,
                            GroupSums& acc, Vector<double>& nk) const {
        Eigen::Map<RowMatrix<double>> scatter(acc.sxx.data(), D_, D_);
        RowVector<double> centred(D_);
        for (Index i : ws.far.rows) {
            centred = x.row(i).template cast<double>() - point.template cast<double>();
            double row_weight = 0;
            for (Index c = 0; c < K_; ++c) {
                const double weight = static_cast<double>(q(i, c));
                if (weight == 0) continue;
                nk(c) += weight;
                row_weight += weight;
                add_first_moment(weight, centred, &acc.sx(c, 0));
            }
            for (Index r = 0; r < D_; ++r)
                scatter.row(r).head(r + 1) += (row_weight * centred(r)) * centred.head(r + 1);
            q.row(i).setZero();
        }
    }

    // Adds the block's first moments about the point to acc.sx, and its data scatter
    // sum_n w_n x~_n x~_n^T (lower triangle) to acc.sxx.
    void accumulate(const RowBlock<T>& x, const WorkBlock<T>& q, const T* sample_weight, Workspace& ws,
                    GroupSums& acc) const {
        const Index n = x.rows();
        const auto xc = ws.centred.topRows(n);
        if constexpr (std::is_same_v<T, double>) {
            acc.sx.noalias() += q.transpose() * xc;
        } else {
            ws.first.noalias() = q.transpose() * xc;
            acc.sx += ws.first.template cast<double>();
        }
        auto rows = ws.whitened.topRows(n);  // the whitened rows are no longer needed
        if (sample_weight != nullptr) {
            rows = xc.array().colwise() * ConstVectorMap<T>(sample_weight, n).array().sqrt();
        } else {
            rows = xc;
        }
        for (Index i : ws.far.rows) rows.row(i).setZero();  // summed by accumulate_refined
        Eigen::Map<RowMatrix<double>> scatter(acc.sxx.data(), D_, D_);
        if constexpr (std::is_same_v<T, double>) {
            scatter.template selfadjointView<Eigen::Lower>().rankUpdate(rows.transpose());
        } else {
            ws.scatter.setZero();
            ws.scatter.template selfadjointView<Eigen::Lower>().rankUpdate(rows.transpose());
            scatter.template triangularView<Eigen::Lower>() += ws.scatter.template cast<double>();
        }
    }

    // Moves `acc` into `out` about the r_c: with delta_c = point - r_c,
    //   sum_c sum_n q_nc (x - r_c)(x - r_c)^T = data scatter + sum_c (s1_c delta_c^T + delta_c s1_c^T + n_c delta_c
    //   delta_c^T).
    void flush(GroupSums& acc, const RowVector<T>& point_t, MixtureStatistics& out) const {
        const double* reference = centring_.reference;
        const RowVector<double> point = point_t.template cast<double>();
        Index active = 0;
        RowMatrix<double> deltas(K_, D_), firsts(K_, D_);
        Vector<double> counts(K_);
        for (Index c = 0; c < K_; ++c) {
            const double n = acc.nk(c);
            if (n == 0) continue;
            const RowVector<double> delta = point - ConstVectorMap<double>(reference + c * D_, D_).transpose();
            out.sx.row(c) += acc.sx.row(c) + n * delta;
            deltas.row(active) = delta;
            firsts.row(active) = acc.sx.row(c);
            counts(active++) = n;
        }
        Eigen::Map<RowMatrix<double>> sxx(out.sxx.data(), D_, D_);
        sxx.template triangularView<Eigen::Lower>() += Eigen::Map<const RowMatrix<double>>(acc.sxx.data(), D_, D_);
        if (active > 0) {
            const auto d = deltas.topRows(active);
            const RowMatrix<double> cross = firsts.topRows(active).transpose() * d;
            sxx += cross + cross.transpose();
            sxx.noalias() += d.transpose() * (d.array().colwise() * counts.head(active).array()).matrix();
        }
        acc.set_zero();
    }

    const RowCentring& centring() const { return centring_; }

  private:
    Index K_, D_;
    RowMatrix<T> chol_;
    RowMatrix<double> chol64_;
    WhitenedMeans whitened_;  // about the centre of the means (see tied_whitening.hpp)
    Vector<double> base_constant_;
    RowCentring centring_;
};

// One full covariance per component: no expansion, so rows need no home.
//
// float32 rounds each log-joint whole, to about eps * its size: a row far from the components that
// reach it (a row between far clusters, 2,000 widths from both: log-joints near -5e5, 0.03 apart in
// float32) would get responsibilities 0.01 off. Rows that several components reach (within the
// posterior's underflow window of the row's largest log-joint, allowing for that round-off), one
// of them with a log-joint of size beyond kRefinedLogJoint, are evaluated again in float64 and
// rounded relative to their largest log-joint, which is kept apart (row_offsets), as the diag
// family's far rows are. Such rows are rare: a row near a cluster has one component in reach, and
// rows that overlapping components share lie within tens of widths of them.
template <class T>
class FullGaussians {
  public:
    using Statistics = MixtureStatistics;
    static constexpr bool kGrouped = false;
    static constexpr bool kFloat64Refine = !std::is_same_v<T, double>;

    // Column-major: the whitening runs as U_c^T (x - mu_c)^T over columns of rows, the faster
    // orientation for Eigen's small triangular products.
    using ColumnMatrix = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic>;

    struct Workspace {
        ColumnMatrix centred;                           // [D, B] (x - mu_c)^T
        ColumnMatrix whitened;                          // [D, B] U_c^T (x - mu_c)^T
        RowMatrix<T> scatter;                           // [D, D]
        RowMatrix<T> local_means;                       // [K, D]
        Vector<T> roots;                                // [B] sqrt(q) of the gathered rows
        RowVector<double> first, delta, shifted_first;  // [D] one component's shift to its reference
        Vector<double> row_offset;                      // [B] float32: a refined row's largest log-joint, else 0
        Vector<double> values;                          // [K] a refined row's float64 log-joints
        Vector<double> centred64;                       // [D] a refined row's x - mu_c in float64
    };

    explicit FullGaussians(const GaussianMixtureParams<T>& p, RowCentring centring = {})
        : K_(p.n_components),
          D_(p.n_features),
          means_(ConstRowMatrixMap<T>(p.means, K_, D_)),
          transposed_chols_(K_),
          constant_(K_),
          centring_(centring) {
        const Vector<double> base = gaussian_constants(p, EmptyComponents::Infinite).base;
        for (Index c = 0; c < K_; ++c) {
            // The row-major U_c read column-major is U_c^T.
            transposed_chols_[c] = Eigen::Map<const ColumnMatrix>(p.precisions_cholesky + c * D_ * D_, D_, D_);
            lower_triangular_ =
                lower_triangular_ &&
                transposed_chols_[c].template triangularView<Eigen::StrictlyUpper>().toDenseMatrix().isZero(0);
            constant_(c) = finite_component_constant<T>(base(c));
        }
        if constexpr (kFloat64Refine) base_constant_ = base;
    }

    Index bytes_per_row() const { return static_cast<Index>(sizeof(T)) * (2 * D_ + 2 * K_); }
    double flops_per_row() const { return 3.0 * K_ * D_ * D_ + 6.0 * K_ * D_ + 20.0 * K_; }

    Workspace make_workspace(Index block_rows) const {
        const Index refined = kFloat64Refine ? 1 : 0;
        return Workspace{ColumnMatrix(D_, block_rows),
                         ColumnMatrix(D_, block_rows),
                         RowMatrix<T>(D_, D_),
                         RowMatrix<T>(K_, D_),
                         Vector<T>(block_rows),
                         RowVector<double>(D_),
                         RowVector<double>(D_),
                         RowVector<double>(D_),
                         Vector<double>(refined * block_rows),
                         Vector<double>(refined * K_),
                         Vector<double>(refined * D_)};
    }

    // float32: each refined row's largest log-joint, left out of the log-joints log_joint writes (0
    // for the others); the pass adds it to the row's log-normaliser. float64 rounds nothing whole
    // that matters (eps * 5e5 is 1e-10) and keeps every log-joint whole.
    const double* row_offsets(const Workspace& ws) const {
        return kFloat64Refine ? ws.row_offset.data() : nullptr;
    }

    void log_joint(const RowBlock<T>& x, Workspace& ws, WorkBlock<T> lj) const {
        const Index n = x.rows();
        // The rows of x, read column-major, are the columns of x^T.
        const Eigen::Map<const ColumnMatrix, 0, Eigen::OuterStride<>> xt(x.data(), D_, n,
                                                                         Eigen::OuterStride<>(x.outerStride()));
        auto centred = ws.centred.leftCols(n);
        auto whitened = ws.whitened.leftCols(n);
        for (Index c = 0; c < K_; ++c) {
            centred = xt.colwise() - means_.row(c).transpose();
            // fastelbo's factors are triangular: a triangular product does half the flops.
            if (lower_triangular_)
                whitened.noalias() = transposed_chols_[c].template triangularView<Eigen::Lower>() * centred;
            else
                whitened.noalias() = transposed_chols_[c] * centred;
            lj.col(c) = gaussian_log_joint(constant_(c), whitened.colwise().squaredNorm().transpose().array()).matrix();
        }
        if constexpr (kFloat64Refine) {
            ws.row_offset.head(n).setZero();
            // A component in reach lies within the underflow window (87 nats) of the row's largest
            // log-joint, so only rows whose largest is beyond half of kRefinedLogJoint can qualify:
            // one vectorised maximum per row spares the others the test (which cost up to 10% of a
            // float32 pass at K=64).
            const T candidate = static_cast<T>(kRefinedLogJoint / 2);
            for (Index i = 0; i < n; ++i) {
                const T largest = lj.row(i).maxCoeff();
                if (!(std::abs(largest) > candidate)) continue;
                if (needs_refinement(lj.row(i), largest)) refine_row(x.row(i), ws, &lj(i, 0), ws.row_offset(i));
            }
        }
    }

    // Adds the block's moments to `acc` about the reference points directly. Each component's rows
    // are centred on their local weighted mean l_c (rounded to T) before the rank update, so the
    // working-precision sums are small numbers even when mu_c is far from its rows (a far start);
    // then, in float64, with delta = l_c - r_c: s1 += s1_l + n delta, S += S_l + s1_l delta^T +
    // delta s1_l^T + n delta delta^T. Components without responsibility in the block are skipped.
    void accumulate(const RowBlock<T>& x, const WorkBlock<T>& q, const T*, Workspace& ws, GroupSums& acc) const {
        const double* reference = centring_.reference;
        const Index n = x.rows();
        // sqrt(q) (x - local mean), [n, D] row-major, in the storage of the [D, B] column-major
        // whitened rows (the same layout; no longer needed once log_joint is done).
        Eigen::Map<RowMatrix<T>> scaled(ws.whitened.data(), n, D_);
        const Vector<T> weights = q.colwise().sum().transpose();
        ws.local_means.noalias() = q.transpose() * x;  // [K, D] weighted sums, then local means
        for (Index c = 0; c < K_; ++c) {
            if (weights(c) == T(0)) continue;
            const auto qc = q.col(c);
            const RowVector<T> local_mean = ws.local_means.row(c) / weights(c);
            // Only rows with q_nc > 0 contribute: gather them, so that the rank update skips the
            // (often most) rows whose responsibility underflowed to exactly 0.
            Index m = 0;
            for (Index i = 0; i < n; ++i) {
                if (qc(i) == T(0)) continue;
                const T root = std::sqrt(qc(i));
                ws.roots(m) = root;
                scaled.row(m++) = (x.row(i) - local_mean) * root;
            }
            const auto rows = scaled.topRows(m);
            ws.first = (ws.roots.head(m).transpose() * rows).template cast<double>();
            ws.scatter.setZero();
            ws.scatter.template selfadjointView<Eigen::Lower>().rankUpdate(rows.transpose());

            const double n_c = static_cast<double>(weights(c));
            ws.delta = local_mean.template cast<double>() - ConstVectorMap<double>(reference + c * D_, D_).transpose();
            acc.sx.row(c) += ws.first + n_c * ws.delta;
            // Lower triangle of S_l + s1_l delta^T + delta s1_l^T + n delta delta^T, row by row (no
            // D x D temporaries): row i adds s1_l[i] delta + delta[i] (s1_l + n delta).
            ws.shifted_first = ws.first + n_c * ws.delta;
            Eigen::Map<RowMatrix<double>> sxx(acc.sxx.data() + c * D_ * D_, D_, D_);
            for (Index i = 0; i < D_; ++i) {
                sxx.row(i).head(i + 1) += ws.scatter.row(i).head(i + 1).template cast<double>() +
                                          ws.first(i) * ws.delta.head(i + 1) +
                                          ws.delta(i) * ws.shifted_first.head(i + 1);
            }
        }
    }

    const RowCentring& centring() const { return centring_; }

  private:
    // The size of a float32 log-joint from which rows are refined: rounded whole, it is off by up
    // to 2**11 * eps / 2 = 1.2e-4 nats (and its sum by a few times that), a relative error of that
    // size in the responsibilities; rows that far from every component in reach are rare.
    static constexpr double kRefinedLogJoint = 2048.0;

    // Whether a row's float32 log-joints `l` (finite or NaN), whose maximum is `row_largest`, need
    // float64: several components in reach, one of them with a log-joint beyond kRefinedLogJoint. A
    // component's squared distance is read back from its log-joint, and its round-off bound e_c =
    // (4 + 2D) eps (|constant_c| + distance_c + 1) widens the reach (as in FarExpansion).
    template <class Row>
    bool needs_refinement(const Row& l, T row_largest) const {
        if (l.hasNaN()) return false;  // the pass reports it
        const double cutoff = static_cast<double>(underflow_cutoff<T>());
        const double factor = (4.0 + 2.0 * static_cast<double>(D_)) * std::numeric_limits<T>::epsilon();
        const double largest = static_cast<double>(row_largest);
        Index in_reach = 0;
        bool far = false;
        const T floor = log_zero_floor<T>();
        for (Index c = 0; c < K_; ++c) {
            if (!(constant_(c) > floor)) continue;  // weight 0: q is exactly 0 either way
            const double constant = static_cast<double>(constant_(c));
            const double distance = std::max(2.0 * (constant - static_cast<double>(l(c))), 0.0);
            const double error = factor * (std::abs(constant) + distance + 1.0);
            if (static_cast<double>(l(c)) + error < largest + cutoff - error) continue;
            ++in_reach;
            far = far || std::abs(static_cast<double>(l(c))) > kRefinedLogJoint;
        }
        return in_reach > 1 && far;
    }

    // A row's log-joints summed in float64 (its whitened difference from each mean, U_c^T (x - mu_c)),
    // written relative to the largest, which goes to `offset` (round_relative_to_largest).
    template <class Row>
    void refine_row(const Row& x, Workspace& ws, T* out, double& offset) const {
        for (Index c = 0; c < K_; ++c) {
            for (Index d = 0; d < D_; ++d)
                ws.centred64(d) = static_cast<double>(x(d)) - static_cast<double>(means_(c, d));
            const ColumnMatrix& u = transposed_chols_[c];
            double distance = 0;
            for (Index r = 0; r < D_; ++r) {
                double y = 0;
                for (Index k = 0; k < (lower_triangular_ ? r + 1 : D_); ++k)
                    y += static_cast<double>(u(r, k)) * ws.centred64(k);
                distance += y * y;
            }
            ws.values(c) = gaussian_log_joint(base_constant_(c), distance);
        }
        // Where largest_log_joint refuses the row (a row whose every log-joint lies below T's floor
        // for log 0, 1e19 widths away, which float32 still holds), the float32 values stand.
        const double largest = largest_log_joint<T>(ws.values.data(), K_);
        if (std::isnan(largest)) return;
        round_relative_to(ws.values.data(), K_, largest, out);
        offset = largest;
    }

    Index K_, D_;
    RowMatrix<T> means_;
    std::vector<ColumnMatrix> transposed_chols_;  // U_c^T
    bool lower_triangular_ = true;                // every U_c^T; precisions_cholesky_ set by hand may not be
    Vector<T> constant_;
    Vector<double> base_constant_;  // float32: the constants in float64, for refined rows
    RowCentring centring_;
};

}  // namespace fastelbo
