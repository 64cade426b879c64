"""``fastelbo fit DATA --model gmm|ppca|fa|mfa ...``: fit one model to a file or a built-in data set,
print the fit's time, convergence and entropy decomposition, and optionally write a JSON summary
(``--json``), the fitted estimator (``--save``, with joblib) and a convergence plot (``--plot``, with
:func:`fastelbo.plot_convergence`)."""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

from fastelbo.cli._data import load_data
from fastelbo.cli._errors import CommandLineError
from fastelbo.cli._models import MODELS, estimator_parameters, make_estimator
from fastelbo.cli._summary import fit_summary, report_lines
from fastelbo.factor._mfa import NOISE_TYPES
from fastelbo.factor._ppca import SOLVERS
from fastelbo.factor._rotation import ROTATIONS
from fastelbo.mixture._covariance import COVARIANCE_TYPES
from fastelbo.mixture._initialization import INIT_PARAMS

DESCRIPTION = """\
Fit a model by EM and report its ELBO and entropy decomposition.

DATA is a .npy file, a .npz file (one array, or the one --key names), a .csv file (one optional
header line, detected when a field of the first line is not a number) or a built-in data set:
digits, wine (standardised), breast_cancer (standardised), iris, patches (every 8x8 grey patch of
scikit-learn's two sample photos, each patch's mean removed: 531720 x 64).

models:
""" + "\n".join(f"  {name:<6}{spec.estimator}: {spec.description}" for name, spec in MODELS.items())

EPILOG = """\
Options a model does not take are refused. Errors print one line 'fastelbo: error: ...' and exit
with status 2. --verbose 1 draws a progress bar with the ELBO and the gap F - S on a terminal
(tqdm's when installed); --verbose 2 prints a line per --verbose-interval iterations with times.

example:
  fastelbo fit digits --model gmm --components 10 --covariance-type diag --json fit.json
"""


