#!/usr/bin/env python3
"""Reports people read: daily, weekly, security and phase, as Markdown and a self-contained HTML
page with PNG charts (matplotlib).

    python scripts/report.py daily    [--start D] [--end D] [--project P] [--out DIR]
    python scripts/report.py weekly   [--start D] [--end D] ...
    python scripts/report.py security [--start D] [--end D] ...
    python scripts/report.py phase    [--project P] [--out DIR]

Periods are UTC days, both ends included. Defaults: daily = yesterday; weekly and security =
the 7 days ending yesterday; phase = the current phase's monitoring window (as ``advance``
reads it). It reads the emulator when FIRESTORE_EMULATOR_HOST is set, otherwise ``--project``
with Application Default Credentials; it only reads.

Where the figures come from (so they match ``getExternalDataAnalytics`` for the same period):
totals, rates, latency, per-source figures, the hourly series and the security figures are
``analytics.admin.build_analytics`` over the same validated query the callable builds
(``usecases.requests.parse_analytics``: granularity ``hour`` for periods up to 7 days, ``day``
beyond); nothing is recomputed another way. What the callable does not answer is read beside
it and labelled: upstream failures per hour (``c.upstreamFailures``; absent counts as 0), refusals by reason and suspicious-activity findings (the audit), the rollout
history (``config/externalDataRollout/history``), and for ``phase`` the current phase's success
metrics from ``rollout_control.health`` (what ``advance`` checks).

Output: ``DIR/<kind>.md``, ``DIR/<kind>.html`` (charts embedded as base64, no external
resources) and ``DIR/<kind>-<chart>.png`` beside them (the Markdown links these). A progress
line goes to stderr while reading. Days run from 1970-01-01 to 9998-12-31 (the callable's
range; a weekly report's week before too); ``--at`` without a zone is UTC. Exit codes: 0
written, 2 usage error, 3 store unreachable, 69 .venv missing, 70 unexpected error.
"""

from __future__ import annotations

import argparse
import base64
import io
import os
import sys
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
import scripts._venv  # noqa: E402, F401 - first: re-executes under .venv; a crash exits 70

sys.path[:0] = [str(ROOT / "functions")]

from analytics.admin import build_analytics  # noqa: E402
from analytics.metrics import num, read_buckets  # noqa: E402
from rollout_control import changes, health, plan  # noqa: E402
from scripts.devkit import cli  # noqa: E402
from stores.base import DocumentStore  # noqa: E402
from stores.errors import StoreError  # noqa: E402
from stores.schema import AUDIT, HISTORY_COLLECTION  # noqa: E402
from usecases.requests import parse_analytics  # noqa: E402

KINDS = ("daily", "weekly", "security", "phase")
REFUSAL_TYPES = ("unauthorized_access", "rate_limit_exceeded", "invalid_request", "unauthenticated")
"""Audit types that are refusals (reported by reason)."""
SUSPICIOUS = "suspicious_activity"
AUDIT_LIMIT_PER_DAY = 20_000
"""Audit entries of one type read per day at most (a report that hits it says so)."""
ENRICH = "enrichCVWithExternalData"
OK, USAGE, UNREACHABLE = 0, 2, 3
FIRST_DAY, LAST_DAY = date(1970, 1, 1), date(9998, 12, 31)
"""The days a report may cover: those ``getExternalDataAnalytics`` accepts (a weekly report
also reads the 7 days before its period, which must be in this range too)."""


def progress(text: str) -> None:
    """One progress line on stderr (overwritten in a terminal)."""
    end = "\r" if sys.stderr.isatty() else "\n"
    print(f"report: {text}".ljust(72), end=end, file=sys.stderr, flush=True)


# -- reading ------------------------------------------------------------------------------------


@dataclass
class Period:
    """UTC days ``start``..``end``, both included."""

    start: date
    end: date

    @property
    def since(self) -> datetime:
        return datetime.combine(self.start, time(0), tzinfo=UTC)

    @property
    def until(self) -> datetime:
        return datetime.combine(self.end, time(0), tzinfo=UTC) + timedelta(days=1)

    @property
    def days(self) -> list[date]:
        return [self.start + timedelta(days=i) for i in range((self.end - self.start).days + 1)]

    @property
    def granularity(self) -> str:
        """What the callable allows: hours up to 7 days."""
        return "hour" if len(self.days) <= 7 else "day"

    def label(self) -> str:
        if self.start == self.end:
            return self.start.isoformat()
        return f"{self.start.isoformat()} to {self.end.isoformat()}"


def analytics_for(store: DocumentStore, period: Period) -> dict[str, Any]:
    """Exactly what ``getExternalDataAnalytics`` answers for the period (same parser, same
    builder)."""
    query = parse_analytics(
        {
            "startDate": period.start.isoformat(),
            "endDate": period.end.isoformat(),
            "granularity": period.granularity,
        }
    )
    return build_analytics(store, query)


