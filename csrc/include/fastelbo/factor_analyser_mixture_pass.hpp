// Entry point of the mixture-of-factor-analysers E-step pass: the FactorAnalysers family on the
// generic mixture pass. Instantiated for float and double in src/factor_analyser_mixture_pass.cpp.
#pragma once

#include "fastelbo/factor_analyser_components.hpp"
#include "fastelbo/mixture_pass.hpp"

namespace fastelbo {

// `centring.reference`: the points the moments are taken about (required with moments);
// centring.home is ignored (rows need no home). Throws std::invalid_argument on inconsistent
// arguments (before any work). Returns false if the pass was interrupted through request.interrupt.
template <class T>
bool factor_analyser_mixture_pass(const FactorAnalyserMixtureParams<T>& params, const RowCentring& centring,
                                  const MixturePassRequest<T>& request, FactorAnalyserSums& statistics);

extern template bool factor_analyser_mixture_pass<float>(const FactorAnalyserMixtureParams<float>&, const RowCentring&,
                                                         const MixturePassRequest<float>&, FactorAnalyserSums&);
extern template bool factor_analyser_mixture_pass<double>(const FactorAnalyserMixtureParams<double>&,
                                                          const RowCentring&, const MixturePassRequest<double>&,
                                                          FactorAnalyserSums&);

}  // namespace fastelbo
