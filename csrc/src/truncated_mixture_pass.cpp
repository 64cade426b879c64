// The truncated variational E-step (see truncated_mixture_pass.hpp).
#include "fastelbo/truncated_mixture_pass.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "fastelbo/gaussian_row_maths.hpp"
#include "fastelbo/posterior_row.hpp"
#include "fastelbo/prefetch.hpp"
#include "fastelbo/row_block_schedule.hpp"
#include "fastelbo/tied_whitening.hpp"
#include "fastelbo/truncated_candidates.hpp"

namespace fastelbo {
namespace {

// Rows per work item: enough for the GEMM to pay, few enough that big groups spread over threads.
constexpr Index kRowsPerItem = 64;
// Statistics kept in per-item slots (summed while the item's rows are in cache) where groups
// average at least this many rows and the slots' worst case, N·C' of them, fits in kSlotsMaxBytes;
// otherwise summed per component afterwards (see use_slots_).
constexpr double kSlotsMinGroupRows = 32;
constexpr double kSlotsMaxBytes = double(1 << 30);
// Components per work item of the statistics pass.
constexpr Index kComponentsPerItem = 16;
// Tied: items per work unit, run in order by one thread, so that the shared scatter is kept per work
// unit (a D × D matrix each), not per item. Other types: one item per unit.
constexpr Index kTiedItemsPerBlock = 16;

// Work items are small and independent: one parallel region per pass.
constexpr Index kWholePass = Index(1) << 40;

// The cost model that picks an item's evaluation (in rough cycles; it depends only on the item's
// rows, sets and lists, so the choice, and every result, is the same for any thread count).
// Expanded: per column of U, its parameter column built (kFillPerFeature a feature) plus the GEMM
// (kGemmPerProduct a row × feature product). Direct: per (row, candidate) pair of the rows' own S_n,
// one vectorised sum over D (kDirectPerFeature a feature plus kDirectPerPair).
constexpr double kFillPerFeature = 3.0;
constexpr double kFillPerColumn = 10.0;
constexpr double kGemmPerProduct = 0.05;
constexpr double kDirectPerFeature = 0.5;
constexpr double kDirectPerPair = 15.0;
// Full: direct when pairs × this < rows × |U| (a pair's vector-matrix product is slower per flop).
constexpr double kFullDirectPerPair = 3.0;

// Rows grouped by best component (K_n[0]) and, within a group, by second component (rows that share
// it share most candidates, so adjacent rows make items with small candidate unions), ties by row:
// two stable counting sorts. Groups are cut into items of at most kRowsPerItem rows.
struct RowGroups {
    std::vector<Index> rows;        // position -> row
    std::vector<Index> item_begin;  // [items + 1] positions
    std::vector<std::int32_t> item_group;
    std::vector<Index> group_first_item;  // [K + 1]

    RowGroups(const std::int32_t* active, Index N, Index C, Index K) {
        std::vector<std::int32_t> best(N), second(N);
        for (Index n = 0; n < N; ++n) {
            best[n] = active[n * C];
            second[n] = C > 1 ? active[n * C + 1] : 0;
        }
        std::vector<Index> identity(N), by_second, group_begin;
        for (Index n = 0; n < N; ++n) identity[n] = n;
        counting_sort(identity, second.data(), K, by_second, group_begin);
        counting_sort(by_second, best.data(), K, rows, group_begin);
        group_first_item.assign(K + 1, 0);
        for (Index c = 0; c < K; ++c) {
            group_first_item[c] = static_cast<Index>(item_group.size());
            for (Index p = group_begin[c]; p < group_begin[c + 1]; p += kRowsPerItem) {
                item_begin.push_back(p);
                item_group.push_back(static_cast<std::int32_t>(c));
            }
        }
        group_first_item[K] = static_cast<Index>(item_group.size());
        item_begin.push_back(N);
    }
    Index n_items() const { return static_cast<Index>(item_group.size()); }
};

// Mean rows per occupied best-component group.
inline double mean_group_rows(const RowGroups& groups, Index N, Index K) {
    Index occupied = 0;
    for (Index c = 0; c < K; ++c) occupied += groups.group_first_item[c + 1] > groups.group_first_item[c] ? 1 : 0;
    return occupied > 0 ? static_cast<double>(N) / static_cast<double>(occupied) : 0.0;
}

// Rows ahead whose X rows are prefetched while an item gathers its rows.
constexpr Index kPrefetchAhead = 8;
// Statistics entries ahead whose X rows are asked for (an entry is little work next to a miss).
constexpr Index kEntriesAhead = 32;
// Directly summed pairs ahead whose parameters are asked for.
constexpr Index kPairsAhead = 6;
// Index of the lowest set bit of a non-zero word.
inline Index lowest_set_bit(std::uint64_t bits) {
#if defined(__GNUC__) || defined(__clang__)
    return __builtin_ctzll(bits);
#else
    Index index = 0;
    while (!(bits & 1)) {
        bits >>= 1;
        ++index;
    }
    return index;
#endif
}

// Number of set bits of a word.
inline Index set_bits(std::uint64_t bits) {
#if defined(__GNUC__) || defined(__clang__)
    return __builtin_popcountll(bits);
#else
    Index count = 0;
    for (; bits != 0; bits &= bits - 1) ++count;
    return count;
#endif
}

// Diag, spherical: [K, 2D] μ_c then p_c per row in the working precision, so that a directly
// summed pair reads one contiguous block.
template <class T>
RowMatrix<T> interleaved_means_precisions(const GaussianMixtureParams<T>& p, const RowMatrix<double>& precision) {
    const Index K = p.n_components, D = p.n_features;
    RowMatrix<T> out(K, 2 * D);
    out.leftCols(D) = ConstRowMatrixMap<T>(p.means, K, D);
    out.rightCols(D) = precision.template cast<T>();
    return out;
}

// Marks a row whose random candidate is already in its S_n.
constexpr std::int32_t kNoCandidate = std::numeric_limits<std::int32_t>::min();

template <class T>
class TruncatedEStep {
  public:
    TruncatedEStep(const GaussianMixtureParams<T>& p, const TruncatedPassRequest<T>& r)
        : p_(p),
          r_(r),
          K_(p.n_components),
          D_(p.n_features),
          C_(r.n_active),
          G_(r.n_neighbors),
          spherical_(p.type == CovarianceType::Spherical),
          tied_(p.type == CovarianceType::Tied),
          full_(p.type == CovarianceType::Full),
          moments_(r.reference != nullptr),
          F_(full_ ? D_ : (spherical_ || tied_ ? D_ + 1 : 2 * D_)),
          stride_(moments_ && !full_ ? 1 + D_ + (spherical_ ? 1 : (tied_ ? 0 : D_)) : 1),
          constants_(gaussian_constants(p, EmptyComponents::Floored)),
          chol_(tied_ ? ConstRowMatrixMap<T>(p.precisions_cholesky, D_, D_) : ConstRowMatrixMap<T>(nullptr, 0, 0)),
          whitened_(tied_ ? whitened_about_centre(ConstRowMatrixMap<T>(p.means, K_, D_), chol_) : WhitenedMeans{}),
          column_parameters_(tied_ ? whitened_.means.data() : constants_.precision.data()),
          mean_precision_(tied_ || full_ ? RowMatrix<T>() : interleaved_means_precisions(p, constants_.precision)),
          groups_(r.active, r.n_rows, C_, K_),
          item_scores_(groups_.n_items()),
          item_sums_(3 * groups_.n_items(), 0.0),
          block_tied_scatter_(tied_ && moments_ ? RowBlocks{groups_.n_items(), kTiedItemsPerBlock}.count() : 0),
          use_slots_(!full_ && mean_group_rows(groups_, r.n_rows, K_) >= kSlotsMinGroupRows &&
                     static_cast<double>(r.n_rows * C_ * stride_) * sizeof(double) <= kSlotsMaxBytes),
          item_stat_components_(use_slots_ ? groups_.n_items() : 0),
          item_stat_sums_(use_slots_ ? groups_.n_items() : 0),
          row_q_(use_slots_ ? 0 : r.n_rows * C_) {}

