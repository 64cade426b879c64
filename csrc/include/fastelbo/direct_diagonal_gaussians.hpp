// Diag and spherical log-joints summed directly, in float64 for either working precision:
//   log pi_c + log N(x; mu_c, Sigma_c) = constant_c - 1/2 sum_d (u_cd (x_d - mu_cd))^2
// (u_cd^2 = p_cd, the precision), and, in a fit's E-step, the moments about the reference points
// r_c summed directly too, per pair of a row and a component with q > 0.
//
// Every term of the sums is non-negative (or, for the first moments, a difference taken once), so
// they keep their digits however far a row lies from a component (relative error about D float64
// epsilons): no expansion point, so no home labels, no far components and no refinement
// (gaussian_components.hpp, "Accuracy"), and each row's log-joints depend on that row alone,
// whatever batch it comes in. The expansion family's GEMM is faster per flop; where its expansion
// needs homes (clusters far apart for their widths, and float32 sooner), a labelling pass plus a
// refined pass can cost more than these sums (3 flops per row, component and feature against the
// expansion's 4). The caller chooses (the `direct` argument of gaussian_mixture_pass;
// FastGMM._sums_directly; bench/direct_moments.py measures both choices for fits).
//
// The sums are vectorised over components, the parameters stored feature by feature (padded to
// whole blocks of components), each sum taken in order over the features with no horizontal
// reduction: the same bits for any vector width where the multiply-add is fused alike. Four rows at
// a time share each load of the parameters, with their sums in registers: 2-3x the throughput of
// one row at a time, whose sums went through memory (measured on an Intel Xeon, AVX-512 and AVX2).
#pragma once

#include <Eigen/Core>
#include <algorithm>
#include <cmath>
#include <limits>

