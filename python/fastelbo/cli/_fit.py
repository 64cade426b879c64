"""``fastelbo fit DATA --model gmm|ppca|fa|mfa|bernoulli|poisson ...``: fit one model to a file or a
built-in data set, print the fit's time, convergence, fitted parameters and entropy decomposition, and
optionally write the results as JSON (``--json``), the component of every row (``--labels``), the
fitted estimator (``--save``, with joblib) and a convergence plot (``--plot``, with
:func:`fastelbo.plot_convergence`).

Everything that can be checked before the fit is: the options, the seed, the output paths and the
plot's format are checked before DATA is read, and DATA before the fit."""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

from fastelbo.cli._data import column_label, data_kind, load_data, row_label
from fastelbo.cli._errors import CommandLineError
from fastelbo.cli._models import MODELS, check_seed, estimator_parameters, make_estimator
from fastelbo.cli._outputs import check_outputs, check_plot_format, write_output
from fastelbo.cli._summary import fit_results, fit_summary, report_lines
from fastelbo.datasets import DATASETS
from fastelbo.exceptions import HeywoodCaseWarning, heywood_case_message
from fastelbo.factor._mfa import NOISE_TYPES
from fastelbo.factor._ppca import SOLVERS
from fastelbo.factor._rotation import ROTATIONS
from fastelbo.mixture._covariance import COVARIANCE_TYPES
from fastelbo.mixture._discrete_rows import ModelValueError
from fastelbo.mixture._initialization import INIT_PARAMS

DESCRIPTION = """\
Fit a model by EM and report its parameters, its ELBO and the ELBO's entropy decomposition.

DATA is a file or a built-in data set. A file is recognised by its content, whatever its name: a
.npy array, a .npz archive (its one array, or the one --key names), or a text table: comma-, tab-,
semicolon-, vertical-bar- or blank-separated (found from the first lines; with a separator other
than a comma, 1,5 is a decimal comma), UTF-8 with or without a byte-order mark, UTF-16, Windows-1252
(when bytes 0x80-0x9F, such as Excel's euro sign and curly quotes, show it) or Latin-1. Its first
line is a header when one of its fields is not a number (--header auto); a header of numbers (years,
wavelengths) needs --header yes. Empty fields, NA, N/A, #N/A, NaN, null and ? are missing values: an
error that names their lines and columns. Lines starting with # are skipped. Built-in data sets:
digits, wine (standardised), breast_cancer (standardised), iris, patches (every 8x8 grey patch of
scikit-learn's two sample photos, each patch's mean removed: 531720 x 64).

models:
""" + "\n".join(f"  {name:<10}{spec.estimator}: {spec.description}" for name, spec in MODELS.items())

EPILOG = """\
--columns takes names (with a header line), numbers counted from 1 and ranges, separated by
commas: --columns 2-5 or --columns 2- (column 2 to the last) leaves out an id in column 1.
Components are numbered from 0, as --labels and predict() number them.

Options a model does not take are refused. Errors print one line 'fastelbo: error: ...' and exit
with status 2, before any work where they can be known before (output paths are checked first).
--verbose 1 draws a progress bar with the ELBO and the gap F - S on a terminal (tqdm's when
installed); --verbose 2 prints a line per --verbose-interval iterations with times.

examples:
  fastelbo fit measurements.csv --components 3 --standardize --labels labels.txt
  fastelbo fit digits --model gmm --components 10 --covariance-type diag --json fit.json --plot fit.png
"""