    struct Workspace {
        std::vector<std::int64_t> item_stamp;        // [K] last item that gave a component a column
        std::vector<std::int32_t> column;            // [K] the component's column in this item
        std::vector<std::int64_t> member_stamp;      // [K] last item in which a component was in some K_n
        std::vector<std::int32_t> member_index;      // [K] its index among the item's members
        std::vector<std::int32_t> union_components;  // column -> component
        std::vector<std::int32_t> member_columns;    // [members, G + 1] columns of c and G_c
        std::vector<std::uint64_t> member_masks;     // [members, words] the same as bit sets
        std::vector<std::uint64_t> row_masks;        // [rows, words] S_n as a bit set over U
        std::vector<std::int32_t> active_rows;       // [rows, C'] the item's K_n
        std::vector<double> weights;                 // [rows]
        std::vector<std::int32_t> random_code;       // [rows] column, -1 - c outside U, or kNoCandidate
        std::vector<double> score_sum, score_count;  // per column
        std::vector<CandidateScore> extra_scores;    // random candidates outside the union
        RowMatrix<T> features, log_joint;
        Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic> projection;  // [F, U], a column per component
        RowVector<T> constant;
        std::vector<Candidate> candidates, best;  // best: [rows, C'], best first
        Eigen::ArrayXd shifted, exponential, row_sum, row_log_sum;
        std::vector<std::int64_t> stat_stamp;  // [K] slots: last item that gave a component a slot
        std::vector<std::int32_t> stat_slot;   // [K] slots: the component's slot in this item
        RowVector<double> diff;
        std::vector<CandidateScore> scores;              // the item's candidates' log-joint sums
        std::vector<double> refresh_sum, refresh_count;  // [K] for refreshing a neighbour list
        std::vector<std::int32_t> touched;
        std::vector<Candidate> ranked;
        RowMatrix<T> whitened;              // [rows, D] tied: x~ U
        RowVector<T> offset, whitened_row;  // full, direct: one pair's x~ − (μ_c − μ_b) and its whitening
        std::vector<std::int32_t> pair_rows, pair_columns;  // direct: (row, column) pairs in evaluation order
        std::vector<double> pair_values;                    // direct: their log-joints
        RowMatrix<double> centred, weighted;                // [entries, D] tied: x − r_c and w q (x − r_c)
        RowVector<double> relative;                         // [D] tied: (μ_c − μ_b) U of one pair
    };

    Workspace make_workspace() const {
        Workspace ws;
        ws.item_stamp.assign(K_, -1);
        if (tied_) ws.relative.resize(D_);
        ws.column.assign(K_, 0);
        ws.member_stamp.assign(K_, -1);
        ws.member_index.assign(K_, 0);
        if (use_slots_) {
            ws.stat_stamp.assign(K_, -1);
            ws.stat_slot.assign(K_, 0);
            ws.diff.resize(D_);
        }
        if (r_.new_neighbours || r_.neighbour_scores) {
            ws.refresh_sum.assign(K_, 0.0);
            ws.refresh_count.assign(K_, 0.0);
        }
        ws.features.resize(kRowsPerItem, F_);
        ws.candidates.resize(C_);
        return ws;
    }