#include "fastelbo/gaussian_row_maths.hpp"
#include "fastelbo/mixture_statistics.hpp"
#include "fastelbo/posterior_row.hpp"
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
        RowMatrix<double> rows;      // [kTileRows, D] the current rows in float64
        RowMatrix<double> distance;  // [kTileRows, padded K] their squared distances
        Vector<double> row_offset;   // [B] each row's largest log-joint, kept apart (row_offsets)
    };

    DirectDiagonalGaussians(const GaussianMixtureParams<T>& p, RowCentring centring)
        : DirectDiagonalGaussians(p, gaussian_constants(p, EmptyComponents::Infinite), centring) {}

    Index bytes_per_row() const { return static_cast<Index>(sizeof(T)) * (D_ + 2 * K_); }
    double flops_per_row() const { return 3.0 * D_ * K_ + 20.0 * K_; }

    Workspace make_workspace(Index block_rows) const {
        return Workspace{RowMatrix<double>(kTileRows, D_), RowMatrix<double>(kTileRows, stride_),
                         Vector<double>(block_rows)};
    }

    void log_joint(const RowBlock<T>& x, Workspace& ws, WorkBlock<T> lj) const {
        const Index n = x.rows();
        Index i = 0;
        for (; i + kTileRows <= n; i += kTileRows) log_joint_rows<kTileRows>(x, i, ws, lj);
        for (; i < n; ++i) log_joint_rows<1>(x, i, ws, lj);
    }

    // The part of each row's log-joints left out of those log_joint writes (its largest); the pass
    // adds it to the row's log-normaliser.
    const double* row_offsets(const Workspace& ws) const { return ws.row_offset.data(); }

    const RowCentring& centring() const { return centring_; }

    // Adds the block's moments about the reference points r_c, summed directly in float64 from the
    // weighted responsibilities q: sx_c += q (x - r_c) and sxx_c += q (x - r_c)^2 (spherical:
    // q ||x - r_c||^2). A pair with q = 0 adds nothing and is skipped: the caller chooses these sums
    // for a fit only where rows reach at most three quarters of the components.
    void accumulate(const RowBlock<T>& x, const WorkBlock<T>& q, const T*, Workspace&, Statistics& sums) const {
        const Index D = D_;
        // Component by component, so that its sums stay in the nearest cache while the block's rows
        // pass; each sum still adds the rows in their order.
        for (Index c = 0; c < K_; ++c) {
            const double* reference = centring_.reference + c * D;
            double* first = &sums.sx(c, 0);
            double* second = sums.sxx.data() + (spherical_ ? c : c * D);
            for (Index i = 0; i < x.rows(); ++i) {
                const double weight = static_cast<double>(q(i, c));
                if (weight == 0) continue;
                const T* value = x.data() + i * x.outerStride();
                if (spherical_) {
                    double squared = 0;
#pragma omp simd reduction(+ : squared)
                    for (Index d = 0; d < D; ++d) {
                        const double e = static_cast<double>(value[d]) - reference[d];
                        first[d] += weight * e;
                        squared += e * e;
                    }
                    *second += weight * squared;
                } else {
#pragma omp simd
                    for (Index d = 0; d < D; ++d) {
                        const double e = static_cast<double>(value[d]) - reference[d];
                        const double we = weight * e;
                        first[d] += we;
                        second[d] += we * e;
                    }
                }
            }
        }
    }

  private:
    using Packet = Eigen::internal::packet_traits<double>::type;
    static constexpr Index kLanes = sizeof(Packet) / sizeof(double);
    // Rows per tile and packets of components per block: 4 x 2 packets of sums, which with the
    // block's means and scales (4 packets) fit AVX2's 16 vector registers.
    static constexpr int kTileRows = 4;
    static constexpr int kPackets = 2;
    static constexpr Index kBlock = kPackets * kLanes;  // components per block

    // The log-joints of rows i0 .. i0 + R - 1 of x.
    template <int R>
    void log_joint_rows(const RowBlock<T>& x, Index i0, Workspace& ws, WorkBlock<T> lj) const {
        for (int r = 0; r < R; ++r) ws.rows.row(r) = x.row(i0 + r).template cast<double>();
        for (Index c0 = 0; c0 < stride_; c0 += kBlock) squared_distances<R>(ws, c0);
        // Each row's log-joints relative to its largest, which is kept apart (row_offsets; see
        // round_relative_to_largest).
        for (int r = 0; r < R; ++r) {
            double* value = &ws.distance(r, 0);  // the squared distances, overwritten by the log-joints
            for (Index k = 0; k < K_; ++k) value[k] = log_joint_of(k, value[k]);
            ws.row_offset(i0 + r) = round_relative_to_largest(value, K_, &lj(i0 + r, 0));
        }
    }

    // ws.distance(r, c) = sum_d (u_cd (x_rd - mu_cd))^2 for the rows r < R of ws.rows and the
    // components c of the block from c0 (u_cd^2 = p_cd, the precision Cholesky factor, so that a
    // broad component's distance does not overflow where the distance itself is finite). The loop
    // over d is outermost, the components are the vector lanes, and the sums stay in registers.
    template <int R>
    void squared_distances(Workspace& ws, Index c0) const {
        using namespace Eigen::internal;
        Packet sum[R][kPackets];
        for (int r = 0; r < R; ++r)
            for (int p = 0; p < kPackets; ++p) sum[r][p] = pset1<Packet>(0.0);
        const double* rows = ws.rows.data();
        for (Index d = 0; d < D_; ++d) {
            Packet mean[kPackets], scale[kPackets];
            for (int p = 0; p < kPackets; ++p) {
                mean[p] = ploadu<Packet>(means_.data() + d * stride_ + c0 + p * kLanes);
                scale[p] = ploadu<Packet>(scale_.data() + d * stride_ + c0 + p * kLanes);
            }
            for (int r = 0; r < R; ++r) {
                const Packet value = pset1<Packet>(rows[r * D_ + d]);
                for (int p = 0; p < kPackets; ++p) {
                    const Packet e = pmul(psub(value, mean[p]), scale[p]);
                    sum[r][p] = pmadd(e, e, sum[r][p]);
                }
            }
        }
        for (int r = 0; r < R; ++r)
            for (int p = 0; p < kPackets; ++p) pstoreu(&ws.distance(r, c0 + p * kLanes), sum[r][p]);
    }

    // A component of weight 0 gets T's finite floor for log 0, so that its responsibility is exactly
    // 0 and 0 * log-joint stays 0. So does a component whose log-joint lies at or below the floor (a
    // squared distance of 2e307 or more in float64, 4e37 in float32, or one that overflows): it can
    // only matter to a row whose every log-joint is floored, which log_joint makes NaN. NaN (a NaN
    // parameter, or an infinite precision factor times a zero difference) stays NaN.
    double log_joint_of(Index c, double squared_distance) const {
        const double value = gaussian_log_joint(base_constant_(c), squared_distance);
        const double floor = static_cast<double>(log_zero_floor<T>());
        return std::isnan(value) || value > floor ? value : floor;
    }

    DirectDiagonalGaussians(const GaussianMixtureParams<T>& p, GaussianConstants constants, RowCentring centring)
        : K_(p.n_components),
          D_(p.n_features),
          stride_((K_ + kBlock - 1) / kBlock * kBlock),
          means_(Eigen::Matrix<double, Eigen::Dynamic, 1>::Zero(D_ * stride_)),
          scale_(Eigen::Matrix<double, Eigen::Dynamic, 1>::Zero(D_ * stride_)),
          base_constant_(std::move(constants.base)),
          centring_(centring),
          spherical_(p.type == CovarianceType::Spherical) {
        const bool spherical = spherical_;
        for (Index c = 0; c < K_; ++c) {
            for (Index d = 0; d < D_; ++d) {
                means_(d * stride_ + c) = static_cast<double>(p.means[c * D_ + d]);
                scale_(d * stride_ + c) =
                    static_cast<double>(spherical ? p.precisions_cholesky[c] : p.precisions_cholesky[c * D_ + d]);
            }
        }
    }

    Index K_, D_;
    Index stride_;  // K rounded up to whole blocks of components
    // mu_cd and u_cd (the precision Cholesky factor; spherical: u_c for every d) feature by feature,
    // [D, stride], the padding zeros (its sums are never read).
    Eigen::Matrix<double, Eigen::Dynamic, 1> means_;
    Eigen::Matrix<double, Eigen::Dynamic, 1> scale_;
    Vector<double> base_constant_;  // [K] log pi_c - D/2 log(2 pi) + log|U_c|
    RowCentring centring_;
    bool spherical_;
};

}  // namespace fastelbo
