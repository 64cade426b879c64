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
    auto X = require_array<T>(X_obj, "X", {-1, -1});
    const py::ssize_t N = X.shape(0), D = X.shape(1);
    auto log_weights = require_array<T>(log_weights_obj, "log_weights", {-1});
    const py::ssize_t K = log_weights.shape(0);
    auto means = require_array<T>(means_obj, "means", {K, D});
    auto components = require_array<T>(components_obj, "components", {K, -1, D});
    const py::ssize_t H = components.shape(1);
    auto noise_variance = require_array<T>(noise_variance_obj, "noise_variance", {K, D});
    const T* sample_weight = optional_data<T>(sample_weight_obj, "sample_weight", N);
    const double* reference =
        reference_obj.is_none() ? nullptr : require_array<double>(reference_obj, "reference", {K, D}).data();
    if (compute_moments && reference == nullptr) throw py::value_error("reference is required with compute_moments");

    FactorAnalyserMixtureParams<T> params;
    params.n_components = K;
    params.n_features = D;
    params.n_factors = H;
    params.log_weights = log_weights.data();
    params.means = means.data();
    params.components = components.data();
    params.noise_variance = noise_variance.data();

    py::array_t<T> log_norm, resp;
    py::array_t<std::int64_t> labels;
    MixturePassRequest<T> request;
    request.X = X.data();
    request.n_rows = N;
    request.sample_weight = sample_weight;
    request.reference = reference;
    request.compute_moments = compute_moments;
    if (return_log_norm) request.log_norm = (log_norm = py::array_t<T>({N})).mutable_data();
    if (return_responsibilities) request.responsibilities = (resp = py::array_t<T>({N, K})).mutable_data();
    if (return_labels) request.labels = (labels = py::array_t<std::int64_t>({N})).mutable_data();
    request.n_threads = n_threads;
    request.interrupt = python_interrupt_poll();

    FactorAnalyserSums stats(0, 0, 0, false);
    bool finished;
    {
        py::gil_scoped_release release;
        finished = factor_analyser_mixture_pass(params, request, stats);
    }
    if (!finished) raise_pending_interrupt();

    py::dict out;
    out["sum_weight"] = stats.sum_weight;
    out["sum_log_norm"] = stats.sum_log_norm;
    out["sum_entropy"] = stats.sum_entropy;
    out["nk"] = to_numpy(stats.nk.data(), {K});
    if (compute_moments) {
        out["sx"] = to_numpy(stats.sx.data(), {K, D});
        out["sxx"] = to_numpy(stats.sxx.data(), {K, D});
        out["szx"] = to_numpy(stats.szx.data(), {K, H, D});
        out["sz"] = to_numpy(stats.sz.data(), {K, H});
        out["szz"] = to_numpy(stats.szz.data(), {K, H, H});
    }
    if (return_log_norm) out["log_norm"] = log_norm;
    if (return_responsibilities) out["responsibilities"] = resp;
    if (return_labels) out["labels"] = labels;
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
