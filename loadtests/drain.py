"""Where a burst's time goes: the machine's CPU through the second, by process.

In the ``burst`` arrival every user fires at each whole second of the wall clock, so each second
starts with a queue of N calls' worth of CPU work that the machine's cores drain. The harness
samples ``/proc`` every 10 ms during the profile's last phase (the machine's busy time and the
CPU time of the function's gunicorn processes, the Firestore emulator, Locust and the harness
itself) and folds the samples by their position in the wall-clock second: the page shows how
busy the cores were at each moment after the burst, and who used them.

From the same samples comes a floor for the burst's latency. If the calls cost the machine C
core-seconds each and it has K cores, no schedule answers the q-th of N simultaneous calls less
than ``ceil(q N) C / K`` after they were sent: the first q N answers need that much CPU done.
C counts the function, the emulator and Locust (the work of a call, as this machine does it);
the harness (its sampling, the roll-up loop, and the loopback source fakes, which a run asking
for LinkedIn alone never calls) and the other processes are shown, not charged to the calls. The floor
assumes every call costs the average, so it is an estimate, not a proof, and it says what the
p95 target asks of C.
"""

from __future__ import annotations

import itertools
import math
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from loadtests.stack import stat_busy_seconds, stat_cpu_seconds

GROUPS = ("function", "emulator", "locust", "harness")
"""The processes sampled; the calls' work is the first three."""
CALLS = GROUPS[:3]
BINS = 20
"""50 ms bins over the second."""
INTERVAL_S = 0.01
"""Seconds between two readings of ``/proc``."""


@dataclass(frozen=True)
class Sample:
    """One reading: wall-clock time, the machine's busy CPU seconds since boot (all cores) and
    each group's CPU seconds so far."""

    t: float
    busy: float
    groups: tuple[float, ...]


@dataclass(frozen=True)
class Fold:
    """Samples folded by position in the second: per bin, the wall time covered and the CPU
    seconds spent (the machine's and each group's)."""

    cores: int
    wall: tuple[float, ...]
    busy: tuple[float, ...]
    groups: dict[str, tuple[float, ...]]

    def share(self, cpu: Sequence[float]) -> list[float]:
        """``cpu`` per bin as a share of the machine's cores (0..1)."""
        return [c / (w * self.cores) if w else 0.0 for c, w in zip(cpu, self.wall, strict=True)]


def fold(samples: Sequence[Sample], cores: int, bins: int = BINS) -> Fold:
    """Each interval between consecutive samples goes to the bin of its midpoint."""
    wall = [0.0] * bins
    busy = [0.0] * bins
    groups = [[0.0] * bins for _ in GROUPS]
    for a, b in itertools.pairwise(samples):
        dt = b.t - a.t
        if dt <= 0:
            continue
        i = min(bins - 1, int(((a.t + b.t) / 2 % 1.0) * bins))
        wall[i] += dt
        busy[i] += b.busy - a.busy
        for g, (x, y) in enumerate(zip(a.groups, b.groups, strict=True)):
            groups[g][i] += y - x
    by_group = {n: tuple(v) for n, v in zip(GROUPS, groups, strict=True)}
    return Fold(cores, tuple(wall), tuple(busy), by_group)


def floor_ms(per_call_ms: float, burst: int, cores: int, q: float = 0.95) -> float:
    """The earliest the q-quantile answer of ``burst`` simultaneous calls can come, when each
    costs the machine ``per_call_ms`` of CPU and ``cores`` cores work on them all the time."""
    return math.ceil(q * burst) * per_call_ms / cores


def busy_while_draining(f: Fold) -> tuple[float, int]:
    """(mean busy share, ms) over the second's opening bins, up to the last bin whose busy share
    is at least half the busiest bin's: how saturated the cores were while the burst drained."""
    shares = f.share(f.busy)
    top = max(shares, default=0.0)
    if top <= 0:
        return 0.0, 0
    last = max(i for i, s in enumerate(shares) if s >= top / 2)
    opening = shares[: last + 1]
    return sum(opening) / len(opening), (last + 1) * 1000 // len(shares)


# -- sampling --------------------------------------------------------------------------------


