// CUDA kernels of the Gaussian-mixture E-step and their host driver (see device_pass.hpp).
//
// Rows are processed in chunks of B rows; a chunk's [B, K] log-joints live in one scratch matrix
// (never N x K), overwritten by the weighted responsibilities:
//   1. log-joints as tiled products in registers: diag / spherical / tied
//      sum_d (x~_d s_cd - m_cd)^2 (no expansion of the square, so no cancellation), full
//      ||(x~ - mu~_c) U_c||^2 per component on per-component centred tiles;
//   2. one warp per row: fused log-sum-exp, responsibilities, entropy (row_maths.hpp, shared with
//      the CPU kernels), per-row outputs;
//   3. moments about each component's own mean, (x~ - mu~_c) and (x~ - mu~_c)^2 per term (never
//      E[x^2] - E[x]^2), summed in T over at most `rows_per_split` rows per thread, then added to a
//      float64 partial that one thread owns for the whole pass; partials are merged in index order.
#include <cuda_runtime.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <stdexcept>
#include <string>
#include <vector>

#include "device_pass.hpp"
#include "fastelbo/row_maths.hpp"

namespace fastelbo::cuda {

namespace {

void check(cudaError_t status, const char* what) {
    if (status != cudaSuccess) {
        cudaGetLastError();  // clear a sticky launch error so the next call starts clean
        throw std::runtime_error(std::string("CUDA error in ") + what + ": " + cudaGetErrorString(status));
    }
}

// Device memory owned by the host object.
template <class U>
class DeviceBuffer {
  public:
    DeviceBuffer() = default;
    explicit DeviceBuffer(size_t count) { resize(count); }
    ~DeviceBuffer() { release(); }
    DeviceBuffer(const DeviceBuffer&) = delete;
    DeviceBuffer& operator=(const DeviceBuffer&) = delete;

    void resize(size_t count) {
        release();
        count_ = count;
        if (count > 0) {
            const cudaError_t status = cudaMalloc(&data_, count * sizeof(U));
            if (status == cudaErrorMemoryAllocation) {
                cudaGetLastError();
                throw std::runtime_error("CUDA: out of device memory allocating " +
                                         std::to_string(count * sizeof(U) >> 20) + " MiB");
            }
            check(status, "cudaMalloc");
        }
    }
    void upload(const U* host, size_t count) {
        resize(count);
        if (count) check(cudaMemcpy(data_, host, count * sizeof(U), cudaMemcpyHostToDevice), "cudaMemcpy to device");
    }
    void zero() {
        if (count_) check(cudaMemsetAsync(data_, 0, count_ * sizeof(U)), "cudaMemsetAsync");
    }
    std::vector<U> download() const {
        std::vector<U> out(count_);
        if (count_) check(cudaMemcpy(out.data(), data_, count_ * sizeof(U), cudaMemcpyDeviceToHost), "cudaMemcpy to host");
        return out;
    }
    U* get() const { return data_; }
    size_t size() const { return count_; }

