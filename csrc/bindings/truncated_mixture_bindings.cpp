// pybind11 binding of the truncated variational E-step: convert, check shapes, release the GIL, call.
#include "binding_support.hpp"
#include "fastelbo/truncated_mixture_pass.hpp"

namespace fastelbo::bindings {

namespace {

template <class T>
py::dict truncated_mixture_pass_typed(const py::array& X_obj, const py::object& sample_weight_obj,
                                      const py::object& log_weights_obj, const py::object& means_obj,
                                      const py::object& precisions_cholesky_obj, const py::object& reference_obj,
                                      const std::string& covariance_type, const py::object& active_obj,
                                      const py::object& neighbours_obj, const py::object& random_obj,
                                      bool return_log_norm, bool return_responsibilities,
                                      bool return_neighbour_scores, int n_threads) {
    const CovarianceType type = parse_covariance_type(covariance_type);
    auto X = require_array<T>(X_obj, "X", {-1, -1});
    const py::ssize_t N = X.shape(0), D = X.shape(1);
    auto log_weights = require_array<T>(log_weights_obj, "log_weights", {-1});
    const py::ssize_t K = log_weights.shape(0);
    auto means = require_array<T>(means_obj, "means", {K, D});
    const auto covariance_extents = covariance_shape(type, K, D);
    const std::vector<py::ssize_t> parameter_shape(covariance_extents.begin(), covariance_extents.end());
    auto chol = require_array<T>(precisions_cholesky_obj, "precisions_cholesky", parameter_shape);
    auto active = require_array<std::int32_t>(active_obj, "active", {N, -1});
    auto neighbours = require_array<std::int32_t>(neighbours_obj, "neighbours", {K, -1});
    const std::int32_t* random = optional_data<std::int32_t>(random_obj, "random_candidates", N);
    const double* reference =
        reference_obj.is_none() ? nullptr : require_array<double>(reference_obj, "reference", {K, D}).data();

    GaussianMixtureParams<T> params;
    params.type = type;
    params.n_components = K;
    params.n_features = D;
    params.log_weights = log_weights.data();
    params.means = means.data();
    params.precisions_cholesky = chol.data();

    const py::ssize_t C = active.shape(1), G = neighbours.shape(1);
    py::array_t<std::int32_t> new_active({N, C}), new_neighbours({K, G});
    py::array_t<double> log_norm, resp;
    TruncatedPassRequest<T> request;
    request.X = X.data();
    request.n_rows = N;
    request.sample_weight = optional_data<T>(sample_weight_obj, "sample_weight", N);
    request.n_active = C;
    request.n_neighbors = G;
    request.active = active.data();
    request.neighbours = neighbours.data();
    request.random_candidates = random;
    request.reference = reference;
    request.new_active = new_active.mutable_data();
    NeighbourScores neighbour_scores;
    if (return_neighbour_scores) {
        request.neighbour_scores = &neighbour_scores;
    } else {
        request.new_neighbours = new_neighbours.mutable_data();
    }
    if (return_log_norm) request.log_norm = (log_norm = py::array_t<double>({N})).mutable_data();
    if (return_responsibilities) request.responsibilities = (resp = py::array_t<double>({N, C})).mutable_data();
    request.n_threads = n_threads;
    request.interrupt = python_interrupt_poll();

    MixtureStatistics stats(type, 0, 0, false);
    bool finished;
    try {
        py::gil_scoped_release release;
        finished = truncated_mixture_pass(params, request, stats);
    } catch (const std::invalid_argument& error) {
        throw py::value_error(error.what());
    }
    if (!finished) raise_pending_interrupt();

    py::dict out;
    out["sum_weight"] = stats.sum_weight;
    out["sum_log_norm"] = stats.sum_log_norm;
    out["sum_entropy"] = stats.sum_entropy;
    out["nk"] = to_numpy(stats.nk.data(), {K});
    if (reference != nullptr) {
        out["sx"] = to_numpy(stats.sx.data(), {K, D});
        out["sxx"] = to_numpy(stats.sxx.data(), parameter_shape);
    }
    out["active"] = new_active;
    if (return_neighbour_scores) {
        const py::ssize_t n_scores = static_cast<py::ssize_t>(neighbour_scores.group.size());
        out["score_groups"] = to_numpy(neighbour_scores.group.data(), {n_scores});
        out["score_components"] = to_numpy(neighbour_scores.component.data(), {n_scores});
        out["score_sums"] = to_numpy(neighbour_scores.sum.data(), {n_scores});
        out["score_counts"] = to_numpy(neighbour_scores.count.data(), {n_scores});
    } else {
        out["neighbours"] = new_neighbours;
    }
    if (return_log_norm) out["log_norm"] = log_norm;
    if (return_responsibilities) out["responsibilities"] = resp;
    return out;
}

}  // namespace

void bind_truncated_mixture(py::module_& m) {
    m.def(
        "truncated_mixture_pass",
        [](const py::array& X, const py::object& sample_weight, const py::object& log_weights, const py::object& means,
           const py::object& precisions_cholesky, const py::object& reference, const std::string& covariance_type,
           const py::object& active, const py::object& neighbours, const py::object& random_candidates,
           bool return_log_norm, bool return_responsibilities, bool return_neighbour_scores, int n_threads) {
            return dispatch_float_dtype(X, "X", [&](auto tag) {
                using T = decltype(tag);
                return truncated_mixture_pass_typed<T>(
                    X, sample_weight, log_weights, means, precisions_cholesky, reference, covariance_type, active,
                    neighbours, random_candidates, return_log_norm, return_responsibilities, return_neighbour_scores,
                    n_threads);
            });
        },
        py::arg("X"), py::arg("sample_weight"), py::arg("log_weights"), py::arg("means"),
        py::arg("precisions_cholesky"), py::arg("reference"), py::arg("covariance_type"), py::arg("active"),
        py::arg("neighbours"), py::arg("random_candidates"), py::arg("return_log_norm") = false,
        py::arg("return_responsibilities") = false, py::arg("return_neighbour_scores") = false,
        py::arg("n_threads") = 0,
        "One truncated variational E-step (any covariance type): active (int32 (N, C'), best first) and "
        "neighbours (int32 (K, G)) in; the new active sets and neighbour lists, the ELBO sums (truncated "
        "free energy), nk and, with a float64 reference (K, D), the moments out. With "
        "return_neighbour_scores, instead of refreshed neighbour lists the refresh's inputs: every "
        "best-component group's candidates' log-joint sums and counts (score_groups, score_components, "
        "score_sums, score_counts; groups, then components ascending), which add over blocks of rows.");
}

}  // namespace fastelbo::bindings
