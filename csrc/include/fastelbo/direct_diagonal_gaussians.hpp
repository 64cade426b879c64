// Diag and spherical log-joints summed directly, for passes without moments (inference, labelling,
// a fit's final pass): log pi_c + log N(x; mu_c, Sigma_c) = constant_c - 1/2 sum_d (u_cd (x_d - mu_cd))^2
// (u_cd^2 = p_cd, the precision), in float64 for either working precision.
//
// Every term of the sum is non-negative, so it keeps its digits however far a row lies from a
// component (relative error about D float64 epsilons): no expansion point, so no home labels, no
// far components and no refinement (gaussian_components.hpp, "Accuracy"), and each row's result
// depends on that row alone, whatever batch it comes in. The expansion family's GEMM is faster per
// flop, and one expanded pass is the faster choice where its expansion needs no homes; where it
// does (clusters far apart for their widths, and float32 sooner), a labelling pass plus a refined
// pass cost more than these sums (3 flops per row, component and feature against the expansion's
// 4). The caller chooses (the `direct` argument of gaussian_mixture_pass; FastGMM._sums_directly).
//
// The sums are vectorised over components (the parameters then stored feature by feature), blocks
// of 32 components at a time, each sum taken in order over the features; with fewer than 32
// components, over features instead, four components at a time.
#pragma once

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>

#include "fastelbo/gaussian_row_maths.hpp"
#include "fastelbo/mixture_statistics.hpp"
#include "fastelbo/row_centring.hpp"
#include "fastelbo/row_maths.hpp"
#include "fastelbo/types.hpp"

namespace fastelbo {

template <class T>
class DirectDiagonalGaussians {
  public:
    using Statistics = MixtureStatistics;
    static constexpr bool kGrouped = false;

    struct Workspace {
        RowVector<double> row;       // [D] the current row in float64
        Vector<double> distance;     // [K] its squared distances
    };

    DirectDiagonalGaussians(const GaussianMixtureParams<T>& p, RowCentring centring)
        : DirectDiagonalGaussians(p, gaussian_constants(p, EmptyComponents::Infinite), centring) {}

    Index bytes_per_row() const { return static_cast<Index>(sizeof(T)) * (D_ + 2 * K_); }
    double flops_per_row() const { return 3.0 * D_ * K_ + 20.0 * K_; }

    Workspace make_workspace(Index) const { return Workspace{RowVector<double>(D_), Vector<double>(K_)}; }

    void log_joint(const RowBlock<T>& x, Workspace& ws, WorkBlock<T> lj) const {
        for (Index i = 0; i < x.rows(); ++i) {
            ws.row = x.row(i).template cast<double>();
            const double* row = ws.row.data();
            T* out = &lj(i, 0);
            double* distance = ws.distance.data();
            Index c = 0;
            if (!by_component_) {
                for (; c + 4 <= K_; c += 4) squared_distances4(row, c, distance + c);
                for (; c < K_; ++c) distance[c] = squared_distance(row, c);
            } else {
                for (; c + kBlock <= K_; c += kBlock) squared_distances<kBlock>(row, c, kBlock, distance + c);
                if (c < K_) squared_distances<kBlock>(row, c, K_ - c, distance + c);
            }
            // Every log-joint at the floor: the row's log-likelihood is below what T can hold (or
            // the only components above it are empty). NaN makes the pass report the overflow.
            const T floor = log_zero_floor<T>();
            bool representable = false;
            for (Index k = 0; k < K_; ++k) {
                out[k] = log_joint_of(k, distance[k]);
                representable = representable || out[k] > floor;
            }
            if (!representable) std::fill(out, out + K_, std::numeric_limits<T>::quiet_NaN());
        }
    }

    const RowCentring& centring() const { return centring_; }

    // The pass sums moments only when asked to, and this family is chosen only when it is not.
    void accumulate(const RowBlock<T>&, const WorkBlock<T>&, const T*, Workspace&, Statistics&) const {
        throw std::logic_error("DirectDiagonalGaussians computes no moments");
    }

  private:
    // Components per block: the block's sums stay in registers (4 AVX-512 vectors of float64).
    static constexpr Index kBlock = 32;

