// Helpers shared by the pybind11 bindings: argument checks that name the offending argument,
// float32/float64 dispatch, and the KeyboardInterrupt poll. No maths here.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <string>
#include <vector>

#include "fastelbo/types.hpp"

namespace fastelbo::bindings {

namespace py = pybind11;

template <class T>
using CArray = py::array_t<T, py::array::c_style>;

inline std::string shape_string(const py::array& a) {
    std::string s = "(";
    for (py::ssize_t i = 0; i < a.ndim(); ++i) s += (i ? ", " : "") + std::to_string(a.shape(i));
    return s + (a.ndim() == 1 ? ",)" : ")");
}

// `name` must be a C-contiguous array of dtype T with the given shape (-1: any extent).
template <class T>
CArray<T> require_array(const py::handle& obj, const char* name, const std::vector<py::ssize_t>& shape) {
    if (!CArray<T>::check_(obj)) {
        throw py::type_error(std::string(name) + " must be a C-contiguous numpy array of dtype " +
                             py::str(py::dtype::of<T>()).cast<std::string>());
    }
    auto a = py::reinterpret_borrow<CArray<T>>(obj);
    bool ok = a.ndim() == static_cast<py::ssize_t>(shape.size());
    for (size_t i = 0; ok && i < shape.size(); ++i) ok = shape[i] < 0 || a.shape(i) == shape[i];
    if (!ok) {
        std::string expected = "(";
        for (size_t i = 0; i < shape.size(); ++i)
            expected += (i ? ", " : "") + (shape[i] < 0 ? std::string("*") : std::to_string(shape[i]));
        throw py::value_error(std::string(name) + " has shape " + shape_string(a) + ", expected " + expected +
                              (shape.size() == 1 ? ",)" : ")"));
    }
    return a;
}

template <class T>
const T* optional_data(const py::object& obj, const char* name, py::ssize_t n) {
    if (obj.is_none()) return nullptr;
    return require_array<T>(obj, name, {n}).data();
}

// Polls Python's signal handlers (Ctrl-C) from the calling thread; the kernels call it between
// rounds of row blocks with the GIL released.
inline InterruptPoll python_interrupt_poll() {
    return [] {
        py::gil_scoped_acquire gil;
        return PyErr_CheckSignals() != 0;
    };
}

// After a kernel reported an interrupt: re-raise the pending KeyboardInterrupt (GIL held).
[[noreturn]] inline void raise_pending_interrupt() {
    throw py::error_already_set();
}

// X (N, D), log_weights (K,) and means (K, D): the arguments every mixture pass starts with,
// checked in that order (so the first bad one is named).
template <class T>
struct MixtureArguments {
    CArray<T> X;
    CArray<T> log_weights;
    CArray<T> means;

    py::ssize_t n_rows() const { return X.shape(0); }
    py::ssize_t n_features() const { return X.shape(1); }
    py::ssize_t n_components() const { return log_weights.shape(0); }

    // Sets the fields every mixture family's parameters share.
    template <class Params>
    void fill(Params& params) const {
        params.n_components = n_components();
        params.n_features = n_features();
        params.log_weights = log_weights.data();
        params.means = means.data();
    }

    // Sets the fields every mixture pass request shares: the rows, their weights, the thread count
    // and the Ctrl-C poll.
    template <class Request>
    void fill(Request& request, const T* sample_weight, int n_threads) const {
        request.X = X.data();
        request.n_rows = n_rows();
        request.sample_weight = sample_weight;
        request.n_threads = n_threads;
        request.interrupt = python_interrupt_poll();
    }
};

template <class T>
MixtureArguments<T> require_mixture_arguments(const py::handle& X_obj, const py::handle& log_weights_obj,
                                              const py::handle& means_obj) {
    auto X = require_array<T>(X_obj, "X", {-1, -1});
    auto log_weights = require_array<T>(log_weights_obj, "log_weights", {-1});
    auto means = require_array<T>(means_obj, "means", {log_weights.shape(0), X.shape(1)});
    return {X, log_weights, means};
}

// The float64 (K, D) points a mixture pass takes its moments about; nullptr for None, which
// `compute_moments` forbids.
inline const double* optional_reference(const py::object& reference_obj, py::ssize_t K, py::ssize_t D,
                                        bool compute_moments = false) {
    const double* reference =
        reference_obj.is_none() ? nullptr : require_array<double>(reference_obj, "reference", {K, D}).data();
    if (compute_moments && reference == nullptr) throw py::value_error("reference is required with compute_moments");
    return reference;
}

// The optional per-row outputs of a mixture pass (log p(x_n), q_n, argmax labels): allocated when
// asked for, pointed to by the pass's request, then handed back in its dictionary.
template <class T>
struct MixtureRowOutputs {
    py::array_t<T> log_norm;
    py::array_t<T> responsibilities;
    py::array_t<std::int64_t> labels;
    bool return_log_norm, return_responsibilities, return_labels;

