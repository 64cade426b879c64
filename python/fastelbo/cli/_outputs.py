"""The output files of ``fastelbo fit`` (``--json``, ``--save``, ``--plot``, ``--labels``): checked
before any work, so that a fit never runs only to find it cannot write its results, and written
with one-line errors."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from fastelbo.cli._errors import CommandLineError

_INSTALL_MATPLOTLIB = "--plot needs matplotlib: pip install matplotlib"


def check_outputs(outputs: dict, data_source: str | None) -> None:
    """Check every output path of ``outputs`` (``{option: Path or None}``) before the fit.

    Raises
    ------
    CommandLineError
        If a path is a folder, its folder does not exist, it cannot be written, two options name
        the same file, or it is the DATA file itself.
    """
    given = {option: path for option, path in outputs.items() if path is not None}
    seen = {}
    data_file = _identity(Path(data_source)) if data_source is not None else None
    for option, path in given.items():
        identity = _identity(path)
        if identity in seen:
            raise CommandLineError(
                f"{seen[identity]} and {option} both name {str(path)!r}; give each its own file"
            )
        seen[identity] = option
        if data_file is not None and identity == data_file:
            raise CommandLineError(f"{option} {str(path)!r} is DATA itself; it would be overwritten")
        _check_writable(option, path)


def _identity(path):
    """What makes two paths one file: the device and inode of an existing file, else the absolute
    path (an output not written yet)."""
    try:
        info = path.stat()
    except OSError:
        return os.path.abspath(path)
    return (info.st_dev, info.st_ino)


def _check_writable(option, path):
    if path.is_dir():
        raise CommandLineError(f"{option}: cannot write {str(path)!r}: it is a folder")
    folder = path.parent
    if not folder.is_dir():
        reason = "is not a folder" if folder.exists() else "does not exist"
        raise CommandLineError(f"{option}: cannot write {str(path)!r}: folder {str(folder)!r} {reason}")
    existed = path.exists()
    if existed and not stat.S_ISREG(path.stat().st_mode):
        # A device or pipe (/dev/stdout, say): opening one to probe it could block or consume it.
        if not os.access(path, os.W_OK):
            raise CommandLineError(f"{option}: cannot write {str(path)!r}: permission denied")
        return
    try:  # appending nothing changes no file; a file created to probe the folder is removed again
        with open(path, "ab"):
            pass
    except OSError as error:
        raise CommandLineError(f"{option}: cannot write {str(path)!r}: {error.strerror or error}") from None
    if not existed:
        path.unlink()


def check_plot_format(path: Path) -> None:
    """Fail before the fit when matplotlib is missing or cannot write ``path``'s format.

    Raises
    ------
    CommandLineError
        If matplotlib is not installed, ``path`` has no suffix, or matplotlib cannot write the
        format its suffix names (the supported ones are listed).
    """
    try:
        import matplotlib
    except ImportError:
        raise CommandLineError(_INSTALL_MATPLOTLIB) from None
    matplotlib.use("Agg")  # a file is written; no window opens
    from io import BytesIO

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(1, 1))
    formats = sorted(FigureCanvasAgg(figure).get_supported_filetypes())
    suffix = path.suffix.lower().lstrip(".")
    if suffix not in formats:
        what = f"a .{suffix} file" if suffix else f"{str(path)!r} (no suffix)"
        raise CommandLineError(
            f"--plot cannot write {what}; name a .png, .pdf or .svg file (matplotlib writes "
            f".{', .'.join(formats)})"
        )
    figure.text(0.5, 0.5, "F")
    try:  # some formats need more than matplotlib (Pillow, LaTeX): try one
        figure.savefig(BytesIO(), format=suffix)
    except Exception as error:  # noqa: BLE001 - whatever the writer raises, it cannot write this format
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise CommandLineError(
            f"--plot cannot write a .{suffix} file here: {reason}; use .png, .pdf or .svg"
        ) from None


def write_output(option: str, path: Path, write) -> None:
    """``write(path)``, with an OSError (a full disk, say) as a one-line error."""
    try:
        write(path)
    except OSError as error:
        raise CommandLineError(f"{option}: cannot write {str(path)!r}: {error.strerror or error}") from None