    // One item: the rows at positions [begin, end) of group b.
    void run_item(Index item, Workspace& ws) {
        const Index begin = groups_.item_begin[item], end = groups_.item_begin[item + 1];
        const Index b = groups_.item_group[item];
        const Index n_rows = end - begin;
        const Index* rows = groups_.rows.data() + begin;
        ConstRowMatrixMap<T> X(r_.X, r_.n_rows, D_);
        ConstRowMatrixMap<T> means(p_.means, K_, D_);
        const RowVector<T> point = means.row(b);
        const RowVector<double> point64 = point.template cast<double>();

        // Gather the item's rows: features x~ = x − μ_b, K_n, weights and random candidates in
        // position order. Rows lie anywhere in X and random candidates anywhere in the parameters:
        // their cache lines are asked for ahead of use.
        auto z = ws.features.topRows(n_rows);
        ws.active_rows.resize(n_rows * C_);
        ws.weights.resize(n_rows);
        ws.random_code.resize(n_rows);
        for (Index i = 0; i < std::min(n_rows, kPrefetchAhead); ++i) prefetch_elements(r_.X + rows[i] * D_, D_);
        for (Index i = 0; i < n_rows; ++i) {
            if (i + kPrefetchAhead < n_rows) prefetch_elements(r_.X + rows[i + kPrefetchAhead] * D_, D_);
            const Index n = rows[i];
            z.row(i).head(D_) = X.row(n) - point;
            std::copy_n(r_.active + n * C_, C_, ws.active_rows.data() + i * C_);
            ws.weights[i] = r_.sample_weight ? static_cast<double>(r_.sample_weight[n]) : 1.0;
            ws.random_code[i] = kNoCandidate;
            if (r_.random_candidates) {
                const std::int32_t c = r_.random_candidates[n];
                ws.random_code[i] = -1 - c;
                prefetch_pair_parameters(c);
            }
        }

        // The union U of the rows' S_n: every member of some K_n (whatever the lists say, so that F
        // never decreases) and its neighbour list G_c, a column each.
        ws.union_components.clear();
        ws.member_columns.clear();
        auto union_column = [&](std::int32_t c) {
            if (ws.item_stamp[c] != item) {
                ws.item_stamp[c] = item;
                ws.column[c] = static_cast<std::int32_t>(ws.union_components.size());
                ws.union_components.push_back(c);
            }
            return ws.column[c];
        };
        Index members = 0;
        for (Index k = 0; k < n_rows * C_; ++k) {
            const std::int32_t c = ws.active_rows[k];
            if (ws.member_stamp[c] == item) continue;
            ws.member_stamp[c] = item;
            ws.member_index[c] = static_cast<std::int32_t>(members++);
            ws.member_columns.push_back(union_column(c));
            const std::int32_t* list = r_.neighbours + static_cast<Index>(c) * G_;
            for (Index g = 0; g < G_; ++g) ws.member_columns.push_back(union_column(list[g]));
        }
        const Index U = static_cast<Index>(ws.union_components.size());
        const Index words = (U + 63) / 64;
        ws.member_masks.assign(members * words, 0);
        for (Index m = 0; m < members; ++m)
            for (Index g = 0; g <= G_; ++g) {
                const std::int32_t column = ws.member_columns[m * (G_ + 1) + g];
                ws.member_masks[m * words + column / 64] |= std::uint64_t(1) << (column % 64);
            }
        // S_n = the union of its members' sets; a random candidate in S_n is dropped, one elsewhere
        // in U takes its column.
        ws.row_masks.assign(n_rows * words, 0);
        for (Index i = 0; i < n_rows; ++i) {
            std::uint64_t* mask = ws.row_masks.data() + i * words;
            for (Index j = 0; j < C_; ++j) {
                const std::uint64_t* member =
                    ws.member_masks.data() + ws.member_index[ws.active_rows[i * C_ + j]] * words;
                for (Index w = 0; w < words; ++w) mask[w] |= member[w];
            }
            const std::int32_t code = ws.random_code[i];
            if (code == kNoCandidate || ws.item_stamp[-1 - code] != item) continue;
            const std::int32_t column = ws.column[-1 - code];
            const bool listed = (mask[column / 64] >> (column % 64)) & 1;
            ws.random_code[i] = listed ? kNoCandidate : column;
        }

        // Expanded (one GEMM over all of U) or direct (a sum over D per pair of a row's own S_n),
        // whichever the cost model finds cheaper: at large K a group has few rows, whose sets share
        // little, so U is many times any row's S_n.
        Index pairs = 0;
        for (Index k = 0; k < n_rows * words; ++k) pairs += set_bits(ws.row_masks[k]);
        for (Index i = 0; i < n_rows; ++i) pairs += ws.random_code[i] >= 0 ? 1 : 0;
        const double expanded_cost =
            static_cast<double>(U) * (static_cast<double>(n_rows * F_) * kGemmPerProduct +
                                      static_cast<double>(D_) * kFillPerFeature + kFillPerColumn);
        const double direct_cost =
            static_cast<double>(pairs) * (static_cast<double>(D_) * kDirectPerFeature + kDirectPerPair);
        // Full: a column costs rows·D² at GEMM speed, a pair D² as a vector-matrix product.
        bool direct = full_ ? static_cast<double>(pairs) * kFullDirectPerPair < static_cast<double>(U * n_rows)
                            : direct_cost < expanded_cost;
        // Diag, spherical, tied: the expansion's parameter block, where the GEMM is chosen; a
        // component too far from the point to expand (see filled_projection) turns it to direct sums.
        if (!full_ && !direct) direct = !filled_projection(b, point64, U, ws);
        // Tied: the rows whitened once, y~ = x~ U, for whichever evaluation runs and for a random
        // candidate outside U.
        if (tied_) {
            ws.whitened.noalias() = z.leftCols(D_) * chol_;
            z.leftCols(D_) = ws.whitened;
        }
        if (direct) {
            direct_log_joints(b, point64, rows, n_rows, words, ws);
        } else if (full_) {  // per column: ((x − μ_b) − (μ_c − μ_b)) U_c, one [rows, D] × [D, D] product
            ws.log_joint.resize(n_rows, U);
            for (Index j = 0; j < U; ++j) {
                const std::int32_t c = ws.union_components[j];
                if (j + 1 < U) prefetch_elements(p_.precisions_cholesky + ws.union_components[j + 1] * D_ * D_, D_ * D_);
                ws.offset = (means.row(c).template cast<double>() - point64).template cast<T>();
                ws.whitened.noalias() = (z.leftCols(D_).rowwise() - ws.offset) *
                                        ConstRowMatrixMap<T>(p_.precisions_cholesky + c * D_ * D_, D_, D_);
                ws.log_joint.col(j) = gaussian_log_joint(finite_component_constant<T>(constants_.base(c)),
                                                         ws.whitened.rowwise().squaredNorm().array())
                                          .matrix();
            }
        } else {
            ws.log_joint.resize(n_rows, U);
            expanded_log_joints(n_rows, ws);
        }
        // Direct values come in the order of the loop below (rows, then their S_n by column).
        Index next_pair = 0;
        auto log_joint_of = [&](Index i, Index column) -> double {
            return direct ? ws.pair_values[next_pair++] : static_cast<double>(ws.log_joint(i, column));
        };

        // Per row: the C' best of S_n and the neighbour-list scores (every column's, b's left out
        // below).
        ws.score_sum.assign(U, 0.0);
        ws.score_count.assign(U, 0.0);
        ws.extra_scores.clear();
        ws.best.resize(n_rows * C_);
        for (Index i = 0; i < n_rows; ++i) {
            Index kept = 0;  // ws.candidates[0, kept): the best so far, best first
            auto consider = [&](double lj, std::int32_t c) { keep_if_better(ws.candidates.data(), kept, C_, {lj, c}); };
            const std::uint64_t* mask = ws.row_masks.data() + i * words;
            for (Index w = 0; w < words; ++w) {
                for (std::uint64_t bits = mask[w]; bits != 0; bits &= bits - 1) {
                    const Index column = w * 64 + lowest_set_bit(bits);
                    const double lj = log_joint_of(i, column);
                    ws.score_sum[column] += lj;
                    ws.score_count[column] += 1;
                    consider(lj, ws.union_components[column]);
                }
            }
            const std::int32_t code = ws.random_code[i];
            if (code >= 0) {
                const double lj = log_joint_of(i, code);
                ws.score_sum[code] += lj;
                ws.score_count[code] += 1;
                consider(lj, ws.union_components[code]);
            } else if (code != kNoCandidate) {  // a random candidate outside U
                const std::int32_t c = -1 - code;
                const double lj = direct_pair_log_joint(z.row(i).head(D_), rows[i], b, point64, c, ws);
                if (c != b) ws.extra_scores.push_back({c, lj, 1.0});
                consider(lj, c);
            }
            std::copy_n(ws.candidates.data(), C_, ws.best.data() + i * C_);
        }
        write_rows(item, rows, n_rows, ws);
        if (use_slots_) item_statistics(item, rows, n_rows, ws);
        if (tied_ && moments_) tied_scatter(item, rows, n_rows, ws);

        if (!r_.new_neighbours && !r_.neighbour_scores) return;
        auto& scores = ws.scores;
        scores.clear();
        for (Index j = 0; j < U; ++j)
            if (ws.score_count[j] > 0 && ws.union_components[j] != b)
                scores.push_back({ws.union_components[j], ws.score_sum[j], ws.score_count[j]});
        scores.insert(scores.end(), ws.extra_scores.begin(), ws.extra_scores.end());
        // A group of one item (most groups at large K) refreshes its list now; others keep their
        // items' scores until every item has run.
        if (!r_.neighbour_scores && groups_.group_first_item[b + 1] - groups_.group_first_item[b] == 1) {
            refresh_neighbours(b, &scores, &scores + 1, ws.refresh_sum, ws.refresh_count, ws.touched, ws.ranked);
        } else {
            item_scores_[item] = scores;
        }
    }

