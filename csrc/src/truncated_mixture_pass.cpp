// The truncated variational E-step (see truncated_mixture_pass.hpp).
#include "fastelbo/truncated_mixture_pass.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "fastelbo/posterior_row.hpp"
#include "fastelbo/row_block_schedule.hpp"

namespace fastelbo {
namespace {

// Rows per work item: enough for the GEMM to pay, few enough that big groups spread over threads.
constexpr Index kRowsPerItem = 64;
// Components per work item of the statistics pass.
constexpr Index kComponentsPerItem = 16;
// Work items are small and independent: one parallel region per pass.
constexpr Index kWholePass = Index(1) << 40;

struct Candidate {
    double log_joint;
    std::int32_t component;
};
// Larger log-joint first; equal ones by smaller component index.
inline bool better(const Candidate& a, const Candidate& b) {
    return a.log_joint > b.log_joint || (a.log_joint == b.log_joint && a.component < b.component);
}

// Per-component constants of the log-joint in float64: precision p_cd and
// log π_c − D/2 log 2π + log|U_c| (empty components get a finite floor, as in the exact pass).
struct ComponentConstants {
    RowMatrix<double> precision;  // [K, D]
    Vector<double> base;          // [K]
};

template <class T>
ComponentConstants component_constants(const GaussianMixtureParams<T>& p) {
    const Index K = p.n_components, D = p.n_features;
    const bool spherical = p.type == CovarianceType::Spherical;
    ComponentConstants out{RowMatrix<double>(K, D), Vector<double>(K)};
    const double half_log_two_pi = 0.5 * std::log(2 * M_PI);
    for (Index c = 0; c < K; ++c) {
        double log_det = 0;
        for (Index d = 0; d < D; ++d) {
            const double u = spherical ? p.precisions_cholesky[c] : p.precisions_cholesky[c * D + d];
            out.precision(c, d) = u * u;
            log_det += std::log(u);
        }
        const double log_weight = static_cast<double>(p.log_weights[c]);
        out.base(c) = (std::isfinite(log_weight) ? log_weight : static_cast<double>(log_zero_floor<T>())) -
                      D * half_log_two_pi + log_det;
    }
    return out;
}

// Rows grouped by best component (stable counting sort), cut into items of <= kRowsPerItem rows.
struct RowGroups {
    std::vector<Index> rows;         // position -> row
    std::vector<Index> group_begin;  // [K + 1] positions
    std::vector<Index> item_begin;   // [items + 1] positions
    std::vector<std::int32_t> item_group;
    std::vector<Index> group_first_item;  // [K + 1]