class ProcFiles:
    """The ``stat`` files a sampler reads, opened once and read with ``pread`` from offset 0
    (``/proc`` writes a file afresh for every read from its start). Read through ``Path``,
    an open, read and close of each file, one reading of eight processes and the machine cost
    223 us of this process's CPU, against 40 us this way: at 100 readings a second, 2.2% of a
    core against 0.4%. The texts are read by ``stack``'s parsers."""

    def __init__(self, pids: dict[str, list[int]]) -> None:
        self.groups = {g: [self._open(f"/proc/{p}/stat") for p in pids[g]] for g in GROUPS}
        self.machine = os.open("/proc/stat", os.O_RDONLY)

    @staticmethod
    def _open(path: str) -> int | None:
        try:
            return os.open(path, os.O_RDONLY)
        except OSError:
            return None

    def cpu(self, fd: int | None) -> float:
        """utime + stime of the process (0 when it is gone)."""
        if fd is None:
            return 0.0
        try:
            return stat_cpu_seconds(os.pread(fd, 4096, 0))
        except OSError:
            return 0.0

    def busy(self) -> float:
        """CPU seconds every core spent busy since boot (its first line is all that is read)."""
        return stat_busy_seconds(os.pread(self.machine, 512, 0))

    def sample(self, now: float) -> Sample:
        """One reading."""
        groups = tuple(sum(self.cpu(fd) for fd in self.groups[g]) for g in GROUPS)
        return Sample(now, self.busy(), groups)

    def close(self) -> None:
        """Close every file."""
        for fd in [self.machine, *itertools.chain.from_iterable(self.groups.values())]:
            if fd is not None:
                os.close(fd)


def sample_for(
    pids: dict[str, list[int]], seconds: float, interval: float = INTERVAL_S
) -> list[Sample]:
    """Read ``/proc`` every ``interval`` s for ``seconds`` s; ``pids`` maps each of ``GROUPS``
    to its processes (a process's CPU includes all its threads; reading a JVM's ``stat`` walks
    them all, which is why the harness's own CPU is on the page)."""
    out: list[Sample] = []
    files = ProcFiles(pids)
    try:
        end = time.time() + seconds
        while (now := time.time()) < end:
            out.append(files.sample(now))
            time.sleep(max(0.0, interval - (time.time() - now)))
    finally:
        files.close()
    return out


class DrainRecording:
    """``sample_for`` in a thread, started a third of the way into the profile's last phase (or
    at once when that phase is shorter than the recording); ``pids`` is called at the start."""

    def __init__(
        self,
        seconds: float,
        begin: float,
        pids: Callable[[], dict[str, list[int]]],
    ) -> None:
        self.samples: list[Sample] = []

        def go() -> None:
            time.sleep(max(0.0, begin - time.time()))
            self.samples = sample_for(pids(), seconds)

        self.thread = threading.Thread(target=go, daemon=True, name="drain-sampler")
        self.thread.start()

    def finish(self) -> list[Sample]:
        """The samples once the recording is done."""
        self.thread.join()
        return self.samples


# -- the page --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Window:
    """The sampled window's calls: how many started in it, their latencies (ms, sorted) and
    each group's CPU per call (ms)."""

    calls: int
    latencies: tuple[float, ...]
    per_call_ms: dict[str, float]

    @property
    def call_ms(self) -> float:
        """The machine's CPU per call: the function, the emulator and Locust."""
        return sum(self.per_call_ms[g] for g in CALLS)

    @property
    def per_locust_cpu(self) -> float | None:
        """The function's and the emulator's CPU per ms of Locust's (None if Locust's is 0).
        Locust does the same work for every call, so its CPU a call moves with the machine's
        speed alone (0.48-0.67 ms within one hour here); this ratio compares runs made at
        different speeds, where the milliseconds do not."""
        locust = self.per_call_ms["locust"]
        if locust <= 0:
            return None
        return (self.per_call_ms["function"] + self.per_call_ms["emulator"]) / locust


def window(samples: Sequence[Sample], starts_and_ms: Sequence[tuple[float, float]]) -> Window:
    """The calls that started between the first and last sample, and the CPU each cost."""
    first, last = samples[0], samples[-1]
    ms = sorted(m for t, m in starts_and_ms if first.t <= t < last.t)
    n = max(len(ms), 1)
    per_call = {g: (last.groups[i] - first.groups[i]) * 1000 / n for i, g in enumerate(GROUPS)}
    other = (last.busy - first.busy) - sum(
        b - a for a, b in zip(first.groups, last.groups, strict=True)
    )
    per_call["other"] = max(0.0, other) * 1000 / n
    return Window(len(ms), tuple(ms), per_call)


