// pybind11 binding of the exponential-family (Bernoulli, Poisson) mixture pass over CSR rows:
// convert, check shapes, release the GIL, call.
#include <cmath>

#include "binding_support.hpp"
#include "fastelbo/exponential_family_m_step.hpp"
#include "fastelbo/exponential_family_mixture_pass.hpp"

namespace fastelbo::bindings {

namespace {

// The arguments both passes share, checked: the CSR arrays of the rows, the mixing weights, the
// per-component constants b_c, the family and the optional row weights. The arrays are kept so
// that the raw pointers of `rows` and `params` stay valid.
template <class I>
struct CsrPassArguments {
    py::array_t<std::int64_t> indptr;
    py::array_t<I> indices;
    py::array_t<double> data, log_weights, log_partition;
    CsrRows<I> rows;
    ExponentialFamilyMixtureParams params;
    const double* sample_weight;

    CsrPassArguments(const py::object& indptr_obj, const py::array& indices_obj, const py::object& data_obj,
                     py::ssize_t n_features, const py::object& sample_weight_obj, const py::object& log_weights_obj,
                     const py::object& log_partition_obj, const std::string& family) {
        params.family = parse_exponential_family(family);
        indptr = require_array<std::int64_t>(indptr_obj, "indptr", {-1});
        if (indptr.shape(0) < 1) throw py::value_error("indptr must hold at least one entry (n_rows + 1)");
        const py::ssize_t N = indptr.shape(0) - 1;
        indices = require_array<I>(indices_obj, "indices", {-1});
        data = require_array<double>(data_obj, "data", {indices.shape(0)});
        const std::int64_t nnz = indptr.at(N);
        if (nnz != indices.shape(0))
            throw py::value_error("indptr[-1] = " + std::to_string(nnz) + " but indices holds " +
                                  std::to_string(indices.shape(0)) + " entries");
        log_weights = require_array<double>(log_weights_obj, "log_weights", {-1});
        log_partition = require_array<double>(log_partition_obj, "log_partition", {log_weights.shape(0)});
        sample_weight = optional_data<double>(sample_weight_obj, "sample_weight", N);
        params.n_components = log_weights.shape(0);
        params.n_features = n_features;
        params.log_weights = log_weights.data();
        params.log_partition = log_partition.data();
        rows = CsrRows<I>{indptr.data(), indices.data(), data.data(), N, n_features};
    }