    RowGroups(const std::int32_t* active, Index N, Index C, Index K) : rows(N), group_begin(K + 1, 0) {
        for (Index n = 0; n < N; ++n) ++group_begin[active[n * C] + 1];
        for (Index c = 0; c < K; ++c) group_begin[c + 1] += group_begin[c];
        std::vector<Index> next(group_begin.begin(), group_begin.end() - 1);
        for (Index n = 0; n < N; ++n) rows[next[active[n * C]]++] = n;
        // Within a group, rows sharing their second component share most candidates: adjacent rows
        // then make items with small candidate unions.
        if (C > 1) {
            for (Index c = 0; c < K; ++c) {
                std::sort(rows.begin() + group_begin[c], rows.begin() + group_begin[c + 1], [&](Index a, Index b) {
                    return active[a * C + 1] < active[b * C + 1] || (active[a * C + 1] == active[b * C + 1] && a < b);
                });
            }
        }
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

// Sum and count of the log-joints one item's rows gave a candidate (for the neighbour lists).
struct CandidateScore {
    std::int32_t component;
    double sum;
    double count;
};

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
          F_(spherical_ ? D_ + 1 : 2 * D_),
          constants_(component_constants(p)),
          precision_t_(constants_.precision.template cast<T>()),
          groups_(r.active, r.n_rows, C_, K_),
          row_entropy_(r.n_rows),
          row_log_norm_(r.n_rows),
          row_q_(r.n_rows * C_),
          item_scores_(groups_.n_items()) {}

    struct Workspace {
        std::vector<std::int64_t> row_stamp;   // [K] last row that listed a component
        std::vector<std::int64_t> item_stamp;  // [K] last item that gave a component a column
        std::vector<std::int32_t> column;      // [K] the component's column in this item
        std::vector<std::int32_t> union_components;
        std::vector<std::int32_t> row_candidates;  // concatenated S_n of the item's rows
        std::vector<Index> row_candidates_end;
        std::vector<double> score_sum, score_count;  // per column
        std::vector<CandidateScore> extra_scores;    // random candidates outside the union
        RowMatrix<T> features, projection, log_joint;
        RowVector<T> constant;
        std::vector<Candidate> candidates;
        std::int64_t rows_seen = 0;
    };

    Workspace make_workspace() const {
        Workspace ws;
        ws.row_stamp.assign(K_, -1);
        ws.item_stamp.assign(K_, -1);
        ws.column.assign(K_, 0);
        ws.features.resize(kRowsPerItem, F_);
        ws.candidates.resize(C_);
        return ws;
    }

    // One item: the rows at positions [begin, end) of group b.
    void run_item(Index item, Workspace& ws) {
        const Index begin = groups_.item_begin[item], end = groups_.item_begin[item + 1];
        const Index b = groups_.item_group[item];
        const Index n_rows = end - begin;
        ConstRowMatrixMap<T> X(r_.X, r_.n_rows, D_);
        ConstRowMatrixMap<T> means(p_.means, K_, D_);
        const RowVector<T> point = means.row(b);
        const RowVector<double> point64 = point.template cast<double>();

        // S_n of every row and the union U of their neighbour-list candidates.
        ws.union_components.clear();
        ws.row_candidates.clear();
        ws.row_candidates_end.clear();
        auto add_to_union = [&](std::int32_t c) {
            if (ws.item_stamp[c] == item) return;
            ws.item_stamp[c] = item;
            ws.column[c] = static_cast<std::int32_t>(ws.union_components.size());
            ws.union_components.push_back(c);
        };
        // Pass 1: the union U of the rows' neighbour-list candidates (K_n itself included, whatever
        // the lists say, so that F never decreases).
        for (Index pos = begin; pos < end; ++pos) {
            const Index n = groups_.rows[pos];
            for (Index j = 0; j < C_; ++j) {
                const std::int32_t c = r_.active[n * C_ + j];
                add_to_union(c);
                const std::int32_t* list = r_.neighbours + static_cast<Index>(c) * G_;
                for (Index g = 0; g < G_; ++g) add_to_union(list[g]);
            }
        }
        // Pass 2: every row's S_n as columns of U; a random candidate outside U as -1 - c.
        for (Index pos = begin; pos < end; ++pos) {
            const Index n = groups_.rows[pos];
            const std::int64_t stamp = ws.rows_seen++;
            auto add = [&](std::int32_t c) {
                if (ws.row_stamp[c] == stamp) return;
                ws.row_stamp[c] = stamp;
                ws.row_candidates.push_back(ws.item_stamp[c] == item ? ws.column[c] : -1 - c);
            };
            for (Index j = 0; j < C_; ++j) {
                const std::int32_t c = r_.active[n * C_ + j];
                add(c);
                const std::int32_t* list = r_.neighbours + static_cast<Index>(c) * G_;
                for (Index g = 0; g < G_; ++g) add(list[g]);
            }
            if (r_.random_candidates) add(r_.random_candidates[n]);
            ws.row_candidates_end.push_back(static_cast<Index>(ws.row_candidates.size()));
        }

        // Log-joints of all rows against U: features [x~, x~²] times the projection, plus constants.
        const Index U = static_cast<Index>(ws.union_components.size());
        ws.projection.resize(F_, U);
        ws.constant.resize(U);
        for (Index j = 0; j < U; ++j)
            fill_projection(ws.union_components[j], point64, ws.projection.col(j), ws.constant(j));
        auto z = ws.features.topRows(n_rows);
        for (Index i = 0; i < n_rows; ++i) z.row(i).head(D_) = X.row(groups_.rows[begin + i]) - point;
        if (spherical_) {
            z.col(D_) = z.leftCols(D_).rowwise().squaredNorm();
        } else {
            z.rightCols(D_) = z.leftCols(D_).array().square();
        }
        ws.log_joint.resize(n_rows, U);
        ws.log_joint.noalias() = z * ws.projection;
        ws.log_joint.rowwise() += ws.constant;

        // Per row: the C' best of S_n, its posterior, and the neighbour-list scores.
        ws.score_sum.assign(U, 0.0);
        ws.score_count.assign(U, 0.0);
        ws.extra_scores.clear();
        Index first = 0;
        for (Index i = 0; i < n_rows; ++i) {
            const Index n = groups_.rows[begin + i];
            const Index last = ws.row_candidates_end[i];
            Index kept = 0;  // ws.candidates[0, kept): the best so far, best first
            for (Index k = first; k < last; ++k) {
                const std::int32_t code = ws.row_candidates[k];
                std::int32_t c;
                double lj;
                if (code >= 0) {
                    c = ws.union_components[code];
                    lj = static_cast<double>(ws.log_joint(i, code));
                    if (c != b) {
                        ws.score_sum[code] += lj;
                        ws.score_count[code] += 1;
                    }
                } else {  // a random candidate outside U
                    c = -1 - code;
                    lj = direct_log_joint(n, c);
                    if (c != b) ws.extra_scores.push_back({c, lj, 1.0});
                }
                const Candidate candidate{lj, c};
                if (kept == C_ && !better(candidate, ws.candidates[C_ - 1])) continue;
                Index slot = kept < C_ ? kept++ : C_ - 1;
                for (; slot > 0 && better(candidate, ws.candidates[slot - 1]); --slot)
                    ws.candidates[slot] = ws.candidates[slot - 1];
                ws.candidates[slot] = candidate;
            }
            first = last;
            write_row(n, ws.candidates.data());
        }
        auto& scores = item_scores_[item];
        scores.clear();
        for (Index j = 0; j < U; ++j)
            if (ws.score_count[j] > 0) scores.push_back({ws.union_components[j], ws.score_sum[j], ws.score_count[j]});
        scores.insert(scores.end(), ws.extra_scores.begin(), ws.extra_scores.end());
    }

    // G_b from the scores of group b's items: b, then the G − 1 best average log-joints.
    void refresh_neighbours(Index b, std::vector<double>& sum, std::vector<double>& count,
                            std::vector<std::int32_t>& touched, std::vector<Candidate>& ranked) const {
        std::int32_t* out = r_.new_neighbours + b * G_;
        const std::int32_t* old = r_.neighbours + b * G_;
        touched.clear();
        for (Index item = groups_.group_first_item[b]; item < groups_.group_first_item[b + 1]; ++item) {
            for (const CandidateScore& s : item_scores_[item]) {
                if (count[s.component] == 0) touched.push_back(s.component);
                sum[s.component] += s.sum;
                count[s.component] += s.count;
            }
        }
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

    // Moments of component c over its own rows, in row order.
    void component_statistics(Index c, const std::vector<Index>& begin, const std::vector<Index>& entries,
                              MixtureStatistics& stats) const {
        ConstRowMatrixMap<T> X(r_.X, r_.n_rows, D_);
        const bool moments = r_.reference != nullptr;
        double nk = 0;
        RowVector<double> sx = RowVector<double>::Zero(moments ? D_ : 0);
        RowVector<double> sxx = RowVector<double>::Zero(moments ? (spherical_ ? 1 : D_) : 0);
        RowVector<double> diff(D_);
        const Eigen::Map<const RowVector<double>> reference(moments ? r_.reference + c * D_ : nullptr, D_);
        for (Index k = begin[c]; k < begin[c + 1]; ++k) {
            const Index entry = entries[k], n = entry / C_;
            const double w = r_.sample_weight ? static_cast<double>(r_.sample_weight[n]) : 1.0;
            const double wq = w * row_q_[entry];
            nk += wq;
            if (!moments || wq == 0) continue;
            diff = X.row(n).template cast<double>() - reference;
            sx += wq * diff;
            if (spherical_) {
                sxx(0) += wq * diff.squaredNorm();
            } else {
                sxx += wq * diff.array().square().matrix();
            }
        }
        stats.nk(c) = nk;
        if (!moments) return;
        stats.sx.row(c) = sx;
        if (spherical_) {
            stats.sxx(c) = sxx(0);
        } else {
            stats.sxx.segment(c * D_, D_) = sxx.transpose();
        }
    }

    bool run(MixtureStatistics& stats) {
        const int threads = resolve_thread_count(r_.n_threads);
        const RowBlocks items{groups_.n_items(), 1};
        if (!for_each_block_ordered(
                items, r_.n_threads, [] { return 0; }, [&] { return make_workspace(); },
                [&](Index item, Index, Index, int&, Workspace& ws) { run_item(item, ws); }, [](int) {}, r_.interrupt,
                kWholePass))
            return false;
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
                        refresh_neighbours(b, s.sum, s.count, s.touched, s.ranked);
                    },
                    [](int) {}, r_.interrupt, kWholePass))
                return false;
        }

