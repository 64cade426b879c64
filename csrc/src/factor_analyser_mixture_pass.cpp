#include "fastelbo/factor_analyser_mixture_pass.hpp"

#include <cmath>

namespace fastelbo {

template <class T>
bool factor_analyser_mixture_pass(const FactorAnalyserMixtureParams<T>& params, const RowCentring& centring,
                                  const MixturePassRequest<T>& request, FactorAnalyserSums& statistics) {
    const Index K = params.n_components, D = params.n_features, H = params.n_factors;
    if (K < 1 || D < 1 || H < 1)
        throw std::invalid_argument("factor_analyser_mixture_pass: need K >= 1, D >= 1 and H >= 1");
    if (request.n_rows > 0 && request.X == nullptr)
        throw std::invalid_argument("factor_analyser_mixture_pass: X is null");
    if (!params.log_weights || !params.means || !params.components || !params.noise_variance)
        throw std::invalid_argument("factor_analyser_mixture_pass: missing parameter arrays");
    for (Index i = 0; i < K * D; ++i) {
        const T psi = params.noise_variance[i];
        if (!(psi > T(0)) || !std::isfinite(psi))
            throw std::invalid_argument("noise_variance must be positive and finite");
    }
    // A pass without moments scores rows (score_samples, predict_proba): every log-joint in the
    // sum form, which cannot cancel.
    const FactorAnalysers<T> components(params, centring, !request.compute_moments);
    const bool finished = run_mixture_pass(components, FactorAnalyserSumsLayout{K, D, H}, K, D, request, statistics);
    components.finish(statistics);
    return finished;
}

template bool factor_analyser_mixture_pass<float>(const FactorAnalyserMixtureParams<float>&, const RowCentring&,
                                                  const MixturePassRequest<float>&, FactorAnalyserSums&);
template bool factor_analyser_mixture_pass<double>(const FactorAnalyserMixtureParams<double>&, const RowCentring&,
                                                   const MixturePassRequest<double>&, FactorAnalyserSums&);

}  // namespace fastelbo
