"""This process's resident memory, split as Linux splits it, sampled by a thread every ~20 ms and
attributed to named phases.

``RssAnon`` is memory the process allocated (heap, NumPy arrays, C++ buffers): what an out-of-core
fit must keep small. ``RssFile`` is file pages mapped into the process (a memmap's pages as they are
read, shared libraries): the kernel drops them under pressure, so they are reported apart.
``VmHWM`` (peak RSS) mixes the two, which is why this samples instead.
"""

from __future__ import annotations

import contextlib
import threading
import time

FIELDS = ("RssAnon", "RssFile")


def rss_mib() -> dict:
    """``{"RssAnon": MiB, "RssFile": MiB}`` of this process now (``/proc/self/status``)."""
    values = {}
    with open("/proc/self/status") as status:
        for line in status:
            key, _, rest = line.partition(":")
            if key in FIELDS:
                values[key] = int(rest.split()[0]) / 1024.0
    return values


class RssSampler:
    """Samples :func:`rss_mib` every ``interval`` seconds in a daemon thread; :meth:`phase` names
    what runs, and :meth:`summary` gives the peak of each field overall and per phase.

    Samples outside any named phase (the first, the last, and those between phases) count under
    ``"start"``. A sample catches a peak only if it lasts about ``interval``; a shorter transient (one block's
    temporaries) can be missed, so peaks are lower bounds to within what one ``interval`` allocates.
    """

    def __init__(self, interval=0.02):
        self.interval = interval
        self.current = "start"
        self.peaks = {}  # phase -> {field: peak}
        self.order = []
        self.n_samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self):
        self._record()
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self._record()

    def _record(self):
        values = rss_mib()
        phase = self.current
        if phase not in self.peaks:
            self.peaks[phase] = dict(values)
            self.order.append(phase)
        else:
            peaks = self.peaks[phase]
            for key, value in values.items():
                peaks[key] = max(peaks[key], value)
        self.n_samples += 1

    def _run(self):
        while not self._stop.wait(self.interval):
            self._record()

    @contextlib.contextmanager
    def phase(self, name):
        """Attribute the samples taken inside the block to ``name`` (sampled once on entry and exit
        as well, so a short phase has a value)."""
        outer, self.current = self.current, name
        self._record()
        try:
            yield
        finally:
            self._record()
            self.current = outer

    def summary(self) -> dict:
        """Peaks overall and per phase (in the order the phases first ran), in MiB."""
        overall = {key: max(peaks[key] for peaks in self.peaks.values()) for key in FIELDS}
        return {
            "interval_s": self.interval,
            "n_samples": self.n_samples,
            "peak_mib": overall,
            "phase_peak_mib": {name: self.peaks[name] for name in self.order},
        }


def wrap_phases(sampler: RssSampler, owner, names: dict, clock: list | None = None):
    """Run each callable ``owner.<name>`` (a method, or a module's function looked up by name when
    called) inside ``sampler.phase(label)``, ``names`` mapping name to label; appends
    ``(label, seconds)`` of every call to ``clock``. The wrapped callables compute what they did."""

    def wrapped(label, original):
        def call(*args, **kwargs):
            began = time.perf_counter()
            with sampler.phase(label):
                try:
                    return original(*args, **kwargs)
                finally:
                    if clock is not None:
                        clock.append((label, time.perf_counter() - began))

        return call

    for name, label in names.items():
        setattr(owner, name, wrapped(label, getattr(owner, name)))
