// Entry point of the mixture-of-factor-analysers E-step pass: the FactorAnalysers family on the
// generic mixture pass. Instantiated for float and double in src/factor_analyser_mixture_pass.cpp.
#pragma once

#include "fastelbo/factor_analyser_components.hpp"
#include "fastelbo/mixture_pass.hpp"

namespace fastelbo {

// Throws std::invalid_argument on inconsistent arguments (before any work). Returns false if the
// pass was interrupted through request.interrupt. request.home is ignored (rows need no home).
template <class T>
bool factor_analyser_mixture_pass(const FactorAnalyserMixtureParams<T>& params, const MixturePassRequest<T>& request,
                                  FactorAnalyserSums& statistics);

extern template bool factor_analyser_mixture_pass<float>(const FactorAnalyserMixtureParams<float>&,
                                                         const MixturePassRequest<float>&, FactorAnalyserSums&);
extern template bool factor_analyser_mixture_pass<double>(const FactorAnalyserMixtureParams<double>&,
                                                          const MixturePassRequest<double>&, FactorAnalyserSums&);

}  // namespace fastelbo
