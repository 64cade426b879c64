// The compiled module fastelbo._core: build facts and the kernel bindings.
#include "binding_support.hpp"

#ifdef FASTELBO_OPENMP
#include <omp.h>
#endif

namespace fastelbo::bindings {
void bind_gaussian_mixture(py::module_& m);
void bind_kmeans(py::module_& m);
}  // namespace fastelbo::bindings

namespace py = pybind11;

PYBIND11_MODULE(_core, m) {
    m.doc() = "fastelbo's compiled kernels (private; use the estimators in fastelbo).";
    m.def("openmp_enabled", [] {
#ifdef FASTELBO_OPENMP
        return true;
#else
        return false;
#endif
    });
    m.def(
        "omp_max_threads",
        [] {
#ifdef FASTELBO_OPENMP
            return omp_get_max_threads();
#else
            return 1;
#endif
        },
        "The OpenMP pool size a kernel gets when n_threads <= 0 (threadpoolctl limits it).");
    m.def("cuda_compiled", [] {
#ifdef FASTELBO_CUDA
        return true;
#else
        return false;
#endif
    });
    py::dict info;
    info["version"] = FASTELBO_VERSION;
    info["eigen_version"] = FASTELBO_EIGEN_VERSION;
    info["compiler"] =
#if defined(__clang__)
        std::string("clang ") + __clang_version__;
#elif defined(__GNUC__)
        std::string("gcc ") + __VERSION__;
#else
        std::string("unknown");
#endif
#ifdef FASTELBO_BUILD_NATIVE
    info["native_isa"] = true;
#else
    info["native_isa"] = false;
#endif
#ifdef FASTELBO_OPENMP
    info["openmp_version"] = _OPENMP;
#endif
    info["simd"] = std::string(Eigen::SimdInstructionSetsInUse());
    m.attr("BUILD_INFO") = info;
    fastelbo::bindings::bind_gaussian_mixture(m);
    fastelbo::bindings::bind_kmeans(m);
}
