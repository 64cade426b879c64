// Deterministic parallel reduction over fixed-size row blocks.
//
// Rows are cut into blocks whose size never depends on the thread count. Blocks are computed in
// parallel (OpenMP) in rounds; each block writes its own partial result, and the partials are merged
// serially in block order. The floating-point summation order is therefore the same for any number
// of threads, and results are bitwise identical whatever n_threads is.
#pragma once

#include <algorithm>
#include <vector>

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
// cache-sized sub-blocks in turn and merges one partial per ~4096 rows, so the serial merge of large
// partials (up to K x D x D doubles) stays rare. Depends only on the shape, never on the thread count.
inline Index rows_per_chunk(Index sub_block_rows, Index target_rows = 4096) {
    return sub_block_rows * std::max<Index>(1, target_rows / sub_block_rows);
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

// For every block b: compute(b, begin, size, partial, workspace) in parallel, then merge(partial)
// serially in order b = 0, 1, 2, ... . `make_partial()` and `make_workspace()` build the per-slot
// buffers once. Blocks run in rounds of `blocks_per_thread` per thread (bounding the partials held at
// once); each round is one parallel region. Kernels with tiny partials and many short passes pass a
// large value, as every region is a barrier that a busy machine can stall. Returns false if
// `interrupt` asked to stop (polled between rounds).
template <class MakePartial, class MakeWorkspace, class Compute, class Merge>
bool for_each_block_ordered(const RowBlocks& blocks, int n_threads, MakePartial make_partial,
                            MakeWorkspace make_workspace, Compute compute, Merge merge, const InterruptPoll& interrupt,
                            Index blocks_per_thread = 4) {
    const int threads = resolve_thread_count(n_threads);
    const Index n_blocks = blocks.count();
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

    for (Index round_begin = 0; round_begin < n_blocks; round_begin += round_size) {
        const Index round_end = std::min(n_blocks, round_begin + round_size);
        // No more threads than blocks: small inputs do not wake (or wait for) idle threads.
        const int round_threads = static_cast<int>(std::min<Index>(threads, round_end - round_begin));
#ifdef FASTELBO_OPENMP
#pragma omp parallel for num_threads(round_threads) schedule(dynamic, 1)
#else
        (void)round_threads;
#endif
        for (Index b = round_begin; b < round_end; ++b) {
            compute(b, blocks.begin(b), blocks.size(b), partials[b - round_begin], workspaces[current_thread_index()]);
        }
        for (Index b = round_begin; b < round_end; ++b) merge(partials[b - round_begin]);
        if (interrupt && round_end < n_blocks && interrupt()) return false;
    }
    return true;
}

}  // namespace fastelbo
