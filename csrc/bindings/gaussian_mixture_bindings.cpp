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
                                     bool return_labels, int n_threads) {
    const CovarianceType type = parse_covariance_type(covariance_type);
    auto X = require_array<T>(X_obj, "X", {-1, -1});
    const py::ssize_t N = X.shape(0), D = X.shape(1);
    auto log_weights = require_array<T>(log_weights_obj, "log_weights", {-1});
    const py::ssize_t K = log_weights.shape(0);
    auto means = require_array<T>(means_obj, "means", {K, D});
    const auto covariance_extents = covariance_shape(type, K, D);
    const std::vector<py::ssize_t> parameter_shape(covariance_extents.begin(), covariance_extents.end());
    auto chol = require_array<T>(precisions_cholesky_obj, "precisions_cholesky", parameter_shape);
    const T* sample_weight = optional_data<T>(sample_weight_obj, "sample_weight", N);
    const std::int64_t* home = optional_data<std::int64_t>(home_obj, "home", N);
    const double* reference =
        reference_obj.is_none() ? nullptr : require_array<double>(reference_obj, "reference", {K, D}).data();
    if (compute_moments && reference == nullptr) throw py::value_error("reference is required with compute_moments");

    GaussianMixtureParams<T> params;
    params.type = type;
    params.n_components = K;
    params.n_features = D;
    params.log_weights = log_weights.data();
    params.means = means.data();
    params.precisions_cholesky = chol.data();

    py::array_t<T> log_norm, resp;
    py::array_t<std::int64_t> labels;
    MixturePassRequest<T> request;
    request.X = X.data();
    request.n_rows = N;
    request.sample_weight = sample_weight;
    request.home = home;
    request.reference = reference;
    request.compute_moments = compute_moments;
    if (return_log_norm) request.log_norm = (log_norm = py::array_t<T>({N})).mutable_data();
    if (return_responsibilities) request.responsibilities = (resp = py::array_t<T>({N, K})).mutable_data();
    if (return_labels) request.labels = (labels = py::array_t<std::int64_t>({N})).mutable_data();
    request.n_threads = n_threads;
    request.interrupt = python_interrupt_poll();

    MixtureStatistics stats(type, 0, 0, false);
    bool finished;
    {
        py::gil_scoped_release release;
        finished = gaussian_mixture_pass(params, request, stats);
    }
    if (!finished) raise_pending_interrupt();

    py::dict out;
    out["sum_weight"] = stats.sum_weight;
    out["sum_log_norm"] = stats.sum_log_norm;
    out["sum_entropy"] = stats.sum_entropy;
    out["nk"] = to_numpy(stats.nk.data(), {K});
    if (compute_moments) {
        out["sx"] = to_numpy(stats.sx.data(), {K, D});
        out["sxx"] = to_numpy(stats.sxx.data(), parameter_shape);
    }
    if (return_log_norm) out["log_norm"] = log_norm;
    if (return_responsibilities) out["responsibilities"] = resp;
    if (return_labels) out["labels"] = labels;
    return out;
}

}  // namespace

void bind_gaussian_mixture(py::module_& m) {
    m.def(
        "gaussian_mixture_pass",
        [](const py::array& X, const py::object& sample_weight, const py::object& log_weights, const py::object& means,
           const py::object& precisions_cholesky, const py::object& reference, const py::object& home,
           const std::string& covariance_type, bool compute_moments, bool return_log_norm, bool return_responsibilities,
           bool return_labels, int n_threads) {
            return dispatch_float_dtype(X, "X", [&](auto tag) {
                using T = decltype(tag);
                return gaussian_mixture_pass_typed<T>(
                    X, sample_weight, log_weights, means, precisions_cholesky, reference, home, covariance_type,
                    compute_moments, return_log_norm, return_responsibilities, return_labels, n_threads);
            });
        },
        py::arg("X"), py::arg("sample_weight"), py::arg("log_weights"), py::arg("means"),
        py::arg("precisions_cholesky"), py::arg("reference"), py::arg("home"), py::arg("covariance_type"),
        py::arg("compute_moments") = true, py::arg("return_log_norm") = false,
        py::arg("return_responsibilities") = false, py::arg("return_labels") = false, py::arg("n_threads") = 0,
        "One E-step pass of a Gaussian mixture over the rows of X: ELBO sums and nk, optional moments "
        "(sx, sxx about the float64 reference points, shape (K, D)) and optional per-row outputs. home "
        "(int64 labels, shape (N,), optional) groups rows that are expanded about a common point. Other "
        "arrays share X's dtype (float32 or float64).");
}

}  // namespace fastelbo::bindings
