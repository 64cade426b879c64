// Shared type vocabulary of the fastelbo kernels: row-major Eigen matrices over caller-owned
// memory, the covariance types, and the interrupt hook the drivers poll between work items.
#pragma once

#include <Eigen/Core>
#include <cstdint>
#include <functional>
#include <stdexcept>
#include <string>

namespace fastelbo {

using Index = Eigen::Index;

template <class T>
using RowMatrix = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
template <class T>
using Vector = Eigen::Matrix<T, Eigen::Dynamic, 1>;
template <class T>
using RowVector = Eigen::Matrix<T, 1, Eigen::Dynamic>;
template <class T>
using ConstRowMatrixMap = Eigen::Map<const RowMatrix<T>>;
template <class T>
using RowMatrixMap = Eigen::Map<RowMatrix<T>>;
template <class T>
using ConstVectorMap = Eigen::Map<const Vector<T>>;

// A block of rows of X (read-only) and a block of a per-thread work matrix, as the row kernels
// of the component families see them.
template <class T>
using RowBlock = Eigen::Ref<const RowMatrix<T>>;
template <class T>
using WorkBlock = Eigen::Ref<RowMatrix<T>>;

enum class CovarianceType { Full, Tied, Diag, Spherical };

inline CovarianceType parse_covariance_type(const std::string& name) {
    if (name == "full") return CovarianceType::Full;
    if (name == "tied") return CovarianceType::Tied;
    if (name == "diag") return CovarianceType::Diag;
    if (name == "spherical") return CovarianceType::Spherical;
    throw std::invalid_argument("covariance_type must be one of 'full', 'tied', 'diag', 'spherical'; got '" + name +
                                "'");
}

// Called by the drivers from the thread that called the kernel, between work items (possibly inside
// a parallel region, as OpenMP thread 0), at most every few milliseconds. Returning true asks the
// driver to stop early; the driver then reports that it was interrupted and its outputs are incomplete.
using InterruptPoll = std::function<bool()>;

}  // namespace fastelbo
