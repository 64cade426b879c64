// pybind11 binding of the Gaussian-mixture E-step pass: convert, check shapes, release the GIL, call.
#include "binding_support.hpp"
#include "fastelbo/gaussian_mixture_pass.hpp"

namespace fastelbo::bindings {

namespace {

template <class T>
py::dict gaussian_mixture_pass_typed(const py::array& X_obj, const py::object& sample_weight_obj,
                                     const py::object& log_weights_obj, const py::object& means_obj,
                                     const py::object& precisions_cholesky_obj, const py::object& reference_obj,
                                     const py::object& home_obj, const std::string& covariance_type,
                                     bool compute_moments, bool return_log_norm, bool return_responsibilities,
                                     bool return_labels, int n_threads, bool refine, bool direct) {
    const CovarianceType type = parse_covariance_type(covariance_type);
    const auto args = require_mixture_arguments<T>(X_obj, log_weights_obj, means_obj);
    const py::ssize_t N = args.n_rows(), D = args.n_features(), K = args.n_components();
    const auto covariance_extents = covariance_shape(type, K, D);
    const std::vector<py::ssize_t> parameter_shape(covariance_extents.begin(), covariance_extents.end());
    auto chol = require_array<T>(precisions_cholesky_obj, "precisions_cholesky", parameter_shape);
    const T* sample_weight = optional_data<T>(sample_weight_obj, "sample_weight", N);
    const std::int64_t* home = optional_data<std::int64_t>(home_obj, "home", N);
    const double* reference = optional_reference(reference_obj, K, D, compute_moments);

    GaussianMixtureParams<T> params;
    params.type = type;
    args.fill(params);
    params.precisions_cholesky = chol.data();

    const RowCentring centring{reference, home};
    MixturePassRequest<T> request;
    args.fill(request, sample_weight, n_threads);
    request.compute_moments = compute_moments;
    request.refine = refine;
    const MixtureRowOutputs<T> outputs(request, N, K, return_log_norm, return_responsibilities, return_labels);

    MixtureStatistics stats(type, 0, 0, false);
    run_without_gil([&] { return gaussian_mixture_pass(params, centring, request, stats, direct); });

    py::dict out = mixture_sums_dict(stats, K);
    if (compute_moments) {
        out["sx"] = to_numpy(stats.sx.data(), {K, D});
        out["sxx"] = to_numpy(stats.sxx.data(), parameter_shape);
    }
    outputs.add_to(out);
    return out;
}

}  // namespace

void bind_gaussian_mixture(py::module_& m) {
    m.def(
        "gaussian_mixture_pass",
        [](const py::array& X, const py::object& sample_weight, const py::object& log_weights, const py::object& means,
           const py::object& precisions_cholesky, const py::object& reference, const py::object& home,
           const std::string& covariance_type, bool compute_moments, bool return_log_norm, bool return_responsibilities,
           bool return_labels, int n_threads, bool refine, bool direct) {
            return dispatch_float_dtype(X, "X", [&](auto tag) {
                using T = decltype(tag);
                return gaussian_mixture_pass_typed<T>(
                    X, sample_weight, log_weights, means, precisions_cholesky, reference, home, covariance_type,
                    compute_moments, return_log_norm, return_responsibilities, return_labels, n_threads, refine, direct);
            });
        },
        py::arg("X"), py::arg("sample_weight"), py::arg("log_weights"), py::arg("means"),
        py::arg("precisions_cholesky"), py::arg("reference"), py::arg("home"), py::arg("covariance_type"),
        py::arg("compute_moments") = true, py::arg("return_log_norm") = false,
        py::arg("return_responsibilities") = false, py::arg("return_labels") = false, py::arg("n_threads") = 0,
        py::arg("refine") = true, py::arg("direct") = false,
        "One E-step pass of a Gaussian mixture over the rows of X: ELBO sums and nk, optional moments "
        "(sx, sxx about the float64 reference points, shape (K, D)) and optional per-row outputs. home "
        "(int64 labels, shape (N,), optional) groups rows that are expanded about a common point. Other "
        "arrays share X's dtype (float32 or float64). refine=False skips the float64 re-evaluation of rows "
        "that a far component may matter to (only for a rough labelling without moments). direct=True sums "
        "diag/spherical log-joints directly in float64 instead, and their moments about the reference points.");
}

}  // namespace fastelbo::bindings
