// The maths of one Gaussian component and one (row, component) pair, written once for every Gaussian
// mixture kernel: the exact families (gaussian_components.hpp) and the truncated E-step
// (truncated_mixture_pass.cpp). The kernels differ in which pairs they evaluate and how they batch
// them (blocks against all components, items against candidate unions, single pairs); the formulas
// below are the same for all of them, so a change to one (a constant, a floor, the order of a sum)
// changes every kernel alike.
//
//   constants        log pi_c - D/2 log 2pi + log|U_c| and the diagonal precisions p_cd = u_cd^2
//   log-joint        log pi_c + log N(x; mu_c, Sigma_c) = constant_c - 1/2 (squared distance of x
//                    from mu_c in c's metric), however that distance was found
//   expansion        diag / spherical about a point p: the parameter column [p_c (mu_c - p), -p_c / 2]
//                    that features [x - p, (x - p)^2] multiply, and c's squared distance from p
//   direct sums      the squared distance of one row from one component without expansion
//   pair moments     one (row, component) pair's w (x - r) and w (x - r)^2 about a point r
//
// The posterior of a row of log-joints (log-sum-exp, q, entropy) is row_maths.hpp's, shared with the
// CUDA kernels; whitening for tied covariances is tied_whitening.hpp's.
#pragma once

#include <cmath>
#include <type_traits>

#include "fastelbo/row_maths.hpp"
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
};

// What the constant of an empty component (log pi_c = -inf) is.
enum class EmptyComponents {
    // -inf: the working-precision constant is floored when it is rounded (finite_component_constant),
    // after any float64 sums of it (the exact families).
    Infinite,
    // log pi_c replaced by T's log_zero_floor before the sum, so that the float64 constant and the
    // log-joints summed from it in float64 are finite too (the truncated pass ranks and exponentiates
    // float64 log-joints: a row whose candidates are all empty must not give -inf - (-inf)).
    Floored,
};

// The per-component constants of a Gaussian mixture, in float64.
struct GaussianConstants {
    Vector<double> base;          // [K] log pi_c - D/2 log 2pi + log|U_c|
    RowMatrix<double> precision;  // diag, spherical: [K, D] p_cd = u_cd^2 (spherical: p_c in every column); else empty
};

template <class T>
GaussianConstants gaussian_constants(const GaussianMixtureParams<T>& p, EmptyComponents empty) {
    const Index K = p.n_components, D = p.n_features;
    const bool diagonal = p.type == CovarianceType::Diag || p.type == CovarianceType::Spherical;
    GaussianConstants out{Vector<double>(K), RowMatrix<double>(diagonal ? K : 0, D)};
    // log|U_c| = sum_d log u_c,dd, summed in order (every kernel the same).
    auto log_det_of = [D](const T* factor, Index diagonal_stride) {
        double log_det = 0;
        for (Index d = 0; d < D; ++d) log_det += std::log(static_cast<double>(factor[d * diagonal_stride]));
        return log_det;
    };
    const double tied_log_det = p.type == CovarianceType::Tied ? log_det_of(p.precisions_cholesky, D + 1) : 0.0;
    for (Index c = 0; c < K; ++c) {
        double log_det = 0;
        switch (p.type) {
            case CovarianceType::Full: log_det = log_det_of(p.precisions_cholesky + c * D * D, D + 1); break;
            case CovarianceType::Tied: log_det = tied_log_det; break;
            case CovarianceType::Diag:
            case CovarianceType::Spherical: {
                const bool spherical = p.type == CovarianceType::Spherical;
                for (Index d = 0; d < D; ++d) {
                    const double u =
                        static_cast<double>(spherical ? p.precisions_cholesky[c] : p.precisions_cholesky[c * D + d]);
                    out.precision(c, d) = u * u;
                    log_det += std::log(u);
                }
                break;
            }
        }
        double log_weight = static_cast<double>(p.log_weights[c]);
        if (empty == EmptyComponents::Floored && !std::isfinite(log_weight))
            log_weight = static_cast<double>(log_zero_floor<T>());
        out.base(c) = gaussian_log_joint_constant(log_weight, D, log_det);
    }
    return out;
}

