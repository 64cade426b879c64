// pybind11 binding of the AFK-MC² seeding and of its proposal distribution (a test hook).
#include "binding_support.hpp"
#include "fastelbo/afkmc2.hpp"

namespace fastelbo::bindings {

void bind_afkmc2(py::module_& m) {
    m.def(
        "afkmc2",
        [](const py::array& X_obj, const py::object& sample_weight_obj, Index n_clusters, Index chain_length,
           std::uint64_t seed, int n_threads) {
            return dispatch_float_dtype(X_obj, "X", [&](auto tag) {
                using T = decltype(tag);
                auto X = require_array<T>(X_obj, "X", {-1, -1});
                const auto data = weighted_rows<KMeansData>(X, sample_weight_obj);
                if (n_clusters < 1 || n_clusters > data.n_rows)
                    throw py::value_error("n_clusters must lie in [1, n_samples]");
                if (chain_length < 1) throw py::value_error("chain_length must be >= 1");
                std::vector<Index> chosen;
                {
                    py::gil_scoped_release release;
                    chosen = afkmc2(data, n_clusters, chain_length, seed, n_threads, python_interrupt_poll());
                }
                if (chosen.empty()) raise_pending_interrupt();
                return indices_to_numpy(chosen);
            });
        },
        py::arg("X"), py::arg("sample_weight"), py::arg("n_clusters"), py::arg("chain_length"), py::arg("seed"),
        py::arg("n_threads") = 0, "AFK-MC² seeding; returns the row indices of the chosen centres.");

    m.def(
        "_afkmc2_proposal",
        [](const py::array& X_obj, const py::object& sample_weight_obj, Index first_row) {
            return dispatch_float_dtype(X_obj, "X", [&](auto tag) {
                using T = decltype(tag);
                auto X = require_array<T>(X_obj, "X", {-1, -1});
                const auto data = weighted_rows<KMeansData>(X, sample_weight_obj);
                if (first_row < 0 || first_row >= data.n_rows) throw py::value_error("first_row out of range");
                const Vector<double> q = afkmc2_proposal(data, first_row, 1);
                return to_numpy(q.data(), {q.size()});
            });
        },
        py::arg("X"), py::arg("sample_weight"), py::arg("first_row"),
        "The AFK-MC² proposal distribution given the first centre (test hook).");
}

}  // namespace fastelbo::bindings
