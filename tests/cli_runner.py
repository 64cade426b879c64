"""Run the ``fastelbo`` command in process, as the command-line tests do."""

from __future__ import annotations

from fastelbo.cli import main


def run_cli(capsys, *args):
    """``(exit status, stdout, stderr)`` of ``fastelbo ARGS``; argparse's exits (usage errors,
    ``--version``) become the status they exit with."""
    capsys.readouterr()
    try:
        code = main([str(arg) for arg in args])
    except SystemExit as exit_:
        code = exit_.code
    out, err = capsys.readouterr()
    return code, out, err