    // The log-joints of every row's own S_n (and a random candidate in U but not in S_n), summed
    // directly, into ws.pair_values in the order the selection reads them; the parameters of the
    // pair kPairsAhead on are asked for while a pair is summed (they lie anywhere in memory).
    void direct_log_joints(Index b, const RowVector<double>& point64, const Index* rows, Index n_rows, Index words,
                           Workspace& ws) const {
        ws.pair_rows.clear();
        ws.pair_columns.clear();
        for (Index i = 0; i < n_rows; ++i) {
            const std::uint64_t* mask = ws.row_masks.data() + i * words;
            for (Index w = 0; w < words; ++w)
                for (std::uint64_t bits = mask[w]; bits != 0; bits &= bits - 1) {
                    ws.pair_rows.push_back(static_cast<std::int32_t>(i));
                    ws.pair_columns.push_back(static_cast<std::int32_t>(w * 64 + lowest_set_bit(bits)));
                }
            if (ws.random_code[i] >= 0) {
                ws.pair_rows.push_back(static_cast<std::int32_t>(i));
                ws.pair_columns.push_back(ws.random_code[i]);
            }
        }
        const Index pairs = static_cast<Index>(ws.pair_columns.size());
        auto prefetch_pair = [&](Index k) { prefetch_pair_parameters(ws.union_components[ws.pair_columns[k]]); };
        for (Index k = 0; k < std::min(pairs, kPairsAhead); ++k) prefetch_pair(k);
        ws.pair_values.resize(pairs);
        auto z = ws.features.topRows(n_rows);
        for (Index k = 0; k < pairs; ++k) {
            if (k + kPairsAhead < pairs) prefetch_pair(k + kPairsAhead);
            const Index i = ws.pair_rows[k];
            const std::int32_t c = ws.union_components[ws.pair_columns[k]];
            ws.pair_values[k] = direct_pair_log_joint(z.row(i).head(D_), rows[i], b, point64, c, ws);
        }
    }

    // The [F, U] parameter block and constants of the expansion about the item's point. An
    // expansion loses about log10(m_c) digits of a component whose mean lies m_c (fill_projection's
    // condition) from the point: false, the block left unfinished, where U holds one beyond what the
    // working precision can spare (kMaxExpansionCondition, as in the exact pass), whose pairs are
    // then summed directly (float32 digits with constant pixels reported a free energy 1.4e-2 above
    // the log-likelihood).
    bool filled_projection(Index b, const RowVector<double>& point64, Index U, Workspace& ws) const {
        ws.projection.resize(F_, U);
        ws.constant.resize(U);
        for (Index j = 0; j < U; ++j) {
            const std::int32_t c = ws.union_components[j];
            if (!tied_) prefetch_elements(p_.means + c * D_, D_);
            prefetch_elements(column_parameters_ + c * D_, D_);
        }
        for (Index j = 0; j < U; ++j) {
            const double condition =
                fill_projection(ws.union_components[j], b, point64, ws.projection.col(j), ws.constant(j), ws);
            if (condition > kMaxExpansionCondition<T>) return false;
        }
        return true;
    }

