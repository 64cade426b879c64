"""The one error the command line reports: a problem with what the user asked for."""

from __future__ import annotations


class CommandLineError(Exception):
    """A problem with the command's input, options or output paths.

    :func:`fastelbo.cli.main` prints its message as the single line ``fastelbo: error: <message>``
    on stderr and exits with status 2 (argparse's status for a bad command line), never with a
    traceback.
    """
