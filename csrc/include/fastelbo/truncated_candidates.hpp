// The family-independent parts of the truncated E-steps (truncated_mixture_pass.hpp for Gaussian
// components, exponential_family_mixture_pass.hpp for Bernoulli and Poisson ones): a row's C' best
// candidates, and the sums of log-joints per candidate from which the neighbour lists are refreshed.
#pragma once

#include <cstdint>
#include <vector>

#include "fastelbo/types.hpp"

namespace fastelbo {

struct Candidate {
    double log_joint;
    std::int32_t component;
};

// Larger log-joint first; equal ones by smaller component index, so that the kept set does not
// depend on the order in which candidates are evaluated.
inline bool better(const Candidate& a, const Candidate& b) {
    return a.log_joint > b.log_joint || (a.log_joint == b.log_joint && a.component < b.component);
}

// Offers `candidate` to best[0, kept), the best so far in order (at most C): an insertion, as C is
// small.
inline void keep_if_better(Candidate* best, Index& kept, Index C, const Candidate& candidate) {
    if (kept == C && !better(candidate, best[C - 1])) return;
    Index slot = kept < C ? kept++ : C - 1;
    for (; slot > 0 && better(candidate, best[slot - 1]); --slot) best[slot] = best[slot - 1];
    best[slot] = candidate;
}

// Sum and count of the log-joints some rows gave a candidate (for the neighbour lists).
struct CandidateScore {
    std::int32_t component;
    double sum;
    double count;
};

// The sums and counts of a group's per-item scores ([first, last), in item order) per candidate into
// sum and count ([K], zero on entry), the candidates in `touched` in order of first appearance.
inline void add_group_scores(const std::vector<CandidateScore>* first, const std::vector<CandidateScore>* last,
                             std::vector<double>& sum, std::vector<double>& count, std::vector<std::int32_t>& touched) {
    touched.clear();
    for (const std::vector<CandidateScore>* item_scores = first; item_scores != last; ++item_scores) {
        for (const CandidateScore& s : *item_scores) {
            if (count[s.component] == 0) touched.push_back(s.component);
            sum[s.component] += s.sum;
            count[s.component] += s.count;
        }
    }
}

// A stable counting sort of `order` by key[element] in [0, K): `out` receives the sorted elements
// and `begin` ([K + 1]) where every key starts.
inline void counting_sort(const std::vector<Index>& order, const std::int32_t* key, Index K, std::vector<Index>& out,
                          std::vector<Index>& begin) {
    begin.assign(K + 1, 0);
    for (Index element : order) ++begin[key[element] + 1];
    for (Index c = 0; c < K; ++c) begin[c + 1] += begin[c];
    std::vector<Index> next(begin.begin(), begin.end() - 1);
    out.resize(order.size());
    for (Index element : order) out[next[key[element]]++] = element;
}

}  // namespace fastelbo
