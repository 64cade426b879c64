"""The models ``fastelbo fit --model`` knows, and the estimator an invocation builds.

Every option of ``fit`` that sets a hyperparameter maps to one keyword of the estimator; an option a
model does not have (``--covariance-type`` with ``--model fa``, say) is an error rather than silently
ignored. Options left out keep the estimator's own defaults.
"""

from __future__ import annotations

from dataclasses import dataclass

from fastelbo.cli._errors import CommandLineError


@dataclass(frozen=True)
class ModelSpec:
    """One ``--model`` choice: its estimator and which options set which of its hyperparameters."""

    estimator: str
    description: str
    #: ``{argparse dest: estimator keyword}`` for the options this model takes.
    options: dict
    #: A mixture: components with weights and means, labels per row, BIC and AIC.
    mixture: bool = False
    #: Fits the values as they are (0 or 1, counts): ``--standardize`` would change what they mean.
    discrete: bool = False


#: Options every model takes: ``{argparse dest: estimator keyword}``.
COMMON_OPTIONS = {
    "components": "n_components",
    "max_iter": "max_iter",
    "tol": "tol",
    "seed": "random_state",
    "n_jobs": "n_jobs",
    "verbose": "verbose",
    "verbose_interval": "verbose_interval",
}

_MIXTURE_OPTIONS = {"reg_covar": "reg_covar", "n_init": "n_init", "init_params": "init_params"}
_COUNT_MIXTURE_OPTIONS = {
    "mean_floor": "mean_floor",
    "n_active": "n_active",
    "n_neighbors": "n_neighbors",
    "n_init": "n_init",
    "init_params": "init_params",
}

MODELS = {
    "gmm": ModelSpec(
        "FastGMM",
        "Gaussian mixture (--components K, --covariance-type, --n-active for truncated EM)",
        {
            "covariance_type": "covariance_type",
            "n_active": "n_active",
            "n_neighbors": "n_neighbors",
            **_MIXTURE_OPTIONS,
        },
        mixture=True,
    ),
    "ppca": ModelSpec(
        "FastPPCA",
        "probabilistic PCA (--components H factors; --solver em to iterate)",
        {"solver": "solver", "n_init": "n_init"},
    ),
    "fa": ModelSpec(
        "FastFactorAnalysis",
        "factor analysis (--components H factors)",
        {"rotation": "rotation"},
    ),
    "mfa": ModelSpec(
        "FastMFA",
        "mixture of factor analysers (--components K, --factors H, --noise)",
        {"factors": "n_factors", "noise": "noise", **_MIXTURE_OPTIONS},
        mixture=True,
    ),
    "bernoulli": ModelSpec(
        "FastBernoulliMixture",
        "mixture of independent Bernoulli features, every value 0 or 1 (--components K)",
        _COUNT_MIXTURE_OPTIONS,
        mixture=True,
        discrete=True,
    ),
    "poisson": ModelSpec(
        "FastPoissonMixture",
        "mixture of independent Poisson features, non-negative integer counts (--components K)",
        _COUNT_MIXTURE_OPTIONS,
        mixture=True,
        discrete=True,
    ),
}

#: Every model-specific option (an argparse dest), in the order the models list them.
MODEL_OPTIONS = tuple(dict.fromkeys(dest for spec in MODELS.values() for dest in spec.options))


def option_flag(dest: str) -> str:
    """The command-line flag of an argparse dest (``covariance_type`` -> ``--covariance-type``)."""
    return "--" + dest.replace("_", "-")


def estimator_parameters(model: str, args) -> dict:
    """The keyword arguments of ``model``'s estimator that the parsed ``args`` set.

    Raises
    ------
    ValueError
        If ``args`` set an option ``model`` does not take (the message names the option and the
        models that take it).
    """
    spec = MODELS[model]
    for dest in MODEL_OPTIONS:
        if getattr(args, dest, None) is not None and dest not in spec.options:
            takers = [name for name, other in MODELS.items() if dest in other.options]
            raise ValueError(
                f"{option_flag(dest)} does not apply to --model {model} (it applies to: {', '.join(takers)})"
            )
    parameters = {}
    for dest, keyword in {**COMMON_OPTIONS, **spec.options}.items():
        value = getattr(args, dest, None)
        if value is not None:
            parameters[keyword] = value
    return parameters


def make_estimator(model: str, parameters: dict):
    """A new, unfitted estimator of ``model`` with ``parameters``, whose hyperparameters are
    checked as ``fit`` checks them before it reads X (so that a bad setting, ``--components 0``
    or ``--tol -1``, is reported before DATA is read; what depends on the data, such as more
    components than rows, is checked by ``fit``).

    Raises
    ------
    TypeError, ValueError
        The estimator's error naming the bad hyperparameter.
    """
    import fastelbo

    estimator = getattr(fastelbo, MODELS[model].estimator)(**parameters)
    estimator._check_hyperparameters()
    return estimator


def check_seed(option: str, seed: int) -> None:
    """scikit-learn's check of a ``random_state`` (0 to 2**32 - 1), with its message, before any work.

    Raises
    ------
    CommandLineError
        ``<option> <seed>: Seed must be between 0 and 2**32 - 1`` (scikit-learn's words).
    """
    from sklearn.utils import check_random_state

    try:
        check_random_state(seed)
    except ValueError as error:
        raise CommandLineError(f"{option} {seed}: {error}") from None
