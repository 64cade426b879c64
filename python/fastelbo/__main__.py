"""``python -m fastelbo``: the ``fastelbo`` command line (:mod:`fastelbo.cli`)."""

from __future__ import annotations

import sys

from fastelbo.cli import main

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
