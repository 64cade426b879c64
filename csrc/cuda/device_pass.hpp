// The CUDA E-step pass of a Gaussian mixture, as plain C++ (no CUDA or Eigen headers), for the
// bindings. The kernels live in gaussian_mixture_pass.cu.
//
// What a pass computes is what the CPU pass computes (mixture_statistics.hpp): nk, the ELBO sums
// and, with moments, sx and sxx about reference points r_c, all float64. Here r_c is each
// component's mean as the device sees it (rounded to T after centring, see DeviceRows), returned
// with the statistics.
//
// Determinism: every sum is formed in a fixed order for a given device and launch configuration,
// which depends only on (N, K, D, covariance type): per-thread sums over a fixed range of rows, a
// fixed warp shuffle tree for each row's log-sum-exp, float64 partials owned by one thread block
// each and merged in index order. No atomics.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace fastelbo::cuda {

enum class Covariance { Full, Tied, Diag, Spherical };

// Number of usable devices; 0 (with `error` set) when the driver or a device is missing.
int device_count(std::string* error);
std::string device_name(int device);
int runtime_version();
int driver_version();

// The rows of X (and their sample weights) on the current device, centred on `centre` (float64,
// [D]): x~ = x - centre is formed in float64 and rounded to T, so that log-joints and moments are
// computed on numbers near zero. Copied once; passes read it.
template <class T>
class DeviceRows {
  public:
    DeviceRows(const T* X, long long n_rows, long long n_features, const T* sample_weight, const double* centre);
    ~DeviceRows();
    DeviceRows(const DeviceRows&) = delete;
    DeviceRows& operator=(const DeviceRows&) = delete;

    long long n_rows() const { return n_rows_; }
    long long n_features() const { return n_features_; }
    const std::vector<double>& centre() const { return centre_; }
    const T* rows() const { return rows_; }
    const T* weights() const { return weights_; }

  private:
    long long n_rows_, n_features_;
    std::vector<double> centre_;
    T* rows_ = nullptr;
    T* weights_ = nullptr;
};

// Parameters in the working precision (scikit-learn's shapes; precision = U U^T).
template <class T>
struct DeviceMixtureParams {
    Covariance type = Covariance::Full;
    long long n_components = 0;
    const T* log_weights = nullptr;          // [K]
    const T* means = nullptr;                // [K, D]
    const T* precisions_cholesky = nullptr;  // full [K, D, D]; tied [D, D]; diag [K, D]; spherical [K]
};

template <class T>
struct DevicePassRequest {
    bool compute_moments = true;
    T* log_norm = nullptr;             // [N] host out, optional
    std::int64_t* labels = nullptr;    // [N] host out, optional
    std::function<bool()> interrupt;  // polled between kernel launches (at most every 50 ms)
};

struct DevicePassResult {
    double sum_weight = 0, sum_log_norm = 0, sum_entropy = 0;
    std::vector<double> nk;         // [K]
    std::vector<double> sx, sxx;    // with moments: [K, D]; sxx shaped as the covariances
    std::vector<double> reference;  // [K, D] the points the moments are about
};

// Returns false if interrupted (the result is then incomplete). Throws std::invalid_argument on bad
// arguments and std::runtime_error on CUDA errors.
template <class T>
bool gaussian_mixture_pass(const DeviceRows<T>& rows, const DeviceMixtureParams<T>& params,
                           const DevicePassRequest<T>& request, DevicePassResult& result);

}  // namespace fastelbo::cuda