    template <class Request>
    MixtureRowOutputs(Request& request, py::ssize_t N, py::ssize_t K, bool return_log_norm_,
                      bool return_responsibilities_, bool return_labels_)
        : return_log_norm(return_log_norm_),
          return_responsibilities(return_responsibilities_),
          return_labels(return_labels_) {
        if (return_log_norm) request.log_norm = (log_norm = py::array_t<T>({N})).mutable_data();
        if (return_responsibilities)
            request.responsibilities = (responsibilities = py::array_t<T>({N, K})).mutable_data();
        if (return_labels) request.labels = (labels = py::array_t<std::int64_t>({N})).mutable_data();
    }

    // Adds the outputs that were asked for to `out`.
    void add_to(py::dict& out) const {
        if (return_log_norm) out["log_norm"] = log_norm;
        if (return_responsibilities) out["responsibilities"] = responsibilities;
        if (return_labels) out["labels"] = labels;
    }
};

// Runs `pass` (a callable returning false when it stopped for an interrupt) with the GIL released,
// then re-raises a pending KeyboardInterrupt.
template <class Pass>
void run_without_gil(Pass&& pass) {
    bool finished;
    {
        py::gil_scoped_release release;
        finished = pass();
    }
    if (!finished) raise_pending_interrupt();
}

template <class Scalar>
py::array_t<Scalar> to_numpy(const Scalar* data, const std::vector<py::ssize_t>& shape) {
    py::array_t<Scalar> out(shape);
    std::copy(data, data + out.size(), out.mutable_data());
    return out;
}

// Row indices (a kernel's Index vector) as an int64 array.
template <class Integer>
py::array_t<std::int64_t> indices_to_numpy(const std::vector<Integer>& indices) {
    py::array_t<std::int64_t> out(static_cast<py::ssize_t>(indices.size()));
    std::copy(indices.begin(), indices.end(), out.mutable_data());
    return out;
}

// The ELBO sums and nk (K,) every mixture pass returns, as the start of its result dictionary.
template <class Sums>
py::dict mixture_sums_dict(const Sums& stats, py::ssize_t K) {
    py::dict out;
    out["sum_weight"] = stats.sum_weight;
    out["sum_log_norm"] = stats.sum_log_norm;
    out["sum_entropy"] = stats.sum_entropy;
    out["nk"] = to_numpy(stats.nk.data(), {K});
    return out;
}

// The rows of X (N, D) with their optional sample_weight (N,), as a kernel's data struct
// {X, n_rows, n_features, sample_weight} (e.g. KMeansData).
template <template <class> class Data, class T>
Data<T> weighted_rows(const CArray<T>& X, const py::object& sample_weight_obj) {
    return Data<T>{X.data(), X.shape(0), X.shape(1), optional_data<T>(sample_weight_obj, "sample_weight", X.shape(0))};
}

// Calls f.template operator()<T>() with T = float or double after the dtype of X.
template <class F>
auto dispatch_float_dtype(const py::array& X, const char* name, F&& f) {
    // array_t<T>::check_ compares dtypes by equivalence (not object identity), native byte order.
    if (py::array_t<float>::check_(X)) return f(float{});
    if (py::array_t<double>::check_(X)) return f(double{});
    throw py::type_error(std::string(name) + " must have dtype float32 or float64 in native byte order, got " +
                         py::str(X.dtype()).cast<std::string>());
}

}  // namespace fastelbo::bindings