def hourly_extras(store: DocumentStore, period: Period) -> dict[str, dict[str, int]]:
    """Per bucket (ISO, as the series' ``bucket``): what the series lacks, read day by day."""
    g = "h" if period.granularity == "hour" else "d"
    out: dict[str, dict[str, int]] = {}
    days = period.days
    for i, day in enumerate(days, 1):
        progress(f"reading aggregates {day.isoformat()} ({i}/{len(days)} days)")
        start = datetime.combine(day, time(0), tzinfo=UTC)
        for at, doc in read_buckets(store, g, start, start + timedelta(days=1)).items():
            key = at.astimezone(UTC).isoformat().replace("+00:00", "Z")
            out[key] = {
                "upstreamFailures": num(doc, "c.upstreamFailures"),
                "refused": num(doc, "c.denied"),
                "unauthorized": num(doc, "sec.unauthorizedAttempts"),
                "rateLimitViolations": num(doc, "sec.rateLimitViolations"),
            }
    return out


def audit_of(
    store: DocumentStore, period: Period, types: Sequence[str]
) -> tuple[list[dict[str, Any]], bool]:
    """Audit entries of ``types`` in the period, read day by day and type by type; and whether
    a day hit ``AUDIT_LIMIT_PER_DAY`` (the report then says its counts are a lower bound)."""
    rows: list[dict[str, Any]] = []
    truncated = False
    days = period.days
    for i, day in enumerate(days, 1):
        progress(f"reading audit {day.isoformat()} ({i}/{len(days)} days)")
        start = datetime.combine(day, time(0), tzinfo=UTC)
        for kind in types:
            got = store.query(
                AUDIT,
                [("type", "==", kind), ("at", ">=", start), ("at", "<", start + timedelta(days=1))],
                limit=AUDIT_LIMIT_PER_DAY,
            )
            truncated |= len(got) >= AUDIT_LIMIT_PER_DAY
            rows.extend(doc for _, doc in got)
    return rows, truncated


def history_in(store: DocumentStore, period: Period) -> list[dict[str, Any]]:
    """Rollout config changes in the period, oldest first."""
    got = store.query(
        HISTORY_COLLECTION,
        [("at", ">=", period.since), ("at", "<", period.until)],
        order_by="at",
    )
    return [doc for _, doc in got]


# -- the report's data -------------------------------------------------------------------------


@dataclass
class Report:
    """Everything a report shows; ``analytics`` is the callable's answer, untouched."""

    kind: str
    period: Period
    generated: datetime
    target: str
    analytics: dict[str, Any]
    extras: dict[str, dict[str, int]] = field(default_factory=dict)
    refusals: list[tuple[str, str, int]] = field(default_factory=list)
    findings: list[dict[str, Any]] = field(default_factory=list)
    audit_truncated: bool = False
    history: list[dict[str, Any]] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)
    previous: dict[str, Any] | None = None
    """weekly: the callable's answer for the 7 days before."""
    errors: list[tuple[str, str, int]] = field(default_factory=list)
    """weekly: (kind, where, count), largest first."""
    phase: dict[str, Any] | None = None
    """phase: checks and the verdict of ``advance``."""
    charts: dict[str, bytes] = field(default_factory=dict)


def refusals_by_reason(entries: Sequence[Mapping[str, Any]]) -> list[tuple[str, str, int]]:
    """(audit type, reason, count), largest first."""
    c = Counter((str(e.get("type")), str(e.get("reason") or "-")) for e in entries)
    return [(t, r, n) for (t, r), n in sorted(c.items(), key=lambda kv: (-kv[1], kv[0]))]


def current_config(store: DocumentStore) -> dict[str, Any]:
    """The rollout config as ``status`` shows it (phase, percentage, kill switch, version)."""
    cur = changes.read_current(store)
    if cur.cfg is None:
        return {"problem": cur.problem, "version": cur.version}
    cfg = cur.cfg
    return {
        "phase": cfg.phase.value,
        "rolloutPercentage": cfg.rolloutPercentage,
        "premiumGating": cfg.components.premiumGating,
        "components": cfg.components.to_dict(),
        "version": cur.version,
        "phaseSince": cur.cfg.phaseSince if cur.cfg else None,
    }


def error_analysis(
    a: Mapping[str, Any], extras: Mapping[str, Mapping[str, int]]
) -> list[tuple[str, str, int]]:
    """The plan's weekly error analysis from the period's figures: failures by kind and where,
    largest first (the plan grepped error logs and counted them; these are the same failures,
    counted where they are recorded)."""
    t = a["totals"]
    rows: list[tuple[str, str, int]] = [
        ("enrichments failed (no source succeeded, crash, store unavailable)", ENRICH, t["failed"]),
        (
            "upstream failures (c.upstreamFailures)",
            ENRICH,
            sum(e["upstreamFailures"] for e in extras.values()),
        ),
    ]
    for s, f in sorted(a["bySource"].items()):
        rows.append(("source calls failed (not timeouts)", s, f["failed"] - f["timeouts"]))
        rows.append(("source calls timed out", s, f["timeouts"]))
    rows.append(
        ("service failures (errorRate numerator)", ENRICH, sum(p["errors"] for p in a["series"]))
    )
    return sorted((r for r in rows if r[2] > 0), key=lambda r: (-r[2], r[0], r[1]))


