// AFK-MC² seeding (Bachem, Lucic, Hassani & Krause, "Fast and provably good seedings for k-means",
// NeurIPS 2016): k-means++ approximated by short Markov chains, so that the cost does not grow like
// N·K·D.
//
// The first centre is a row drawn with probability ∝ w_n. One pass over X then builds the proposal
//   q(x_n) = ½ w_n d(x_n, c_1)² / Σ_m w_m d(x_m, c_1)²  +  ½ w_n / W
// and every further centre is the end of a Metropolis–Hastings chain of `chain_length` proposals
// from q whose target is the k-means++ distribution π(x_n) ∝ w_n D(x_n)² (D: distance to the
// nearest chosen centre). Cost O(N·D) for the proposal plus O(m·K²·D) for the chains (each of the
// K − 1 chains evaluates m rows against up to K centres): for K ≪ N much less than k-means++'s N·K·D.
#pragma once

#include <cstdint>
#include <vector>

#include "fastelbo/kmeans.hpp"
#include "fastelbo/types.hpp"

namespace fastelbo {

// The proposal q (length N, sums to 1) given the first centre, row `first_row`.
template <class T>
Vector<double> afkmc2_proposal(const KMeansData<T>& data, Index first_row, int n_threads);

// Row indices of the K chosen centres (first: the uniformly drawn one), or an empty vector if
// interrupted. Deterministic for a seed, whatever n_threads is.
template <class T>
std::vector<Index> afkmc2(const KMeansData<T>& data, Index n_clusters, Index chain_length, std::uint64_t seed,
                          int n_threads, const InterruptPoll& interrupt);

}  // namespace fastelbo
