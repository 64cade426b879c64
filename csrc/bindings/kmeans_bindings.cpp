// pybind11 binding of the k-means initialisation kernels.
#include "binding_support.hpp"
#include "fastelbo/kmeans.hpp"

namespace fastelbo::bindings {
namespace {

// The rows the k-means kernels cluster: all of X (N, D) in order, or with `source_rows` (M,) int64
// the M rows of X it names, in its order, without a copy; sample_weight has one entry per clustered row.
template <class T>
KMeansData<T> clustered_rows(const CArray<T>& X, const py::object& sample_weight_obj,
                             const py::object& source_rows_obj) {
    if (source_rows_obj.is_none()) return weighted_rows<KMeansData>(X, sample_weight_obj);
    auto source_rows = require_array<std::int64_t>(source_rows_obj, "source_rows", {-1});
    const std::int64_t* rows = source_rows.data();
    for (py::ssize_t i = 0; i < source_rows.shape(0); ++i)
        if (rows[i] < 0 || rows[i] >= X.shape(0))
            throw py::value_error("source_rows must index rows of X (0 <= index < " + std::to_string(X.shape(0)) +
                                  "), got " + std::to_string(rows[i]));
    KMeansData<T> data{X.data(), source_rows.shape(0), X.shape(1),
                       optional_data<T>(sample_weight_obj, "sample_weight", source_rows.shape(0))};
    data.source_rows = rows;
    return data;
}

}  // namespace

void bind_kmeans(py::module_& m) {
    m.def(
        "kmeans_plusplus",
        [](const py::array& X_obj, const py::object& sample_weight_obj, Index n_clusters, Index n_local_trials,
           std::uint64_t seed, int n_threads, const py::object& source_rows_obj) {
            return dispatch_float_dtype(X_obj, "X", [&](auto tag) {
                using T = decltype(tag);
                auto X = require_array<T>(X_obj, "X", {-1, -1});
                const auto data = clustered_rows(X, sample_weight_obj, source_rows_obj);
                std::vector<Index> chosen;
                {
                    py::gil_scoped_release release;
                    chosen =
                        kmeans_plusplus(data, n_clusters, n_local_trials, seed, n_threads, python_interrupt_poll());
                }
                if (chosen.empty()) raise_pending_interrupt();
                return indices_to_numpy(chosen);
            });
        },
        py::arg("X"), py::arg("sample_weight"), py::arg("n_clusters"), py::arg("n_local_trials"), py::arg("seed"),
        py::arg("n_threads") = 0, py::arg("source_rows") = py::none(),
        "Greedy k-means++ seeding; returns the positions (among the clustered rows) of the chosen centres.");

    m.def(
        "lloyd_kmeans",
        [](const py::array& X_obj, const py::object& sample_weight_obj, const py::object& centers_obj, int max_iter,
           double tol, int n_threads, const py::object& source_rows_obj) {
            return dispatch_float_dtype(X_obj, "X", [&](auto tag) {
                using T = decltype(tag);
                auto X = require_array<T>(X_obj, "X", {-1, -1});
                auto centers = require_array<double>(centers_obj, "centers", {-1, X.shape(1)});
                const auto data = clustered_rows(X, sample_weight_obj, source_rows_obj);
                KMeansResult result;
                {
                    py::gil_scoped_release release;
                    result = lloyd_kmeans(data, centers.data(), centers.shape(0), max_iter, tol, n_threads,
                                          python_interrupt_poll());
                }
                if (result.interrupted) raise_pending_interrupt();
                return py::make_tuple(to_numpy(result.labels.data(), {static_cast<py::ssize_t>(result.labels.size())}),
                                      to_numpy(result.centers.data(), {result.centers.rows(), result.centers.cols()}),
                                      result.inertia, result.n_iter);
            });
        },
        py::arg("X"), py::arg("sample_weight"), py::arg("centers"), py::arg("max_iter"), py::arg("tol"),
        py::arg("n_threads") = 0, py::arg("source_rows") = py::none(),
        "Lloyd k-means from the given centres; returns (labels, centers, inertia, n_iter), a label per clustered row.");
}

}  // namespace fastelbo::bindings