def phase_verdict(store: DocumentStore, now: datetime) -> dict[str, Any]:
    """The current phase's success metrics and what ``advance`` would do now (its own rules:
    unreadable config, last phase, kill switch, then every check must hold)."""
    cur = changes.read_current(store)
    if cur.cfg is None:
        return {
            "verdict": f"advance refuses: the config is unreadable ({cur.problem})",
            "checks": [],
        }
    cfg = cur.cfg
    target = plan.next_phase(cfg.phase)
    report = health.phase_health(store, cfg, cfg.phaseSince, now)
    checks = [
        {"name": c.name, "threshold": c.threshold, "value": c.value, "status": c.status, "ok": c.ok}
        for c in report.checks
    ]
    failing = [str(c["name"]) for c in checks if not c["ok"]]
    if target is None:
        verdict = "full is the last phase: nothing to advance to (checks shown for watching)"
    elif not cfg.components.premiumGating:
        verdict = "advance refuses: premium gating is switched off (kill switch); restore first"
    elif cfg.phase.value == "off":
        verdict = "advance would proceed: off -> beta needs no metrics"
    elif failing:
        verdict = f"advance refuses: {cfg.phase.value} -> {target.value} needs every check; failing: {', '.join(failing)}"
    else:
        verdict = f"advance would proceed: {cfg.phase.value} -> {target.value}, every check held"
    return {
        "phase": cfg.phase.value,
        "next": target.value if target else None,
        "window": {
            "from": report.start,
            "to": report.end,
            "hours": report.window.total_seconds() / 3600 if report.window else None,
        },
        "phaseSince": report.phase_since,
        "checks": checks,
        "ok": report.ok,
        "verdict": verdict,
    }


# -- charts -------------------------------------------------------------------------------------

COLORS = {
    "ok": "#2e7d32",
    "service": "#c62828",
    "upstream": "#ef6c00",
    "refused": "#9e9e9e",
    "other": "#ce93d8",
    "line": "#1565c0",
    "warn": "#f9a825",
    "crit": "#c62828",
}


def _figure(width: float = 8.0, height: float = 3.2) -> tuple[Any, Any]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(width, height), dpi=100)
    ax.spines[["top", "right"]].set_visible(False)
    ax.grid(axis="y", alpha=0.3)
    return fig, ax


def _png(fig: Any) -> bytes:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", metadata={"Software": None})
    plt.close(fig)
    return buf.getvalue()


def _labels(buckets: Sequence[str], hourly: bool) -> list[str]:
    if hourly and len(buckets) <= 24:
        return [b[11:13] + "h" for b in buckets]
    if hourly:
        return [b[5:10] + " " + b[11:13] + "h" for b in buckets]
    return [b[5:10] for b in buckets]


