"""A paired run (``--pair REF``): the two function instances serve two trees, this one and git
REF's ``functions/``, side by side in one run. Locust's users are spread evenly over the
instances, so both trees take the same calls at the same moments on the same machine, beside the
same emulator. On this machine its speed drifts by up to 40% within an hour, so runs made minutes
apart cannot tell a change of a few percent; the two halves of one run can.

The page then compares, per tree: the answers of the last phase (the goal's), and the
function's CPU per call over the whole run (each instance's processes, over the calls it
answered). The emulator and Locust serve both trees at once and are not split."""

from __future__ import annotations

import io
import subprocess
import tarfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from loadtests.report import Row, split_phases

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Side:
    """One tree of a paired run: what it is, and its ``functions`` directory."""

    label: str
    functions: Path


def _git(*args: str) -> str:
    out = subprocess.run(  # noqa: S603 - fixed argv
        ["git", *args],  # noqa: S607 - git from PATH, as the Makefile's
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    )
    return out.stdout.strip()


def this_tree() -> str:
    """This tree's label: its commit, and whether it has changes beyond it."""
    dirty = _git("status", "--porcelain", "--", "functions")
    return f"this tree ({_git('rev-parse', '--short', 'HEAD')}{' + changes' if dirty else ''})"


def export(ref: str, into: Path) -> tuple[str, Path]:
    """``ref``'s ``functions/`` written under ``into`` (``git archive``: no worktree, no git
    state left behind); (its label, the directory). A bad ref raises ``SystemExit``."""
    try:
        sha = _git("rev-parse", "--short", "--verify", f"{ref}^{{commit}}")
    except subprocess.CalledProcessError:
        raise SystemExit(f"--pair: {ref!r} is not a commit of this repository") from None
    into.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(  # noqa: S603 - fixed argv
        ["git", "archive", "--format=tar", sha, "functions"],  # noqa: S607 - as above
        cwd=ROOT,
        check=True,
        capture_output=True,
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    return f"{ref} ({sha})", into / "functions"


def markdown(
    rows: Sequence[Row],
    phases: Sequence[Sequence[float]],
    start: float,
    served: Sequence[tuple[Side, str]],
    cpu_s: Mapping[str, float],
) -> list[str]:
    """The page's section: per side (``served``: each side and the URL of its instance), the
    answers of its calls in the last of ``phases`` (``report.split_phases``) and the function's
    CPU per call over the run (``cpu_s``: seconds by instance URL)."""
    lines = [
        "## Paired: two trees side by side",
        "",
        "Each instance served one tree; Locust gave each new user the next instance, so both"
        " took the same calls at the same moments. CPU per call: the instance's processes over"
        " the whole run, divided by the calls it answered (the emulator and Locust, shared, are"
        " not split).",
        "",
        "| instance serves | calls (run) | function CPU per call, ms | last phase: calls"
        " | p50 ms | p95 ms | p99 ms | not OK |",
        "|---|---|---|---|---|---|---|---|",
    ]
    figures = []
    for side, url in served:
        own = [r for r in rows if r.host == url]
        last = split_phases(own, phases, start)[-1]
        per_call = cpu_s.get(url, 0.0) * 1000 / max(len(own), 1)
        figures.append((per_call, last.p50, last.p95, last.p99))
        lines.append(
            f"| {side.label} | {len(own)} | {per_call:.2f} | {last.answers}"
            f" | {last.p50:.0f} | {last.p95:.0f} | {last.p99:.0f}"
            f" | {last.answers - last.kinds['OK']} |"
        )
    if len(figures) == 2 and all(figures[0]):
        ratio = [b / a for a, b in zip(figures[0], figures[1], strict=True)]
        lines.append(
            f"| second / first | | {ratio[0]:.2f}x | | {ratio[1]:.2f}x | {ratio[2]:.2f}x"
            f" | {ratio[3]:.2f}x | |"
        )
    return lines
