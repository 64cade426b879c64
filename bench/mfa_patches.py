"""The mixture-of-factor-analysers group of ``report.py`` (``mfa_report.py``) for any size.

FastMFA against the NumPy MFA EM (checked: equal log-likelihoods after the same iterations from the
same start) and FastGMM with full covariances and the same K, per EM iteration on 8 x 8 grey image
patches, then a whole FastMFA fit. Prints the report's Markdown section and exits with status 1 if
the check fails. Run from the repository root::

    python bench/mfa_patches.py --n-samples 100000 --components 32 --factors 4
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import mfa_report  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--n-samples", type=int, default=mfa_report.ALL_PATCHES, help="patches (a random subset; default all)"
    )
    parser.add_argument("--components", type=int, default=64)
    parser.add_argument("--factors", type=int, default=8)
    parser.add_argument("--fit-max-iter", type=int, default=100, help="max_iter of the whole fit")
    parser.add_argument("--repeats", type=int, default=3, help="best-of repetitions of every timing")
    args = parser.parse_args(argv)

    case = mfa_report.MFACase(args.n_samples, args.components, args.factors, fit_max_iter=args.fit_max_iter)
    rows = mfa_report.measure([case], args.repeats, args.repeats, lambda line: print(line, file=sys.stderr))
    print("\n".join(mfa_report.markdown(rows, args.repeats, args.repeats)))
    return 1 if mfa_report.failed_checks(rows) else 0


if __name__ == "__main__":
    sys.exit(main())
