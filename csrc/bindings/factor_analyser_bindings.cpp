// pybind11 binding of the mixture-of-factor-analysers E-step pass: convert, check shapes, release
// the GIL, call.
#include "binding_support.hpp"
#include "fastelbo/factor_analyser_mixture_pass.hpp"

namespace fastelbo::bindings {

namespace {

template <class T>
py::dict factor_analyser_mixture_pass_typed(const py::array& X_obj, const py::object& sample_weight_obj,
                                            const py::object& log_weights_obj, const py::object& means_obj,
                                            const py::object& components_obj, const py::object& noise_variance_obj,
                                            const py::object& reference_obj, bool compute_moments, bool return_log_norm,
                                            bool return_responsibilities, bool return_labels, int n_threads) {
    const auto args = require_mixture_arguments<T>(X_obj, log_weights_obj, means_obj);
    const py::ssize_t N = args.n_rows(), D = args.n_features(), K = args.n_components();
    auto components = require_array<T>(components_obj, "components", {K, -1, D});
    const py::ssize_t H = components.shape(1);
    auto noise_variance = require_array<T>(noise_variance_obj, "noise_variance", {K, D});
    const T* sample_weight = optional_data<T>(sample_weight_obj, "sample_weight", N);
    const double* reference = optional_reference(reference_obj, K, D, compute_moments);

    FactorAnalyserMixtureParams<T> params;
    args.fill(params);
    params.n_factors = H;
    params.components = components.data();
    params.noise_variance = noise_variance.data();

    const RowCentring centring{reference, nullptr};
    MixturePassRequest<T> request;
    args.fill(request, sample_weight, n_threads);
    request.compute_moments = compute_moments;
    const MixtureRowOutputs<T> outputs(request, N, K, return_log_norm, return_responsibilities, return_labels);

    FactorAnalyserSums stats(0, 0, 0, false);
    run_without_gil([&] { return factor_analyser_mixture_pass(params, centring, request, stats); });

    py::dict out = mixture_sums_dict(stats, K);
    if (compute_moments) {
        out["sx"] = to_numpy(stats.sx.data(), {K, D});
        out["sxx"] = to_numpy(stats.sxx.data(), {K, D});
        out["szx"] = to_numpy(stats.szx.data(), {K, H, D});
        out["sz"] = to_numpy(stats.sz.data(), {K, H});
        out["szz"] = to_numpy(stats.szz.data(), {K, H, H});
    }
    outputs.add_to(out);
    return out;
}

}  // namespace

void bind_factor_analyser_mixture(py::module_& m) {
    m.def(
        "factor_analyser_mixture_pass",
        [](const py::array& X, const py::object& sample_weight, const py::object& log_weights, const py::object& means,
           const py::object& components, const py::object& noise_variance, const py::object& reference,
           bool compute_moments, bool return_log_norm, bool return_responsibilities, bool return_labels,
           int n_threads) {
            return dispatch_float_dtype(X, "X", [&](auto tag) {
                using T = decltype(tag);
                return factor_analyser_mixture_pass_typed<T>(
                    X, sample_weight, log_weights, means, components, noise_variance, reference, compute_moments,
                    return_log_norm, return_responsibilities, return_labels, n_threads);
            });
        },
        py::arg("X"), py::arg("sample_weight"), py::arg("log_weights"), py::arg("means"), py::arg("components"),
        py::arg("noise_variance"), py::arg("reference"), py::arg("compute_moments") = true,
        py::arg("return_log_norm") = false, py::arg("return_responsibilities") = false,
        py::arg("return_labels") = false, py::arg("n_threads") = 0,
        "One E-step pass of a mixture of factor analysers over the rows of X: ELBO sums and nk, optional "
        "moments (sx, sxx, szx, sz, szz about the float64 reference points, shape (K, D)) and optional per-row "
        "outputs. components has shape (K, H, D) (each component's loadings as rows), noise_variance (K, D). "
        "Other arrays share X's dtype (float32 or float64).");
}

}  // namespace fastelbo::bindings