  private:
    void release() {
        if (data_) cudaFree(data_);
        data_ = nullptr;
        count_ = 0;
    }
    U* data_ = nullptr;
    size_t count_ = 0;
};

// ---------------------------------------------------------------------------------------- kernels

template <class T>
__global__ void centre_rows_kernel(T* __restrict__ x, long long count, int D, const double* __restrict__ centre) {
    for (long long i = blockIdx.x * static_cast<long long>(blockDim.x) + threadIdx.x; i < count;
         i += static_cast<long long>(gridDim.x) * blockDim.x) {
        x[i] = static_cast<T>(static_cast<double>(x[i]) - centre[i % D]);
    }
}

// exp in the working precision (expf for float: full accuracy, not the fast intrinsic).
__device__ __forceinline__ float exponential(float t) { return expf(t); }
__device__ __forceinline__ double exponential(double t) { return ::exp(t); }

// COUNT consecutive values from 16-byte aligned shared memory, as vector loads (float4 / double2).
template <int COUNT, class T>
__device__ __forceinline__ void load_contiguous(const T* p, T* out) {
    if constexpr (COUNT == 4 && sizeof(T) == 4) {
        const float4 q = *reinterpret_cast<const float4*>(p);
        out[0] = q.x, out[1] = q.y, out[2] = q.z, out[3] = q.w;
    } else if constexpr (COUNT % 2 == 0 && sizeof(T) == 8) {
#pragma unroll
        for (int i = 0; i < COUNT; i += 2) {
            const double2 q = *reinterpret_cast<const double2*>(p + i);
            out[i] = q.x, out[i + 1] = q.y;
        }
    } else {
#pragma unroll
        for (int i = 0; i < COUNT; ++i) out[i] = p[i];
    }
}

// A thread's PER_THREAD rows (or columns) of a micro-tile as two vector loads (see micro_index).
template <int TILE, int PER_THREAD, class T>
__device__ __forceinline__ void load_micro(const T* row, int group, T* out) {
    constexpr int HALF = PER_THREAD / 2;
    load_contiguous<HALF>(row + group * HALF, out);
    load_contiguous<HALF>(row + TILE / 2 + group * HALF, out + HALF);
}

// Row / column `i` of a thread's micro-tile: two halves of TILE/2 consecutive entries each, so that
// the threads of a warp read consecutive shared-memory words.
template <int TILE, int PER_THREAD>
__device__ __forceinline__ int micro_index(int group, int i) {
    constexpr int HALF = PER_THREAD / 2;
    return i < HALF ? group * HALF + i : TILE / 2 + group * HALF + (i - HALF);
}

// lj[n, c] = constant_c - 1/2 sum_d (x_nd s_cd + o_cd)^2 for a [BM rows, BN components] tile;
// o_cd = -m_cd. Out-of-range rows, components and features read as 0.
template <class T, int BM, int BN, int BK, int TM, int TN>
__global__ void __launch_bounds__((BM / TM) * (BN / TN))
    diagonal_log_joint_kernel(const T* __restrict__ x, int rows, int D, int K, const T* __restrict__ scale,
                              const T* __restrict__ offset, const T* __restrict__ constant, T* __restrict__ lj) {
    constexpr int THREADS = (BM / TM) * (BN / TN);
    constexpr int X_LOADS = BM * BK / THREADS;
    constexpr int P_LOADS = BN * BK / THREADS;
    static_assert(X_LOADS * THREADS == BM * BK && P_LOADS * THREADS == BN * BK, "tile loads must divide evenly");
    // Rows padded by 4 words: the transposing stores then fall in distinct banks.
    __shared__ __align__(16) T xs[BK][BM + 4];
    __shared__ __align__(16) T ss[BK][BN + 4];
    __shared__ __align__(16) T os[BK][BN + 4];
    const int row0 = blockIdx.x * BM, col0 = blockIdx.y * BN;
    const int tid = threadIdx.x;
    const int tx = tid % (BN / TN), ty = tid / (BN / TN);

    T xr[X_LOADS], sr[P_LOADS], orr[P_LOADS];
    auto load = [&](int k0) {
#pragma unroll
        for (int i = 0; i < X_LOADS; ++i) {
            const int e = tid + i * THREADS, r = e / BK, k = e % BK;
            const int gr = row0 + r, gk = k0 + k;
            xr[i] = (gr < rows && gk < D) ? x[static_cast<long long>(gr) * D + gk] : T(0);
        }
#pragma unroll
        for (int i = 0; i < P_LOADS; ++i) {
            const int e = tid + i * THREADS, c = e / BK, k = e % BK;
            const int gc = col0 + c, gk = k0 + k;
            const bool inside = gc < K && gk < D;
            sr[i] = inside ? scale[static_cast<long long>(gc) * D + gk] : T(0);
            orr[i] = inside ? offset[static_cast<long long>(gc) * D + gk] : T(0);
        }
    };
    auto store = [&] {
#pragma unroll
        for (int i = 0; i < X_LOADS; ++i) {
            const int e = tid + i * THREADS;
            xs[e % BK][e / BK] = xr[i];
        }
#pragma unroll
        for (int i = 0; i < P_LOADS; ++i) {
            const int e = tid + i * THREADS;
            ss[e % BK][e / BK] = sr[i];
            os[e % BK][e / BK] = orr[i];
        }
    };

    T acc[TM][TN];
#pragma unroll
    for (int i = 0; i < TM; ++i)
#pragma unroll
        for (int j = 0; j < TN; ++j) acc[i][j] = T(0);

    load(0);
    store();
    __syncthreads();
    for (int k0 = 0; k0 < D; k0 += BK) {
        const bool more = k0 + BK < D;
        if (more) load(k0 + BK);  // the next tile's global loads overlap this tile's arithmetic
#pragma unroll
        for (int k = 0; k < BK; ++k) {
            T a[TM], s[TN], o[TN];
            load_micro<BM, TM>(xs[k], ty, a);
            load_micro<BN, TN>(ss[k], tx, s);
            load_micro<BN, TN>(os[k], tx, o);
#pragma unroll
            for (int i = 0; i < TM; ++i)
#pragma unroll
                for (int j = 0; j < TN; ++j) {
                    const T e = fma(a[i], s[j], o[j]);
                    acc[i][j] = fma(e, e, acc[i][j]);
                }
        }
        __syncthreads();
        if (more) {
            store();
            __syncthreads();
        }
    }
#pragma unroll
    for (int i = 0; i < TM; ++i) {
        const int gr = row0 + micro_index<BM, TM>(ty, i);
        if (gr >= rows) continue;
#pragma unroll
        for (int j = 0; j < TN; ++j) {
            const int gc = col0 + micro_index<BN, TN>(tx, j);
            if (gc < K) lj[static_cast<long long>(gr) * K + gc] = constant[gc] - T(0.5) * acc[i][j];
        }
    }
}

// Full covariances: lj[n, c] = constant_c - 1/2 ||(x~_n - mu~_c) U_c||^2, one component per
// blockIdx.y, 128 rows per block, the product over 64-column tiles of U_c. Each warp owns 8 columns
// of a tile, so that where every U_c is upper triangular (`upper`, fastelbo's own factors) a warp
// skips the k-tiles below its columns (at D = 64, 3/8 of the multiply-adds); a row's squared norm is
// then summed over the 16 column groups in shared memory, in a fixed order.
template <class T>
__global__ void __launch_bounds__(256, 2)
    full_log_joint_kernel(const T* __restrict__ x, int rows, int D, int K, const T* __restrict__ means,
                          const T* __restrict__ chol, const T* __restrict__ constant, bool upper,
                          T* __restrict__ lj) {
    constexpr int BM = 128, BN = 64, BK = 16, TM = 8, TN = 4, GROUPS = BN / TN;
    __shared__ __align__(16) T as[BK][BM + 4];  // padded: the transposing stores fall in fewer banks
    __shared__ __align__(16) T us[BK][BN];
    __shared__ T partial[GROUPS][BM];
    const int row0 = blockIdx.x * BM, c = blockIdx.y;
    // Rows vary along a warp's lanes, columns between warps: warp w holds column groups 2w, 2w + 1.
    const int tid = threadIdx.x, ty = tid % 16, tx = tid / 16;
    const T* mean = means + static_cast<long long>(c) * D;
    const T* u = chol + static_cast<long long>(c) * D * D;
    T norm[TM];
#pragma unroll
    for (int i = 0; i < TM; ++i) norm[i] = T(0);
    for (int j0 = 0; j0 < D; j0 += BN) {
        const int warp_last_column = j0 + (tx | 1) * TN + TN - 1;
        T acc[TM][TN];
#pragma unroll
        for (int i = 0; i < TM; ++i)
#pragma unroll
            for (int j = 0; j < TN; ++j) acc[i][j] = T(0);
        const int k_end = upper ? min(D, j0 + BN) : D;  // rows of U_c below the tile's columns are 0
        for (int k0 = 0; k0 < k_end; k0 += BK) {
#pragma unroll
            for (int i = 0; i < BM * BK / 256; ++i) {
                const int e = tid + i * 256, r = e / BK, k = e % BK;
                const int gr = row0 + r, gk = k0 + k;
                as[k][r] = (gr < rows && gk < D) ? x[static_cast<long long>(gr) * D + gk] - mean[gk] : T(0);
            }
#pragma unroll
            for (int i = 0; i < BN * BK / 256; ++i) {
                const int e = tid + i * 256, k = e / BN, j = e % BN;
                const int gk = k0 + k, gj = j0 + j;
                us[k][j] = (gk < D && gj < D) ? u[static_cast<long long>(gk) * D + gj] : T(0);
            }
            __syncthreads();
            if (!upper || k0 <= warp_last_column) {  // warp-uniform: U[k][j] = 0 for k > j
#pragma unroll
                for (int k = 0; k < BK; ++k) {
                    T a[TM], b[TN];
                    load_micro<BM, TM>(as[k], ty, a);
                    load_contiguous<TN>(us[k] + tx * TN, b);
#pragma unroll
                    for (int i = 0; i < TM; ++i)
#pragma unroll
                        for (int j = 0; j < TN; ++j) acc[i][j] = fma(a[i], b[j], acc[i][j]);
                }
            }
            __syncthreads();
        }
#pragma unroll
        for (int i = 0; i < TM; ++i)
#pragma unroll
            for (int j = 0; j < TN; ++j) norm[i] = fma(acc[i][j], acc[i][j], norm[i]);
    }
#pragma unroll
    for (int i = 0; i < TM; ++i) partial[tx][micro_index<BM, TM>(ty, i)] = norm[i];
    __syncthreads();
    if (tid < BM) {
        T sum = T(0);
#pragma unroll
        for (int g = 0; g < GROUPS; ++g) sum += partial[g][tid];
        const int gr = row0 + tid;
        if (gr < rows) lj[static_cast<long long>(gr) * K + c] = constant[c] - T(0.5) * sum;
    }
}

// Tied covariance: y = x~ U for a chunk of rows (B D^2, independent of K).
template <class T>
__global__ void whiten_rows_kernel(const T* __restrict__ x, int rows, int D, const T* __restrict__ chol,
                                   T* __restrict__ y) {
    const long long count = static_cast<long long>(rows) * D;
    for (long long i = blockIdx.x * static_cast<long long>(blockDim.x) + threadIdx.x; i < count;
         i += static_cast<long long>(gridDim.x) * blockDim.x) {
        const long long n = i / D;
        const int j = static_cast<int>(i % D);
        T sum = T(0);
        for (int k = 0; k < D; ++k) sum = fma(x[n * D + k], chol[static_cast<long long>(k) * D + j], sum);
        y[i] = sum;
    }
}

// One warp per row: log-joints -> weighted responsibilities in place, the row's ELBO terms
// (w log p(x), w H[q], w) for the chunk's ordered sum, and the optional per-row outputs.
template <class T>
__global__ void row_posterior_kernel(T* __restrict__ lj, int rows, int K, const T* __restrict__ weights,
                                     T* __restrict__ log_norm, long long* __restrict__ labels,
                                     double* __restrict__ row_terms) {
    const int row = (blockIdx.x * blockDim.x + threadIdx.x) / 32;
    const int lane = threadIdx.x % 32;
    if (row >= rows) return;  // a whole warp leaves together
    T* l = lj + static_cast<long long>(row) * K;
    T max = -INFINITY;
    int argmax = K;
    for (int c = lane; c < K; c += 32) {
        const T v = l[c];
        if (v > max) max = v, argmax = c;  // the first index of the lane's largest value
    }
    for (int offset = 16; offset > 0; offset /= 2) {
        const T other = __shfl_xor_sync(0xffffffffu, max, offset);
        const int other_index = __shfl_xor_sync(0xffffffffu, argmax, offset);
        if (other > max || (other == max && other_index < argmax)) max = other, argmax = other_index;
    }
    const T cutoff = underflow_cutoff<T>();
    T s = T(0), et = T(0);
    for (int c = lane; c < K; c += 32) {
        const T t = l[c] - max;
        const T e = kept_exponential(t, exponential(t), cutoff);
        s += e;
        et = fma(e, t, et);
    }
    for (int offset = 16; offset > 0; offset /= 2) {
        s += __shfl_xor_sync(0xffffffffu, s, offset);
        et += __shfl_xor_sync(0xffffffffu, et, offset);
    }
    const RowPosteriorTerms<T> terms = row_posterior_terms(max, s, et);
    const T w = weights ? weights[row] : T(1);
    // e_c again rather than stored: a read of the row instead of a write and a read.
    for (int c = lane; c < K; c += 32) {
        const T t = l[c] - max;
        const T q = kept_exponential(t, exponential(t), cutoff) * terms.inv_s;
        l[c] = weights ? q * w : q;
    }
    if (lane == 0) {
        const double wd = static_cast<double>(w);
        row_terms[row] = wd * terms.log_norm;
        row_terms[rows + row] = wd * terms.entropy;
        row_terms[2 * rows + row] = wd;
        if (log_norm) log_norm[row] = static_cast<T>(terms.log_norm);
        if (labels) labels[row] = argmax;
    }
}

// The chunk's three ELBO sums in a fixed order: thread t sums rows t, t + 256, ..., then a tree.
__global__ void __launch_bounds__(256) sum_row_terms_kernel(const double* __restrict__ row_terms, int rows,
                                                              double* __restrict__ chunk_sums) {
    __shared__ double partial[3][256];
    for (int j = 0; j < 3; ++j) {
        double sum = 0;
        for (int r = threadIdx.x; r < rows; r += 256) sum += row_terms[static_cast<long long>(j) * rows + r];
        partial[j][threadIdx.x] = sum;
    }
    __syncthreads();
    for (int width = 128; width > 0; width /= 2) {
        if (threadIdx.x < width)
            for (int j = 0; j < 3; ++j) partial[j][threadIdx.x] += partial[j][threadIdx.x + width];
        __syncthreads();
    }
    if (threadIdx.x < 3) chunk_sums[threadIdx.x] += partial[threadIdx.x][0];
}

// nk: thread c of split s sums q[., c] over the split's rows into partial[s][c].
template <class T>
__global__ void component_weight_kernel(const T* __restrict__ q, int rows, int K, int rows_per_split,
                                        double* __restrict__ partial) {
    const int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= K) return;
    const int r0 = blockIdx.y * rows_per_split, r1 = min(rows, r0 + rows_per_split);
    T sum = T(0);
    for (int r = r0; r < r1; ++r) sum += q[static_cast<long long>(r) * K + c];
    partial[static_cast<long long>(blockIdx.y) * K + c] += static_cast<double>(sum);
}

// sx[c, d] += sum_n q_nc (x~_nd - mu~_cd), s2[c, d] += sum_n q_nc (x~_nd - mu~_cd)^2 over a split of
// the chunk's rows, for a 64 x 64 (component, feature) tile; partial = [split][2][K][D]. The blocks
// of the first feature tile also sum nk[c] = sum_n q_nc into nk_partial = [split][K]. Terms with
// q_nc = 0 (exactly: below the underflow cutoff) add nothing and are skipped.
template <class T>
__global__ void __launch_bounds__(256)
    diagonal_moments_kernel(const T* __restrict__ x, const T* __restrict__ q, int rows, int D, int K,
                            const T* __restrict__ means, int rows_per_split, double* __restrict__ partial,
                            double* __restrict__ nk_partial) {
    constexpr int BR = 16, BC = 64, BD = 64;
    __shared__ __align__(16) T qs[BR][BC];
    __shared__ __align__(16) T xs[BR][BD];
    const int c0 = blockIdx.x * BC, d0 = blockIdx.y * BD, split = blockIdx.z;
    const int tid = threadIdx.x, tx = tid % 16, ty = tid / 16;
    const int r0 = split * rows_per_split, r1 = min(rows, r0 + rows_per_split);
    T mu[4][4], s1[4][4], s2[4][4], nk[4] = {T(0), T(0), T(0), T(0)};
#pragma unroll
    for (int i = 0; i < 4; ++i)
#pragma unroll
        for (int j = 0; j < 4; ++j) {
            const int c = c0 + ty * 4 + i, d = d0 + tx * 4 + j;
            mu[i][j] = (c < K && d < D) ? means[static_cast<long long>(c) * D + d] : T(0);
            s1[i][j] = s2[i][j] = T(0);
        }
    for (int rb = r0; rb < r1; rb += BR) {
        bool any = false;
#pragma unroll
        for (int i = 0; i < BR * BC / 256; ++i) {
            const int e = tid + i * 256, r = e / BC, c = e % BC;
            const int gr = rb + r, gc = c0 + c;
            const T v = (gr < r1 && gc < K) ? q[static_cast<long long>(gr) * K + gc] : T(0);
            qs[r][c] = v;
            any = any || v != T(0);
        }
#pragma unroll
        for (int i = 0; i < BR * BD / 256; ++i) {
            const int e = tid + i * 256, r = e / BD, d = e % BD;
            const int gr = rb + r, gd = d0 + d;
            xs[r][d] = (gr < r1 && gd < D) ? x[static_cast<long long>(gr) * D + gd] : T(0);
        }
        // A tile of rows without responsibility for these components adds exactly nothing.
        if (__syncthreads_or(any)) {
#pragma unroll 4
            for (int r = 0; r < BR; ++r) {
                T qv[4], xv[4];
                load_contiguous<4>(qs[r] + ty * 4, qv);
                // The 16 threads of a half-warp share their components: mostly a uniform branch.
                if (qv[0] == T(0) && qv[1] == T(0) && qv[2] == T(0) && qv[3] == T(0)) continue;
#pragma unroll
                for (int i = 0; i < 4; ++i) nk[i] += qv[i];
                load_contiguous<4>(xs[r] + tx * 4, xv);
#pragma unroll
                for (int i = 0; i < 4; ++i)
#pragma unroll
                    for (int j = 0; j < 4; ++j) {
                        const T diff = xv[j] - mu[i][j];
                        const T weighted = qv[i] * diff;
                        s1[i][j] += weighted;
                        s2[i][j] = fma(weighted, diff, s2[i][j]);
                    }
            }
        }
        __syncthreads();
    }
    double* first = partial + static_cast<long long>(split) * 2 * K * D;
    double* second = first + static_cast<long long>(K) * D;
#pragma unroll
    for (int i = 0; i < 4; ++i)
#pragma unroll
        for (int j = 0; j < 4; ++j) {
            const int c = c0 + ty * 4 + i, d = d0 + tx * 4 + j;
            if (c < K && d < D) {
                first[static_cast<long long>(c) * D + d] += static_cast<double>(s1[i][j]);
                second[static_cast<long long>(c) * D + d] += static_cast<double>(s2[i][j]);
            }
        }
    if (blockIdx.y == 0 && tx == 0) {
#pragma unroll
        for (int i = 0; i < 4; ++i) {
            const int c = c0 + ty * 4 + i;
            if (c < K) nk_partial[static_cast<long long>(split) * K + c] += static_cast<double>(nk[i]);
        }
    }
}

// S_c[i, j] += sum_n q_nc (x~_ni - mu~_ci)(x~_nj - mu~_cj) over a split of the chunk's rows, one
// component per blockIdx.y, a 64 x 64 tile of (i, j) per blockIdx.z; partial = [split][K][D][D].
template <class T>
__global__ void __launch_bounds__(256)
    full_scatter_kernel(const T* __restrict__ x, const T* __restrict__ q, int rows, int D, int K,
                        const T* __restrict__ means, int rows_per_split, double* __restrict__ partial) {
    constexpr int BR = 16, BT = 64;
    __shared__ __align__(16) T as[BR][BT];
    __shared__ __align__(16) T bs[BR][BT];
    __shared__ T qs[BR];
    const int split = blockIdx.x, c = blockIdx.y;
    const int tiles = (D + BT - 1) / BT;
    const int i0 = (blockIdx.z / tiles) * BT, j0 = (blockIdx.z % tiles) * BT;
    const int tid = threadIdx.x, tx = tid % 16, ty = tid / 16;
    const int r0 = split * rows_per_split, r1 = min(rows, r0 + rows_per_split);
    const T* mean = means + static_cast<long long>(c) * D;
    T acc[4][4];
#pragma unroll
    for (int i = 0; i < 4; ++i)
#pragma unroll
        for (int j = 0; j < 4; ++j) acc[i][j] = T(0);
    for (int rb = r0; rb < r1; rb += BR) {
        bool any = false;
        if (tid < BR) {
            const int gr = rb + tid;
            const T v = gr < r1 ? q[static_cast<long long>(gr) * K + c] : T(0);
            qs[tid] = v;
            any = v != T(0);
        }
        if (!__syncthreads_or(any)) continue;  // no responsibility in these rows: nothing to add
#pragma unroll
        for (int i = 0; i < BR * BT / 256; ++i) {
            const int e = tid + i * 256, r = e / BT, k = e % BT;
            const int gr = rb + r, gi = i0 + k, gj = j0 + k;
            const long long row = static_cast<long long>(gr) * D;
            as[r][k] = (gr < r1 && gi < D) ? qs[r] * (x[row + gi] - mean[gi]) : T(0);
            bs[r][k] = (gr < r1 && gj < D) ? x[row + gj] - mean[gj] : T(0);
        }
        __syncthreads();
#pragma unroll 4
        for (int r = 0; r < BR; ++r) {
            T a[4], b[4];
            load_contiguous<4>(as[r] + ty * 4, a);
            load_contiguous<4>(bs[r] + tx * 4, b);
#pragma unroll
            for (int i = 0; i < 4; ++i)
#pragma unroll
                for (int j = 0; j < 4; ++j) acc[i][j] = fma(a[i], b[j], acc[i][j]);
        }
        __syncthreads();
    }
    double* out = partial + (static_cast<long long>(split) * K + c) * D * D;
#pragma unroll
    for (int i = 0; i < 4; ++i)
#pragma unroll
        for (int j = 0; j < 4; ++j) {
            const int gi = i0 + ty * 4 + i, gj = j0 + tx * 4 + j;
            if (gi < D && gj < D) out[static_cast<long long>(gi) * D + gj] += static_cast<double>(acc[i][j]);
        }
}

// out[i] = sum_s partial[s * size + i], s in order.
__global__ void sum_partials_kernel(const double* __restrict__ partial, int splits, long long size,
                                    double* __restrict__ out) {
    for (long long i = blockIdx.x * static_cast<long long>(blockDim.x) + threadIdx.x; i < size;
         i += static_cast<long long>(gridDim.x) * blockDim.x) {
        double sum = 0;
        for (int s = 0; s < splits; ++s) sum += partial[s * size + i];
        out[i] = sum;
    }
}

// ------------------------------------------------------------------------------------ host driver

unsigned grid_for(long long count, int threads) {
    return static_cast<unsigned>(std::min<long long>((count + threads - 1) / threads, 1 << 20));
}

std::vector<double> sum_partials(const DeviceBuffer<double>& partial, int splits, long long size) {
    DeviceBuffer<double> total(static_cast<size_t>(size));
    sum_partials_kernel<<<grid_for(size, 256), 256>>>(partial.get(), splits, size, total.get());
    check(cudaGetLastError(), "sum_partials_kernel");
    return total.download();
}

template <class T>
void launch_diagonal_log_joint(const T* x, int rows, int D, int K, const T* scale, const T* offset,
                               const T* constant, T* lj) {
    if constexpr (sizeof(T) == 4) {
        constexpr int BM = 128, BN = 128;
        const dim3 grid((rows + BM - 1) / BM, (K + BN - 1) / BN);
        diagonal_log_joint_kernel<T, BM, BN, 8, 8, 8><<<grid, 256>>>(x, rows, D, K, scale, offset, constant, lj);
    } else {
        constexpr int BM = 64, BN = 64;
        const dim3 grid((rows + BM - 1) / BM, (K + BN - 1) / BN);
        diagonal_log_joint_kernel<T, BM, BN, 8, 4, 4><<<grid, 256>>>(x, rows, D, K, scale, offset, constant, lj);
    }
    check(cudaGetLastError(), "diagonal_log_joint_kernel");
}

// Polls the caller's interrupt at most every 50 ms, and keeps at most two chunks queued on the
// device, so that an interrupt is seen within a chunk's time of being asked for.
class InterruptGate {
  public:
    explicit InterruptGate(const std::function<bool()>& poll) : poll_(poll), last_(clock::now()) {
        for (auto& event : events_) check(cudaEventCreateWithFlags(&event, cudaEventDisableTiming), "cudaEventCreate");
    }
    ~InterruptGate() {
        for (auto event : events_) cudaEventDestroy(event);
    }
    // After a chunk was queued; returns true to stop.
    bool after_chunk() {
        check(cudaEventRecord(events_[count_ % 2]), "cudaEventRecord");
        ++count_;
        if (count_ >= 2) check(cudaEventSynchronize(events_[count_ % 2]), "cudaEventSynchronize");
        if (!poll_ || clock::now() - last_ < std::chrono::milliseconds(50)) return false;
        last_ = clock::now();
        if (!poll_()) return false;
        check(cudaDeviceSynchronize(), "cudaDeviceSynchronize");
        return true;
    }

