// A compiled kernel module fastelbo._core_<target> (one per CPU target, FASTELBO_MODULE_NAME; the
// loader fastelbo._core picks one at import): build facts and the kernel bindings.
#include <pybind11/stl.h>

#include <algorithm>
#include <vector>

#include "binding_support.hpp"
#include "fastelbo/floating_point_mode.hpp"

#ifdef FASTELBO_OPENMP
#include <omp.h>
#endif

namespace fastelbo::bindings {
void bind_afkmc2(py::module_& m);
void bind_exponential_family_mixture(py::module_& m);
void bind_gaussian_mixture(py::module_& m);
void bind_factor_analyser_mixture(py::module_& m);
void bind_kmeans(py::module_& m);
void bind_scatter(py::module_& m);
void bind_truncated_mixture(py::module_& m);
}  // namespace fastelbo::bindings

namespace py = pybind11;

PYBIND11_MODULE(FASTELBO_MODULE_NAME, m) {
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
    // Test hooks for the floating-point environment the kernels must leave as they found it.
    m.def("_flushes_subnormals", &fastelbo::flushes_subnormals,
          "Whether the calling thread flushes subnormal floats to zero (FTZ/DAZ).");
    m.def("_set_flushing_subnormals", &fastelbo::set_flushing_subnormals, py::arg("on"),
          "Set or clear the calling thread's flush-to-zero mode.");
    m.def(
        "_pool_flushes_subnormals",
        [](int n_threads) {
            std::vector<int> flags(std::max(n_threads, 1), -1);
#ifdef FASTELBO_OPENMP
#pragma omp parallel num_threads(std::max(n_threads, 1))
            flags[omp_get_thread_num()] = fastelbo::flushes_subnormals() ? 1 : 0;
#else
            flags[0] = fastelbo::flushes_subnormals() ? 1 : 0;
#endif
            return flags;
        },
        py::arg("n_threads"), "The flush mode of each thread of an OpenMP team of n_threads (-1: thread not started).");
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
    info["cpu_target"] = FASTELBO_CPU_TARGET;
    info["native_isa"] = std::string(FASTELBO_CPU_TARGET) == "native";
#ifdef FASTELBO_OPENMP
    info["openmp_version"] = _OPENMP;
#endif
    info["simd"] = std::string(Eigen::SimdInstructionSetsInUse());
    m.attr("BUILD_INFO") = info;
    fastelbo::bindings::bind_gaussian_mixture(m);
    fastelbo::bindings::bind_factor_analyser_mixture(m);
    fastelbo::bindings::bind_kmeans(m);
    fastelbo::bindings::bind_scatter(m);
    fastelbo::bindings::bind_afkmc2(m);
    fastelbo::bindings::bind_truncated_mixture(m);
    fastelbo::bindings::bind_exponential_family_mixture(m);
}
