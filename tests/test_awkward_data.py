"""Every registered estimator, on every family of awkward data, in float32 and float64: either a
clear ValueError/TypeError that names its cause (X, sample_weight or a hyperparameter), or a model
whose every reported number agrees with an independent evaluation of the parameters it returned:
likelihoods, ELBO, entropy terms, responsibilities, the parameter count behind ``bic``/``aic``,
and, in float32, the float64 fit's answer continued in float32.

The registry ``ESTIMATORS`` is one list; a new estimator (or mode) enters by one line, as in
scikit-learn's ``check_estimator``. The data families are in ``awkward_data``, the independent
evaluation in ``independent_evaluation``. Run this file as a script to print every failing
(family, configuration, check) with its measured error.

Tolerances. Each comparison allows the round-off of a stable evaluation in the estimator's dtype
plus the reference's own error bound, never a number chosen to pass:

* a log-density of a D-dimensional Gaussian through a Cholesky factor has a backward error of
  about ``D eps`` per entry (Higham, ch. 10), so an evaluation that sums terms of total size
  ``|log pi_c| + (D log 2 pi + |log|C_c|| + m_nc)/2`` (the row's *magnitude*) is accurate to
  ``ROUNDING * (D + K) * eps * (1 + magnitude)``: the log-sum-exp over K components adds a sum of
  K terms, and ``ROUNDING = 8`` covers the few logs and exps on top. Where the covariance is so
  ill-conditioned that even a careful float64 evaluation (scipy's Cholesky factor of the
  returned covariance, rows centred on the component mean) misses the extended-precision value,
  ``ROUNDING`` times that float64 error is allowed too: an estimator must be as accurate as that
  program, not more. The condition number alone is not excused (its worst-case bound is far
  above what a stable form achieves).
* the entropy terms are built from the same log-determinants and responsibilities, so each is
  allowed the mean log-density tolerance plus ``ROUNDING * D * eps`` of its own size.
* quantities that depend on where EM stopped (``lower_bound_`` against the returned parameters,
  invariances) also allow the convergence tolerance per sample: EM stops once an iteration gains
  less than it, and near a fixed point the gains shrink, so the last step (and the distance
  between two runs that stopped one step apart) is within ``2 tol``.
* float32 against float64: the contract is that the float64 answer is a float32 answer to float32
  precision. Two independent fits may reach different local optima (their starts diverge), which
  says nothing about arithmetic, so the float32 estimator is warm-started (``warm_start=True``, the
  public route every estimator has) from the float64 fit's parameters and run on the same data in
  float32. A float32 E-step knows each row's log-density only to the float32 tolerance above, so
  float32 EM cannot tell apart parameters whose mean log-likelihoods differ by less than that: the
  warm-started fit may end up to that much (plus the float32 fit's own ``tol``, the gain at which it
  stops, and the float64 fit's tolerance) below the float64 one. It must not end up above it by
  more than the float64 answer's own precision (its float64 tolerance above) plus what one more EM
  step could gain from where float64 stopped (``tol`` of either fit): a float32 answer better than
  that means the float64 fit was not at its optimum (checked only where the float64 fit says it
  converged), or that float32 arithmetic left a constraint the float64 fit keeps (a covariance
  eigenvalue below ``reg_covar``). Both log-likelihoods are evaluated independently (extended
  precision) on the same data.
"""

from __future__ import annotations

import copy
import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache

import numpy as np
import pytest

from awkward_data import FAMILIES, family
from awkward_open_defects import NEAR_TOLERANCE, OPEN_DEFECTS
from fastelbo import FastFactorAnalysis, FastGMM, FastMFA, FastPPCA
from independent_evaluation import (
    GaussianMixtureParameters,
    NotPositiveDefinite,
    evaluate_mixture,
    factor_model_parameters,
    gmm_parameters,
    mfa_parameters,
    reference_decomposition,
    regularisation_gap_bound,
    weighted_mean,
)

ROUNDING = 8
BOTH = (np.float64, np.float32)

# What an estimator reports, beyond score/score_samples/lower_bound_/entropy_decomposition.
MIXTURE = "mixture"  # weights_, predict_proba
IDENTITY_AFTER_M_STEP = "identity after M-step"  # F(q^t, Theta^{t+1}) = S: the last step interleaves
TRUNCATED = "truncated"  # lower_bound_ and the training ELBO are a truncated free energy (<= LL)
STATIONARY = "stationary"  # closed-form maximum likelihood: F = S exactly
# lower_bound_ is documented as the log-likelihood of the returned parameters (scikit-learn's
# FactorAnalysis convention: loglike_[-1] scores the returned model), not as the last E-step's F.
LOWER_BOUND_OF_RETURNED = "lower bound of the returned parameters"


