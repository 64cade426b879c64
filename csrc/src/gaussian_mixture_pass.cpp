#include "fastelbo/gaussian_mixture_pass.hpp"

namespace fastelbo {

template <class T>
bool gaussian_mixture_pass(const GaussianMixtureParams<T>& params, const RowCentring& centring,
                           const MixturePassRequest<T>& request, MixtureStatistics& statistics) {
    const Index K = params.n_components, D = params.n_features;
    if (K < 1 || D < 1) throw std::invalid_argument("gaussian_mixture_pass: need K >= 1 and D >= 1");
    if (request.n_rows > 0 && request.X == nullptr) throw std::invalid_argument("gaussian_mixture_pass: X is null");
    if (!params.log_weights || !params.means || !params.precisions_cholesky)
        throw std::invalid_argument("gaussian_mixture_pass: missing parameter arrays");
    const MixtureSumsLayout layout{params.type, K, D};
    switch (params.type) {
        case CovarianceType::Full:
            return run_mixture_pass(FullGaussians<T>(params, centring), layout, K, D, request, statistics);
        case CovarianceType::Tied:
            return run_mixture_pass(TiedGaussians<T>(params, centring), layout, K, D, request, statistics);
        case CovarianceType::Diag:
        case CovarianceType::Spherical:
            // Without moments, direct sums: exact, and cheaper than an expansion kept accurate
            // (direct_diagonal_gaussians.hpp).
            if (!request.compute_moments)
                return run_mixture_pass(DirectDiagonalGaussians<T>(params, centring), layout, K, D, request, statistics);
            return run_mixture_pass(DiagonalGaussians<T>(params, centring), layout, K, D, request, statistics);
    }
    throw std::invalid_argument("gaussian_mixture_pass: unknown covariance type");
}

template bool gaussian_mixture_pass<float>(const GaussianMixtureParams<float>&, const RowCentring&,
                                           const MixturePassRequest<float>&, MixtureStatistics&);
template bool gaussian_mixture_pass<double>(const GaussianMixtureParams<double>&, const RowCentring&,
                                            const MixturePassRequest<double>&, MixtureStatistics&);

}  // namespace fastelbo
