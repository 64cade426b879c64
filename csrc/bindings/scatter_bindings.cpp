// pybind11 binding of the scatter pass (PPCA / factor analysis statistics): convert, check shapes,
// release the GIL, call.
#include "binding_support.hpp"
#include "fastelbo/scatter_pass.hpp"

namespace fastelbo::bindings {

namespace {

template <class T>
py::dict scatter_pass_typed(const py::array& X_obj, const py::object& sample_weight_obj, const py::object& center_obj,
                            int n_threads) {
    auto X = require_array<T>(X_obj, "X", {-1, -1});
    const py::ssize_t N = X.shape(0), D = X.shape(1);
    if (D < 1) throw py::value_error("X must have at least one feature, got shape " + shape_string(X));
    auto center = require_array<double>(center_obj, "center", {D});

    ScatterPassRequest<T> request;
    request.X = X.data();
    request.n_rows = N;
    request.n_features = D;
    request.sample_weight = optional_data<T>(sample_weight_obj, "sample_weight", N);
    request.center = center.data();
    request.n_threads = n_threads;
    request.interrupt = python_interrupt_poll();

    ScatterStatistics statistics;
    run_without_gil([&] { return scatter_pass(request, statistics); });

    py::dict out;
    out["sum_weight"] = statistics.sum_weight;
    out["mean"] = to_numpy(statistics.mean.data(), {D});
    out["scatter"] = to_numpy(statistics.scatter.data(), {D, D});
    return out;
}

}  // namespace

void bind_scatter(py::module_& m) {
    m.def(
        "scatter_pass",
        [](const py::array& X, const py::object& sample_weight, const py::object& center, int n_threads) {
            return dispatch_float_dtype(X, "X", [&](auto tag) {
                using T = decltype(tag);
                return scatter_pass_typed<T>(X, sample_weight, center, n_threads);
            });
        },
        py::arg("X"), py::arg("sample_weight"), py::arg("center"), py::arg("n_threads") = 0,
        "One pass over the rows of X (float32 or float64; sample_weight, optional, of X's dtype): "
        "sum_weight W, the weighted mean (D,) and the weighted scatter sum_n w_n (x_n - mean)(x_n - "
        "mean)^T (D, D), accumulated in float64 about the float64 centring point center (D,).");
}

}  // namespace fastelbo::bindings