def _ticks(ax: Any, labels: Sequence[str]) -> None:
    step = max(1, len(labels) // 12)
    ax.set_xticks(range(0, len(labels), step))
    ax.set_xticklabels(labels[::step], rotation=0 if len(labels) <= 24 else 30, fontsize=8)


def chart_requests(r: Report) -> bytes:
    """Requests per hour (or day), stacked: successful, service failures, upstream failures,
    refused."""
    series = r.analytics["series"]
    buckets = [p["bucket"] for p in series]
    ok = [p["successful"] for p in series]
    service = [p["errors"] for p in series]
    upstream = [r.extras.get(b, {}).get("upstreamFailures", 0) for b in buckets]
    refused = [r.extras.get(b, {}).get("refused", 0) for b in buckets]
    # Enrichments that failed for the user's input (no source found anything) are neither.
    other = [
        max(p["requests"] - a - b - c - d, 0)
        for p, a, b, c, d in zip(series, ok, service, upstream, refused, strict=True)
    ]
    fig, ax = _figure()
    x = list(range(len(buckets)))
    bottom = [0] * len(x)
    for values, label, color in (
        (ok, "successful", COLORS["ok"]),
        (service, "service failures", COLORS["service"]),
        (upstream, "upstream failures", COLORS["upstream"]),
        (refused, "refused (gate, limits, not found)", COLORS["refused"]),
        (other, "failed for the input", COLORS["other"]),
    ):
        ax.bar(x, values, bottom=bottom, color=color, label=label, width=0.8)
        bottom = [b + v for b, v in zip(bottom, values, strict=True)]
    ax.plot(x, [p["requests"] for p in series], color="black", lw=0.8, marker=".", label="requests")
    _ticks(ax, _labels(buckets, r.period.granularity == "hour"))
    ax.set_ylabel("calls")
    ax.set_title(f"Enrichment requests per {r.period.granularity} (UTC)", fontsize=10)
    ax.legend(fontsize=7, ncol=3, loc="upper left", frameon=False)
    ax.set_ylim(0, max([*bottom, 1]) * 1.35)
    return _png(fig)


def chart_p95(r: Report) -> bytes:
    """p95 latency per bucket against the plan's target and the alert thresholds."""
    series = r.analytics["series"]
    buckets = [p["bucket"] for p in series]
    fig, ax = _figure()
    x = [i for i, p in enumerate(series) if p["requests"]]
    y = [series[i]["p95Ms"] / 1000 for i in x]
    ax.plot(x, y, color=COLORS["line"], marker="o", ms=3, lw=1.2, label="p95 (buckets with calls)")
    for value, label, color in (
        (2.5, "target 2.5 s", COLORS["ok"]),
        (3.0, "warning 3 s", COLORS["warn"]),
        (5.0, "critical 5 s", COLORS["crit"]),
    ):
        ax.axhline(value, color=color, lw=0.8, ls="--", label=label)
    _ticks(ax, _labels(buckets, r.period.granularity == "hour"))
    ax.set_xlim(-0.5, max(len(buckets), 1) - 0.5)
    ax.set_ylim(0, max([*y, 5.0]) * 1.15)
    ax.set_ylabel("seconds")
    ax.set_title(f"Enrichment p95 latency per {r.period.granularity} (UTC)", fontsize=10)
    ax.legend(fontsize=7, ncol=4, loc="upper left", frameon=False)
    return _png(fig)


def chart_funnel(r: Report) -> bytes:
    """Gate exposures -> upgrade clicks -> conversions, with the conversion rate."""
    t, rates = r.analytics["totals"], r.analytics["rates"]
    steps = [
        ("previews", t["previews"]),
        ("gates shown", t["gateShown"]),
        ("upgrade clicks", t["upgradeClicks"]),
        ("conversions", t["conversions"]),
    ]
    fig, ax = _figure(6.5, 2.6)
    ax.barh([s for s, _ in steps][::-1], [n for _, n in steps][::-1], color=COLORS["line"])
    for i, (_, n) in enumerate(steps[::-1]):
        ax.text(n, i, f" {n}", va="center", fontsize=8)
    ax.grid(axis="x", alpha=0.3)
    ax.grid(axis="y", visible=False)
    ax.set_xlim(0, max([n for _, n in steps] + [1]) * 1.2)
    ax.set_title(
        f"Funnel: conversion rate {rates['conversionRate']:.1%}, preview engagement "
        f"{rates['previewEngagementRate']:.1%}",
        fontsize=10,
    )
    return _png(fig)


def chart_sources(r: Report) -> bytes:
    """Per source: successful, failed (not timeouts) and timed-out calls."""
    by = r.analytics["bySource"]
    names = list(by)
    fig, ax = _figure(6.5, 2.8)
    x = list(range(len(names)))
    ok = [by[s]["successful"] for s in names]
    failed = [by[s]["failed"] - by[s]["timeouts"] for s in names]
    timeouts = [by[s]["timeouts"] for s in names]
    ax.bar(x, ok, color=COLORS["ok"], label="successful")
    ax.bar(x, failed, bottom=ok, color=COLORS["upstream"], label="failed")
    ax.bar(
        x,
        timeouts,
        bottom=[a + b for a, b in zip(ok, failed, strict=True)],
        color=COLORS["service"],
        label="timeouts",
    )
    for i, s in enumerate(names):
        total = by[s]["requests"]
        ax.text(
            i,
            total,
            f"{by[s]['successRate']:.0%}" if total else "no calls",
            ha="center",
            va="bottom",
            fontsize=8,
        )
    ax.set_xticks(x)
    ax.set_xticklabels(names)
    ax.set_ylim(0, max([by[s]["requests"] for s in names] + [1]) * 1.25)
    ax.set_ylabel("calls")
    ax.set_title("Source health (success rate above each bar)", fontsize=10)
    ax.legend(fontsize=7, ncol=3, loc="upper right", frameon=False)
    return _png(fig)


def chart_refusals(r: Report) -> bytes:
    """Refusals by audit type and reason (the ten largest)."""
    rows = r.refusals[:10]
    fig, ax = _figure(7.0, 0.45 * max(len(rows), 2) + 1.0)
    labels = [f"{t}: {reason}"[:60] for t, reason, _ in rows][::-1]
    values = [n for _, _, n in rows][::-1]
    ax.barh(labels or ["(none)"], values or [0], color=COLORS["refused"])
    for i, n in enumerate(values):
        ax.text(n, i, f" {n}", va="center", fontsize=8)
    ax.grid(axis="x", alpha=0.3)
    ax.grid(axis="y", visible=False)
    ax.tick_params(axis="y", labelsize=8)
    ax.set_xlim(0, max([*values, 1]) * 1.2)
    ax.set_title("Refusals by reason (audit)", fontsize=10)
    return _png(fig)


def chart_security(r: Report) -> bytes:
    """Unauthorized attempts and rate-limit violations per bucket, findings marked."""
    series = r.analytics["series"]
    buckets = [p["bucket"] for p in series]
    fig, ax = _figure()
    x = list(range(len(buckets)))
    unauthorized = [r.extras.get(b, {}).get("unauthorized", 0) for b in buckets]
    limited = [r.extras.get(b, {}).get("rateLimitViolations", 0) for b in buckets]
    ax.bar(
        [i - 0.2 for i in x],
        unauthorized,
        width=0.4,
        color=COLORS["service"],
        label="unauthorized attempts",
    )
    ax.bar(
        [i + 0.2 for i in x],
        limited,
        width=0.4,
        color=COLORS["upstream"],
        label="rate-limit violations",
    )
    _ticks(ax, _labels(buckets, r.period.granularity == "hour"))
    ax.set_ylim(0, max([*unauthorized, *limited, 1]) * 1.3)
    ax.set_ylabel("refusals")
    ax.set_title(
        f"Security refusals per {r.period.granularity} (all functions, UTC); {len(r.findings)} finding(s)",
        fontsize=10,
    )
    ax.legend(fontsize=7, ncol=2, loc="upper left", frameon=False)
    return _png(fig)


CHARTS: dict[str, tuple[tuple[str, Callable[[Report], bytes]], ...]] = {
    "daily": (
        ("requests", chart_requests),
        ("p95", chart_p95),
        ("funnel", chart_funnel),
        ("sources", chart_sources),
        ("refusals", chart_refusals),
    ),
    "weekly": (
        ("requests", chart_requests),
        ("p95", chart_p95),
        ("funnel", chart_funnel),
        ("sources", chart_sources),
        ("refusals", chart_refusals),
    ),
    "security": (("security", chart_security), ("refusals", chart_refusals)),
    "phase": (("requests", chart_requests), ("p95", chart_p95), ("funnel", chart_funnel)),
}
"""The charts of each kind of report, in the order they appear."""


# -- sections -----------------------------------------------------------------------------------


@dataclass
class Table:
    headers: list[str]
    rows: list[list[str]]


@dataclass
class Section:
    """One titled part of a report: text, tables and charts, rendered alike in both formats."""

    title: str
    text: list[str] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    charts: list[str] = field(default_factory=list)


def pct(x: float) -> str:
    return f"{x * 100:.1f}%"


def ms(x: float) -> str:
    return f"{x / 1000:.2f} s" if x >= 1000 else f"{x:.0f} ms"


def ts(value: Any) -> str:
    if not isinstance(value, datetime):
        return "-"
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def change(before: float, after: float, kind: str = "n") -> str:
    """Week-over-week change: absolute, and relative where it means something."""
    d = after - before
    if kind == "rate":
        return f"{d * 100:+.1f} pts"
    if kind == "ms":
        return f"{d:+.0f} ms"
    rel = f" ({d / before:+.0%})" if before else ""
    return f"{d:+d}{rel}"


def summary_section(r: Report) -> Section:
    a = r.analytics
    t, rates, lat = a["totals"], a["rates"], a["latencyMs"]
    rows = [
        ["requests", str(t["requests"])],
        ["successful", str(t["successful"])],
        ["failed", str(t["failed"])],
        ["success rate", pct(rates["successRate"])],
        ["error rate (service failures / requests)", pct(rates["errorRate"])],
        ["latency p50 / p95 / p99", f"{ms(lat['p50'])} / {ms(lat['p95'])} / {ms(lat['p99'])}"],
        ["premium / free requests", f"{t['premiumRequests']} / {t['freeRequests']}"],
        ["full / preview answers", f"{t['fullRequests']} / {t['previews']}"],
        ["rate limited", str(t["rateLimited"])],
        ["unauthorized attempts", str(t["unauthorizedAttempts"])],
    ]
    return Section(
        "Summary",
        [
            f"Figures of `getExternalDataAnalytics` for {r.period.label()} (granularity "
            f"{r.period.granularity}): the same query, the same code.",
        ],
        [Table(["figure", "value"], rows)],
    )


def traffic_section(r: Report) -> Section:
    rows = []
    for p in r.analytics["series"]:
        if not p["requests"]:
            continue
        x = r.extras.get(p["bucket"], {})
        rows.append(
            [
                p["bucket"].replace("T", " ").replace(":00:00Z", ":00").removesuffix("Z"),
                str(p["requests"]),
                str(p["successful"]),
                str(p["errors"]),
                str(x.get("upstreamFailures", 0)),
                str(x.get("refused", 0)),
                pct(p["errorRate"]),
                ms(p["p95Ms"]),
            ]
        )
    quiet = len(r.analytics["series"]) - len(rows)
    text = [
        "Service failures are `c.errors` (internal, unavailable, our deadline: the errorRate "
        "numerator); upstream failures are `c.upstreamFailures` (the sources failed upstream or "
        "timed out). Refused calls (premium gate, limits, not found) are neither."
    ]
    if quiet:
        text.append(f"{quiet} {r.period.granularity}(s) without calls are left out of the table.")
    headers = [
        r.period.granularity,
        "requests",
        "successful",
        "service failures",
        "upstream failures",
        "refused",
        "error rate",
        "p95",
    ]
    return Section("Requests and failures", text, [Table(headers, rows)], ["requests", "p95"])


def funnel_section(r: Report) -> Section:
    t, rates = r.analytics["totals"], r.analytics["rates"]
    rows = [
        ["previews served", str(t["previews"])],
        ["premium gates shown", str(t["gateShown"])],
        ["upgrade clicks", str(t["upgradeClicks"])],
        ["conversions (subscription trigger)", str(t["conversions"])],
        ["conversion rate (converted / free users in the funnel)", pct(rates["conversionRate"])],
        ["preview engagement rate", pct(rates["previewEngagementRate"])],
    ]
    return Section("Funnel and conversion", [], [Table(["step", "value"], rows)], ["funnel"])


def sources_section(r: Report) -> Section:
    rows = [
        [
            s,
            str(f["requests"]),
            str(f["successful"]),
            str(f["failed"]),
            str(f["timeouts"]),
            str(f["cacheHits"]),
            pct(f["successRate"]),
            ms(f["latencyMs"]["p95"]),
        ]
        for s, f in r.analytics["bySource"].items()
    ]
    headers = [
        "source",
        "calls",
        "successful",
        "failed",
        "of which timeouts",
        "cache hits",
        "success rate",
        "p95",
    ]
    return Section("Source health", [], [Table(headers, rows)], ["sources"])


def refusals_section(r: Report) -> Section:
    rows = [[t, reason, str(n)] for t, reason, n in r.refusals]
    text = ["From the security audit (every function), by audit type and recorded reason."]
    if r.audit_truncated:
        text.append(
            f"A day held more than {AUDIT_LIMIT_PER_DAY} entries of one type: counts are a lower bound."
        )
    return Section(
        "Refusals by reason",
        text,
        [Table(["type", "reason", "count"], rows or [["-", "none", "0"]])],
        ["refusals"],
    )


def _subject(f: Mapping[str, Any]) -> str:
    s = str(f.get("subject") or f.get("uid") or "-")
    return s if f.get("subjectKind") != "ipHash" else f"ip {s[:12]}…"


def findings_section(r: Report) -> Section:
    sec = r.analytics["security"]
    rows = [
        [
            ts(f.get("at")),
            str(f.get("rule", "-")),
            _subject(f),
            str(f.get("count", "-")),
            str(f.get("reason", "")),
        ]
        for f in r.findings
    ]
    text = [
        f"Security figures of the callable: {sec['unauthorizedAttempts']} unauthorized attempts, "
        f"{sec['rateLimitViolations']} rate-limit violations, suspicious activity "
        f"{sec['suspiciousActivity']}.",
        f"Findings of the security detector (`suspicious_activity` audit entries): {len(r.findings)}.",
    ]
    table = Table(
        ["found", "rule", "subject", "count", "why"], rows or [["-", "none", "-", "-", "-"]]
    )
    return Section("Suspicious activity", text, [table])


def history_section(r: Report, title: str = "Rollout history") -> Section:
    rows = [
        [
            ts(h.get("at")),
            f"v{h.get('version')}",
            str(h.get("by", "-")),
            str(h.get("action", "-")),
            str(h.get("summary", "")),
            str(h.get("reason", "")),
        ]
        for h in r.history
    ]
    cfg = r.config
    if "problem" in cfg:
        now = f"Config now: unreadable ({cfg['problem']}), version {cfg['version']}."
    else:
        now = (
            f"Config now: phase {cfg['phase']} at {cfg['rolloutPercentage']}%, premium gating "
            f"{'on' if cfg['premiumGating'] else 'OFF (kill switch)'}, version {cfg['version']}."
        )
    table = Table(
        ["at", "version", "by", "action", "what", "why"],
        rows or [["-", "-", "-", "no change in the period", "-", "-"]],
    )
    return Section(title, [now], [table])


def errors_section(r: Report) -> Section:
    rows = [[kind, where, str(n)] for kind, where, n in r.errors]
    return Section(
        "Error analysis",
        ["Failures of the week by kind and where they happened, largest first."],
        [Table(["kind", "where", "count"], rows or [["none", "-", "0"]])],
    )


WOW = (
    ("requests", ("totals", "requests"), "n"),
    ("successful", ("totals", "successful"), "n"),
    ("failed", ("totals", "failed"), "n"),
    ("success rate", ("rates", "successRate"), "rate"),
    ("error rate", ("rates", "errorRate"), "rate"),
    ("p95 latency", ("latencyMs", "p95"), "ms"),
    ("previews", ("totals", "previews"), "n"),
    ("gates shown", ("totals", "gateShown"), "n"),
    ("upgrade clicks", ("totals", "upgradeClicks"), "n"),
    ("conversions", ("totals", "conversions"), "n"),
    ("conversion rate", ("rates", "conversionRate"), "rate"),
    ("rate limited", ("totals", "rateLimited"), "n"),
    ("unauthorized attempts", ("totals", "unauthorizedAttempts"), "n"),
)


def wow_section(r: Report) -> Section:
    prev = r.previous or {}
    rows = []
    for label, (group, key), kind in WOW:
        before, after = prev[group][key], r.analytics[group][key]
        fmt = pct if kind == "rate" else (ms if kind == "ms" else str)
        rows.append([label, fmt(before), fmt(after), change(before, after, kind)])
    p0, p1 = prev["period"], r.analytics["period"]
    return Section(
        "Week over week",
        [
            f"{p0['startDate']}..{p0['endDate']} against {p1['startDate']}..{p1['endDate']} (both from the callable)."
        ],
        [Table(["figure", "week before", "this week", "change"], rows)],
    )


def phase_section(r: Report) -> Section:
    ph = r.phase or {}
    rows = [[c["name"], c["threshold"], c["value"], c["status"]] for c in ph.get("checks", [])]
    window = ph.get("window") or {}
    text = [f"**{ph.get('verdict', '')}**"]
    if window.get("hours"):
        since = f"in phase since {ts(ph.get('phaseSince'))}"
        span = f"{ts(window.get('from'))} to {ts(window.get('to'))}"
        first, last = window.get("from"), window.get("to")
        if isinstance(first, datetime) and isinstance(last, datetime) and first > last:
            span = f"none yet: the first full hour in the phase starts {ts(window.get('from'))}"
        text.append(
            f"Window: {span} ({window['hours']:.0f} h window; {since}). The checks are "
            "`rollout_control.health`, the ones `advance` applies."
        )
    return Section(
        f"Success metrics of phase {ph.get('phase', '?')}",
        text,
        [
            Table(
                ["metric", "threshold", "value", "status"],
                rows or [["-", "-", "-", "nothing to check"]],
            )
        ],
    )


def sections(r: Report) -> list[Section]:
    """The report's sections, by kind."""
    if r.kind == "security":
        sec = findings_section(r)
        sec.charts = ["security"]
        return [sec, refusals_section(r), history_section(r)]
    if r.kind == "phase":
        return [
            phase_section(r),
            summary_section(r),
            traffic_section(r),
            funnel_section(r),
            history_section(r, "Rollout history of the phase"),
        ]
    out = [
        summary_section(r),
        traffic_section(r),
        funnel_section(r),
        sources_section(r),
        refusals_section(r),
        findings_section(r),
        history_section(r),
    ]
    if r.kind == "weekly":
        out[1:1] = [wow_section(r), errors_section(r)]
    return out


# -- rendering ----------------------------------------------------------------------------------

TITLES = {
    "daily": "External data: daily report",
    "weekly": "External data: weekly report",
    "security": "External data: security report",
    "phase": "External data: rollout phase report",
}

MARKDOWN = """# {{ title }}

{{ subtitle }}
{% for s in sections %}
## {{ s.title }}
{% for t in s.text %}
{{ t }}
{% endfor %}{% for c in s.charts %}
![{{ c }}]({{ files[c] }})
{% endfor %}{% for tb in s.tables %}
| {{ tb.headers | map("md") | join(" | ") }} |
|{% for h in tb.headers %}---|{% endfor %}
{% for row in tb.rows %}| {{ row | map("md") | join(" | ") }} |
{% endfor %}{% endfor %}{% endfor %}"""

HTML = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{ title }}</title>
<style>
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: #222;
       max-width: 980px; margin: 2em auto; padding: 0 1em; }
