// pybind11 binding of the k-means initialisation kernels.
#include "binding_support.hpp"
#include "fastelbo/kmeans.hpp"

namespace fastelbo::bindings {

void bind_kmeans(py::module_& m) {
    m.def(
        "kmeans_plusplus",
        [](const py::array& X_obj, const py::object& sample_weight_obj, Index n_clusters, Index n_local_trials,
           std::uint64_t seed, int n_threads) {
            return dispatch_float_dtype(X_obj, "X", [&](auto tag) {
                using T = decltype(tag);
                auto X = require_array<T>(X_obj, "X", {-1, -1});
                const auto data = weighted_rows<KMeansData>(X, sample_weight_obj);
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
        py::arg("n_threads") = 0, "Greedy k-means++ seeding; returns the row indices of the chosen centres.");

    m.def(
        "lloyd_kmeans",
        [](const py::array& X_obj, const py::object& sample_weight_obj, const py::object& centers_obj, int max_iter,
           double tol, int n_threads) {
            return dispatch_float_dtype(X_obj, "X", [&](auto tag) {
                using T = decltype(tag);
                auto X = require_array<T>(X_obj, "X", {-1, -1});
                auto centers = require_array<double>(centers_obj, "centers", {-1, X.shape(1)});
                const auto data = weighted_rows<KMeansData>(X, sample_weight_obj);
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
        py::arg("n_threads") = 0, "Lloyd k-means from the given centres; returns (labels, centers, inertia, n_iter).");
}

}  // namespace fastelbo::bindings