def add_fit_parser(commands):
    parser = commands.add_parser(
        "fit",
        help="fit a model to DATA and print its parameters and entropy decomposition",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "data", metavar="DATA", help="a .npy, .npz or text table file, or a built-in data set"
    )
    parser.add_argument("--model", choices=tuple(MODELS), default="gmm", help="default: gmm")
    parser.add_argument(
        "--components",
        type=int,
        metavar="K",
        help="components of a mixture (gmm, mfa, bernoulli, poisson) or factors of ppca and fa (default: "
        "the estimator's, 1 for a mixture)",
    )
    data = parser.add_argument_group("data")
    data.add_argument(
        "--header",
        choices=("auto", "yes", "no"),
        help="text tables: whether line 1 names the columns (default: auto, a header when one of its "
        "fields is not a number)",
    )
    data.add_argument(
        "--columns",
        metavar="COLS",
        help="the columns to fit: names, numbers from 1, ranges (2-5, 2-), separated by commas",
    )
    data.add_argument(
        "--standardize",
        action="store_true",
        help="scale every column to mean 0 and variance 1 (over the rows fitted) before the fit",
    )
    data.add_argument("--key", help="the array of a .npz file that holds several")
    data.add_argument("--dtype", choices=("float64", "float32"), default="float64", help="default: float64")
    data.add_argument(
        "--n-samples", type=int, metavar="N", help="fit a random subset of N rows (drawn with --seed)"
    )

    model = parser.add_argument_group("model options (each model takes only its own)")
    model.add_argument("--covariance-type", choices=COVARIANCE_TYPES, help="gmm")
    model.add_argument(
        "--n-active",
        type=int,
        metavar="C",
        help="gmm, bernoulli, poisson: truncated variational EM, C components per row",
    )
    model.add_argument(
        "--n-neighbors",
        type=int,
        metavar="G",
        help="gmm, bernoulli, poisson with --n-active: neighbour list length",
    )
    model.add_argument(
        "--factors", type=int, metavar="H", help="mfa: factors per component (at most the number of features)"
    )
    model.add_argument("--noise", choices=NOISE_TYPES, help="mfa")
    model.add_argument("--reg-covar", type=float, metavar="EPS", help="gmm, mfa")
    model.add_argument(
        "--mean-floor",
        type=float,
        metavar="EPS",
        help="bernoulli, poisson: the smallest mean (and for bernoulli 1 - the largest)",
    )
    model.add_argument(
        "--n-init",
        type=int,
        metavar="N",
        help="gmm, mfa, ppca, bernoulli, poisson: initialisations, the best is kept",
    )
    model.add_argument(
        "--init-params",
        choices=INIT_PARAMS,
        help="gmm, mfa; bernoulli, poisson: k-means++, random_from_data or random",
    )
    model.add_argument("--solver", choices=SOLVERS, help="ppca: closed form (eigh, default) or EM")
    model.add_argument("--rotation", choices=ROTATIONS, help="fa")

    em = parser.add_argument_group("EM")
    em.add_argument("--max-iter", type=int, metavar="N", help="default: the estimator's")
    em.add_argument("--tol", type=float, help="default: the estimator's")
    em.add_argument(
        "--seed", type=int, default=0, metavar="S", help="random_state, 0 to 2**32 - 1 (default: 0)"
    )
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
    output.add_argument(
        "--json",
        type=Path,
        metavar="OUT.json",
        help="write the results: parameters, labels (mixtures), decomposition, histories",
    )
    output.add_argument(
        "--labels",
        type=Path,
        metavar="OUT.txt",
        help="mixtures: write the most probable component of every row of DATA, one a line",
    )
    output.add_argument("--save", type=Path, metavar="OUT.joblib", help="save the fitted estimator (joblib)")
    output.add_argument(
        "--plot",
        type=Path,
        metavar="OUT.png",
        help="plot the convergence (needs matplotlib; .png, .pdf, .svg, ...)",
    )
    parser.set_defaults(run=run_fit, command_parser=parser)
    return parser