h1 { font-size: 1.6em; margin-bottom: .2em; }
h2 { font-size: 1.2em; border-bottom: 1px solid #ddd; padding-bottom: .2em; margin-top: 1.8em; }
.sub { color: #666; }
table { border-collapse: collapse; margin: .6em 0 1em; font-size: 13px; }
th, td { border: 1px solid #ddd; padding: .25em .6em; text-align: left; vertical-align: top; }
th { background: #f5f5f5; }
td:not(:first-child) { font-variant-numeric: tabular-nums; }
img { max-width: 100%; display: block; margin: .6em 0; }
code { background: #f3f3f3; padding: 0 .25em; border-radius: 3px; }
</style>
</head>
<body>
<h1>{{ title }}</h1>
<p class="sub">{{ subtitle | inline }}</p>
{% for s in sections %}
<h2>{{ s.title }}</h2>
{% for t in s.text %}<p>{{ t | inline }}</p>
{% endfor %}{% for c in s.charts %}<img alt="{{ c }} chart" src="data:image/png;base64,{{ images[c] }}">
{% endfor %}{% for tb in s.tables %}<table>
<thead><tr>{% for h in tb.headers %}<th>{{ h }}</th>{% endfor %}</tr></thead>
<tbody>
{% for row in tb.rows %}<tr>{% for cell in row %}<td>{{ cell }}</td>{% endfor %}</tr>
{% endfor %}</tbody>
</table>
{% endfor %}{% endfor %}
</body>
</html>
"""


def _md_cell(value: Any) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def _inline(value: Any) -> Any:
    """Escape, then the two bits of Markdown the texts use: `code` and **bold**."""
    import re

    from markupsafe import Markup, escape

    text = str(escape(str(value)))
    text = re.sub(r"`([^`]+)`", r"<code>\1</code>", text)
    text = re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", text)
    return Markup(text)  # noqa: S704 - escaped above; only our own tags added


def render(r: Report, stem: str) -> tuple[str, str]:
    """(Markdown, HTML) of the report; charts are ``<stem>-<name>.png`` beside the Markdown
    and embedded in the HTML."""
    import jinja2

    env = jinja2.Environment(autoescape=False, undefined=jinja2.StrictUndefined)  # noqa: S701 - Markdown
    env.filters["md"] = _md_cell
    html_env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    html_env.filters["inline"] = _inline
    secs = sections(r)
    subtitle = f"Period {r.period.label()} (UTC). Generated {ts(r.generated)} from {r.target}."
    common = {"title": TITLES[r.kind], "subtitle": subtitle, "sections": secs}
    files = {name: f"{stem}-{name}.png" for name in r.charts}
    images = {name: base64.b64encode(png).decode() for name, png in r.charts.items()}
    md = env.from_string(MARKDOWN).render(**common, files=files)
    html = html_env.from_string(HTML).render(**common, images=images)
    return md, html


def write(r: Report, out: Path) -> list[Path]:
    """Write ``<kind>.md``, ``<kind>.html`` and the charts into ``out``; returns the paths."""
    out.mkdir(parents=True, exist_ok=True)
    md, html = render(r, r.kind)
    paths = []
    for name, png in r.charts.items():
        p = out / f"{r.kind}-{name}.png"
        p.write_bytes(png)
        paths.append(p)
    for suffix, text in ((".md", md), (".html", html)):
        p = out / f"{r.kind}{suffix}"
        p.write_text(text, encoding="utf-8")
        paths.append(p)
    return paths


# -- gathering ----------------------------------------------------------------------------------


def gather(store: DocumentStore, kind: str, period: Period, now: datetime, target: str) -> Report:
    """Read everything the report shows (see the module docstring for what comes from where)."""
    progress(f"reading analytics {period.label()} (the callable's figures)")
    r = Report(kind, period, now, target, analytics_for(store, period))
    r.extras = hourly_extras(store, period)
    entries, r.audit_truncated = audit_of(store, period, (*REFUSAL_TYPES, SUSPICIOUS))
    r.refusals = refusals_by_reason([e for e in entries if e.get("type") != SUSPICIOUS])
    r.findings = sorted(
        (e for e in entries if e.get("type") == SUSPICIOUS),
        key=lambda e: e["at"] if isinstance(e.get("at"), datetime) else now,
    )
    progress("reading rollout config and history")
    r.history = history_in(store, period)
    r.config = current_config(store)
    if kind == "weekly":
        week = timedelta(days=7)
        before = Period(period.start - week, period.end - week)
        progress(f"reading analytics {before.label()} (week before)")
        r.previous = analytics_for(store, before)
        r.errors = error_analysis(r.analytics, r.extras)
    if kind == "phase":
        r.phase = phase_verdict(store, now)
    for name, draw in CHARTS[kind]:
        progress(f"drawing {name}")
        r.charts[name] = draw(r)
    progress("done")
    return r


def period_problem(kind: str, period: Period) -> str | None:
    """Why the period cannot be reported (a usage error), or None."""
    if period.end < period.start:
        return "--end is before --start"
    first = FIRST_DAY + timedelta(days=7) if kind == "weekly" else FIRST_DAY
    if not (first <= period.start and period.end <= LAST_DAY):
        return f"the days reported must be between {FIRST_DAY} and {LAST_DAY}" + (
            f" (a weekly report also reads the 7 days before it: --start {first} at the earliest)"
            if kind == "weekly"
            else ""
        )
    if (period.end - period.start).days + 1 > 92:
        return "a report covers at most 92 days (as the callable)"
    return None


def default_period(kind: str, today: date) -> Period:
    """daily: yesterday; weekly and security: the 7 days ending yesterday."""
    end = today - timedelta(days=1)
    return Period(end, end) if kind == "daily" else Period(end - timedelta(days=6), end)


def phase_period(store: DocumentStore, now: datetime) -> Period:
    """The current phase's monitoring window as days (today alone when there is none)."""
    cur = changes.read_current(store)
    if cur.cfg is None:
        return Period(now.date(), now.date())
    report = health.phase_health(store, cur.cfg, cur.cfg.phaseSince, now)
    start = report.start.date() if report.start else now.date()
    return Period(start, now.date())


def target_of(project: str | None) -> str:
    host = os.environ.get("FIRESTORE_EMULATOR_HOST")
    name = project or os.environ.get("GCLOUD_PROJECT") or os.environ.get("GOOGLE_CLOUD_PROJECT")
    if host:
        return f"{name or 'demo-cv-enrichment'} on the emulator"
    return f"{name or 'the ADC default project'}"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("kind", choices=KINDS)
    p.add_argument("--start", type=date.fromisoformat, help="first day (UTC, YYYY-MM-DD)")
    p.add_argument(
        "--end", type=date.fromisoformat, help="last day, included (default: --start, or see above)"
    )
    p.add_argument("--project", help="Firebase project (ignored on the emulator)")
    p.add_argument(
        "--out",
        type=Path,
        default=ROOT / "docs" / "reports",
        help="output folder (default docs/reports)",
    )
    p.add_argument("--at", type=cli.parse_iso, help="report as of this UTC time (tests, replays)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    now = args.at or datetime.now(UTC)
    from stores.firestore import FirestoreStore, make_client

    try:
        store = FirestoreStore(make_client(args.project), deadline_s=30.0)
        if args.kind == "phase" and not args.start:
            period = phase_period(store, now)
        elif args.start:
            period = Period(args.start, args.end or args.start)
        elif now.date() > FIRST_DAY:
            period = default_period(args.kind, now.date())
        else:
            parser.error(f"--at must be after {FIRST_DAY} (the report's days end the day before)")
        problem = period_problem(args.kind, period)
        if problem:
            parser.error(problem)
        report = gather(store, args.kind, period, now, target_of(args.project))
    except StoreError as exc:
        print(f"\nreport: the store is unreachable ({exc})", file=sys.stderr)
        return UNREACHABLE
    for path in write(report, args.out):
        print(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path)
    return OK


if __name__ == "__main__":
    sys.exit(main())
