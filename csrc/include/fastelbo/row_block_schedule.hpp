// Deterministic parallel reduction over fixed-size row blocks.
//
// Rows are cut into blocks whose size never depends on the thread count. Blocks are computed in
// parallel (OpenMP) in rounds; each block writes its own partial result, and the partials are merged
// serially in block order. The floating-point summation order is therefore the same for any number
// of threads, and results are bitwise identical whatever n_threads is.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <type_traits>
#include <vector>

#include "fastelbo/floating_point_mode.hpp"
#include "fastelbo/types.hpp"

#ifdef FASTELBO_OPENMP
#include <omp.h>
#endif

namespace fastelbo {

struct RowBlocks {
    Index n_rows = 0;
    Index block_rows = 1;

    Index count() const { return n_rows == 0 ? 0 : (n_rows + block_rows - 1) / block_rows; }
    Index begin(Index block) const { return block * block_rows; }
    Index size(Index block) const { return std::min(block_rows, n_rows - begin(block)); }
};

// Rows per block so that a block's working set (`bytes_per_row` each) stays within a per-core cache
// budget. Depends only on the problem's shape, never on the thread count.
inline Index rows_per_block(Index bytes_per_row, Index budget_bytes = 768 * 1024) {
    Index rows = budget_bytes / std::max<Index>(bytes_per_row, 1);
    rows = std::clamp<Index>(rows, 16, 1024);
    return rows - rows % 16;
}

// Rows of a scheduled chunk made of whole sub-blocks of `sub_block_rows`: a kernel processes its
// cache-sized sub-blocks in turn and merges one partial of `partial_size` numbers per chunk. A chunk
// holds enough work that its serial merge costs under ~2% of it, but no more than ~2e8 flops (a few
// milliseconds: a chunk is the unit between two interrupt polls) nor 4096 rows. Depends only on the
// shape, never on the thread count.
inline Index rows_per_chunk(Index sub_block_rows, double flops_per_row, double partial_size) {
    const double target_flops = std::max(2e8, 64.0 * partial_size);
    const double rows = std::clamp(target_flops / std::max(flops_per_row, 1.0), 1.0, 4096.0);
    return sub_block_rows * std::max<Index>(1, static_cast<Index>(rows) / sub_block_rows);
}

// Rows of a chunk for a kernel that polls for interrupts between its sub-blocks, so a chunk need not
// be short. Clearing and merging a partial is memory-bound, about 128 flops' time per number each;
// chunks grow (up to 4096 rows) until that is ~2% of their work: the K x D x D partials of full
// covariances would otherwise take a sixth of the pass. Never fewer than ~16 chunks in all, so that
// small inputs still spread over the threads; never shorter than rows_per_chunk. Depends only on the
// shape, never on the thread count.
inline Index rows_per_polled_chunk(Index sub_block_rows, double flops_per_row, double partial_size, Index n_rows) {
    const Index short_rows = rows_per_chunk(sub_block_rows, flops_per_row, partial_size);
    const double rows = std::clamp(50.0 * 128.0 * partial_size / std::max(flops_per_row, 1.0), 1.0, 4096.0);
    const Index spread = std::min(static_cast<Index>(rows), n_rows / 16);
    return std::max(short_rows, sub_block_rows * (spread / sub_block_rows));
}

// Chunks per thread in one round of for_each_block_ordered: every chunk of a round holds its own
// partial, so large partials (K x D x D for full covariances) get fewer, keeping them under ~64 MB.
inline Index chunks_per_thread(double partial_bytes, int n_threads) {
    const double fit = 64.0 * 1024 * 1024 / std::max(partial_bytes * std::max(n_threads, 1), 1.0);
    return std::clamp<Index>(static_cast<Index>(fit), 1, 4);
}

inline int resolve_thread_count(int n_threads) {
#ifdef FASTELBO_OPENMP
    return n_threads > 0 ? n_threads : omp_get_max_threads();
#else
    (void)n_threads;
    return 1;
#endif
}

inline int current_thread_index() {
#ifdef FASTELBO_OPENMP
    return omp_get_thread_num();
#else
    return 0;
#endif
}

// Polls for an interrupt at most every kInterval, from the thread that called the kernel only (the
// poll takes Python's GIL, which that thread released). Work items are bounded in work, so the
// latency of Ctrl-C is the poll interval plus one item, whatever the shape of the problem.
class InterruptPoller {
  public:
    static constexpr std::chrono::milliseconds kInterval{10};

    explicit InterruptPoller(const InterruptPoll& poll) : poll_(poll), last_(std::chrono::steady_clock::now()) {}

    // Call between work items on any thread; only the calling thread (OpenMP thread 0) polls.
    void between_items() {
        if (!poll_ || current_thread_index() != 0 || stopped()) return;
        const auto now = std::chrono::steady_clock::now();
        if (now - last_ < kInterval) return;
        last_ = now;
        // The poll runs the caller's Python code (signal handlers): in the caller's flush mode.
        CallersFloatingPointMode callers_mode;
        if (poll_()) stopped_.store(true, std::memory_order_relaxed);
    }
    bool stopped() const { return stopped_.load(std::memory_order_relaxed); }

