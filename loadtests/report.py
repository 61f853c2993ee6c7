"""Figures of a load run from its rows (one per answer), the Markdown summary and the knee chart.

Percentiles are exact (nearest rank over every answer of the phase), not Locust's rounded ones.
"""

from __future__ import annotations

import csv
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from loadtests.counting import Cost

READ_USD_PER_100K = 0.06
WRITE_USD_PER_100K = 0.18
PRICES = (
    "Firestore list prices used: $0.06 per 100,000 document reads and $0.18 per 100,000 document"
    " writes (Firestore price list, us-central1 / nam5 standard; free tier ignored)"
)


@dataclass
class Row:
    """One answer."""

    t: float
    kind: str
    ms: float
    status: str
    host: str = ""
    """The function instance that answered (``paired.py`` tells two trees apart by it)."""


@dataclass
class PhaseStats:
    """One phase (or step) of a run."""

    seconds: float
    offered_rps: float
    answers: int = 0
    achieved_rps: float = 0.0
    p50: float = 0.0
    p95: float = 0.0
    p99: float = 0.0
    kinds: Counter[str] = field(default_factory=Counter)

    @property
    def error_rate(self) -> float:
        """Answers that are neither OK nor an expected refusal, as a fraction."""
        bad = sum(n for k, n in self.kinds.items() if k not in ("OK", "PERMISSION_DENIED"))
        return bad / self.answers if self.answers else 0.0


def read_rows(path: Path) -> list[Row]:
    """The rows CSV of a run."""
    with open(path, newline="") as f:
        return [
            Row(float(r["t"]), r["kind"], float(r["ms"]), r["status"], r.get("host") or "")
            for r in csv.DictReader(f)
        ]


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of sorted ``values``."""
    if not values:
        return 0.0
    return values[min(len(values) - 1, max(0, math.ceil(q * len(values)) - 1))]


def stats(rows: Sequence[Row], seconds: float, offered: float, skip_s: float = 0.0) -> PhaseStats:
    """Figures of ``rows`` (the calls started in one phase); ``skip_s``: warm-up not counted."""
    t0 = min((r.t for r in rows), default=0.0)
    kept = [r for r in rows if r.t >= t0 + skip_s]
    ms = sorted(r.ms for r in kept)
    s = PhaseStats(seconds, offered, len(kept))
    s.achieved_rps = len(kept) / max(seconds - skip_s, 1e-9)
    s.p50, s.p95, s.p99 = (percentile(ms, q) for q in (0.50, 0.95, 0.99))
    s.kinds = Counter(r.status for r in kept)
    return s


def split_phases(
    rows: Sequence[Row], phases: Sequence[Sequence[float]], start: float, skip_s: float = 0.0
) -> list[PhaseStats]:
    """Rows grouped by the phase their call started in (``start``: the run's first second)."""
    out = []
    t = start
    for seconds, rps in phases:
        inside = [r for r in rows if t <= r.t < t + seconds]
        out.append(stats(inside, seconds, rps, skip_s))
        t += seconds
    return out


def phase_table(phases: Sequence[PhaseStats]) -> str:
    """The Markdown table of a run's phases."""
    lines = [
        "| phase | offered rps | achieved rps | answers | p50 ms | p95 ms | p99 ms | errors | answers by kind |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for i, p in enumerate(phases, 1):
        kinds = ", ".join(f"{k} {n}" for k, n in p.kinds.most_common())
        lines.append(
            f"| {i} ({p.seconds:.0f} s) | {p.offered_rps:g} | {p.achieved_rps:.1f} | {p.answers} | "
            f"{p.p50:.0f} | {p.p95:.0f} | {p.p99:.0f} | {p.error_rate:.2%} | {kinds} |"
        )
    return "\n".join(lines)


def cost_section(cost: Cost) -> str:
    """Reads, writes and round trips per call, the list-price cost, the hottest documents."""
    rts = {k[3:]: v for k, v in cost.ops.items() if k.startswith("rt.")}
    per_rt = ", ".join(f"{k} {v / max(cost.calls, 1):.2f}" for k, v in sorted(rts.items()))
    usd = cost.usd_per_million(READ_USD_PER_100K, WRITE_USD_PER_100K)
    commits = cost.ops.get("rpc.Commit", 0)
    asked = sum(v for k, v in rts.items() if k in ("commit", "increment", "compare_and_set"))
    lines = [
        f"Counted inside the served workers (`loadtests/counting.py`) over {cost.calls} calls:",
        f"- per call: **{cost.per_call('reads'):.2f} document reads, {cost.per_call('writes'):.2f}"
        f" document writes**, {sum(rts.values()) / max(cost.calls, 1):.2f} round trips ({per_rt})",
        *(
            [
                f"- Commit RPCs really sent: {commits / max(cost.calls, 1):.2f} per call, for "
                f"{asked / max(cost.calls, 1):.2f} commits and increments asked "
                "(`stores.group_commit` sends those asked at the same time together)"
            ]
            if commits
            else []
        ),
        f"- calls per worker process (record commits): {cost.spread()}"
        f" ({' / '.join(str(n) for n in cost.per_worker)})",
        f"- list-price cost per million enrichments: **${usd:,.2f}** "
        f"(reads ${1e6 * cost.per_call('reads') * READ_USD_PER_100K / 1e5:,.2f}, writes "
        f"${1e6 * cost.per_call('writes') * WRITE_USD_PER_100K / 1e5:,.2f}). {PRICES}.",
        "",
        "Busiest single document of each kind (Firestore sustains about 1 write/s per document):",
        "",
        "| kind | document | writes/s sustained (busiest 60 s) | peak writes in 1 s | writes in run |",
        "|---|---|---|---|---|",
    ]
    for kind, r in sorted(cost.by_kind.items(), key=lambda kv: -kv[1].sustained_per_s):
        lines.append(
            f"| {kind} | `{r.path}` | {r.sustained_per_s:.2f} | {r.peak_per_s} | {r.total} |"
        )
    return "\n".join(lines)


def knee_chart(steps: Sequence[PhaseStats], path: Path, title: str) -> None:
    """Offered vs achieved rate and p50/p95/p99 per step, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    offered = [s.offered_rps for s in steps]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    ax1.plot(offered, offered, "--", color="grey", label="offered")
    ax1.plot(offered, [s.achieved_rps for s in steps], "o-", label="achieved")
    ax1.set_xlabel("offered rps")
    ax1.set_ylabel("answers per second")
    ax1.legend()
    ax1.grid(alpha=0.3)
    for q, style in (("p50", "o-"), ("p95", "s-"), ("p99", "^-")):
        ax2.plot(offered, [getattr(s, q) for s in steps], style, label=q)
    ax2.set_yscale("log")
    ax2.set_xlabel("offered rps")
    ax2.set_ylabel("latency ms (log)")
    ax2.grid(alpha=0.3, which="both")
    ax2.legend()
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def knee(steps: Sequence[PhaseStats], p95_ms: float, max_errors: float) -> PhaseStats | None:
    """The first step that breaks: p95 over ``p95_ms``, errors over ``max_errors``, or fewer
    than 95% of the offered calls answered."""
    for s in steps:
        if s.p95 > p95_ms or s.error_rate > max_errors or s.achieved_rps < 0.95 * s.offered_rps:
            return s
    return None


def fmt_json(value: Any) -> str:
    """A compact rendering of a small mapping for the summary."""
    if isinstance(value, dict):
        return ", ".join(f"{k} {v}" for k, v in value.items()) or "none"
    return str(value)