    // Diag, spherical, tied: the log-joints of the item's rows against U as one GEMM of features
    // [x~, x~²] (tied: [y~, ||y~||²] of the whitened rows) times the [F, U] block filled_projection
    // left, plus constants.
    void expanded_log_joints(Index n_rows, Workspace& ws) const {
        auto z = ws.features.topRows(n_rows);
        // Tied: ||y~ − m~_c||² of the rows run_item whitened, as spherical with unit precision.
        if (tied_ || spherical_) {
            z.col(D_) = z.leftCols(D_).rowwise().squaredNorm();
        } else {
            z.rightCols(D_) = z.leftCols(D_).array().square();
        }
        ws.log_joint.noalias() = z * ws.projection;
        ws.log_joint.rowwise() += ws.constant;
    }

    // Every group's summed scores (the refresh's inputs) into r_.neighbour_scores: groups ascending,
    // candidates ascending within a group.
    void write_neighbour_scores() const {
        NeighbourScores& out = *r_.neighbour_scores;
        out = NeighbourScores{};
        std::vector<double> sum(K_, 0.0), count(K_, 0.0);
        std::vector<std::int32_t> touched;
        for (Index b = 0; b < K_; ++b) {
            const Index first = groups_.group_first_item[b], last = groups_.group_first_item[b + 1];
            if (first == last) continue;
            add_group_scores(item_scores_.data() + first, item_scores_.data() + last, sum, count, touched);
            std::sort(touched.begin(), touched.end());
            for (std::int32_t c : touched) {
                out.group.push_back(static_cast<std::int32_t>(b));
                out.component.push_back(c);
                out.sum.push_back(sum[c]);
                out.count.push_back(count[c]);
                sum[c] = count[c] = 0;
            }
        }
    }

    // G_b from the scores of group b's items ([first, last), in item order): b, then the G − 1 best
    // average log-joints.
    void refresh_neighbours(Index b, const std::vector<CandidateScore>* first, const std::vector<CandidateScore>* last,
                            std::vector<double>& sum, std::vector<double>& count, std::vector<std::int32_t>& touched,
                            std::vector<Candidate>& ranked) const {
        std::int32_t* out = r_.new_neighbours + b * G_;
        const std::int32_t* old = r_.neighbours + b * G_;
        add_group_scores(first, last, sum, count, touched);
        ranked.clear();
        for (std::int32_t c : touched) {
            ranked.push_back({sum[c] / count[c], c});
            sum[c] = count[c] = 0;
        }
        const Index keep = std::min<Index>(G_ - 1, static_cast<Index>(ranked.size()));
        std::partial_sort(ranked.begin(), ranked.begin() + keep, ranked.end(), better);
        Index filled = 0;
        out[filled++] = static_cast<std::int32_t>(b);
        for (Index k = 0; k < keep; ++k) out[filled++] = ranked[k].component;
        // Too few candidates seen: keep old neighbours not yet listed.
        for (Index g = 0; g < G_ && filled < G_; ++g) {
            if (std::find(out, out + filled, old[g]) == out + filled) out[filled++] = old[g];
        }
    }

    // Component c's statistics: the sum of its slots over the items, in item order.
    void merge_component(Index c, const std::vector<Index>& begin, const std::vector<std::pair<Index, Index>>& slots,
                         MixtureStatistics& stats) const {
        RowVector<double> sum = RowVector<double>::Zero(stride_);
        for (Index k = begin[c]; k < begin[c + 1]; ++k) {
            const auto [item, slot] = slots[k];
            sum += Eigen::Map<const RowVector<double>>(item_stat_sums_[item].data() + slot * stride_, stride_);
        }
        stats.nk(c) = sum(0);
        if (!moments_) return;
        stats.sx.row(c) = sum.segment(1, D_);
        if (tied_) return;  // the shared scatter: summed over items in run()
        if (spherical_) {
            stats.sxx(c) = sum(1 + D_);
        } else {
            stats.sxx.segment(c * D_, D_) = sum.segment(1 + D_, D_).transpose();
        }
    }

    bool run(MixtureStatistics& stats) {
        const RowBlocks items{groups_.n_items(), tied_ ? kTiedItemsPerBlock : 1};
        if (!for_each_block_ordered(
                items, r_.n_threads, [] { return 0; }, [&] { return make_workspace(); },
                [&](Index, Index first, Index count, int&, Workspace& ws) {
                    for (Index item = first; item < first + count; ++item) run_item(item, ws);
                },
                [](int) {}, r_.interrupt, kWholePass))
            return false;
        if (r_.neighbour_scores) write_neighbour_scores();
        if (r_.new_neighbours) {
            struct Scratch {
                std::vector<double> sum, count;
                std::vector<std::int32_t> touched;
                std::vector<Candidate> ranked;
            };
            const RowBlocks components{K_, 1};
            if (!for_each_block_ordered(
                    components, r_.n_threads, [] { return 0; },
                    [&] { return Scratch{std::vector<double>(K_, 0.0), std::vector<double>(K_, 0.0), {}, {}}; },
                    [&](Index b, Index, Index, int&, Scratch& s) {
                        const Index first = groups_.group_first_item[b], last = groups_.group_first_item[b + 1];
                        if (last - first == 1 && !r_.neighbour_scores) return;  // refreshed by its item
                        refresh_neighbours(b, item_scores_.data() + first, item_scores_.data() + last, s.sum, s.count,
                                           s.touched, s.ranked);
                    },
                    [](int) {}, r_.interrupt, kWholePass))
                return false;
        }

        const Index n_items = groups_.n_items();
        stats = MixtureStatistics(p_.type, K_, D_, moments_);
        if (!(use_slots_ ? merge_slots(stats) : component_statistics(stats))) return false;
        if (tied_ && moments_) {
            RowMatrixMap<double> scatter(stats.sxx.data(), D_, D_);
            for (const RowMatrix<double>& block : block_tied_scatter_)  // block order: deterministic
                if (block.size() > 0) scatter += block;
        }
        for (Index item = 0; item < n_items; ++item) {  // item order: deterministic
            stats.sum_weight += item_sums_[3 * item];
            stats.sum_log_norm += item_sums_[3 * item + 1];
            stats.sum_entropy += item_sums_[3 * item + 2];
        }
        return true;
    }