def add_fit_parser(commands):
    parser = commands.add_parser(
        "fit",
        help="fit a model to DATA and print its entropy decomposition",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("data", metavar="DATA", help=".npy, .npz or .csv file, or a built-in data set")
    parser.add_argument("--model", choices=tuple(MODELS), default="gmm", help="default: gmm")
    parser.add_argument(
        "--components",
        type=int,
        metavar="K",
        help="components of a mixture (gmm, mfa) or factors of ppca and fa (default: the estimator's)",
    )
    data = parser.add_argument_group("data")
    data.add_argument("--key", help="the array of a .npz file that holds several")
    data.add_argument("--dtype", choices=("float64", "float32"), default="float64", help="default: float64")
    data.add_argument(
        "--n-samples", type=int, metavar="N", help="fit a random subset of N rows (drawn with --seed)"
    )

    model = parser.add_argument_group("model options (each model takes only its own)")
    model.add_argument("--covariance-type", choices=COVARIANCE_TYPES, help="gmm")
    model.add_argument(
        "--n-active", type=int, metavar="C", help="gmm: truncated variational EM, C components per row"
    )
    model.add_argument(
        "--n-neighbors", type=int, metavar="G", help="gmm with --n-active: neighbour list length"
    )
    model.add_argument(
        "--factors", type=int, metavar="H", help="mfa: factors per component (at most the number of features)"
    )
    model.add_argument("--noise", choices=NOISE_TYPES, help="mfa")
    model.add_argument("--reg-covar", type=float, metavar="EPS", help="gmm, mfa")
    model.add_argument(
        "--n-init", type=int, metavar="N", help="gmm, mfa, ppca: initialisations, the best is kept"
    )
    model.add_argument("--init-params", choices=INIT_PARAMS, help="gmm, mfa")
    model.add_argument("--solver", choices=SOLVERS, help="ppca: closed form (eigh, default) or EM")
    model.add_argument("--rotation", choices=ROTATIONS, help="fa")

    em = parser.add_argument_group("EM")
    em.add_argument("--max-iter", type=int, metavar="N", help="default: the estimator's")
    em.add_argument("--tol", type=float, help="default: the estimator's")
    em.add_argument("--seed", type=int, default=0, metavar="S", help="random_state (default: 0)")
    em.add_argument("--n-jobs", type=int, metavar="N", help="threads (default: all cores)")

    output = parser.add_argument_group("output")
    shown = output.add_mutually_exclusive_group()
    shown.add_argument(
        "--verbose",
        type=int,
        choices=(0, 1, 2),
        help="estimator progress: 0 none, 1 a progress bar on a terminal (lines elsewhere), 2 a "
        "line with times every --verbose-interval iterations (default: 1 on a terminal, else 0)",
    )
    shown.add_argument(
        "--quiet",
        "-q",
        action="store_true",
        help="print nothing on stdout (errors and warnings still go to stderr)",
    )
    output.add_argument("--verbose-interval", type=int, default=1, metavar="N", help="default: 1")
    output.add_argument("--json", type=Path, metavar="OUT.json", help="write the fit summary and histories")
    output.add_argument("--save", type=Path, metavar="OUT.joblib", help="save the fitted estimator (joblib)")
    output.add_argument(
        "--plot", type=Path, metavar="OUT.png", help="plot the convergence (needs matplotlib)"
    )
    parser.set_defaults(run=run_fit)
    return parser


def run_fit(args) -> int:
    if args.quiet:
        args.verbose = 0
    elif args.verbose is None:
        args.verbose = 1 if sys.stderr.isatty() else 0
    say = (lambda line="": None) if args.quiet else print
    try:
        parameters = estimator_parameters(args.model, args)
    except ValueError as error:
        raise CommandLineError(str(error)) from None
    if not args.verbose:  # the estimator's own defaults: a shorter repr
        del parameters["verbose"], parameters["verbose_interval"]
    for path in (args.json, args.save, args.plot):
        _check_writable(path)
    plot_convergence = _plot_function() if args.plot is not None else None

    data = load_data(args.data, key=args.key, dtype=args.dtype, n_samples=args.n_samples, seed=args.seed)
    try:
        model = make_estimator(args.model, parameters)
    except (TypeError, ValueError) as error:
        raise CommandLineError(f"invalid setting: {error}") from None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        start = time.perf_counter()
        try:
            model.fit(data.X)
        except (TypeError, ValueError) as error:
            raise CommandLineError(f"invalid setting: {error}") from None
        fit_seconds = time.perf_counter() - start
    messages = list(dict.fromkeys(f"{w.category.__name__}: {w.message}" for w in caught))
    for message in messages:
        print(f"fastelbo: warning: {message}", file=sys.stderr)

    for line in report_lines(model, data, fit_seconds):
        say(line)
    if args.json is not None:
        summary = fit_summary(model, data, args.model, fit_seconds, messages)
        _write(args.json, lambda path: path.write_text(json.dumps(summary, indent=2) + "\n"))
        say(f"\nwrote {args.json}: fit summary, decomposition and histories")
    if args.save is not None:
        import joblib

        _write(args.save, lambda path: joblib.dump(model, path))
        say(f"saved {args.save}: load it with joblib.load")
    if args.plot is not None:
        _write(args.plot, lambda path: _save_plot(plot_convergence, model, path))
        say(f"plotted {args.plot}: ELBO and entropy sum per iteration")
    return 0


def _check_writable(path):
    """Fail before the fit when an output's folder does not exist."""
    if path is None:
        return
    if path.is_dir():
        raise CommandLineError(f"cannot write {str(path)!r}: it is a folder")
    if not path.parent.is_dir():
        raise CommandLineError(f"cannot write {str(path)!r}: folder {str(path.parent)!r} does not exist")


def _write(path, write):
    try:
        write(path)
    except OSError as error:
        raise CommandLineError(f"cannot write {str(path)!r}: {error.strerror or error}") from None


def _plot_function():
    """:func:`fastelbo.plot_convergence`, or an error when this installation cannot plot."""
    from fastelbo import plot_convergence

    try:
        import matplotlib
    except ImportError:
        raise CommandLineError(
            "--plot needs matplotlib: pip install 'fastelbo[plot]' (or pip install matplotlib)"
        ) from None
    matplotlib.use("Agg")  # a file is written; no window opens
    return plot_convergence


def _save_plot(plot_convergence, model, path):
    ax_values, _ = plot_convergence(model)  # matplotlib is there: _plot_function checked
    ax_values.figure.savefig(path, dpi=120, bbox_inches="tight")
