// The whitened coordinates of a tied covariance, shared by the exact and the truncated tied passes.
//
// A row x and a mean mu are compared as (x - centre) U and (mu - centre) U, U the precision's
// Cholesky factor and the centre the mean of the component means: differences do not depend on
// the centre, and centring keeps the whitened values small when every cluster sits far from the
// origin (whitening first and subtracting after would lose the digits of the data's offset: 1e6
// from the origin costs ~1e-10 nats in float64, everything in float32).
#pragma once

#include "fastelbo/types.hpp"

namespace fastelbo {

struct WhitenedMeans {
    RowVector<double> centre;  // [D] the mean of the mu_c
    RowMatrix<double> means;   // [K, D] (mu_c - centre) U
};

// `means` [K, D] and `factor` U [D, D] in any precision; the result in float64.
template <class Means, class Factor>
WhitenedMeans whitened_about_centre(const Means& means, const Factor& factor) {
    const RowMatrix<double> means64 = means.template cast<double>();
    WhitenedMeans whitened;
    whitened.centre = means64.colwise().mean();
    whitened.means = (means64.rowwise() - whitened.centre) * factor.template cast<double>();
    return whitened;
}

}  // namespace fastelbo