        // Transpose the (row, slot) entries to component order, rows ascending.
        const Index N = r_.n_rows;
        std::vector<Index> begin(K_ + 1, 0), entries(N * C_);
        for (Index e = 0; e < N * C_; ++e) ++begin[r_.new_active[e] + 1];
        for (Index c = 0; c < K_; ++c) begin[c + 1] += begin[c];
        {
            std::vector<Index> next(begin.begin(), begin.end() - 1);
            for (Index e = 0; e < N * C_; ++e) entries[next[r_.new_active[e]]++] = e;
        }
        stats = MixtureStatistics(p_.type, K_, D_, r_.reference != nullptr);
        const RowBlocks component_blocks{K_, kComponentsPerItem};
        if (!for_each_block_ordered(
                component_blocks, r_.n_threads, [] { return 0; }, [] { return 0; },
                [&](Index, Index first, Index count, int&, int&) {
                    for (Index c = first; c < first + count; ++c) component_statistics(c, begin, entries, stats);
                },
                [](int) {}, r_.interrupt, kWholePass))
            return false;
        (void)threads;
        for (Index n = 0; n < N; ++n) {  // row order: deterministic
            const double w = r_.sample_weight ? static_cast<double>(r_.sample_weight[n]) : 1.0;
            stats.sum_weight += w;
            stats.sum_log_norm += w * row_log_norm_[n];
            stats.sum_entropy += w * row_entropy_[n];
        }
        if (r_.log_norm) std::copy(row_log_norm_.begin(), row_log_norm_.end(), r_.log_norm);
        if (r_.responsibilities) std::copy(row_q_.begin(), row_q_.end(), r_.responsibilities);
        return true;
    }

