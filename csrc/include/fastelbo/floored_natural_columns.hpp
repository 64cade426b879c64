// The natural parameters of a Bernoulli or Poisson mixture, column by column, as the exact and the
// truncated passes read them: most columns of sparse data are floored for most components.
//
// A component's mean of a column none of its rows uses is the floor, so its natural parameter is
// the floor's, one value for every such entry (the M-step writes it bitwise the same): in a fitted
// mixture on bag-of-words data over 90 % of eta's entries are, and a rare column's K entries hold
// only a few others. The smallest entry of eta, `floor_value` (the floor's, where any entry is
// floored: eta increases with the mean), then splits each column d:
//   - a *sparse* column (at most K / kSparseColumnShare entries other than floor_value) is stored
//     as its deviations eta_cd - floor_value != 0 (component, value), in ascending c;
//   - a *dense* column is read from eta itself.
// A row's log-joint of component c is then, with its non-zeros k in order,
//   log pi_c + b_c + sum_k x_k e_{d_k c} + floor_value * sum_{k: d_k sparse} x_k,
// e the deviation in a sparse column (0 where floored) and eta in a dense one. A pass reads a
// sparse column's few deviations instead of its K values: the rare columns, whose K values would
// come from memory and not from the caches, cost a few cache lines instead of K / 8. Adding
// x * 0 changes no sum, so skipping the zero deviations gives bitwise the sum over all K, and the
// truncated pass (which evaluates one (row, component) pair at a time, x * (eta - floor_value)
// for a sparse column) forms bitwise the same log-joints as the exact pass. The split depends on
// the parameters alone: every block, source and thread count sees the same one.
#pragma once

#include <algorithm>
#include <cstdint>
#include <limits>
#include <vector>

#include "fastelbo/row_block_schedule.hpp"
#include "fastelbo/types.hpp"

namespace fastelbo {

// A column is sparse when at most 1 / kSparseColumnShare of its K entries differ from the floor:
// a deviation costs 12 bytes and a scalar multiply-add, a dense entry 8 bytes, vectorised.
constexpr Index kSparseColumnShare = 4;
// eta of at most this many bytes is read whole, every column dense: it then stays largely in the
// caches, where a dense column's vectorised multiply-adds cost less than a sparse one's scalar ones.
// Measured at D = 50,000 on bag-of-words counts: the split made a pass 10 % slower at K = 100
// (40 MB), changed nothing at K = 300 (120 MB) and made it 20 % faster at K = 1,000 (400 MB).
constexpr double kCachedNaturalBytes = 128.0 * 1024 * 1024;
// Columns per work item when the split is built.
constexpr Index kColumnsPerItem = 1024;

struct FlooredNaturalColumns {
    double floor_value = 0;             // the smallest entry of eta (0 where no column is sparse)
    std::vector<std::uint8_t> sparse;   // [D] 1: the column is read as deviations
    std::vector<std::int64_t> begin;    // [D + 1] a sparse column's deviations: [begin[d], begin[d + 1])
    std::vector<std::int32_t> component;
    std::vector<double> deviation;      // eta_cd - floor_value
    bool any_sparse = false;            // false: every column is read from eta itself
    bool beyond_caches = false;         // eta is larger than cached_natural_bytes (the split was made)

    bool is_sparse(Index d) const { return sparse[static_cast<size_t>(d)] != 0; }
};

// The smallest entry of eta and the sparse columns (none where eta is at most cached_natural_bytes);
// eta is D x K where `transposed`, else K x D; with `with_deviations`, the deviations too (eta must
// then be D x K, the exact pass's layout, where a column is contiguous).
inline FlooredNaturalColumns split_natural_columns(const double* eta, Index K, Index D, bool transposed,
                                                   bool with_deviations, double cached_natural_bytes,
                                                   int n_threads) {
    FlooredNaturalColumns split;
    split.sparse.assign(static_cast<size_t>(D), 0);
    if (8.0 * static_cast<double>(D) * static_cast<double>(K) <= cached_natural_bytes) return split;
    split.beyond_caches = true;
    const Index n_items = (D + kColumnsPerItem - 1) / kColumnsPerItem;
    std::vector<double> item_min(static_cast<size_t>(n_items), 0.0);
    parallel_for_each(n_items, n_threads, [&](Index item) {
        const Index d1 = std::min(D, (item + 1) * kColumnsPerItem);
        double m = std::numeric_limits<double>::infinity();
        if (transposed) {
            for (Index d = item * kColumnsPerItem; d < d1; ++d)
                for (Index c = 0; c < K; ++c) m = std::min(m, eta[d * K + c]);
        } else {
            for (Index c = 0; c < K; ++c)
                for (Index d = item * kColumnsPerItem; d < d1; ++d) m = std::min(m, eta[c * D + d]);
        }
        item_min[static_cast<size_t>(item)] = m;
    });
    split.floor_value = *std::min_element(item_min.begin(), item_min.end());
    const double floor_value = split.floor_value;

    // Per column, how many entries differ from the floor.
    std::vector<Index> count(static_cast<size_t>(D), 0);
    parallel_for_each(n_items, n_threads, [&](Index item) {
        const Index d0 = item * kColumnsPerItem, d1 = std::min(D, d0 + kColumnsPerItem);
        if (transposed) {
            for (Index d = d0; d < d1; ++d) {
                Index m = 0;
                for (Index c = 0; c < K; ++c) m += eta[d * K + c] != floor_value;
                count[static_cast<size_t>(d)] = m;
            }
        } else {
            for (Index c = 0; c < K; ++c)
                for (Index d = d0; d < d1; ++d) count[static_cast<size_t>(d)] += eta[c * D + d] != floor_value;
        }
    });
    for (Index d = 0; d < D; ++d)
        split.sparse[static_cast<size_t>(d)] = count[static_cast<size_t>(d)] * kSparseColumnShare <= K;
    split.any_sparse = std::find(split.sparse.begin(), split.sparse.end(), 1) != split.sparse.end();
    if (!with_deviations) return split;

    split.begin.assign(static_cast<size_t>(D) + 1, 0);
    for (Index d = 0; d < D; ++d)
        split.begin[static_cast<size_t>(d) + 1] =
            split.begin[static_cast<size_t>(d)] + (split.is_sparse(d) ? count[static_cast<size_t>(d)] : 0);
    split.component.resize(static_cast<size_t>(split.begin.back()));
    split.deviation.resize(static_cast<size_t>(split.begin.back()));
    parallel_for_each(n_items, n_threads, [&](Index item) {
        const Index d1 = std::min(D, (item + 1) * kColumnsPerItem);
        for (Index d = item * kColumnsPerItem; d < d1; ++d) {
            if (!split.is_sparse(d)) continue;
            std::int64_t j = split.begin[static_cast<size_t>(d)];
            for (Index c = 0; c < K; ++c) {
                const double e = eta[d * K + c];
                if (e == floor_value) continue;
                split.component[static_cast<size_t>(j)] = static_cast<std::int32_t>(c);
                split.deviation[static_cast<size_t>(j)] = e - floor_value;
                ++j;
            }
        }
    });
    return split;
}

}  // namespace fastelbo
