// The optional extension module fastelbo._cuda: the Gaussian-mixture E-step pass on a CUDA device.
// Built only with FASTELBO_CUDA=ON; the CUDA runtime is linked statically, so the module needs
// nothing from CUDA but the driver, and imports (reporting no device) where there is none.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <memory>
#include <string>
#include <variant>
#include <vector>

#include "device_pass.hpp"

namespace py = pybind11;
using namespace fastelbo::cuda;

namespace {

template <class T>
using CArray = py::array_t<T, py::array::c_style>;

template <class T>
CArray<T> require(const py::handle& obj, const char* name, const std::vector<py::ssize_t>& shape) {
    if (!CArray<T>::check_(obj))
        throw py::type_error(std::string(name) + " must be a C-contiguous numpy array of dtype " +
                             py::str(py::dtype::of<T>()).cast<std::string>());
    auto a = py::reinterpret_borrow<CArray<T>>(obj);
    bool ok = a.ndim() == static_cast<py::ssize_t>(shape.size());
    for (size_t i = 0; ok && i < shape.size(); ++i) ok = shape[i] < 0 || a.shape(i) == shape[i];
    if (!ok) throw py::value_error(std::string(name) + " has the wrong shape");
    return a;
}

Covariance parse(const std::string& name) {
    if (name == "full") return Covariance::Full;
    if (name == "tied") return Covariance::Tied;
    if (name == "diag") return Covariance::Diag;
    if (name == "spherical") return Covariance::Spherical;
    throw py::value_error("covariance_type must be one of 'full', 'tied', 'diag', 'spherical'; got '" + name + "'");
}

std::vector<py::ssize_t> covariance_shape(Covariance type, py::ssize_t K, py::ssize_t D) {
    switch (type) {
        case Covariance::Full: return {K, D, D};
        case Covariance::Tied: return {D, D};
        case Covariance::Diag: return {K, D};
        case Covariance::Spherical: return {K};
    }
    return {};
}

py::array_t<double> to_numpy(const std::vector<double>& values, const std::vector<py::ssize_t>& shape) {
    py::array_t<double> out(shape);
    std::copy(values.begin(), values.end(), out.mutable_data());
    return out;
}

// X (float32 or float64) on the device: one of two typed holders.
class Rows {
  public:
    Rows(const py::array& X, const py::object& sample_weight, const py::array& centre) {
        if (CArray<float>::check_(X)) {
            holder_ = make<float>(X, sample_weight, centre);
        } else if (CArray<double>::check_(X)) {
            holder_ = make<double>(X, sample_weight, centre);
        } else {
            throw py::type_error("X must be a C-contiguous numpy array of dtype float32 or float64");
        }
    }
    py::ssize_t n_rows() const {
        return std::visit([](const auto& h) { return static_cast<py::ssize_t>(h->n_rows()); }, holder_);
    }
    py::ssize_t n_features() const {
        return std::visit([](const auto& h) { return static_cast<py::ssize_t>(h->n_features()); }, holder_);
    }
    std::string dtype() const { return holder_.index() == 0 ? "float32" : "float64"; }

    py::dict pass(const py::object& log_weights, const py::object& means, const py::object& precisions_cholesky,
                  const std::string& covariance_type, bool compute_moments, bool return_log_norm,
                  bool return_labels) const {
        return std::visit(
            [&](const auto& h) {
                return typed_pass(*h, log_weights, means, precisions_cholesky, covariance_type, compute_moments,
                                  return_log_norm, return_labels);
            },
            holder_);
    }

  private:
    template <class T>
    static std::shared_ptr<DeviceRows<T>> make(const py::array& X_obj, const py::object& sample_weight_obj,
                                               const py::array& centre_obj) {
        auto X = require<T>(X_obj, "X", {-1, -1});
        const py::ssize_t N = X.shape(0), D = X.shape(1);
        auto centre = require<double>(centre_obj, "centre", {D});
        const T* weights = nullptr;
        CArray<T> w;
        if (!sample_weight_obj.is_none()) {
            w = require<T>(sample_weight_obj, "sample_weight", {N});
            weights = w.data();
        }
        py::gil_scoped_release release;
        return std::make_shared<DeviceRows<T>>(X.data(), N, D, weights, centre.data());
    }