def chart(f: Fold, marks: dict[str, float], path: Path, title: str) -> None:
    """The cores' busy share through the second, stacked by process, with the latency marks."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    width = 1000 / len(f.wall)
    edges = [i * width for i in range(len(f.wall) + 1)]
    layers = {g: f.share(f.groups[g]) for g in GROUPS}
    accounted = [sum(v) for v in zip(*layers.values(), strict=True)]
    layers["other"] = [max(0.0, b - a) for b, a in zip(f.share(f.busy), accounted, strict=True)]
    fig, ax = plt.subplots(figsize=(9, 4.2))
    steps = [v + v[-1:] for v in layers.values()]  # each bin drawn over its whole width
    ax.stackplot(edges, *steps, labels=list(layers), step="post", alpha=0.85)
    ax.axhline(1.0, color="black", linewidth=0.8)
    for (label, ms), style in zip(marks.items(), ("--", "-", ":"), strict=False):
        ax.axvline(ms, color="black", linestyle=style, linewidth=1.2)
        ax.text(ms + 6, 1.02, f"{label} {ms:.0f} ms", fontsize=8, rotation=90, va="bottom")
    ax.set_xlim(0, 1000)
    ax.set_ylim(0, 1.35)
    ax.set_xlabel("ms after the whole second (every user fires at the whole second)")
    ax.set_ylabel(f"share of the machine's {f.cores} cores")
    ax.legend(loc="upper right", fontsize=8)
    ax.grid(alpha=0.3)
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def markdown(
    samples: Sequence[Sample],
    starts_and_ms: Sequence[tuple[float, float]],
    burst: int,
    png: Path,
) -> list[str]:
    """The page's section: CPU per call by process, the floor against the measured p95, how
    busy the cores were while each burst drained, and the chart."""
    if len(samples) < 2:
        return ["## Where a burst's time goes", "", "No CPU samples were taken."]
    cores = os.cpu_count() or 1
    f = fold(samples, cores)
    w = window(samples, starts_and_ms)
    from loadtests.report import percentile

    p50, p95 = percentile(w.latencies, 0.5), percentile(w.latencies, 0.95)
    floor = floor_ms(w.call_ms, burst, cores)
    busy, until = busy_while_draining(f)
    seconds = samples[-1].t - samples[0].t
    chart(f, {"p50": p50, "p95": p95, "floor": floor}, png, f"bursts of {burst}: CPU by process")
    per = ", ".join(f"{g} {v:.2f}" for g, v in w.per_call_ms.items())
    lines = [
        "## Where a burst's time goes (`loadtests/drain.py`)",
        "",
        f"`/proc` read every {INTERVAL_S * 1000:.0f} ms for {seconds:.0f} s of the last phase,"
        " folded by position in"
        " the wall-clock second (50 ms bins).",
        "",
        f"- calls started in the window: {w.calls}; their p50 {p50:.0f} / p95 {p95:.0f} ms",
        f"- CPU per call, ms: {per}; **{w.call_ms:.2f}** for the call's work (function,"
        " emulator, Locust)",
        *(
            [
                f"- function and emulator per ms of Locust's CPU: **{ratio:.1f}** (Locust does"
                " the same work for every call: unlike the milliseconds, this compares runs"
                " made while the machine ran at different speeds)"
            ]
            if (ratio := w.per_locust_cpu) is not None
            else []
        ),
        f"- the cores were **{busy:.0%}** busy over the second's first {until} ms",
        f"- floor: the {math.ceil(0.95 * burst)}th of {burst} simultaneous calls needs"
        f" {math.ceil(0.95 * burst)} x {w.call_ms:.2f} ms / {cores} cores = **{floor:.0f} ms**"
        f" of CPU first (measured p95 {p95:.0f} ms); a p95 under 250 ms needs at most"
        f" {250 * cores / math.ceil(0.95 * burst):.2f} ms a call",
        "",
        f"![CPU through the second]({png.name})",
        "",
        "| ms | busy | " + " | ".join(GROUPS) + " |",
        "|---|---|" + "---|" * len(GROUPS),
    ]
    shares = [f.share(f.busy), *(f.share(f.groups[g]) for g in GROUPS)]
    width = 1000 // len(f.wall)
    for i, row in enumerate(zip(*shares, strict=True)):
        lines.append(
            f"| {i * width}-{(i + 1) * width} | " + " | ".join(f"{s:.0%}" for s in row) + " |"
        )
    return lines