    // distance[j] = sum_d (u_cd (x_d - mu_cd))^2 for the n <= kBlock components c = c0 + j of one row
    // (u_cd^2 = p_cd, the precision Cholesky factor, so that a broad component's distance does not
    // overflow where the distance itself is finite). The loop over d is outermost and the
    // components are the vector lanes: each sum is taken in order over d, with no horizontal
    // reduction, the same for any vector width. `distance` is written only where j < n.
    template <Index block>
    void squared_distances(const double* row, Index c0, Index n, double* distance) const {
        double sum[block] = {};
        const Index width = n == block ? block : n;  // a constant trip count for whole blocks
        for (Index d = 0; d < D_; ++d) {
            const double value = row[d];
            const double* mean = means_.data() + d * K_ + c0;
            const double* scale = scale_.data() + d * K_ + c0;
#pragma omp simd
            for (Index j = 0; j < width; ++j) {
                const double e = (value - mean[j]) * scale[j];
                sum[j] += e * e;
            }
        }
        for (Index j = 0; j < n; ++j) distance[j] = sum[j];
    }

    // Few components (K < kBlock): the same sums for four components from c0, vectorised over d
    // (each packet of the row loaded once for the four), reduced across the lanes at the end.
    void squared_distances4(const double* row, Index c0, double* distance) const {
        const double *m0 = means_.row(c0).data(), *m1 = means_.row(c0 + 1).data(), *m2 = means_.row(c0 + 2).data(),
                     *m3 = means_.row(c0 + 3).data();
        const double *u0 = scale_.row(c0).data(), *u1 = scale_.row(c0 + 1).data(), *u2 = scale_.row(c0 + 2).data(),
                     *u3 = scale_.row(c0 + 3).data();
        double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
        const Index D = D_;
#pragma omp simd reduction(+ : s0, s1, s2, s3)
        for (Index d = 0; d < D; ++d) {
            const double e0 = (row[d] - m0[d]) * u0[d], e1 = (row[d] - m1[d]) * u1[d],
                         e2 = (row[d] - m2[d]) * u2[d], e3 = (row[d] - m3[d]) * u3[d];
            s0 += e0 * e0;
            s1 += e1 * e1;
            s2 += e2 * e2;
            s3 += e3 * e3;
        }
        distance[0] = s0;
        distance[1] = s1;
        distance[2] = s2;
        distance[3] = s3;
    }

    // The same for one component.
    double squared_distance(const double* row, Index c) const {
        const double* m = means_.row(c).data();
        const double* u = scale_.row(c).data();
        double s = 0;
        const Index D = D_;
#pragma omp simd reduction(+ : s)
        for (Index d = 0; d < D; ++d) {
            const double e = (row[d] - m[d]) * u[d];
            s += e * e;
        }
        return s;
    }

    // A component of weight 0 gets T's finite floor for log 0, so that its responsibility is exactly
    // 0 and 0 * log-joint stays 0. So does a component whose log-joint lies at or below the floor (a
    // squared distance of 1e307 or more in float64, 1e37 in float32, or one that overflows): it can
    // only matter to a row whose every log-joint is floored, which log_joint makes NaN.
    T log_joint_of(Index c, double squared_distance) const {
        const double value = gaussian_log_joint(base_constant_(c), squared_distance);
        const T floor = log_zero_floor<T>();
        return value > static_cast<double>(floor) ? static_cast<T>(value) : floor;
    }

    DirectDiagonalGaussians(const GaussianMixtureParams<T>& p, GaussianConstants constants, RowCentring centring)
        : K_(p.n_components),
          D_(p.n_features),
          by_component_(K_ >= kBlock),
          means_(by_component_ ? D_ : K_, by_component_ ? K_ : D_),
          scale_(means_.rows(), means_.cols()),
          base_constant_(std::move(constants.base)),
          centring_(centring) {
        const bool spherical = p.type == CovarianceType::Spherical;
        for (Index c = 0; c < K_; ++c) {
            for (Index d = 0; d < D_; ++d) {
                double& mean = by_component_ ? means_(d, c) : means_(c, d);
                double& scale = by_component_ ? scale_(d, c) : scale_(c, d);
                mean = static_cast<double>(p.means[c * D_ + d]);
                scale = static_cast<double>(spherical ? p.precisions_cholesky[c] : p.precisions_cholesky[c * D_ + d]);
            }
        }
    }

    Index K_, D_;
    bool by_component_;             // K >= kBlock: the sums are vectorised over components
    // mu_cd and u_cd (the precision Cholesky factor; spherical: u_c for every d), [K, D], or feature
    // by feature, [D, K], where the sums are vectorised over components.
    RowMatrix<double> means_;
    RowMatrix<double> scale_;
    Vector<double> base_constant_;  // [K] log pi_c - D/2 log(2 pi) + log|U_c|
    RowCentring centring_;
};

}  // namespace fastelbo
