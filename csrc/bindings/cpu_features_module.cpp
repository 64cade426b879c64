// The compiled module fastelbo._cpu_features: what the CPU and OS support, read before any kernel
// build is imported. Built for the baseline instruction set, whatever the kernel targets are.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "fastelbo/cpu_features.hpp"

PYBIND11_MODULE(_cpu_features, m) {
    m.doc() = "CPU feature detection for choosing fastelbo's kernel build (private).";
    m.def("supported_x86_64_levels", &fastelbo::supported_x86_64_levels,
          "x86-64 micro-architecture levels ('v2', 'v3', 'v4') that both the CPU and the OS support.");
}
