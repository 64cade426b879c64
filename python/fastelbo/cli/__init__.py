"""The ``fastelbo`` command line (also ``python -m fastelbo``).

Commands, one module each:

- ``fit`` (:mod:`._fit`): fit a model to a file or a built-in data set (:mod:`._data`, text tables
  :mod:`._table`) and print its parameters and entropy decomposition (:mod:`._summary`);
  ``--json``, ``--labels``, ``--save`` and ``--plot`` write the results (:mod:`._outputs`).
- ``demo`` (:mod:`._demo`): the one-command tour (FastGMM against scikit-learn on the digits).
- ``info`` (:mod:`._info`): :func:`fastelbo.build_info`.

A problem with the input, the options or the output paths prints one line
``fastelbo: error: <what>`` on stderr and exits with status 2; so does a malformed command line
(argparse's errors, without its usage text: the line ends with ``(see fastelbo fit --help)``, the
command's help) and running out of memory. Ctrl-C exits with status 130. ``fastelbo --version``
prints the version.
"""

from __future__ import annotations

import argparse
import os
import sys

from fastelbo.cli._demo import add_demo_parser
from fastelbo.cli._errors import CommandLineError
from fastelbo.cli._fit import add_fit_parser
from fastelbo.cli._info import add_info_parser

__all__ = ["CommandLineError", "build_parser", "main"]


class _OneLineErrorParser(argparse.ArgumentParser):
    """argparse's parser whose errors are the command line's one line, ``fastelbo: error: <what>
    (see <command> --help)``, status 2, instead of the usage text and the error (its subcommands'
    parsers are of this class too: argparse makes them of their parent's)."""

    def error(self, message):
        self.exit(2, f"fastelbo: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    """The parser of every command; each command's ``run`` function is its ``args.run``."""
    parser = _OneLineErrorParser(
        prog="fastelbo",
        description="Fast EM for mixture and factor models, with the ELBO's entropy decomposition.",
    )
    parser.add_argument("--version", action="version", version=f"fastelbo {_version()}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_fit_parser(commands)
    add_demo_parser(commands)
    add_info_parser(commands)
    return parser


def _version():
    from fastelbo import __version__

    return __version__


def main(argv=None) -> int:
    """Run the command line ``argv`` (default: ``sys.argv[1:]``) and return its exit status."""
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:  # as parse_args says it, from the command's parser: its --help is the hint
        getattr(args, "command_parser", parser).error(f"unrecognized arguments: {' '.join(unknown)}")
    try:
        return args.run(args)
    except CommandLineError as error:
        print(f"fastelbo: error: {error}", file=sys.stderr)
        return 2
    except MemoryError:
        print(
            "fastelbo: error: out of memory (try --n-samples, --dtype float32 or fewer components)",
            file=sys.stderr,
        )
        return 2
    except KeyboardInterrupt:
        print("fastelbo: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader of stdout went away (`fastelbo fit ... | head`): the output files are written
        # before the report, so nothing is lost; stop quietly, as a shell tool does.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
