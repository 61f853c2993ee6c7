"""Where the served workers' CPU goes: py-spy samples of the thread that holds the GIL.

``sampler.py`` samples every request thread's stack on the wall clock: it answers "where does a
call wait". It cannot tell a thread waiting for the GIL, for gRPC or for a lock from one that
computes. ``py-spy record --gil`` samples only the thread holding the GIL, so its samples are
the workers' Python CPU. ``make load ... GIL_PROFILE=40`` (``--gil-profile 40``) records 40 s
of each worker during the last phase, starting a third of the way in, and the run's page gets
the top frames. The raw files (py-spy's collapsed stacks, one line per distinct stack and its
sample count) stay in the run's directory under ``.tools/load/``.

Two recordings compare from the command line::

    .venv/bin/python -m loadtests.gil_profile .tools/load/RUN-A/gil .tools/load/RUN-B/gil

(``docs/benchmarks/gil/`` keeps two recordings, gzipped.)

On Linux py-spy needs ptrace rights over the workers: as root, or with
``kernel.yama.ptrace_scope`` 0 for a child of the same user.
"""

from __future__ import annotations

import argparse
import gzip
import subprocess
import sys
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PY_SPY = ROOT / ".venv" / "bin" / "py-spy"
OURS = frozenset({"main.py"} | {p.parent.name for p in (ROOT / "functions").glob("*/__init__.py")})
"""The first component of our frames' paths (py-spy shows a path relative to its sys.path
entry: ``stores/firestore.py``, ``main.py``; a library's is ``grpc/_channel.py``)."""


def record(pids: Iterable[int], seconds: int, out: Path, rate: int = 100) -> list[Path]:
    """Sample each of ``pids`` for ``seconds`` at ``rate`` Hz, all at once; the raw files
    written (a worker py-spy could not attach to has none: its error is in ``*.log``)."""
    out.mkdir(parents=True, exist_ok=True)
    running = []
    for pid in pids:
        raw, log = out / f"gil-{pid}.txt", out / f"gil-{pid}.log"
        cmd = [str(PY_SPY), "record", "-p", str(pid), "-d", str(seconds), "-r", str(rate)]
        cmd += ["--gil", "--nonblocking", "-f", "raw", "-o", str(raw)]
        with open(log, "w") as f:
            running.append((raw, subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT)))  # noqa: S603
    for _raw, proc in running:
        proc.wait(timeout=seconds + 60)
    return [raw for raw, _ in running if raw.is_file() and raw.stat().st_size > 0]


def frame(raw: str) -> tuple[str, bool]:
    """``(function (file.py), is ours)`` for one py-spy frame ``function (path:line)``."""
    name, _, where = raw.partition(" (")
    path = where.rsplit(":", 1)[0].rstrip(")")
    ours = path.split("/", 1)[0] in OURS
    return f"{name} ({path.rsplit('/', 1)[-1]})", ours


@dataclass
class Profile:
    """Samples summed over one or more raw files."""

    samples: int = 0
    inclusive: Counter[str] = field(default_factory=Counter)
    """Samples with the frame anywhere on the stack (counted once per stack)."""
    leaf: Counter[str] = field(default_factory=Counter)
    ours: set[str] = field(default_factory=set)

    def share(self, name: str) -> float:
        """The share of samples with ``name`` on the stack."""
        return self.inclusive[name] / self.samples if self.samples else 0.0


def load(files: Sequence[Path]) -> Profile:
    """Read py-spy's raw (collapsed) output: ``frame;frame;...;leaf count`` per line (files
    ending in ``.gz`` are gzipped)."""
    prof = Profile()
    for path in files:
        text = gzip.decompress(path.read_bytes()).decode() if path.suffix == ".gz" else None
        for line in (text if text is not None else path.read_text()).splitlines():
            stack, _, count = line.rpartition(" ")
            if not stack or not count.isdigit():
                continue
            n = int(count)
            prof.samples += n
            names = [frame(f) for f in stack.split(";")]
            for name in {nm for nm, _ in names}:
                prof.inclusive[name] += n
            prof.ours.update(nm for nm, ours in names if ours)
            prof.leaf[names[-1][0]] += n
    return prof


def markdown(prof: Profile, seconds: int, top: int = 15) -> list[str]:
    """The run page's section: our functions by inclusive share, and the busiest leaves."""
    if not prof.samples:
        return []
    ours = [(n, c) for n, c in prof.inclusive.most_common() if n in prof.ours][:top]
    leaves = prof.leaf.most_common(top)
    lines = [
        "## Where the workers' CPU goes (py-spy, samples of the thread holding the GIL)",
        "",
        f"{prof.samples} samples"
        + (f", {seconds} s of every worker at 100 Hz during the last phase" if seconds else "")
        + " (`loadtests/gil_profile.py`). Unlike the wall-clock samples, a thread waiting for"
        " Firestore, a lock or the GIL is not counted: this is where Python computes.",
        "",
        "| our function (inclusive) | share | | innermost frame | share |",
        "|---|---|---|---|---|",
    ]
    for i in range(max(len(ours), len(leaves))):
        left = f"`{ours[i][0]}` | {ours[i][1] / prof.samples:.1%}" if i < len(ours) else " | "
        right = (
            f"`{leaves[i][0]}` | {leaves[i][1] / prof.samples:.1%}" if i < len(leaves) else " | "
        )
        lines.append(f"| {left} | | {right} |")
    return lines


def compare(before: Profile, after: Profile, top: int = 25) -> list[str]:
    """The frames that moved most between two recordings, by inclusive share."""
    names = set(before.inclusive) | set(after.inclusive)
    moved = sorted(names, key=lambda n: (-abs(after.share(n) - before.share(n)), n))[:top]
    lines = [
        f"| frame (inclusive share) | before ({before.samples} samples) | after ({after.samples}) |",
        "|---|---|---|",
    ]
    lines += [f"| `{n}` | {before.share(n):.1%} | {after.share(n):.1%} |" for n in moved]
    return lines


def main(argv: list[str] | None = None) -> int:
    """Print one recording's top frames, or how two recordings differ."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("dirs", nargs="+", type=Path, help="a recording's directory (two: compare)")
    args = p.parse_args(argv)
    profiles = [load(sorted(d.glob("*.txt")) + sorted(d.glob("*.txt.gz"))) for d in args.dirs[:2]]
    if any(not pr.samples for pr in profiles):
        print("gil_profile: no samples in " + ", ".join(map(str, args.dirs)), file=sys.stderr)
        return 2
    if len(profiles) == 1:
        print("\n".join(markdown(profiles[0], seconds=0)))
    else:
        print("\n".join(compare(profiles[0], profiles[1])))
    return 0


if __name__ == "__main__":
    sys.exit(main())