  private:
    using clock = std::chrono::steady_clock;
    const std::function<bool()>& poll_;
    clock::time_point last_;
    cudaEvent_t events_[2];
    long long count_ = 0;
};

}  // namespace

int device_count(std::string* error) {
    int count = 0;
    const cudaError_t status = cudaGetDeviceCount(&count);
    if (status != cudaSuccess) {
        if (error) *error = cudaGetErrorString(status);
        cudaGetLastError();
        return 0;
    }
    return count;
}

std::string device_name(int device) {
    cudaDeviceProp prop;
    check(cudaGetDeviceProperties(&prop, device), "cudaGetDeviceProperties");
    return prop.name;
}

int runtime_version() {
    int version = 0;
    cudaRuntimeGetVersion(&version);
    return version;
}

int driver_version() {
    int version = 0;
    if (cudaDriverGetVersion(&version) != cudaSuccess) cudaGetLastError();
    return version;
}

template <class T>
DeviceRows<T>::DeviceRows(const T* X, long long n_rows, long long n_features, const T* sample_weight,
                          const double* centre)
    : n_rows_(n_rows), n_features_(n_features), centre_(centre, centre + n_features) {
    if (n_rows < 1 || n_features < 1) throw std::invalid_argument("DeviceRows: need at least one row and feature");
    if (n_rows > (1ll << 31) - 1 - 65536)
        throw std::invalid_argument("DeviceRows: more than 2^31 rows are not supported on the GPU");
    const size_t count = static_cast<size_t>(n_rows) * n_features;
    auto allocate = [](auto** pointer, size_t bytes) {
        const cudaError_t status = cudaMalloc(reinterpret_cast<void**>(pointer), bytes);
        if (status == cudaErrorMemoryAllocation) {
            cudaGetLastError();
            throw std::runtime_error("CUDA: X (" + std::to_string(bytes >> 20) +
                                     " MiB) does not fit in the GPU's free memory");
        }
        check(status, "cudaMalloc");
    };
    try {
        allocate(&rows_, count * sizeof(T));
        check(cudaMemcpy(rows_, X, count * sizeof(T), cudaMemcpyHostToDevice), "cudaMemcpy X");
        if (sample_weight) {
            allocate(&weights_, static_cast<size_t>(n_rows) * sizeof(T));
            check(cudaMemcpy(weights_, sample_weight, n_rows * sizeof(T), cudaMemcpyHostToDevice),
                  "cudaMemcpy sample_weight");
        }
        DeviceBuffer<double> device_centre;
        device_centre.upload(centre, static_cast<size_t>(n_features));
        centre_rows_kernel<<<grid_for(static_cast<long long>(count), 256), 256>>>(
            rows_, static_cast<long long>(count), static_cast<int>(n_features), device_centre.get());
        check(cudaGetLastError(), "centre_rows_kernel");
        check(cudaDeviceSynchronize(), "centre_rows_kernel");
    } catch (...) {
        if (rows_) cudaFree(rows_);
        if (weights_) cudaFree(weights_);
        throw;
    }
}

