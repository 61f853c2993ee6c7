"""A wall-clock sampling profiler for the served workers (``LOADTEST_SAMPLE_DIR``): every
``interval`` seconds a daemon thread reads every thread's stack (``sys._current_frames``) and,
for the threads inside a request (a frame of ``functions/`` on the stack), counts

- the deepest frame of ours (``functions/``): where our code is, or what it waits on;
- the innermost frame (the leaf): what the thread is doing at that instant (a Firestore call
  waiting on gRPC, JSON encoding, a lock...).

Each worker writes ``sample-<pid>.json`` every few seconds; ``merge`` adds them up. It answers
"where does a call's time go" (the issue's "profile what is ours") at a few % of a core.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from types import FrameType

OURS = str(Path(__file__).resolve().parents[1] / "functions") + os.sep


def _where(frame: FrameType) -> str:
    code = frame.f_code
    path = code.co_filename
    if path.startswith(OURS):
        path = path[len(OURS) :]
    else:
        parts = path.split("site-packages" + os.sep)
        path = parts[-1] if len(parts) > 1 else os.path.basename(path)
    return f"{path}:{code.co_name}"


class Sampler:
    """See the module docstring; ``start`` once per process (after gunicorn's fork)."""

    def __init__(self, directory: str, interval: float = 0.05) -> None:
        self.dir = Path(directory)
        self.interval = interval
        self.ours: Counter[str] = Counter()
        self.leaf: Counter[str] = Counter()
        self.samples = 0
        self.pid = 0

    def ensure_started(self) -> None:
        """Start the sampling thread in this process if it is not running yet."""
        if self.pid != os.getpid():
            self.pid = os.getpid()
            threading.Thread(target=self._loop, name="loadtest-sampler", daemon=True).start()

    def _loop(self) -> None:
        me = threading.get_ident()
        last_flush = time.monotonic()
        while True:
            time.sleep(self.interval)
            for ident, frame in sys._current_frames().items():  # noqa: SLF001 - the profiler's source
                if ident != me:
                    self._count(frame)
            if time.monotonic() - last_flush > 5:
                self.flush()
                last_flush = time.monotonic()

    def _count(self, leaf: FrameType) -> None:
        ours = None
        f: FrameType | None = leaf
        while f is not None:
            if f.f_code.co_filename.startswith(OURS):
                ours = f
                break
            f = f.f_back
        if ours is None:
            return
        self.samples += 1
        self.ours[_where(ours)] += 1
        self.leaf[_where(leaf)] += 1

    def flush(self) -> None:
        """Write this process's counts."""
        self.dir.mkdir(parents=True, exist_ok=True)
        data = {"samples": self.samples, "ours": self.ours, "leaf": self.leaf}
        tmp = self.dir / f".sample-{os.getpid()}.tmp"
        tmp.write_text(json.dumps(data))
        tmp.replace(self.dir / f"sample-{os.getpid()}.json")


def merge(
    directory: str | Path, top: int = 15
) -> tuple[int, list[tuple[str, int]], list[tuple[str, int]]]:
    """(samples, top deepest frames of ours, top leaf frames) over every worker."""
    samples = 0
    ours: Counter[str] = Counter()
    leaf: Counter[str] = Counter()
    for f in Path(directory).glob("sample-*.json"):
        d = json.loads(f.read_text())
        samples += d["samples"]
        ours.update(d["ours"])
        leaf.update(d["leaf"])
    return samples, ours.most_common(top), leaf.most_common(top)


def markdown(directory: str | Path) -> list[str]:
    """The profile as two Markdown tables (shares of in-request thread samples)."""
    n, ours, leaf = merge(directory)
    if not n:
        return []
    out = [
        "## Where a call's time goes (wall-clock samples of request threads)",
        "",
        f"{n} samples of threads inside a request, every 50 ms in each worker "
        "(`loadtests/sampler.py`). Deepest frame of ours (`functions/`), and the innermost frame:",
        "",
        "| our frame | share | | innermost frame | share |",
        "|---|---|---|---|---|",
    ]
    for i in range(max(len(ours), len(leaf))):
        a = f"`{ours[i][0]}` | {ours[i][1] / n:.1%}" if i < len(ours) else " | "
        b = f"`{leaf[i][0]}` | {leaf[i][1] / n:.1%}" if i < len(leaf) else " | "
        out.append(f"| {a} | | {b} |")
    return out