    // Every component sums its own (row, q) pairs, rows ascending (the sparse q transposed to
    // component order: no per-item or per-block partial sums), in parallel over components. Full:
    // the second moments as one product over the pairs; tied: only nk and sx here (the shared scatter
    // is summed per block of items).
    bool component_statistics(MixtureStatistics& stats) const {
        const Index N = r_.n_rows;
        std::vector<Index> begin(K_ + 1, 0), entries(N * C_);
        for (Index e = 0; e < N * C_; ++e) ++begin[r_.new_active[e] + 1];
        for (Index c = 0; c < K_; ++c) begin[c + 1] += begin[c];
        {
            std::vector<Index> next(begin.begin(), begin.end() - 1);
            for (Index e = 0; e < N * C_; ++e) entries[next[r_.new_active[e]]++] = e;
        }
        struct Scratch {
            RowMatrix<double> centred, weighted;
            RowVector<double> diff, sx, sxx;
        };
        ConstRowMatrixMap<T> X(r_.X, N, D_);
        const RowBlocks component_blocks{K_, kComponentsPerItem};
        return for_each_block_ordered(
            component_blocks, r_.n_threads, [] { return 0; }, [] { return Scratch{}; },
            [&](Index, Index first, Index count, int&, Scratch& s) {
                for (Index c = first; c < first + count; ++c) {
                    double nk = 0, spherical_sxx = 0;
                    Index m = 0;
                    if (moments_) {
                        s.sx.setZero(D_);
                        s.sxx.setZero(D_);
                        if (full_) {
                            s.centred.resize(begin[c + 1] - begin[c], D_);
                            s.weighted.resize(begin[c + 1] - begin[c], D_);
                        }
                    }
                    const auto reference = Eigen::Map<const RowVector<double>>(
                        moments_ ? r_.reference + c * D_ : nullptr, moments_ ? D_ : 0);
                    for (Index k = begin[c]; k < begin[c + 1]; ++k) {
                        if (k + kEntriesAhead < N * C_) {  // rows of a component lie anywhere in X
                            const Index ahead = entries[k + kEntriesAhead];
                            if (moments_) prefetch_elements(r_.X + (ahead / C_) * D_, D_);
                            prefetch_elements(row_q_.data() + ahead, 1);
                        }
                        const Index n = entries[k] / C_;
                        const double w = r_.sample_weight ? static_cast<double>(r_.sample_weight[n]) : 1.0;
                        const double wq = w * row_q_[entries[k]];
                        nk += wq;
                        if (!moments_ || wq == 0) continue;
                        if (full_) {
                            s.centred.row(m) = X.row(n).template cast<double>() - reference;
                            s.weighted.row(m) = wq * s.centred.row(m);
                            ++m;
                            continue;
                        }
                        s.diff = X.row(n).template cast<double>() - reference;
                        add_first_moment(wq, s.diff, s.sx.data());
                        if (!tied_)
                            add_second_moment(wq, s.diff, spherical_, spherical_ ? &spherical_sxx : s.sxx.data());
                    }
                    stats.nk(c) = nk;
                    if (!moments_) continue;
                    if (full_) {
                        stats.sx.row(c) = s.weighted.topRows(m).colwise().sum();
                        RowMatrixMap<double>(stats.sxx.data() + c * D_ * D_, D_, D_).noalias() =
                            s.centred.topRows(m).transpose() * s.weighted.topRows(m);
                        continue;
                    }
                    stats.sx.row(c) = s.sx;
                    if (spherical_) {
                        stats.sxx(c) = spherical_sxx;
                    } else if (!tied_) {
                        stats.sxx.segment(c * D_, D_) = s.sxx.transpose();
                    }
                }
            },
            [](int) {}, r_.interrupt, kWholePass);
    }

    // Diag, spherical, tied: the items' statistics slots, summed per component in item order.
    bool merge_slots(MixtureStatistics& stats) const {
        const Index n_items = groups_.n_items();
        std::vector<Index> begin(K_ + 1, 0);
        for (Index item = 0; item < n_items; ++item)
            for (std::int32_t c : item_stat_components_[item]) ++begin[c + 1];
        for (Index c = 0; c < K_; ++c) begin[c + 1] += begin[c];
        std::vector<std::pair<Index, Index>> slots(begin[K_]);
        {
            std::vector<Index> next(begin.begin(), begin.end() - 1);
            for (Index item = 0; item < n_items; ++item) {
                const auto& components = item_stat_components_[item];
                for (Index slot = 0; slot < static_cast<Index>(components.size()); ++slot)
                    slots[next[components[slot]]++] = {item, slot};
            }
        }
        const RowBlocks component_blocks{K_, kComponentsPerItem};
        if (!for_each_block_ordered(
                component_blocks, r_.n_threads, [] { return 0; }, [] { return 0; },
                [&](Index, Index first, Index count, int&, int&) {
                    for (Index c = first; c < first + count; ++c) merge_component(c, begin, slots, stats);
                },
                [](int) {}, r_.interrupt, kWholePass))
            return false;
        return true;
    }

  private:
    // Asks for the cache lines of component c's parameters that a directly summed pair reads (they
    // lie anywhere in memory).
    void prefetch_pair_parameters(std::int32_t c) const {
        if (tied_) {
            prefetch_elements(whitened_.means.data() + c * D_, D_);
        } else if (full_) {
            prefetch_elements(p_.means + c * D_, D_);
            prefetch_elements(p_.precisions_cholesky + c * D_ * D_, D_ * D_);
        } else {
            prefetch_elements(mean_precision_.data() + c * 2 * D_, 2 * D_);
        }
    }

    // The log-joint of one (row, component c) pair of group b summed directly: `row` the item's
    // features of X row n (tied: whitened), point64 = μ_b.
    template <class Row>
    double direct_pair_log_joint(const Row& row, Index n, Index b, const RowVector<double>& point64, std::int32_t c,
                                 Workspace& ws) const {
        return tied_   ? direct_whitened_log_joint(row, b, c, ws)
               : full_ ? direct_full_log_joint(row, point64, c, ws)
                       : direct_log_joint(n, c);
    }

    // log π_c + log N(x_n; μ_c, Σ_c) summed directly (a single random candidate: no expansion).
    double direct_log_joint(Index n, std::int32_t c) const {
        const auto x = ConstRowMatrixMap<T>(r_.X, r_.n_rows, D_).row(n).array();
        const auto mu = Eigen::Map<const RowVector<T>>(mean_precision_.data() + c * 2 * D_, D_).array();
        const auto precision = Eigen::Map<const RowVector<T>>(mean_precision_.data() + c * 2 * D_ + D_, D_).array();
        const T mahalanobis = diagonal_squared_distance(x, mu, precision);
        return gaussian_log_joint(constants_.base(c), static_cast<double>(mahalanobis));
    }