@dataclass(frozen=True)
class EstimatorConfig:
    """One estimator in one mode.

    Attributes
    ----------
    name : str
    make : callable
        ``make(scale)``: an unfitted estimator for data of scale ``scale`` (absolute regularisers
        scaled by ``scale**2``, the scale-appropriate setting).
    dtypes : tuple of dtypes
    parameters : callable
        Fitted estimator -> ``GaussianMixtureParameters`` (its returned parameters).
    decompositions : tuple of (dict, str)
        ``entropy_decomposition`` keyword arguments and the reference form they are checked against.
    reports : frozenset of str
    tol_per_sample : callable
        ``(estimator, n_rows) -> float``: the convergence threshold on the mean log-likelihood with
        unit weights.
    n_parameters : callable or None
        ``(estimator, n_features) -> int``: an independent count of the free parameters, for
        estimators with ``bic``/``aic`` (None: no information criteria).
    """

    name: str
    make: Callable
    dtypes: tuple
    parameters: Callable
    decompositions: tuple
    reports: frozenset = field(default_factory=frozenset)
    tol_per_sample: Callable = lambda est, n: est.tol
    n_parameters: Callable | None = None


def _gmm(covariance_type, n_active=None):
    return lambda scale: FastGMM(
        3 if n_active is None else 6,
        covariance_type=covariance_type,
        reg_covar=1e-6 * scale**2,
        n_active=n_active,
        random_state=0,
    )


def _mfa(noise):
    # FastMFA's reg_covar is relative to each feature's variance already: no scaling with the data.
    return lambda scale: FastMFA(2, n_factors=2, noise=noise, reg_covar=1e-6, random_state=0)


def _ppca(solver):
    return lambda scale: FastPPCA(2, solver=solver, random_state=0)


def _factor_analysis(scale):
    return FastFactorAnalysis(2)


def _closed_form(estimator, n_rows):
    return 0.0  # no iterations: the returned parameters are the maximum


def _total_tol(estimator, n_rows):
    return estimator.tol / n_rows  # tol bounds the change of the total log-likelihood