// log pi_c + log N(x; mu_c, Sigma_c) from c's constant (gaussian_constants) and the squared distance
// of x from mu_c in c's metric, ||(x - mu_c) U_c||^2. Scalars (float64 pairs), or a working-precision
// constant and an array of distances (a block of rows; the expression is evaluated by the caller's
// assignment).
template <class S, class Distance>
inline auto gaussian_log_joint(S constant, const Distance& squared_distance) {
    return constant - S(0.5) * squared_distance;
}

// Diag, spherical: sum_d p_d (x_d - mu_d)^2 of one row, vectorised over d, in the precision of the
// arguments (arrays of one scalar type: the truncated pass sums pairs in the working precision, the
// exact families' far rows in float64).
template <class X, class Mean, class Precision>
inline auto diagonal_squared_distance(const X& x, const Mean& mean, const Precision& precision) {
    return ((x - mean).square() * precision).sum();
}

// Diag, spherical: component c's parameter column of the expansion about `point` (float64, [D]):
// out(d) = p_cd (mu_cd - point_d) for d < D. Returns c's squared distance from the point,
// m_c = sum_d (mu_cd - point_d)^2 p_cd, summed in order: the column's constant is
// gaussian_log_joint(base_c, m_c), and m_c says how far the point is from c (how many digits the
// expansion loses there). `mean` and `precision` are c's rows; `out` any indexable column.
template <class T, class Point, class Out>
inline double expansion_column(const T* mean, const double* precision, const Point& point, Index D, Out&& out) {
    using Scalar = typename std::decay_t<Out>::Scalar;
    double squared_distance = 0;
    for (Index d = 0; d < D; ++d) {
        const double centred = static_cast<double>(mean[d]) - point(d);
        out(d) = static_cast<Scalar>(centred * precision[d]);
        squared_distance += centred * centred * precision[d];
    }
    return squared_distance;
}

// Diag, spherical: the rest of c's column, the entries that multiply the squared features, which do
// not depend on the point: -p_cd / 2 at out(D + d) (diag), or -p_c / 2 at out(D) (spherical, whose
// feature is ||x - point||^2).
template <class Out>
inline void squared_feature_entries(const double* precision, Index D, bool spherical, Out&& out) {
    using Scalar = typename std::decay_t<Out>::Scalar;
    if (spherical) {
        out(D) = static_cast<Scalar>(-0.5 * precision[0]);
        return;
    }
    for (Index d = 0; d < D; ++d) out(D + d) = static_cast<Scalar>(-0.5 * precision[d]);
}

// Adds one (row, component) pair's first moment about a point r, w (x - r), to `first` ([D]);
// `centred` = x - r in float64. Both moment functions are always inlined: the truncated pass calls
// them per (row, kept component) deep inside its per-item loops, where GCC left them as calls (7%
// of a diag pass at N=200k, K=256, D=64).
template <class Centred>
EIGEN_ALWAYS_INLINE void add_first_moment(double w, const Centred& centred, double* first) {
    Eigen::Map<RowVector<double>>(first, centred.size()) += w * centred;
}

// Adds the pair's second moment about r: w (x - r)^2 to `second` ([D], diag) or w ||x - r||^2 to
// `*second` (spherical).
template <class Centred>
EIGEN_ALWAYS_INLINE void add_second_moment(double w, const Centred& centred, bool spherical, double* second) {
    if (spherical) {
        *second += w * centred.squaredNorm();
    } else {
        Eigen::Map<RowVector<double>>(second, centred.size()).array() += (w * centred).array() * centred.array();
    }
}

}  // namespace fastelbo