def run_fit(args) -> int:
    if args.quiet:
        args.verbose = 0
    elif args.verbose is None:
        args.verbose = 1 if sys.stderr.isatty() else 0
    say = (lambda line="": None) if args.quiet else print
    spec = MODELS[args.model]

    # Everything that can be checked without the data, before reading it.
    check_seed("--seed", args.seed)
    try:
        parameters = estimator_parameters(args.model, args)
    except ValueError as error:
        raise CommandLineError(str(error)) from None
    if args.standardize and spec.discrete:
        raise CommandLineError(
            f"--standardize turns DATA's values into real numbers, and --model {args.model} fits "
            "them as they are (0 or 1, counts): leave --standardize out"
        )
    if args.labels is not None and not spec.mixture:
        mixtures = ", ".join(name for name, other in MODELS.items() if other.mixture)
        raise CommandLineError(f"--labels applies to mixtures ({mixtures}), not to --model {args.model}")
    if not args.verbose:  # the estimator's own defaults: a shorter repr
        del parameters["verbose"], parameters["verbose_interval"]
    outputs = {"--json": args.json, "--labels": args.labels, "--save": args.save, "--plot": args.plot}
    data_kind(args.data)  # a missing DATA is reported before the outputs are probed
    check_outputs(outputs, args.data if args.data not in DATASETS else None)
    if args.plot is not None:
        if args.max_iter == 0:
            raise CommandLineError("--plot draws the iterations, and --max-iter 0 runs none")
        check_plot_format(args.plot)
    try:
        model = make_estimator(args.model, parameters)
    except (TypeError, ValueError) as error:
        raise CommandLineError(f"invalid setting: {error}") from None

    data = load_data(
        args.data,
        key=args.key,
        dtype=args.dtype,
        n_samples=args.n_samples,
        seed=args.seed,
        header=args.header,
        columns=args.columns,
        standardize=args.standardize,
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        start = time.perf_counter()
        try:
            model.fit(data.X)
        except ModelValueError as error:
            raise CommandLineError(
                f"{args.data}: {row_label(data, error.row)}, {column_label(data, error.column)}: "
                f"{error.value!r} is not a value of --model {args.model}, which needs every value to be "
                f"{error.needs}"
            ) from None
        except (TypeError, ValueError) as error:
            # The settings alone were checked above: what is left is the data, or the settings
            # with these data (more components than rows, say).
            raise CommandLineError(f"cannot fit {args.data}: {error}") from None
        fit_seconds = time.perf_counter() - start
        results = fit_results(model, data, labels=args.labels is not None or args.json is not None)
    # Warnings about the data and the fit follow the fit, so that an error stays the only line.
    messages = list(dict.fromkeys(_warning_text(w, data) for w in caught))
    for message in [*data.warnings, *messages]:
        print(f"fastelbo: warning: {message}", file=sys.stderr)

    lines = report_lines(model, data, fit_seconds, results)
    if spec.mixture and args.components is None:
        n = model.n_components
        lines.insert(
            3,
            f"hint: --components not given: {spec.estimator} fitted its default of {n} "
            f"component{'s' if n != 1 else ''}; --components K fits K",
        )
    # The output files first: a reader of stdout that stops early (`| head`) loses none of them.
    written = []
    if args.json is not None:
        summary = fit_summary(model, data, args.model, fit_seconds, [*data.warnings, *messages], results)
        write_output("--json", args.json, lambda path: path.write_text(json.dumps(summary, indent=2) + "\n"))
        written.append(
            f"wrote {args.json}: parameters, {'labels, ' if spec.mixture else ''}decomposition and histories"
        )
    if args.labels is not None:
        write_output("--labels", args.labels, lambda path: _write_labels(path, results.labels))
        written.append(
            f"wrote {args.labels}: the component (from 0) of each of the {len(results.labels)} rows of DATA"
        )
    if args.save is not None:
        import joblib

        write_output("--save", args.save, lambda path: joblib.dump(model, path))
        written.append(f"saved {args.save}: load it with joblib.load")
    if args.plot is not None:
        write_output("--plot", args.plot, lambda path: _save_plot(model, path))
        written.append(f"plotted {args.plot}: ELBO and entropy sum per iteration, and the gap F - S")
    for line in [*lines, *([""] if written else []), *written]:
        say(line)
    return 0


def _warning_text(caught, data):
    """``Category: message`` of a warning raised by the fit; a Heywood case names DATA's columns
    as the other messages do (``column 3 ('age')``), not the estimator's ``x2``."""
    message = caught.message
    if isinstance(message, HeywoodCaseWarning) and message.features is not None:
        labels = [column_label(data, d) for d in message.features]
        if message.components is not None:
            labels = [f"component {c} {label}" for c, label in zip(message.components, labels, strict=True)]
        message = heywood_case_message(message.model, labels, message.variances)
    return f"{caught.category.__name__}: {message}"


def _write_labels(path, labels):
    with open(path, "w") as file:
        file.write("".join(f"{label}\n" for label in labels.tolist()))


def _save_plot(model, path):
    import matplotlib.pyplot as plt

    from fastelbo import plot_convergence  # matplotlib is there: check_plot_format checked

    try:
        ax_values, _ = plot_convergence(model)
    except ValueError as error:  # no iteration to draw
        raise CommandLineError(f"--plot: {error}") from None
    try:
        ax_values.figure.savefig(path, dpi=120, bbox_inches="tight")
    finally:
        plt.close(ax_values.figure)
