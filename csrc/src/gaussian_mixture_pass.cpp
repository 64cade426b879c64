#include "fastelbo/gaussian_mixture_pass.hpp"

namespace fastelbo {

template <class T>
bool gaussian_mixture_pass(const GaussianMixtureParams<T>& params, const RowCentring& centring,
                           const MixturePassRequest<T>& request, MixtureStatistics& statistics, bool direct) {
    const Index K = params.n_components, D = params.n_features;
    if (K < 1 || D < 1) throw std::invalid_argument("gaussian_mixture_pass: need K >= 1 and D >= 1");
    if (request.n_rows > 0 && request.X == nullptr) throw std::invalid_argument("gaussian_mixture_pass: X is null");
    if (!params.log_weights || !params.means || !params.precisions_cholesky)
        throw std::invalid_argument("gaussian_mixture_pass: missing parameter arrays");
    const bool diagonal = params.type == CovarianceType::Diag || params.type == CovarianceType::Spherical;
    if (direct && !diagonal)
        throw std::invalid_argument("gaussian_mixture_pass: direct sums are for diag and spherical covariances");
    const MixtureSumsLayout layout{params.type, K, D};
    switch (params.type) {
        case CovarianceType::Full:
            return run_mixture_pass(FullGaussians<T>(params, centring), layout, K, D, request, statistics);
        case CovarianceType::Tied:
            return run_mixture_pass(TiedGaussians<T>(params, centring), layout, K, D, request, statistics);
        case CovarianceType::Diag:
        case CovarianceType::Spherical:
            // Exact, and cheaper than an expansion that needs homes and refinement to stay accurate
            // (direct_diagonal_gaussians.hpp).
            if (direct)
                return run_mixture_pass(DirectDiagonalGaussians<T>(params, centring), layout, K, D, request, statistics);
            return run_mixture_pass(DiagonalGaussians<T>(params, centring), layout, K, D, request, statistics);
    }
    throw std::invalid_argument("gaussian_mixture_pass: unknown covariance type");
}

template bool gaussian_mixture_pass<float>(const GaussianMixtureParams<float>&, const RowCentring&,
                                           const MixturePassRequest<float>&, MixtureStatistics&, bool);
template bool gaussian_mixture_pass<double>(const GaussianMixtureParams<double>&, const RowCentring&,
                                            const MixturePassRequest<double>&, MixtureStatistics&, bool);

}  // namespace fastelbo