template <class T>
DeviceRows<T>::~DeviceRows() {
    if (rows_) cudaFree(rows_);
    if (weights_) cudaFree(weights_);
}

template <class T>
bool gaussian_mixture_pass(const DeviceRows<T>& data, const DeviceMixtureParams<T>& params,
                           const DevicePassRequest<T>& request, DevicePassResult& result) {
    const long long N = data.n_rows();
    const int D = static_cast<int>(data.n_features());
    const int K = static_cast<int>(params.n_components);
    if (K < 1 || K > 65535) throw std::invalid_argument("gaussian_mixture_pass: need 1 <= K <= 65535 on the GPU");
    if (!params.log_weights || !params.means || !params.precisions_cholesky)
        throw std::invalid_argument("gaussian_mixture_pass: missing parameter arrays");
    const Covariance type = params.type;
    const bool full = type == Covariance::Full, tied = type == Covariance::Tied;
    const std::vector<double>& centre = data.centre();

    // Parameters, prepared in float64 and rounded once: the centred means mu~_c (the moments'
    // reference points, returned exactly as the device sees them), and what the log-joint reads.
    std::vector<T> centred(static_cast<size_t>(K) * D), scale, offset, constant(K);
    result.reference.assign(static_cast<size_t>(K) * D, 0.0);
    for (int c = 0; c < K; ++c)
        for (int d = 0; d < D; ++d) {
            const size_t i = static_cast<size_t>(c) * D + d;
            centred[i] = static_cast<T>(static_cast<double>(params.means[i]) - centre[d]);
            result.reference[i] = static_cast<double>(centred[i]) + centre[d];
        }
    const T* chol = params.precisions_cholesky;
    std::vector<double> log_det(K, 0.0);
    bool upper = true;  // every full U_c upper triangular (checked below): the log-joint skips zeros
    if (!full) {
        scale.resize(static_cast<size_t>(K) * D);
        offset.resize(static_cast<size_t>(K) * D);
    }
    for (int c = 0; c < K; ++c) {
        if (type == Covariance::Diag || type == Covariance::Spherical) {
            for (int d = 0; d < D; ++d) {
                const size_t i = static_cast<size_t>(c) * D + d;
                const T u = type == Covariance::Spherical ? chol[c] : chol[i];
                scale[i] = u;
                offset[i] = static_cast<T>(-static_cast<double>(centred[i]) * static_cast<double>(u));
                log_det[c] += std::log(static_cast<double>(u));
            }
        } else if (tied) {
            for (int j = 0; j < D; ++j) {
                double whitened = 0;
                for (int k = 0; k < D; ++k)
                    whitened += static_cast<double>(centred[static_cast<size_t>(c) * D + k]) *
                                static_cast<double>(chol[static_cast<size_t>(k) * D + j]);
                scale[static_cast<size_t>(c) * D + j] = T(1);
                offset[static_cast<size_t>(c) * D + j] = static_cast<T>(-whitened);
            }
            for (int d = 0; d < D; ++d) log_det[c] += std::log(static_cast<double>(chol[static_cast<size_t>(d) * D + d]));
        } else {
            const T* u = chol + static_cast<size_t>(c) * D * D;
            for (int d = 0; d < D; ++d) log_det[c] += std::log(static_cast<double>(u[static_cast<size_t>(d) * D + d]));
            for (int k = 1; k < D && upper; ++k)
                for (int j = 0; j < k && upper; ++j) upper = u[static_cast<size_t>(k) * D + j] == T(0);
        }
        constant[c] = finite_component_constant<T>(
            gaussian_log_joint_constant(static_cast<double>(params.log_weights[c]), D, log_det[c]));
    }
    const size_t chol_size = full ? static_cast<size_t>(K) * D * D : tied ? static_cast<size_t>(D) * D : 0;

    DeviceBuffer<T> d_centred, d_scale, d_offset, d_constant, d_chol;
    d_centred.upload(centred.data(), centred.size());
    d_constant.upload(constant.data(), constant.size());
    if (!full) {
        d_scale.upload(scale.data(), scale.size());
        d_offset.upload(offset.data(), offset.size());
    }
    if (chol_size) d_chol.upload(chol, chol_size);

    // Chunks of rows: a [B, K] scratch of at most 2^23 numbers (it stays in L2 between kernels); S splits of a chunk's rows per
    // moment kernel (fixed by N, K, D only, so the summation order is too).
    const long long B = std::min<long long>(N, std::max<long long>(1024, ((1ll << 23) / K) / 128 * 128));
    const int splits = 16;
    const int rows_per_split = static_cast<int>(((B + splits - 1) / splits + 15) / 16 * 16);
    const long long chunks = (N + B - 1) / B;
    const bool moments = request.compute_moments;
    const bool scatter = moments && (full || tied);
    // Full scatter partials are K D^2 per split: fewer splits when that grows large.
    const long long scatter_size = static_cast<long long>(K) * D * D;
    const int scatter_splits =
        scatter ? static_cast<int>(std::clamp<long long>((1ll << 25) / std::max<long long>(scatter_size, 1), 1, splits))
                : 1;
    const int scatter_rows_per_split = static_cast<int>(((B + scatter_splits - 1) / scatter_splits + 15) / 16 * 16);

    DeviceBuffer<T> lj(static_cast<size_t>(B) * K), whitened(tied ? static_cast<size_t>(B) * D : 0);
    DeviceBuffer<double> row_terms(static_cast<size_t>(3 * B)), chunk_sums(static_cast<size_t>(3 * chunks));
    DeviceBuffer<double> nk_partial(static_cast<size_t>(splits) * K);
    DeviceBuffer<double> moment_partial(moments ? static_cast<size_t>(splits) * 2 * K * D : 0);
    DeviceBuffer<double> scatter_partial(scatter ? static_cast<size_t>(scatter_splits) * scatter_size : 0);
    DeviceBuffer<T> log_norm(request.log_norm ? static_cast<size_t>(N) : 0);
    DeviceBuffer<long long> labels(request.labels ? static_cast<size_t>(N) : 0);
    chunk_sums.zero();
    nk_partial.zero();
    moment_partial.zero();
    scatter_partial.zero();

    InterruptGate gate(request.interrupt);
    for (long long chunk = 0; chunk < chunks; ++chunk) {
        const long long first = chunk * B;
        const int rows = static_cast<int>(std::min<long long>(B, N - first));
        const T* x = data.rows() + first * D;
        const T* w = data.weights() ? data.weights() + first : nullptr;
        if (full) {
            full_log_joint_kernel<T><<<dim3((rows + 127) / 128, K), 256>>>(x, rows, D, K, d_centred.get(), d_chol.get(),
                                                                          d_constant.get(), upper, lj.get());
            check(cudaGetLastError(), "full_log_joint_kernel");
        } else if (tied) {
            whiten_rows_kernel<T><<<grid_for(static_cast<long long>(rows) * D, 256), 256>>>(x, rows, D, d_chol.get(),
                                                                                             whitened.get());
            check(cudaGetLastError(), "whiten_rows_kernel");
            launch_diagonal_log_joint<T>(whitened.get(), rows, D, K, d_scale.get(), d_offset.get(), d_constant.get(),
                                         lj.get());
        } else {
            launch_diagonal_log_joint<T>(x, rows, D, K, d_scale.get(), d_offset.get(), d_constant.get(), lj.get());
        }
        row_posterior_kernel<T><<<(rows + 7) / 8, 256>>>(lj.get(), rows, K, w,
                                                         request.log_norm ? log_norm.get() + first : nullptr,
                                                         request.labels ? labels.get() + first : nullptr,
                                                         row_terms.get());
        check(cudaGetLastError(), "row_posterior_kernel");
        sum_row_terms_kernel<<<1, 256>>>(row_terms.get(), rows, chunk_sums.get() + 3 * chunk);
        check(cudaGetLastError(), "sum_row_terms_kernel");
        if (moments) {
            diagonal_moments_kernel<T><<<dim3((K + 63) / 64, (D + 63) / 64, splits), 256>>>(
                x, lj.get(), rows, D, K, d_centred.get(), rows_per_split, moment_partial.get(), nk_partial.get());
            check(cudaGetLastError(), "diagonal_moments_kernel");
        } else {
            component_weight_kernel<T><<<dim3((K + 127) / 128, splits), 128>>>(lj.get(), rows, K, rows_per_split,
                                                                              nk_partial.get());
            check(cudaGetLastError(), "component_weight_kernel");
        }
        if (scatter) {
            const int tiles = (D + 63) / 64;
            full_scatter_kernel<T><<<dim3(scatter_splits, K, tiles * tiles), 256>>>(
                x, lj.get(), rows, D, K, d_centred.get(), scatter_rows_per_split, scatter_partial.get());
            check(cudaGetLastError(), "full_scatter_kernel");
        }
        if (gate.after_chunk()) return false;
    }

    const std::vector<double> sums = chunk_sums.download();
    result.sum_log_norm = result.sum_entropy = result.sum_weight = 0;
    for (long long chunk = 0; chunk < chunks; ++chunk) {
        result.sum_log_norm += sums[3 * chunk];
        result.sum_entropy += sums[3 * chunk + 1];
        result.sum_weight += sums[3 * chunk + 2];
    }
    result.nk = sum_partials(nk_partial, splits, K);
    if (moments) {
        const std::vector<double> both = sum_partials(moment_partial, splits, 2ll * K * D);
        result.sx.assign(both.begin(), both.begin() + static_cast<long long>(K) * D);
        const std::vector<double> second(both.begin() + static_cast<long long>(K) * D, both.end());
        if (type == Covariance::Diag) {
            result.sxx = second;
        } else if (type == Covariance::Spherical) {
            result.sxx.assign(K, 0.0);
            for (int c = 0; c < K; ++c)
                for (int d = 0; d < D; ++d) result.sxx[c] += second[static_cast<size_t>(c) * D + d];
        } else {
            const std::vector<double> per_component = sum_partials(scatter_partial, scatter_splits, scatter_size);
            if (full) {
                result.sxx = per_component;
            } else {
                result.sxx.assign(static_cast<size_t>(D) * D, 0.0);
                for (int c = 0; c < K; ++c)
                    for (size_t i = 0; i < static_cast<size_t>(D) * D; ++i)
                        result.sxx[i] += per_component[static_cast<size_t>(c) * D * D + i];
            }
        }
    }
    if (request.log_norm) {
        check(cudaMemcpy(request.log_norm, log_norm.get(), N * sizeof(T), cudaMemcpyDeviceToHost), "cudaMemcpy log_norm");
    }
    if (request.labels) {
        static_assert(sizeof(long long) == sizeof(std::int64_t), "labels are int64");
        check(cudaMemcpy(request.labels, labels.get(), N * sizeof(long long), cudaMemcpyDeviceToHost),
              "cudaMemcpy labels");
    }
    return true;
}

template class DeviceRows<float>;
template class DeviceRows<double>;
template bool gaussian_mixture_pass<float>(const DeviceRows<float>&, const DeviceMixtureParams<float>&,
                                           const DevicePassRequest<float>&, DevicePassResult&);
template bool gaussian_mixture_pass<double>(const DeviceRows<double>&, const DeviceMixtureParams<double>&,
                                            const DevicePassRequest<double>&, DevicePassResult&);

}  // namespace fastelbo::cuda
