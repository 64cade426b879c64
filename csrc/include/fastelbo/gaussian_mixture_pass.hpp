// Entry point of the Gaussian-mixture E-step pass: picks the component family for the covariance
// type and runs the generic mixture pass. Instantiated for float and double in
// src/gaussian_mixture_pass.cpp.
#pragma once

#include "fastelbo/direct_diagonal_gaussians.hpp"
#include "fastelbo/gaussian_components.hpp"
#include "fastelbo/mixture_pass.hpp"

namespace fastelbo {

// `centring`: the reference points the moments are taken about (required with moments) and each
// row's home component (optional: rows then run grouped by home, each run expanded about its own
// centroid). `direct`: diag and spherical log-joints summed directly in float64
// (direct_diagonal_gaussians.hpp) instead of expanded, and their moments summed directly about the
// reference points; rows need no homes then. Throws
// std::invalid_argument on inconsistent arguments (before any work). Returns false if the pass was
// interrupted through request.interrupt.
template <class T>
bool gaussian_mixture_pass(const GaussianMixtureParams<T>& params, const RowCentring& centring,
                           const MixturePassRequest<T>& request, MixtureStatistics& statistics, bool direct = false);

extern template bool gaussian_mixture_pass<float>(const GaussianMixtureParams<float>&, const RowCentring&,
                                                  const MixturePassRequest<float>&, MixtureStatistics&, bool);
extern template bool gaussian_mixture_pass<double>(const GaussianMixtureParams<double>&, const RowCentring&,
                                                   const MixturePassRequest<double>&, MixtureStatistics&, bool);

}  // namespace fastelbo