    template <class T>
    static py::dict typed_pass(const DeviceRows<T>& rows, const py::object& log_weights_obj,
                               const py::object& means_obj, const py::object& chol_obj,
                               const std::string& covariance_type, bool compute_moments, bool return_log_norm,
                               bool return_labels) {
        const Covariance type = parse(covariance_type);
        const py::ssize_t N = rows.n_rows(), D = rows.n_features();
        auto log_weights = require<T>(log_weights_obj, "log_weights", {-1});
        const py::ssize_t K = log_weights.shape(0);
        auto means = require<T>(means_obj, "means", {K, D});
        auto chol = require<T>(chol_obj, "precisions_cholesky", covariance_shape(type, K, D));
        DeviceMixtureParams<T> params;
        params.type = type;
        params.n_components = K;
        params.log_weights = log_weights.data();
        params.means = means.data();
        params.precisions_cholesky = chol.data();
        py::array_t<T> log_norm;
        py::array_t<std::int64_t> labels;
        DevicePassRequest<T> request;
        request.compute_moments = compute_moments;
        if (return_log_norm) request.log_norm = (log_norm = py::array_t<T>({N})).mutable_data();
        if (return_labels) request.labels = (labels = py::array_t<std::int64_t>({N})).mutable_data();
        request.interrupt = [] {
            py::gil_scoped_acquire gil;
            return PyErr_CheckSignals() != 0;
        };
        DevicePassResult result;
        bool finished;
        {
            py::gil_scoped_release release;
            finished = gaussian_mixture_pass(rows, params, request, result);
        }
        if (!finished) throw py::error_already_set();
        py::dict out;
        out["sum_weight"] = result.sum_weight;
        out["sum_log_norm"] = result.sum_log_norm;
        out["sum_entropy"] = result.sum_entropy;
        out["nk"] = to_numpy(result.nk, {K});
        out["reference"] = to_numpy(result.reference, {K, D});
        if (compute_moments) {
            out["sx"] = to_numpy(result.sx, {K, D});
            out["sxx"] = to_numpy(result.sxx, covariance_shape(type, K, D));
        }
        if (return_log_norm) out["log_norm"] = log_norm;
        if (return_labels) out["labels"] = labels;
        return out;
    }

    std::variant<std::shared_ptr<DeviceRows<float>>, std::shared_ptr<DeviceRows<double>>> holder_;
};

}  // namespace

PYBIND11_MODULE(_cuda, m) {
    m.doc() = "fastelbo's CUDA kernels (private; use FastGMM(device='cuda')).";
    m.def(
        "device_count",
        [] {
            std::string error;
            const int count = device_count(&error);
            return py::make_tuple(count, error);
        },
        "(number of usable CUDA devices, the driver's reason when there is none).");
    m.def("device_name", &device_name, py::arg("device") = 0);
    m.def("runtime_version", &runtime_version, "The CUDA runtime version compiled in (e.g. 13000).");
    m.def("driver_version", &driver_version, "The installed driver's CUDA version, 0 without a driver.");
    py::dict info;
    info["cuda_architectures"] = FASTELBO_CUDA_ARCHITECTURES;
    info["cuda_compiler"] = FASTELBO_CUDA_COMPILER;
    m.attr("BUILD_INFO") = info;
    py::class_<Rows>(m, "DeviceRows",
                     "X (and sample_weight) copied to the GPU once, centred on `centre` in float64 and "
                     "rounded to X's dtype.")
        .def(py::init<const py::array&, const py::object&, const py::array&>(), py::arg("X"),
             py::arg("sample_weight"), py::arg("centre"))
        .def_property_readonly("n_rows", &Rows::n_rows)
        .def_property_readonly("n_features", &Rows::n_features)
        .def_property_readonly("dtype", &Rows::dtype)
        .def("gaussian_mixture_pass", &Rows::pass, py::arg("log_weights"), py::arg("means"),
             py::arg("precisions_cholesky"), py::arg("covariance_type"), py::arg("compute_moments") = true,
             py::arg("return_log_norm") = false, py::arg("return_labels") = false,
             "One E-step pass over the rows on the device: the ELBO sums, nk, the points the moments "
             "are about ('reference', (K, D) float64) and, with compute_moments, sx and sxx about them.");
}
