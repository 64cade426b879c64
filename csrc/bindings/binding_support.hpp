// Helpers shared by the pybind11 bindings: argument checks that name the offending argument,
// float32/float64 dispatch, and the KeyboardInterrupt poll. No maths here.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

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

template <class Scalar>
py::array_t<Scalar> to_numpy(const Scalar* data, const std::vector<py::ssize_t>& shape) {
    py::array_t<Scalar> out(shape);
    std::copy(data, data + out.size(), out.mutable_data());
    return out;
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
