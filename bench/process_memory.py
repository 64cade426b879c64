"""This process's memory as Linux reports it: a ``/proc/self/status`` field, and the reset of the
peak-RSS mark (``VmHWM``) so that a later peak is that of what ran after the reset."""

from __future__ import annotations


def status_kib(field: str) -> int:
    """``field`` of ``/proc/self/status`` (``VmRSS``, ``VmHWM``, ...) in KiB."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def reset_peak_rss() -> None:
    """Resets the peak-RSS mark to the current RSS; raises OSError where the kernel does not allow it."""
    with open("/proc/self/clear_refs", "w") as clear_refs:
        clear_refs.write("5")