  private:
    const InterruptPoll& poll_;
    std::chrono::steady_clock::time_point last_;
    std::atomic<bool> stopped_{false};
};

// Runs body(i) for every i in [0, n) on up to `n_threads` threads with subnormals flushed on each
// (floating_point_mode.hpp). One thread runs the loop itself, without entering OpenMP: a forked
// child (where libgomp cannot be used) asks for exactly that.
template <class Body>
void parallel_for_each(Index n, int n_threads, Body body) {
    const int threads = static_cast<int>(std::min<Index>(resolve_thread_count(n_threads), std::max<Index>(n, 1)));
    if (threads <= 1) {
        FlushSubnormalsScope flush;
        for (Index i = 0; i < n; ++i) body(i);
        return;
    }
#ifdef FASTELBO_OPENMP
    // Pool threads the region creates copy this thread's mode: the caller's, even where this thread
    // flushes already (floating_point_mode.hpp).
    CallersFloatingPointMode start_threads_in_callers_mode;
#pragma omp parallel num_threads(threads)
    {
        FlushSubnormalsScope flush;
#pragma omp for schedule(static)
        for (Index i = 0; i < n; ++i) body(i);
    }
#endif
}

// For every block b: compute(b, begin, size, partial, workspace[, poller]) in parallel, then
// merge(partial) serially in order b = 0, 1, 2, ... . `make_partial()` and `make_workspace()` build the per-slot
// buffers once. Blocks run in rounds of `blocks_per_thread` per thread (bounding the partials held at
// once); each round is one parallel region. Kernels with tiny partials and many short passes pass a
// large value, as every region is a barrier that a busy machine can stall. Every thread computes with
// subnormals flushed to zero. Returns false if `interrupt` asked to stop (polled between blocks, at
// most every InterruptPoller::kInterval); the merged result is then incomplete.
template <class MakePartial, class MakeWorkspace, class Compute, class Merge>
bool for_each_block_ordered(const RowBlocks& blocks, int n_threads, MakePartial make_partial,
                            MakeWorkspace make_workspace, Compute compute, Merge merge, const InterruptPoll& interrupt,
                            Index blocks_per_thread = 4) {
    const Index n_blocks = blocks.count();
    const int threads =
        static_cast<int>(std::min<Index>(resolve_thread_count(n_threads), std::max<Index>(n_blocks, 1)));
    const Index round_size = std::min<Index>(n_blocks, blocks_per_thread * static_cast<Index>(threads));
    if (n_blocks == 0) return true;

    using Partial = decltype(make_partial());
    using Workspace = decltype(make_workspace());
    std::vector<Partial> partials;
    partials.reserve(round_size);
    for (Index i = 0; i < round_size; ++i) partials.push_back(make_partial());
    std::vector<Workspace> workspaces;
    workspaces.reserve(threads);
    for (int i = 0; i < threads; ++i) workspaces.push_back(make_workspace());

    InterruptPoller poller(interrupt);
    auto run_block = [&](Index b, Index round_begin) {
        if (poller.stopped()) return;
        auto& partial = partials[b - round_begin];
        auto& workspace = workspaces[current_thread_index()];
        // A compute that takes the poller polls within its block (and may stop early) itself.
        if constexpr (std::is_invocable_v<Compute&, Index, Index, Index, Partial&, Workspace&, InterruptPoller&>) {
            compute(b, blocks.begin(b), blocks.size(b), partial, workspace, poller);
        } else {
            compute(b, blocks.begin(b), blocks.size(b), partial, workspace);
        }
        poller.between_items();
    };
    for (Index round_begin = 0; round_begin < n_blocks && !poller.stopped(); round_begin += round_size) {
        const Index round_end = std::min(n_blocks, round_begin + round_size);
        // No more threads than blocks: small inputs do not wake (or wait for) idle threads.
        const int round_threads = static_cast<int>(std::min<Index>(threads, round_end - round_begin));
        if (round_threads <= 1) {
            FlushSubnormalsScope flush;
            for (Index b = round_begin; b < round_end; ++b) run_block(b, round_begin);
        } else {
#ifdef FASTELBO_OPENMP
            // As in parallel_for_each: new pool threads start in the caller's mode.
            CallersFloatingPointMode start_threads_in_callers_mode;
#pragma omp parallel num_threads(round_threads)
            {
                FlushSubnormalsScope flush;
#pragma omp for schedule(dynamic, 1)
                for (Index b = round_begin; b < round_end; ++b) run_block(b, round_begin);
            }
#endif
        }
        if (poller.stopped()) break;
        for (Index b = round_begin; b < round_end; ++b) merge(partials[b - round_begin]);
    }
    return !poller.stopped();
}

}  // namespace fastelbo