    py::ssize_t n_rows() const { return rows.n_rows; }
    py::ssize_t n_components() const { return params.n_components; }
};

template <class I>
py::dict exponential_family_mixture_pass_typed(const py::object& indptr_obj, const py::array& indices_obj,
                                               const py::object& data_obj, py::ssize_t n_features,
                                               const py::object& sample_weight_obj, const py::object& log_weights_obj,
                                               const py::object& natural_obj, const py::object& log_partition_obj,
                                               const std::string& family, bool compute_moments, bool return_log_norm,
                                               bool return_responsibilities, bool return_labels, int n_threads,
                                               bool skip_zero_responsibilities, double cached_natural_bytes,
                                               double negligible_responsibility, bool group_by_column) {
    CsrPassArguments<I> args(indptr_obj, indices_obj, data_obj, n_features, sample_weight_obj, log_weights_obj,
                             log_partition_obj, family);
    const py::ssize_t N = args.n_rows(), K = args.n_components();
    auto natural = require_array<double>(natural_obj, "natural_transposed", {n_features, K});
    args.params.natural_transposed = natural.data();
    args.params.cached_natural_bytes = cached_natural_bytes;
    const ExponentialFamilyMixtureParams& params = args.params;
    const CsrRows<I>& rows = args.rows;
    const double* sample_weight = args.sample_weight;

    ExponentialFamilyPassRequest request;
    request.sample_weight = sample_weight;
    request.n_threads = n_threads;
    request.skip_zero_responsibilities = skip_zero_responsibilities;
    request.negligible_responsibility = negligible_responsibility;
    request.group_by_column = group_by_column;
    ExponentialFamilyPassCounts counts;
    request.counts = &counts;
    request.interrupt = python_interrupt_poll();
    py::array_t<double> sx;
    if (compute_moments) {
        sx = py::array_t<double>({K, n_features});
        std::fill(sx.mutable_data(), sx.mutable_data() + sx.size(), 0.0);
        request.sx = sx.mutable_data();
    }
    const MixtureRowOutputs<double> outputs(request, N, K, return_log_norm, return_responsibilities, return_labels);

    ExponentialFamilyStatistics stats(K);
    run_without_gil([&] { return exponential_family_mixture_pass(params, rows, request, stats); });

    py::dict out = mixture_sums_dict(stats, K);
    out["sum_log_base"] = stats.sum_log_base;
    out["blocks_by_column"] = counts.blocks_by_column;
    out["rounds_by_column"] = counts.rounds_by_column;
    out["rounds_sorted_late"] = counts.rounds_sorted_late;
    out["rounds_by_component"] = counts.rounds_by_component;
    if (compute_moments) out["sx"] = sx;
    outputs.add_to(out);
    return out;
}

template <class I>
py::dict exponential_family_truncated_pass_typed(const py::object& indptr_obj, const py::array& indices_obj,
                                                 const py::object& data_obj, py::ssize_t n_features,
                                                 const py::object& sample_weight_obj, const py::object& log_weights_obj,
                                                 const py::object& natural_obj, const py::object& log_partition_obj,
                                                 const std::string& family, const py::object& active_obj,
                                                 const py::object& neighbours_obj, const py::object& random_obj,
                                                 bool compute_moments, bool return_log_norm,
                                                 bool return_neighbour_scores, int n_threads,
                                                 double cached_natural_bytes) {
    CsrPassArguments<I> args(indptr_obj, indices_obj, data_obj, n_features, sample_weight_obj, log_weights_obj,
                             log_partition_obj, family);
    const py::ssize_t N = args.n_rows(), K = args.n_components();
    auto natural = require_array<double>(natural_obj, "natural", {K, n_features});
    args.params.cached_natural_bytes = cached_natural_bytes;
    auto active = require_array<std::int32_t>(active_obj, "active", {N, -1});
    const py::ssize_t C = active.shape(1);
    auto neighbours = require_array<std::int32_t>(neighbours_obj, "neighbours", {K, -1});
    const py::ssize_t G = neighbours.shape(1);
    const std::int32_t* random_candidates = optional_data<std::int32_t>(random_obj, "random_candidates", N);
    const ExponentialFamilyMixtureParams& params = args.params;
    const CsrRows<I>& rows = args.rows;
    const double* sample_weight = args.sample_weight;

    py::array_t<std::int32_t> new_active({N, C});
    ExponentialFamilyTruncatedRequest request;
    request.sample_weight = sample_weight;
    request.natural = natural.data();
    request.n_active = C;
    request.n_neighbors = G;
    request.active = active.data();
    request.neighbours = neighbours.data();
    request.random_candidates = random_candidates;
    request.new_active = new_active.mutable_data();
    request.n_threads = n_threads;
    request.interrupt = python_interrupt_poll();
    py::array_t<double> sx, log_norm;
    if (compute_moments) {
        sx = py::array_t<double>({K, static_cast<py::ssize_t>(n_features)});
        request.sx = sx.mutable_data();
    }
    if (return_log_norm) {
        log_norm = py::array_t<double>(N);
        request.log_norm = log_norm.mutable_data();
    }
    ExponentialFamilyNeighbourScores scores;
    if (return_neighbour_scores) request.scores = &scores;

    ExponentialFamilyStatistics stats(K);
    run_without_gil([&] { return exponential_family_truncated_pass(params, rows, request, stats); });

    py::dict out = mixture_sums_dict(stats, K);
    out["sum_log_base"] = stats.sum_log_base;
    out["active"] = new_active;
    if (compute_moments) out["sx"] = sx;
    if (return_log_norm) out["log_norm"] = log_norm;
    if (return_neighbour_scores) {
        const py::ssize_t n_scores = static_cast<py::ssize_t>(scores.group.size());
        out["score_groups"] = to_numpy(scores.group.data(), {n_scores});
        out["score_components"] = to_numpy(scores.component.data(), {n_scores});
        out["score_sums"] = to_numpy(scores.sum.data(), {n_scores});
        out["score_counts"] = to_numpy(scores.count.data(), {n_scores});
    }
    return out;
}

// The dense M-step (exponential_family_m_step.hpp): sx is (K, D), or its transpose (D, K) where
// sx_transposed; the outputs are new arrays unless means_out / natural_out ((K, D), C-contiguous) are
// given (means_out may be sx itself when sx is not transposed: every entry is read before it is
// written).
py::dict exponential_family_m_step_binding(const std::string& family, const py::object& sx_obj, bool sx_transposed,
                                           const py::object& nk_obj, double mean_floor, const py::object& means_obj,
                                           const py::object& natural_obj, int n_threads) {
    ExponentialFamilyMStep step;
    step.family = parse_exponential_family(family);
    auto nk = require_array<double>(nk_obj, "nk", {-1});
    const py::ssize_t K = nk.shape(0);
    auto sx = require_array<double>(sx_obj, "sx", {sx_transposed ? -1 : K, sx_transposed ? K : -1});
    const py::ssize_t D = sx.shape(sx_transposed ? 0 : 1);
    auto output = [&](const py::object& obj, const char* name) {
        if (obj.is_none()) return CArray<double>({K, D});
        auto a = require_array<double>(obj, name, {K, D});
        if (!a.writeable()) throw py::value_error(std::string(name) + " must be writeable");
        return a;
    };
    CArray<double> means = output(means_obj, "means_out"), natural = output(natural_obj, "natural_out");
    if (natural.data() == means.data() || natural.data() == sx.data() ||
        (sx_transposed && means.data() == sx.data()))
        throw py::value_error("natural_out must not share memory with sx or means_out, nor means_out with a transposed sx");
    CArray<double> log_partition(K), natural_mean_sums(K);
    step.n_components = K;
    step.n_features = D;
    step.sx = sx.data();
    step.sx_transposed = sx_transposed;
    step.nk = nk.data();
    step.mean_floor = mean_floor;
    step.means = means.mutable_data();
    step.natural = natural.mutable_data();
    step.log_partition = log_partition.mutable_data();
    step.natural_mean_sums = natural_mean_sums.mutable_data();
    step.n_threads = n_threads;
    try {
        py::gil_scoped_release release;
        exponential_family_m_step(step);
    } catch (const std::invalid_argument& e) {
        throw py::value_error(e.what());
    }
    py::dict out;
    out["means"] = means;
    out["natural"] = natural;
    out["log_partition"] = log_partition;
    out["natural_mean_sums"] = natural_mean_sums;
    return out;
}

}  // namespace

void bind_exponential_family_mixture(py::module_& m) {
    // The passes' default cached_natural_bytes: eta larger than this is read column by column.
    m.attr("exponential_family_cached_natural_bytes") = kCachedNaturalBytes;
    m.def(
        "exponential_family_mixture_pass",
        [](const py::object& indptr, const py::array& indices, const py::object& data, py::ssize_t n_features,
           const py::object& sample_weight, const py::object& log_weights, const py::object& natural_transposed,
           const py::object& log_partition, const std::string& family, bool compute_moments, bool return_log_norm,
           bool return_responsibilities, bool return_labels, int n_threads, bool skip_zero_responsibilities,
           double cached_natural_bytes, double negligible_responsibility, bool group_by_column) {
            if (n_features < 1) throw py::value_error("n_features must be >= 1, got " + std::to_string(n_features));
            if (!(negligible_responsibility >= 0) || !std::isfinite(negligible_responsibility))
                throw py::value_error("negligible_responsibility must be finite and >= 0, got " +
                                      std::to_string(negligible_responsibility));
            if (py::array_t<std::int32_t>::check_(indices))
                return exponential_family_mixture_pass_typed<std::int32_t>(
                    indptr, indices, data, n_features, sample_weight, log_weights, natural_transposed, log_partition,
                    family, compute_moments, return_log_norm, return_responsibilities, return_labels, n_threads,
                    skip_zero_responsibilities, cached_natural_bytes, negligible_responsibility, group_by_column);
            if (py::array_t<std::int64_t>::check_(indices))
                return exponential_family_mixture_pass_typed<std::int64_t>(
                    indptr, indices, data, n_features, sample_weight, log_weights, natural_transposed, log_partition,
                    family, compute_moments, return_log_norm, return_responsibilities, return_labels, n_threads,
                    skip_zero_responsibilities, cached_natural_bytes, negligible_responsibility, group_by_column);
            throw py::type_error("indices must have dtype int32 or int64, got " +
                                 py::str(indices.dtype()).cast<std::string>());
        },
        py::arg("indptr"), py::arg("indices"), py::arg("data"), py::arg("n_features"), py::arg("sample_weight"),
        py::arg("log_weights"), py::arg("natural_transposed"), py::arg("log_partition"), py::arg("family"),
        py::arg("compute_moments") = true, py::arg("return_log_norm") = false,
        py::arg("return_responsibilities") = false, py::arg("return_labels") = false, py::arg("n_threads") = 0,
        py::arg("skip_zero_responsibilities") = true, py::arg("cached_natural_bytes") = kCachedNaturalBytes,
        py::arg("negligible_responsibility") = 0.0, py::arg("group_by_column") = true,
        "One E-step pass of a Bernoulli or Poisson mixture (family) over CSR rows (indptr int64 (N + 1,), "
        "indices int32 or int64, data float64): ELBO sums, nk, sum_log_base (sum_n w_n log h(x_n)), "
        "optional sx (K, D) = sum_n w_n q_n x_n^T and optional per-row outputs (log_norm includes "
        "log h). Parameters are float64: log_weights (K,), natural_transposed (D, K) the natural parameters "
        "eta^T, log_partition (K,) = -sum_d A(eta_cd). cached_natural_bytes: eta of at most this size is read "
        "whole, larger eta column by column, a column with few entries off the floor as its deviations (the "
        "same log-joints to round-off; tests pass 0 to split any eta). negligible_responsibility: sx leaves out "
        "the terms w_n q_nc x_nd with w_n q_nc max_d x_nd below it (each entry of sx misses at most N times it; "
        "0 leaves out only exact zeros). group_by_column: where eta is read column by column, a block's "
        "log-joints are summed column by column (bitwise the same; False sums row by row, for tests).");

    m.def(
        "exponential_family_truncated_pass",
        [](const py::object& indptr, const py::array& indices, const py::object& data, py::ssize_t n_features,
           const py::object& sample_weight, const py::object& log_weights, const py::object& natural,
           const py::object& log_partition, const std::string& family, const py::object& active,
           const py::object& neighbours, const py::object& random_candidates, bool compute_moments,
           bool return_log_norm, bool return_neighbour_scores, int n_threads, double cached_natural_bytes) {
            if (n_features < 1) throw py::value_error("n_features must be >= 1, got " + std::to_string(n_features));
            if (py::array_t<std::int32_t>::check_(indices))
                return exponential_family_truncated_pass_typed<std::int32_t>(
                    indptr, indices, data, n_features, sample_weight, log_weights, natural, log_partition, family,
                    active, neighbours, random_candidates, compute_moments, return_log_norm, return_neighbour_scores,
                    n_threads, cached_natural_bytes);
            if (py::array_t<std::int64_t>::check_(indices))
                return exponential_family_truncated_pass_typed<std::int64_t>(
                    indptr, indices, data, n_features, sample_weight, log_weights, natural, log_partition, family,
                    active, neighbours, random_candidates, compute_moments, return_log_norm, return_neighbour_scores,
                    n_threads, cached_natural_bytes);
            throw py::type_error("indices must have dtype int32 or int64, got " +
                                 py::str(indices.dtype()).cast<std::string>());
        },
        py::arg("indptr"), py::arg("indices"), py::arg("data"), py::arg("n_features"), py::arg("sample_weight"),
        py::arg("log_weights"), py::arg("natural"), py::arg("log_partition"), py::arg("family"), py::arg("active"),
        py::arg("neighbours"), py::arg("random_candidates"), py::arg("compute_moments") = true,
        py::arg("return_log_norm") = false, py::arg("return_neighbour_scores") = true, py::arg("n_threads") = 0,
        py::arg("cached_natural_bytes") = kCachedNaturalBytes,
        "One truncated E-step of a Bernoulli or Poisson mixture over CSR rows: active (N, C') int32 the sets "
        "K_n (best first), neighbours (K, G) int32 the lists G_c, random_candidates (N,) int32 or None; natural "
        "(K, D) the natural parameters eta. Returns the new sets ('active'), the ELBO sums (sum_log_norm the "
        "truncated free energy), nk, sum_log_base, optional sx (K, D), log_norm (N,) and the neighbour scores "
        "(score_groups, score_components, score_sums, score_counts). cached_natural_bytes: as for "
        "exponential_family_mixture_pass, whose log-joints the pass forms bitwise.");

    m.def("exponential_family_m_step", &exponential_family_m_step_binding, py::arg("family"), py::arg("sx"),
          py::arg("sx_transposed"), py::arg("nk"), py::arg("mean_floor"), py::arg("means_out") = py::none(),
          py::arg("natural_out") = py::none(), py::arg("n_threads") = 0,
          "The dense M-step of a Bernoulli or Poisson mixture: means = sx / nk within mean_floor, their natural "
          "parameters, log_partition b_c = -sum_d A(eta_cd) and natural_mean_sums sum_d eta_cd mu_cd (all float64; "
          "sx (K, D), or (D, K) with sx_transposed; nk (K,) > 0). Bitwise the same for any n_threads.");
}

}  // namespace fastelbo::bindings