    // Full: log π_c + log N(x; μ_c, Σ_c) from the row x~ = x − μ_b.
    template <class Row>
    double direct_full_log_joint(const Row& centred_row, const RowVector<double>& point, std::int32_t c,
                                 Workspace& ws) const {
        ws.offset = (ConstRowMatrixMap<T>(p_.means, K_, D_).row(c).template cast<double>() - point).template cast<T>();
        ws.offset = centred_row - ws.offset;
        ws.whitened_row.noalias() = ws.offset * ConstRowMatrixMap<T>(p_.precisions_cholesky + c * D_ * D_, D_, D_);
        return gaussian_log_joint(constants_.base(c), static_cast<double>(ws.whitened_row.squaredNorm()));
    }

    // Tied: log π_c + log N(x; μ_c, Σ) from the whitened row y~ = (x − μ_b) U.
    template <class Row>
    double direct_whitened_log_joint(const Row& whitened_row, Index b, std::int32_t c, Workspace& ws) const {
        whitened_.relative_between(c, b, ws.relative);
        return gaussian_log_joint(constants_.base(c),
                                  (whitened_row.template cast<double>() - ws.relative).squaredNorm());
    }

    // Column of component c of group b: diag, spherical [p_c (μ_c − μ_b), −p_c / 2] about point64 = μ_b;
    // tied [m~_c, −1/2] with m~_c = (μ_c − μ_b) U (in ws.relative); and its constant. Returns the
    // expansion's condition m_c: ||μ_c − point||² in c's metric (tied: ||m~_c||²).
    template <class Column>
    double fill_projection(std::int32_t c, Index b, const RowVector<double>& point64, Column&& column, T& constant,
                           Workspace& ws) const {
        if (tied_) {
            whitened_.relative_between(c, b, ws.relative);
            column.head(D_) = ws.relative.transpose().template cast<T>();
            column(D_) = static_cast<T>(-0.5);
            const double condition = ws.relative.squaredNorm();
            constant = finite_component_constant<T>(gaussian_log_joint(constants_.base(c), condition));
            return condition;
        }
        const double* precision = constants_.precision.data() + c * D_;
        const double mahalanobis = expansion_column(p_.means + c * D_, precision, point64, D_, column);
        squared_feature_entries(precision, D_, spherical_, column);
        constant = finite_component_constant<T>(gaussian_log_joint(constants_.base(c), mahalanobis));
        return mahalanobis;
    }

    // The posterior over every row's C' best candidates (ws.best), exponentials vectorised over the
    // item; the new K_n and the optional per-row outputs in row order; the item's ELBO sums.
    void write_rows(Index item, const Index* rows, Index n_rows, Workspace& ws) const {
        const Index m = n_rows * C_;
        const double cutoff = underflow_cutoff<double>();
        ws.shifted.resize(m);
        for (Index i = 0; i < n_rows; ++i)
            for (Index j = 0; j < C_; ++j)
                ws.shifted[i * C_ + j] = ws.best[i * C_ + j].log_joint - ws.best[i * C_].log_joint;
        ws.exponential = ws.shifted.exp();
        ws.row_sum.resize(n_rows);
        for (Index i = 0; i < n_rows; ++i) {
            double s = 0;
            for (Index j = 0; j < C_; ++j) {
                double& e = ws.exponential[i * C_ + j];
                e = kept_exponential(ws.shifted[i * C_ + j], e, cutoff);
                s += e;
            }
            ws.row_sum[i] = s;
        }
        ws.row_log_sum = ws.row_sum.log();  // log s, vectorised over the item's rows
        double sum_weight = 0, sum_log_norm = 0, sum_entropy = 0;
        for (Index i = 0; i < n_rows; ++i) {
            const Index n = rows[i];
            const double inv_s = 1.0 / ws.row_sum[i];
            double et = 0;
            for (Index j = 0; j < C_; ++j) {
                const Index k = i * C_ + j;
                et += ws.exponential[k] * ws.shifted[k];
                ws.exponential[k] *= inv_s;  // q
                r_.new_active[n * C_ + j] = ws.best[k].component;
            }
            const double log_norm = row_log_norm(ws.best[i * C_].log_joint, ws.row_log_sum[i]);
            const double entropy = row_entropy(ws.row_log_sum[i], et, inv_s);
            const double w = ws.weights[i];
            sum_weight += w;
            sum_log_norm += w * log_norm;
            sum_entropy += w * entropy;
            if (r_.log_norm) r_.log_norm[n] = log_norm;
            if (r_.responsibilities) std::copy_n(&ws.exponential[i * C_], C_, r_.responsibilities + n * C_);
            if (!use_slots_) std::copy_n(&ws.exponential[i * C_], C_, row_q_.data() + n * C_);
        }
        item_sums_[3 * item] = sum_weight;
        item_sums_[3 * item + 1] = sum_log_norm;
        item_sums_[3 * item + 2] = sum_entropy;
    }

    // Calls f(i, c, w_i q_ic) for the item's rows i in order and each kept component c in rank order
    // where the weighted responsibility is not 0: the pairs every statistic of the item sums over.
    template <class F>
    void for_each_kept_pair(Index n_rows, const Workspace& ws, F&& f) const {
        for (Index i = 0; i < n_rows; ++i)
            for (Index j = 0; j < C_; ++j) {
                const Index k = i * C_ + j;
                const double wq = ws.weights[i] * ws.exponential[k];
                if (wq != 0) f(i, ws.best[k].component, wq);
            }
    }