  private:
    // log π_c + log N(x_n; μ_c, Σ_c) summed directly (a single random candidate: no expansion).
    double direct_log_joint(Index n, std::int32_t c) const {
        const auto x = ConstRowMatrixMap<T>(r_.X, r_.n_rows, D_).row(n).array();
        const auto mu = ConstRowMatrixMap<T>(p_.means, K_, D_).row(c).array();
        const T mahalanobis = ((x - mu).square() * precision_t_.row(c).array()).sum();
        return constants_.base(c) - 0.5 * static_cast<double>(mahalanobis);
    }

    // Column of component c about `point`: [p_c (μ_c − point), −p_c / 2] and its constant.
    template <class Column>
    void fill_projection(std::int32_t c, const RowVector<double>& point, Column&& column, T& constant) const {
        double mahalanobis = 0;
        for (Index d = 0; d < D_; ++d) {
            const double centred = static_cast<double>(p_.means[c * D_ + d]) - point(d);
            const double precision = constants_.precision(c, d);
            column(d) = static_cast<T>(centred * precision);
            mahalanobis += centred * centred * precision;
            if (!spherical_) column(D_ + d) = static_cast<T>(-0.5 * precision);
        }
        if (spherical_) column(D_) = static_cast<T>(-0.5 * constants_.precision(c, 0));
        constant = static_cast<T>(constants_.base(c) - 0.5 * mahalanobis);
    }

    // The posterior over the C' best candidates (sorted, best first) of row n.
    void write_row(Index n, const Candidate* best) {
        const double max = best[0].log_joint;
        const double cutoff = std::log(std::numeric_limits<double>::min());
        double s = 0, et = 0;
        double* q = row_q_.data() + n * C_;
        for (Index j = 0; j < C_; ++j) {
            const double t = best[j].log_joint - max;
            const double e = t < cutoff ? 0.0 : std::exp(t);
            q[j] = e;
            s += e;
            et += e * t;
            r_.new_active[n * C_ + j] = best[j].component;
        }
        for (Index j = 0; j < C_; ++j) q[j] /= s;
        const double log_s = std::log(s);
        row_log_norm_[n] = max + log_s;
        row_entropy_[n] = log_s - et / s;
    }

    const GaussianMixtureParams<T>& p_;
    const TruncatedPassRequest<T>& r_;
    Index K_, D_, C_, G_;
    bool spherical_;
    Index F_;
    ComponentConstants constants_;
    RowMatrix<T> precision_t_;  // [K, D] p_cd in the working precision
    RowGroups groups_;
    std::vector<double> row_entropy_, row_log_norm_, row_q_;
    std::vector<std::vector<CandidateScore>> item_scores_;
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
    if (params.type != CovarianceType::Diag && params.type != CovarianceType::Spherical)
        throw std::invalid_argument("the truncated E-step supports covariance_type 'diag' and 'spherical' so far");
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