def _gmm_parameter_count(gmm, D):
    """scikit-learn's count (GaussianMixture._n_parameters): weights, means and covariances."""
    K = gmm.n_components
    covariance = {"full": K * D * (D + 1) // 2, "tied": D * (D + 1) // 2, "diag": K * D, "spherical": K}
    return K - 1 + K * D + covariance[gmm.covariance_type]


def _mfa_parameter_count(mfa, D):
    """Weights, means, loadings modulo rotations of the factors, noise. Loadings of rank
    H = min(n_factors, D): more factors than features add no free parameters (a D x H loading
    matrix with H > D gives the same covariances as one with D columns), so the count never falls
    below that of H = D, let alone below zero."""
    K, H = mfa.n_components, min(mfa.n_factors, D)
    noise = K * D if mfa.noise == "diag" else K
    return K - 1 + K * D + K * (D * H - H * (H - 1) // 2) + noise


GMM = (({}, "collapsed"),)
FACTOR = (({}, "latent"),)
MFA = (({}, "latent"), ({"form": "collapsed"}, "collapsed"))
EXACT_GMM = frozenset({MIXTURE, IDENTITY_AFTER_M_STEP})
TRUNCATED_GMM = frozenset({MIXTURE, IDENTITY_AFTER_M_STEP, TRUNCATED})
CLOSED_FORM = frozenset({STATIONARY})
MIXTURE_ONLY = frozenset({MIXTURE})
NONE = frozenset()
Config = EstimatorConfig


def _gmm_config(name, make, reports):
    return Config(name, make, BOTH, gmm_parameters, GMM, reports, n_parameters=_gmm_parameter_count)


def _mfa_config(name, make):
    return Config(name, make, BOTH, mfa_parameters, MFA, MIXTURE_ONLY, n_parameters=_mfa_parameter_count)


#: The registry: one line per estimator and mode.
ESTIMATORS = [
    _gmm_config("FastGMM-full", _gmm("full"), EXACT_GMM),
    _gmm_config("FastGMM-tied", _gmm("tied"), EXACT_GMM),
    _gmm_config("FastGMM-diag", _gmm("diag"), EXACT_GMM),
    _gmm_config("FastGMM-spherical", _gmm("spherical"), EXACT_GMM),
    _gmm_config("FastGMM-full-truncated", _gmm("full", 2), TRUNCATED_GMM),
    _gmm_config("FastGMM-tied-truncated", _gmm("tied", 2), TRUNCATED_GMM),
    _gmm_config("FastGMM-diag-truncated", _gmm("diag", 2), TRUNCATED_GMM),
    _gmm_config("FastGMM-spherical-truncated", _gmm("spherical", 2), TRUNCATED_GMM),
    Config("FastPPCA-eigh", _ppca("eigh"), BOTH, factor_model_parameters, FACTOR, CLOSED_FORM, _closed_form),
    Config("FastPPCA-em", _ppca("em"), BOTH, factor_model_parameters, FACTOR, NONE),
    Config(
        "FastFactorAnalysis",
        _factor_analysis,
        BOTH,
        factor_model_parameters,
        FACTOR,
        frozenset({LOWER_BOUND_OF_RETURNED}),
        _total_tol,
    ),
    _mfa_config("FastMFA-diag", _mfa("diag")),
    _mfa_config("FastMFA-spherical", _mfa("spherical")),
]
CONFIGS = {config.name: config for config in ESTIMATORS}


@dataclass(frozen=True)
class Finding:
    """A failed check: what, the measured error, and what was allowed."""

    check: str
    measured: float
    allowed: float
    detail: str = ""

    def __str__(self):
        return (
            f"{self.check}: measured {self.measured:.4g}, allowed {self.allowed:.4g} {self.detail}".rstrip()
        )


@dataclass
class Outcome:
    """A fit of one configuration on one family in one dtype."""

    estimator: object = None
    error: BaseException | None = None
    X: np.ndarray | None = None
    sample_weight: np.ndarray | None = None


@cache
def fit_outcome(config_name, family_name, dtype):
    config, data = CONFIGS[config_name], family(family_name)
    dtype = np.dtype(dtype).type
    X = data.X.astype(dtype)
    estimator = config.make(data.scale)
    outcome = Outcome(X=data.X, sample_weight=data.sample_weight)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # warnings are allowed; wrong numbers are not
            with np.errstate(all="ignore"):  # a NumPy warning is no finding; its result may be
                estimator.fit(X, sample_weight=data.sample_weight)
        outcome.estimator = estimator
    except Exception as error:  # judged in check_case: only a clear ValueError/TypeError passes
        outcome.error = error
    return outcome


def _eps(dtype):
    return float(np.finfo(dtype).eps)


def _is_clear_error(error, estimator):
    """A ValueError/TypeError (not a bare LinAlgError) whose message names its cause: the data
    argument (X or sample_weight) or one of the estimator's hyperparameters."""
    if not isinstance(error, ValueError | TypeError) or isinstance(error, np.linalg.LinAlgError):
        return False
    return names_an_argument(str(error), ("X", "sample_weight", *estimator.get_params()))


def names_an_argument(message, names):
    """Whether ``message`` mentions one of ``names`` as a word (``X``, not the x of "exceeds")."""
    return any(re.search(rf"(?<![\w.]){re.escape(name)}(?!\w)", message) for name in names)


def _all_finite(estimator):
    bad = []
    for name, value in vars(estimator).items():
        if not name.endswith("_") or name.startswith("_"):
            continue
        try:
            array = np.asarray(value, dtype=np.float64)
        except (TypeError, ValueError):
            continue
        if not np.all(np.isfinite(array)):
            bad.append(name)
    return bad


@dataclass
class Evaluated:
    """A fitted outcome with its independent evaluation on the training data."""

    params: object
    evaluation: object
    allowed: np.ndarray  # per-row tolerance of a log-density in the estimator's dtype
    mean_ll: float  # weighted mean log-likelihood of the returned parameters (training weights)


@cache
def evaluated(config_name, family_name, dtype):
    outcome = fit_outcome(config_name, family_name, dtype)
    if outcome.estimator is None:
        return None
    config = CONFIGS[config_name]
    params = config.parameters(outcome.estimator)
    evaluation = evaluate_mixture(params, outcome.X)
    D = params.n_features
    achievable = np.nan_to_num(evaluation.float64_error, nan=0.0)
    allowed = (
        ROUNDING * ((D + params.n_components) * _eps(dtype) * (1.0 + evaluation.magnitude) + achievable)
        + evaluation.reference_error
        + _documented_expansion_error(outcome.estimator, params, dtype)
    )
    mean_ll = weighted_mean(evaluation.log_likelihood, outcome.sample_weight)
    return Evaluated(params, evaluation, allowed, float(mean_ll))


#: FastGMM's documented expansion limit per dtype (its class docstring, "Precision").
EXPANSION_LIMIT = {np.float32: 1e2, np.float64: 1e5}


def _documented_expansion_error(est, params, dtype):
    """The error FastGMM documents for its diag, spherical and tied passes: log-joints expanded
    about a point shared by many rows lose about log10(kappa) digits, kappa the largest squared
    Mahalanobis distance of a component mean from the mixture's mean (computed here from the
    returned parameters), up to the documented limit (beyond it rows are grouped by their own
    component): ``(4 + 2D) eps min(kappa, limit)`` per row. 0 for other models."""
    if not isinstance(est, FastGMM) or est.covariance_type == "full":
        return 0.0
    centre = params.weights @ params.means
    kappa = max(
        float((params.means[c] - centre) @ np.linalg.solve(params.covariance(c), params.means[c] - centre))
        for c in range(params.n_components)
    )
    D = params.n_features
    return (4 + 2 * D) * _eps(dtype) * min(kappa, EXPANSION_LIMIT[np.dtype(dtype).type])


def _compare(findings, check, measured, allowed, detail=""):
    if not (measured <= allowed):  # NaN fails
        findings.append(Finding(check, float(measured), float(allowed), detail))


def _check_decomposition(findings, label, decomposition, reference, tolerance, D, eps, exact=True):
    terms = ("variational_entropy", "prior_entropy", "observable_entropy")
    if exact:
        _compare(findings, f"{label}.elbo", abs(decomposition.elbo - reference.elbo), tolerance)
    else:  # truncated free energy <= log-likelihood
        _compare(findings, f"{label}.elbo <= LL", decomposition.elbo - reference.elbo, tolerance)
    if not exact:
        return
    for term in terms:
        value, expected = getattr(decomposition, term), getattr(reference, term)
        _compare(
            findings,
            f"{label}.{term}",
            abs(value - expected),
            tolerance + ROUNDING * D * eps * (1 + abs(expected)),
        )
    s = decomposition.variational_entropy - decomposition.prior_entropy - decomposition.observable_entropy
    s += decomposition.data_term
    scale = ROUNDING * eps * (1 + abs(decomposition.elbo) + abs(s))
    _compare(
        findings, f"{label}.entropy_sum = A - H[prior] - E H[obs]", abs(decomposition.entropy_sum - s), scale
    )
    _compare(
        findings,
        f"{label}.gap = elbo - entropy_sum",
        abs(decomposition.gap - (decomposition.elbo - s)),
        scale,
    )


def check_case(config_name, family_name, dtype):
    """Every check of one (configuration, family, dtype); returns the failed ones."""
    config, data = CONFIGS[config_name], family(family_name)
    outcome = fit_outcome(config_name, family_name, dtype)
    findings = []
    if outcome.estimator is None:
        if not _is_clear_error(outcome.error, config.make(data.scale)):
            findings.append(
                Finding(
                    "fit raises a clear ValueError/TypeError naming its cause",
                    np.nan,
                    np.nan,
                    repr(outcome.error),
                )
            )
        return findings
    est = outcome.estimator
    eps = _eps(dtype)
    X, w = outcome.X, outcome.sample_weight
    N, D = X.shape
    bad = _all_finite(est)
    if bad:  # a silent NaN is the finding; every number computed from it would repeat it
        findings.append(Finding("no NaN/inf in fitted attributes", np.nan, 0, ", ".join(bad)))
        return findings
    try:
        ev = evaluated(config_name, family_name, dtype)
    except NotPositiveDefinite as error:
        findings.append(Finding("returned covariances positive definite", np.nan, np.nan, str(error)))
        return findings
    reference_ll = ev.evaluation.log_likelihood
    allowed_mean = weighted_mean(ev.allowed, w)
    Xd = X.astype(dtype)
    tol = config.tol_per_sample(est, N)

    # score_samples and score against the log-density of the returned parameters.
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        scores = np.asarray(est.score_samples(Xd), dtype=np.float64)
        score = float(est.score(Xd))
    error = np.abs(scores - reference_ll)
    worst = (
        int(np.nanargmax(error / ev.allowed))
        if np.all(np.isfinite(error))
        else int(np.argmax(~np.isfinite(error)))
    )
    _compare(
        findings,
        "score_samples",
        error[worst],
        ev.allowed[worst],
        f"(row {worst}: {scores[worst]:.8g} vs {reference_ll[worst]:.8g}; max {np.max(error):.3g})",
    )
    _compare(
        findings,
        "score",
        abs(score - np.mean(reference_ll)),
        np.mean(ev.allowed),
        f"({score:.8g} vs {np.mean(reference_ll):.8g})",
    )

    # lower_bound_ and the histories. EM never decreases the log-likelihood, but a regularised
    # M-step (reg_covar added to, or flooring, the covariance) is not F's maximiser: the size
    # of the regulariser's effect on F, reg_covar/2 * max_c tr(C_c^-1), is allowed on top of
    # round-off (near convergence the actual loss is second order and far smaller).
    regularisation = regularisation_gap_bound(ev.params, getattr(est, "reg_covar", 0.0))
    lower_bound = float(est.lower_bound_)
    history = np.asarray(est.elbo_history_, dtype=np.float64)
    if LOWER_BOUND_OF_RETURNED in config.reports:
        _compare(
            findings,
            "lower_bound_ == LL(returned parameters)",
            abs(lower_bound - ev.mean_ll),
            allowed_mean,
            f"({lower_bound:.8g} vs {ev.mean_ll:.8g})",
        )
    else:
        _compare(findings, "lower_bound_ == elbo_history_[-1]", abs(lower_bound - history[-1]), 0.0)
    _compare(
        findings,
        "lower_bound_ <= LL(returned parameters)",
        lower_bound - ev.mean_ll,
        allowed_mean + regularisation,
        f"({lower_bound:.8g} vs {ev.mean_ll:.8g})",
    )
    if est.converged_ and TRUNCATED not in config.reports:
        _compare(
            findings,
            "converged: LL(returned) - lower_bound_ <= 2 tol",
            ev.mean_ll - lower_bound,
            2 * tol + allowed_mean,
            f"({ev.mean_ll:.8g} vs {lower_bound:.8g})",
        )
    if history.size > 1:
        _compare(
            findings,
            "elbo_history_ never decreases",
            -np.min(np.diff(history)),
            allowed_mean + regularisation + _mean_storage_bound(config, family_name, ev.params, dtype),
        )

    # entropy decompositions: on the training data (weighted) and on X.
    for kwargs, form in config.decompositions:
        label = "entropy_decomposition(" + ", ".join(f"{k}={v!r}" for k, v in kwargs.items()) + ")"
        with np.errstate(all="ignore"):
            training = est.entropy_decomposition(**kwargs)
            on_x = est.entropy_decomposition(Xd, **kwargs)
        reference = reference_decomposition(ev.params, X, w, form, ev.evaluation)
        _check_decomposition(
            findings, label, training, reference, allowed_mean, D, eps, TRUNCATED not in config.reports
        )
        reference_x = reference_decomposition(ev.params, X, None, form, ev.evaluation)
        _check_decomposition(
            findings,
            label.replace("(", "(X, ", 1).replace(", )", ")"),
            on_x,
            reference_x,
            float(np.mean(ev.allowed)),
            D,
            eps,
        )
        if STATIONARY in config.reports:
            if _ppca_noise_below_floor(est, X, w):
                # A constrained optimum: F = S need not hold, and the decomposition must say why.
                if "floor" not in training.note:
                    findings.append(
                        Finding(f"{label}: notes the noise floor", np.nan, np.nan, repr(training.note))
                    )
            else:
                _compare(findings, f"{label}: F = S at the ML solution", abs(training.gap), allowed_mean)
        if IDENTITY_AFTER_M_STEP in config.reports and kwargs == {}:
            # After the last M-step S(q^T, Theta^{T+1}) = F(q^T, Theta^{T+1}) - reg_covar/2 *
            # sum_c qbar_c tr(Sigma_c^-1) exactly (the regulariser only lowers S), and the final
            # E-step cannot lower F: S <= F(q^{T+1}, Theta^{T+1}), round-off aside. (The other
            # half of the interleaving, F(q^T, Theta^T) <= S, is not checked: a regularised
            # M-step is not F's maximiser, so it need not hold.)
            s_last = float(est.entropy_sum_history_[-1])
            _compare(findings, "entropy_sum_history_[-1] <= final ELBO", s_last - training.elbo, allowed_mean)

    if MIXTURE in config.reports:
        with np.errstate(all="ignore"):
            proba = np.asarray(est.predict_proba(Xd), dtype=np.float64)
        K = proba.shape[1]
        _compare(
            findings, "predict_proba rows sum to 1", np.max(np.abs(proba.sum(axis=1) - 1)), ROUNDING * K * eps
        )
        _compare(findings, "predict_proba >= 0", -np.min(proba), 0.0)
        # An error e_c in the log-joint of component c moves r_c by r_c (e_c - sum_k r_k e_k).
        r = ev.evaluation.responsibilities
        # What float64 achieves for each component's log-joint (not only for the row's sum).
        achievable = np.nan_to_num(ev.evaluation.float64_component_error, nan=0.0)
        per_component = ROUNDING * ((D + K) * eps * (1 + ev.evaluation.component_magnitude) + achievable)
        per_component = per_component + ev.evaluation.reference_error[:, None]
        allowed_r = (
            r * (per_component + np.sum(r * per_component, axis=1, keepdims=True)) + ROUNDING * K * eps
        )
        excess = np.abs(proba - r) / allowed_r
        worst = (
            np.unravel_index(np.nanargmax(excess), excess.shape) if np.all(np.isfinite(excess)) else (0, 0)
        )
        _compare(
            findings,
            "predict_proba vs responsibilities",
            abs(proba[worst] - r[worst]),
            allowed_r[worst],
            f"(row {worst[0]}, component {worst[1]}: {proba[worst]:.8g} vs {r[worst]:.8g})",
        )

    # invariances: a rescaled X, rescaled weights, float32 against float64.
    if data.base is not None:
        base = evaluated(config_name, data.base, dtype)
        if base is None:
            findings.append(Finding(f"invariance: {data.base} fits but this refuses", np.nan, np.nan))
        else:
            shift = -D * np.log(data.scale)  # 0 for rescaled weights
            slack = 2 * tol + allowed_mean + weighted_mean(base.allowed, family(data.base).sample_weight)
            _compare(
                findings,
                f"invariance against {data.base} (LL + D log s)",
                abs(ev.mean_ll - (base.mean_ll + shift)),
                slack,
                f"({ev.mean_ll - shift:.8g} vs {base.mean_ll:.8g})",
            )
    if dtype is np.float32 and np.float64 in config.dtypes:
        _check_float64_answer_is_a_float32_answer(findings, config, family_name)

    if config.n_parameters is not None:
        _check_parameter_count(findings, config, est, Xd, dtype)
    return findings


@cache
def warm_float32_outcome(config_name, family_name):
    """The float32 estimator warm-started from the float64 fit's parameters, fitted on the same
    data in float32 (None when the float64 fit refused)."""
    double = fit_outcome(config_name, family_name, np.float64)
    if double.estimator is None:
        return None
    estimator = copy.deepcopy(double.estimator)
    estimator.set_params(warm_start=True)
    outcome = Outcome(X=double.X, sample_weight=double.sample_weight)
    try:
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            estimator.fit(double.X.astype(np.float32), sample_weight=double.sample_weight)
        outcome.estimator = estimator
    except Exception as error:  # float32 may refuse what it cannot hold, if it says so
        outcome.error = error
    return outcome


def _mean_storage_bound(config, family_name, params, dtype):
    """Bound on what storing the means in float32 costs the ELBO per sample: every M-step's mean
    is rounded by up to half the spacing at it (``delta``), which lowers the expected
    log-likelihood by at most ``1/2 sum_c pi_c |delta_c|^T |P_c| |delta_c|`` (``P_c`` the
    precision), so an EM step that gains less than that can end below the previous one: float32
    at 2e6 holds a mean only to 0.0625. Coordinates whose float64 fit's mean float32 holds exactly
    (a constant column's) round by nothing. 0 in float64 (its rounding is within round-off)."""
    if dtype is not np.float32 or np.float64 not in config.dtypes:
        return 0.0
    double = evaluated(config.name, family_name, np.float64)
    if double is None or double.params.means.shape != params.means.shape:
        return 0.0
    exact = double.params.means.astype(np.float32).astype(np.float64) == double.params.means
    means = params.means.astype(np.float32)
    delta = np.where(exact, 0.0, np.spacing(np.abs(means)).astype(np.float64) / 2)
    total = 0.0
    for c in range(params.n_components):
        precision = np.linalg.inv(params.covariance(c))
        total += params.weights[c] * 0.5 * float(delta[c] @ np.abs(precision) @ delta[c])
    return total


#: FastPPCA's documented noise floor, relative to the mean variance of the features.
PPCA_NOISE_FLOOR = 1e-14


def _ppca_noise_below_floor(est, X, w):
    """Whether the maximum-likelihood PPCA noise of X (the mean of the D - H smallest eigenvalues
    of its covariance, computed here in float64) lies below FastPPCA's documented floor, so that
    the fit is held at the floor: a boundary optimum, not a stationary point."""
    weights = np.ones(X.shape[0]) if w is None else np.asarray(w, dtype=np.float64)
    mean = weights @ X / weights.sum()
    covariance = (weights[:, None] * (X - mean)).T @ (X - mean) / weights.sum()
    eigenvalues = np.linalg.eigvalsh(covariance)
    maximum_likelihood = float(np.mean(eigenvalues[: X.shape[1] - est.n_components_]))
    return maximum_likelihood < PPCA_NOISE_FLOOR * float(np.mean(np.diag(covariance)))


def _float32_storage_cost(params, X, w, mean_ll):
    """How much the float64 answer's mean log-likelihood (``mean_ll``) falls when its parameters
    are stored in float32: means rounded, covariances taken about the rounded means (the scatter
    grows by ``delta delta^T``, the optimum for the stored means) and rounded. No float32 fit can be
    asked to come closer to the float64 answer than float32 can store it; a mean of 2e6 alone is
    held only to 0.125. 0 where the stored parameters are not positive definite (nothing allowed)."""
    stored_means = params.means.astype(np.float32).astype(np.float64)
    delta = params.means - stored_means
    if params.covariances is not None:
        stored = GaussianMixtureParameters(
            params.weights, params.means, covariances=_float32(params.covariances)
        )
    else:
        stored = GaussianMixtureParameters(
            params.weights, params.means, loadings=_float32(params.loadings), noise=_float32(params.noise)
        )
    covariances = np.stack(
        [stored.covariance(c) + np.outer(delta[c], delta[c]) for c in range(params.n_components)]
    )
    stored = GaussianMixtureParameters(_float32(params.weights), stored_means, covariances=covariances)
    try:
        stored_ll = float(weighted_mean(evaluate_mixture(stored, X).log_likelihood, w))
    except NotPositiveDefinite:
        return 0.0
    return max(0.0, mean_ll - stored_ll)


def _float32(a):
    return np.asarray(a, dtype=np.float32).astype(np.float64)


@cache
def float64_optimum_mean_ll(config_name, family_name):
    """The mean log-likelihood the float64 fit reaches when continued (warm start) to a tight
    tolerance: EM stops once an iteration gains less than ``tol``, which on a slow, linearly
    converging fit can be several ``tol`` short of the optimum it is climbing to."""
    double = fit_outcome(config_name, family_name, np.float64)
    estimator = copy.deepcopy(double.estimator)
    params = estimator.get_params()
    if "tol" not in params:
        return evaluated(config_name, family_name, np.float64).mean_ll
    estimator.set_params(warm_start=True, tol=params["tol"] * 1e-4, max_iter=max(params["max_iter"], 2000))
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        estimator.fit(double.X, sample_weight=double.sample_weight)
    evaluation = evaluate_mixture(CONFIGS[config_name].parameters(estimator), double.X)
    return float(weighted_mean(evaluation.log_likelihood, double.sample_weight))


def _check_float64_answer_is_a_float32_answer(findings, config, family_name):
    """The float64 fit's answer, continued in float32, stays within float32 precision of it."""
    double = evaluated(config.name, family_name, np.float64)
    if double is None:
        if fit_outcome(config.name, family_name, np.float32).estimator is not None:
            findings.append(Finding("float32 fits where float64 refuses", np.nan, np.nan))
        return
    double_fit = fit_outcome(config.name, family_name, np.float64).estimator
    warm = warm_float32_outcome(config.name, family_name)
    if warm.estimator is None:
        if not _is_clear_error(warm.error, double_fit):
            findings.append(
                Finding(
                    "float32 warm start: a clear error naming its cause", np.nan, np.nan, repr(warm.error)
                )
            )
        return
    bad = _all_finite(warm.estimator)
    if bad:
        findings.append(
            Finding("float32 warm start: no NaN/inf in fitted attributes", np.nan, 0, ", ".join(bad))
        )
        return
    try:
        params = config.parameters(warm.estimator)
        single = evaluate_mixture(params, warm.X)
    except NotPositiveDefinite as error:
        findings.append(
            Finding("float32 warm start: covariances positive definite", np.nan, np.nan, str(error))
        )
        return
    w, N = warm.sample_weight, warm.X.shape[0]
    mean_ll = float(weighted_mean(single.log_likelihood, w))
    D, K = params.n_features, params.n_components
    float32_band = weighted_mean(
        ROUNDING * (D + K) * _eps(np.float32) * (1.0 + single.magnitude) + single.reference_error, w
    )
    reference_errors = weighted_mean(single.reference_error, w) + weighted_mean(
        double.evaluation.reference_error, w
    )
    tol64 = config.tol_per_sample(double_fit, N)
    tol32 = config.tol_per_sample(warm.estimator, N)
    detail = f"(float32 {mean_ll:.8g} vs float64 {double.mean_ll:.8g})"
    storage = _float32_storage_cost(double.params, warm.X, w, double.mean_ll)
    _compare(
        findings,
        "float32 warm-started from float64: LL within float32 precision",
        double.mean_ll - mean_ll,
        float32_band + storage + weighted_mean(double.allowed, w) + tol32 + tol64,
        detail + f" (storing the float64 answer in float32 costs {storage:.3g})",
    )
    if not double_fit.converged_:
        return  # a float64 fit that stopped at max_iter claims no optimum for float32 to respect
    allowed = reference_errors + weighted_mean(double.allowed, w) + tol32 + tol64
    optimum = double.mean_ll
    if mean_ll - optimum > allowed:  # only then is the float64 optimum worth climbing to
        optimum = max(optimum, float64_optimum_mean_ll(config.name, family_name))
    _compare(
        findings,
        "float32 warm-started from float64: LL not above the float64 optimum",
        mean_ll - optimum,
        allowed,
        f"(float32 {mean_ll:.8g} vs float64 {double.mean_ll:.8g}, continued to {optimum:.8g})",
    )


def _check_parameter_count(findings, config, est, Xd, dtype):
    """bic - aic = p (log N - 2): the count p an estimator uses, against an independent count."""
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        bic, aic = float(est.bic(Xd)), float(est.aic(Xd))
    N = Xd.shape[0]
    counted = (bic - aic) / (np.log(N) - 2.0)
    expected = config.n_parameters(est, Xd.shape[1])
    rounding = ROUNDING * _eps(dtype) * (abs(bic) + abs(aic)) / abs(np.log(N) - 2.0)
    _compare(
        findings,
        "bic/aic parameter count",
        abs(counted - expected),
        rounding,
        f"({counted:.6g} vs {expected})",
    )
    _compare(findings, "bic/aic parameter count >= 0", -counted, rounding, f"({counted:.6g})")


def _dtype_name(dtype):
    return np.dtype(dtype).name


def _case(config, family_name, dtype):
    """One case; an open defect (listed in awkward_open_defects.py) is an expected failure, strict
    unless it misses by a margin that the CPU build's rounding can close."""
    case_id = f"{family_name}-{config.name}-{_dtype_name(dtype)}"
    return pytest.param(config.name, family_name, dtype, id=case_id, marks=_open_defect_marks(case_id))


def _open_defect_marks(case_id):
    reason = OPEN_DEFECTS.get(case_id)
    if reason is None:
        return []
    return [pytest.mark.xfail(strict=case_id not in NEAR_TOLERANCE, reason=f"open defect: {reason}")]


CASES = [
    _case(config, family_name, dtype)
    for config in ESTIMATORS
    for family_name in FAMILIES
    for dtype in config.dtypes
]


@pytest.mark.parametrize(("config_name", "family_name", "dtype"), CASES)
def test_awkward_data_give_a_clear_error_or_numbers_matching_the_returned_parameters(
    config_name, family_name, dtype
):
    findings = check_case(config_name, family_name, dtype)
    assert not findings, "\n".join(map(str, findings))


def test_float32_fits_keep_float32_parameters():
    """The float32 comparisons mean something: a float32 fit stores float32 parameters."""
    outcome = fit_outcome("FastGMM-diag", "control", np.float32)
    assert outcome.estimator.means_.dtype == np.float32


@pytest.mark.parametrize("noise", ["diag", "spherical"])
def test_mfa_with_more_factors_than_features_is_refused_or_counts_rank_d_loadings(noise):
    """n_factors = 10 on 3 features: a clear error naming n_factors, or bic/aic counting loadings
    of rank 3 (never the negative count of D*H - H(H-1)/2 at H > D)."""
    X = family("control").X[:, :3]
    config = CONFIGS[f"FastMFA-{noise}"]
    estimator = FastMFA(2, n_factors=10, noise=noise, random_state=0)
    try:
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            estimator.fit(X)
    except ValueError as error:
        assert names_an_argument(str(error), ("n_factors",)), str(error)
        return
    findings = []
    _check_parameter_count(findings, config, estimator, X, np.float64)
    assert not findings, "\n".join(map(str, findings))


def _non_finite(kind):
    X = family("control").X.copy()
    X[7, 2] = np.nan if kind == "nan" else -np.inf
    return X


NON_FINITE_CASES = [
    pytest.param(config.name, kind, dtype, id=f"{kind}-{config.name}-{_dtype_name(dtype)}")
    for config in ESTIMATORS
    for kind in ("nan", "inf")
    for dtype in config.dtypes
]


@pytest.mark.parametrize(("config_name", "kind", "dtype"), NON_FINITE_CASES)
def test_non_finite_input_is_a_value_error_naming_X(config_name, kind, dtype):
    estimator = CONFIGS[config_name].make(1.0)
    with pytest.raises(ValueError) as raised:
        estimator.fit(_non_finite(kind).astype(dtype))
    assert names_an_argument(str(raised.value), ("X",)), str(raised.value)


def _overflow_case(config, exponent):
    case_id = f"2^{exponent}-{config.name}"
    return pytest.param(config.name, exponent, id=case_id, marks=_open_defect_marks(case_id))


FLOAT32_OVERFLOW_CASES = [
    _overflow_case(config, exponent)
    for config in ESTIMATORS
    if np.float32 in config.dtypes
    for exponent in (63, 120)
]


@pytest.mark.parametrize(("config_name", "exponent"), FLOAT32_OVERFLOW_CASES)
def test_float32_input_whose_squares_overflow_fits_finitely_or_is_refused_naming_X(config_name, exponent):
    """float32 X of size 2**63 ~ 1e19 or 2**120 ~ 1e36: finite values whose squares overflow
    float32. Either every fitted number is finite, or a ValueError says that X is the cause (not
    only "array must not contain infs or NaNs", nor a hyperparameter to change)."""
    X = (family("control").X * 2.0**exponent).astype(np.float32)
    estimator = CONFIGS[config_name].make(1.0)
    try:
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            estimator.fit(X)
            score = estimator.score(X)
    except ValueError as error:
        assert names_an_argument(str(error), ("X",)), str(error)
        return
    assert not _all_finite(estimator), "non-finite fitted attributes"
    assert np.isfinite(score), f"score {score}"


if __name__ == "__main__":  # the table for a report: every failed check of every case
    import sys
    import time

    start = time.perf_counter()
    for config in ESTIMATORS:
        for family_name in FAMILIES:
            for dtype in config.dtypes:
                for finding in check_case(config.name, family_name, dtype):
                    print(f"{config.name}\t{family_name}\t{_dtype_name(dtype)}\t{finding}", flush=True)
    print(f"# {time.perf_counter() - start:.1f} s", file=sys.stderr)