    // The item's statistics, one slot per component its rows keep with q > 0: Σ w q and, with a
    // reference, Σ w q (x − r_c) and Σ w q (x − r_c)² (rows still in cache; rows in order).
    void item_statistics(Index item, const Index* rows, Index n_rows, Workspace& ws) const {
        ConstRowMatrixMap<T> X(r_.X, r_.n_rows, D_);
        // The slots first (in order of first appearance), so that the item's sums are allocated once
        // and accumulated in place.
        auto& components = item_stat_components_[item];
        components.clear();
        for_each_kept_pair(n_rows, ws, [&](Index, std::int32_t c, double) {
            if (ws.stat_stamp[c] == item) return;
            ws.stat_stamp[c] = item;
            ws.stat_slot[c] = static_cast<std::int32_t>(components.size());
            components.push_back(c);
        });
        auto& sums = item_stat_sums_[item];
        sums.assign(components.size() * stride_, 0.0);
        for_each_kept_pair(n_rows, ws, [&](Index i, std::int32_t c, double wq) {
            double* acc = sums.data() + ws.stat_slot[c] * stride_;
            acc[0] += wq;
            if (!moments_) return;
            ws.diff =
                X.row(rows[i]).template cast<double>() - Eigen::Map<const RowVector<double>>(r_.reference + c * D_, D_);
            add_first_moment(wq, ws.diff, acc + 1);
            if (tied_) return;  // the shared scatter: tied_scatter
            add_second_moment(wq, ws.diff, spherical_, acc + 1 + D_);
        });
    }

    // Tied: the item's part of the shared scatter Σ w q (x − r_c)(x − r_c)ᵀ over its rows and kept
    // components (rows still in cache), added to its block's, whose items run in order on one thread.
    void tied_scatter(Index item, const Index* rows, Index n_rows, Workspace& ws) const {
        ConstRowMatrixMap<T> X(r_.X, r_.n_rows, D_);
        Index entries = 0;
        ws.centred.resize(n_rows * C_, D_);
        ws.weighted.resize(n_rows * C_, D_);
        for_each_kept_pair(n_rows, ws, [&](Index i, std::int32_t c, double wq) {
            ws.centred.row(entries) =
                X.row(rows[i]).template cast<double>() - Eigen::Map<const RowVector<double>>(r_.reference + c * D_, D_);
            ws.weighted.row(entries) = wq * ws.centred.row(entries);
            ++entries;
        });
        RowMatrix<double>& scatter = block_tied_scatter_[item / kTiedItemsPerBlock];
        if (scatter.size() == 0) scatter.setZero(D_, D_);
        scatter.noalias() += ws.centred.topRows(entries).transpose() * ws.weighted.topRows(entries);
    }

    const GaussianMixtureParams<T>& p_;
    const TruncatedPassRequest<T>& r_;
    Index K_, D_, C_, G_;
    bool spherical_, tied_, full_, moments_;
    Index F_, stride_;
    // p_cd (diag, spherical) and log π_c − D/2 log 2π + log|U_c|, finite for empty components: the
    // pass ranks and exponentiates float64 log-joints, and a row whose candidates are all empty
    // must not give −inf − (−inf).
    GaussianConstants constants_;
    RowMatrix<T> chol_;  // tied: [D, D] the shared precision Cholesky factor U
    // tied: [K, D] (μ_c − centre) U, the centre the mean of the μ_c; only their differences are
    // read, and whitening about the origin would lose the digits of the data's offset.
    WhitenedMeans whitened_;
    const double* column_parameters_;  // [K, D] what a projection column reads: p_c or μ_c U
    RowMatrix<T> mean_precision_;      // diag, spherical: [K, 2D] μ_c then p_c, one block a component
    RowGroups groups_;
    std::vector<std::vector<CandidateScore>> item_scores_;
    mutable std::vector<double> item_sums_;  // [items, 3]: Σ w, Σ w log-norm, Σ w H[q_n]
    // Tied: every block of items' Σ w q (x − r_c)(x − r_c)ᵀ over its rows and kept components, [D, D].
    mutable std::vector<RowMatrix<double>> block_tied_scatter_;
    // Slots: every item sums its rows' statistics per kept component while they are in cache (cheap
    // where groups are large, so that an item's rows share few components); otherwise every row's q
    // is kept and each component sums its own rows afterwards (memory N·C', whatever the groups).
    bool use_slots_;
    // Slots: per item the components of its statistics slots and the slots ([slots, stride_]).
    mutable std::vector<std::vector<std::int32_t>> item_stat_components_;
    mutable std::vector<std::vector<double>> item_stat_sums_;
    // Otherwise every row's q over its new K_n, [N, C'].
    mutable std::vector<double> row_q_;
};

void check_lists(const std::int32_t* lists, Index rows, Index width, Index K, const char* name) {
    for (Index n = 0; n < rows; ++n) {
        const std::int32_t* row = lists + n * width;
        for (Index j = 0; j < width; ++j) {
            if (row[j] < 0 || row[j] >= K)
                throw std::invalid_argument(std::string(name) + ": component " + std::to_string(row[j]) + " at row " +
                                            std::to_string(n) + " is outside [0, " + std::to_string(K) + ")");
            if (std::find(row, row + j, row[j]) != row + j)
                throw std::invalid_argument(std::string(name) + ": row " + std::to_string(n) + " lists component " +
                                            std::to_string(row[j]) + " twice");
        }
    }
}

}  // namespace

template <class T>
bool truncated_mixture_pass(const GaussianMixtureParams<T>& params, const TruncatedPassRequest<T>& request,
                            MixtureStatistics& statistics) {
    const Index K = params.n_components;
    if (request.n_active < 1 || request.n_active > K)
        throw std::invalid_argument("n_active must lie in [1, n_components]");
    if (request.n_neighbors < 1 || request.n_neighbors > K)
        throw std::invalid_argument("n_neighbors must lie in [1, n_components]");
    check_lists(request.active, request.n_rows, request.n_active, K, "active");
    check_lists(request.neighbours, K, request.n_neighbors, K, "neighbours");
    if (request.random_candidates) check_lists(request.random_candidates, request.n_rows, 1, K, "random_candidates");
    TruncatedEStep<T> step(params, request);
    return step.run(statistics);
}

template bool truncated_mixture_pass<float>(const GaussianMixtureParams<float>&, const TruncatedPassRequest<float>&,
                                            MixtureStatistics&);
template bool truncated_mixture_pass<double>(const GaussianMixtureParams<double>&, const TruncatedPassRequest<double>&,
                                             MixtureStatistics&);

}  // namespace fastelbo
