// The whitened coordinates of a tied covariance, shared by the exact and the truncated tied passes.
//
// A row x and a mean mu are compared as (x - centre) U and (mu - centre) U, U the precision's
// Cholesky factor and the centre the mean of the component means: differences do not depend on
// the centre, and centring keeps the whitened values small when every cluster sits far from the
// origin (whitening first and subtracting after would lose the digits of the data's offset: 1e6
// from the origin costs ~1e-10 nats in float64, everything in float32).
//
// Where clusters lie far from each other, and so from the centre, two nearby means are still far
// from it: the difference of their whitened values keeps only eps times the values' size (two
// components of one cluster 1e5 widths from the centre: ~1e-11 nats). The relative position
// (mu_c - p) U is then whitened from the difference mu_c - p itself (D² products, only for those
// components).
#pragma once

#include "fastelbo/types.hpp"

namespace fastelbo {

// How much larger than their difference two whitened values may be before the difference is
// whitened directly instead (about log10 of it digits are lost).
constexpr double kWhitenedCancellation = 32.0;

struct WhitenedMeans {
    RowVector<double> centre;    // [D] the mean of the mu_c
    RowMatrix<double> means;     // [K, D] (mu_c - centre) U
    RowMatrix<double> original;  // [K, D] mu_c
    RowMatrix<double> factor;    // [D, D] U
    Vector<double> norms;        // [K] ||(mu_c - centre) U||

    // (mu_c - p) U into `out`, given the point p, its whitened (p - centre) U and that one's norm.
    template <class Point, class WhitenedPoint, class Out>
    void relative_to(Index c, const Point& point, const WhitenedPoint& whitened_point, double point_norm,
                     Out&& out) const {
        out = means.row(c) - whitened_point;
        if (norms(c) + point_norm > kWhitenedCancellation * (1.0 + out.norm()))
            out.noalias() = (original.row(c) - point) * factor;
    }

    // (mu_c - mu_b) U into `out`.
    template <class Out>
    void relative_between(Index c, Index b, Out&& out) const {
        relative_to(c, original.row(b), means.row(b), norms(b), out);
    }
};

// `means` [K, D] and `factor` U [D, D] in any precision; the result in float64.
template <class Means, class Factor>
WhitenedMeans whitened_about_centre(const Means& means, const Factor& factor) {
    WhitenedMeans whitened;
    whitened.original = means.template cast<double>();
    whitened.factor = factor.template cast<double>();
    whitened.centre = whitened.original.colwise().mean();
    whitened.means = (whitened.original.rowwise() - whitened.centre) * whitened.factor;
    whitened.norms = whitened.means.rowwise().norm();
    return whitened;
}

}  // namespace fastelbo
