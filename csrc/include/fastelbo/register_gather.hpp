// A row's sums of x_k times rows d_k of a D x K matrix (one AXPY per non-zero k), with the K sums in
// vector registers instead of memory.
//
// The plain loop `row[c] += x * eta[d, c]` loads and stores every packet of `row` once per
// non-zero: three memory operations per multiply-add, and at K = 100 (an eta row of 800 bytes)
// every other row of eta starts mid cache line, so that each of its packet loads spans two lines.
// Here the matrix is read in rows padded to a whole number of cache lines, each starting on a
// packet (PaddedRows: a copy where the rows are not so already), and a row's sums stay in
// registers while its non-zeros are added (gather_rows_in_registers): one aligned load and one
// multiply-add per packet. At N = 1M, D = 50,000, K = 100 (Zipf word counts) with AVX-512 the
// gather took 25-30 % fewer cycles. Every sum adds the same terms in the same order as the plain
// loop, so the results are the same bits; the padding's sums are never read.
#pragma once

#include <Eigen/Core>
#include <algorithm>
#include <cstdint>
#include <stdexcept>

#include "fastelbo/prefetch.hpp"
#include "fastelbo/row_block_schedule.hpp"
#include "fastelbo/types.hpp"

namespace fastelbo {

namespace register_gather_detail {
using Packet = Eigen::internal::packet_traits<double>::type;
constexpr Index kLanes = sizeof(Packet) / sizeof(double);
// Packets of sums the registers hold: half the vector registers (32 with AVX-512, 16 below), so
// that the loads and the broadcast value have their own.
#if defined(__AVX512F__)
constexpr Index kMaxPackets = 16;
#else
constexpr Index kMaxPackets = 8;
#endif
}  // namespace register_gather_detail

// K rounded up to a whole cache line of doubles: how many values a padded row holds.
inline Index padded_stride(Index K) { return (K + 7) / 8 * 8; }

// A D x K matrix whose rows start on packets and hold `stride` values: K rounded up to a cache line
// of doubles, the padding zeros. Rows that already are so (K a multiple of 8, aligned) are read in
// place; others are copied, where the rows to be summed hold at least kNonZerosPerCopiedRow
// non-zeros per row of the matrix: the copy reads and writes the whole matrix, which a pass over a
// few rows (a prediction, a small block of a streamed source) would not repay. Else it is empty
// (the plain loop).
class PaddedRows {
public:
    PaddedRows() = default;
    // `rows`: D x K, contiguous rows, which must outlive this object where they are read in place;
    // `non_zeros`: how many the pass sums.
    PaddedRows(const double* rows, Index D, Index K, std::int64_t non_zeros, int n_threads)
        : stride_(padded_stride(K)) {
        constexpr std::uintptr_t packet_bytes = sizeof(register_gather_detail::Packet);
        if (stride_ == K && reinterpret_cast<std::uintptr_t>(rows) % packet_bytes == 0) {
            rows_ = rows;
            return;
        }
        if (static_cast<double>(non_zeros) < kNonZerosPerCopiedRow * static_cast<double>(D)) return;
        copy_.setZero(D * stride_);
        parallel_for_each((D + kRowsPerItem - 1) / kRowsPerItem, n_threads, [&](Index item) {
            for (Index d = item * kRowsPerItem; d < std::min(D, (item + 1) * kRowsPerItem); ++d)
                std::copy(rows + d * K, rows + (d + 1) * K, copy_.data() + d * stride_);
        });
        rows_ = copy_.data();
    }
    bool empty() const { return rows_ == nullptr; }
    Index stride() const { return stride_; }
    const double* row(Index d) const { return rows_ + d * stride_; }

private:
    static constexpr Index kRowsPerItem = 4096;
    // A copied row costs about two non-zeros' multiply-adds (its K values read and written once);
    // the registers save about a quarter of each non-zero's: at 16 non-zeros per row the copy costs
    // at most half of what it saves.
    static constexpr double kNonZerosPerCopiedRow = 16;
    Index stride_ = 0;
    const double* rows_ = nullptr;
    // Eigen aligns its allocations to EIGEN_MAX_ALIGN_BYTES, at least a packet.
    Eigen::Matrix<double, Eigen::Dynamic, 1> copy_;
};

namespace register_gather_detail {

// sums[p * kLanes + l] += x_k * rows(d_k)[p * kLanes + l] for the non-zeros k in [begin, end), in
// order, for NP packets, in registers, and visit(x_k). The rows of the non-zeros `ahead` further are
// asked for.
template <Index NP, class I, class Visit>
inline void add_rows(const PaddedRows& rows, const I* indices, const double* values, std::int64_t begin,
                     std::int64_t end, std::int64_t ahead, double* sums, Visit& visit) {
    using namespace Eigen::internal;
    Packet acc[NP];
    for (Index p = 0; p < NP; ++p) acc[p] = ploadu<Packet>(sums + p * kLanes);
    for (std::int64_t k = begin; k < end; ++k) {
        if (k + ahead < end) prefetch_elements(rows.row(static_cast<Index>(indices[k + ahead])), NP * kLanes);
        const Packet x = pset1<Packet>(values[k]);
        visit(values[k]);
        const double* e = rows.row(static_cast<Index>(indices[k]));
        for (Index p = 0; p < NP; ++p) acc[p] = pmadd(x, pload<Packet>(e + p * kLanes), acc[p]);
    }
    for (Index p = 0; p < NP; ++p) pstoreu(sums + p * kLanes, acc[p]);
}

}  // namespace register_gather_detail

// Whether a row's K sums, padded to a cache line, fit in registers.
inline bool sums_fit_in_registers(Index K) {
    return padded_stride(K) <= register_gather_detail::kMaxPackets * register_gather_detail::kLanes;
}

// row[c] += x_k rows(d_k)[c] over the non-zeros k in [begin, end) in order, for c < the rows' stride
// (`row` holds stride values; past K it holds the padding's sums, zeros if it started so), and
// visit(x_k) for each k in order: a caller's scalar work on the values, done while the rows' loads
// are in flight. The rows' stride must fit in registers (sums_fit_in_registers). More sums, taken
// in chunks each summed over all the non-zeros, measured slower than the plain loop (seven chunks
// at K = 100 with SSE2) or no faster (four with AVX2).
template <class I, class Visit>
inline void gather_rows_in_registers(const PaddedRows& rows, const I* indices, const double* values,
                                     std::int64_t begin, std::int64_t end, std::int64_t ahead, double* row,
                                     Visit& visit) {
    using namespace register_gather_detail;
    switch (rows.stride() / kLanes) {
#define FASTELBO_PACKETS_CASE(NP) \
    case NP:                      \
        return add_rows<NP>(rows, indices, values, begin, end, ahead, row, visit);
        FASTELBO_PACKETS_CASE(1)
        FASTELBO_PACKETS_CASE(2)
        FASTELBO_PACKETS_CASE(3)
        FASTELBO_PACKETS_CASE(4)
        FASTELBO_PACKETS_CASE(5)
        FASTELBO_PACKETS_CASE(6)
        FASTELBO_PACKETS_CASE(7)
        FASTELBO_PACKETS_CASE(8)
#if defined(__AVX512F__)
        FASTELBO_PACKETS_CASE(9)
        FASTELBO_PACKETS_CASE(10)
        FASTELBO_PACKETS_CASE(11)
        FASTELBO_PACKETS_CASE(12)
        FASTELBO_PACKETS_CASE(13)
        FASTELBO_PACKETS_CASE(14)
        FASTELBO_PACKETS_CASE(15)
        FASTELBO_PACKETS_CASE(16)
#endif
#undef FASTELBO_PACKETS_CASE
        default:
            throw std::logic_error("gather_rows_in_registers: the rows' sums do not fit in registers");
    }
}

}  // namespace fastelbo
