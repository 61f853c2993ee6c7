"""``scripts/report.py`` over an in-memory store filled by the real recorder: the report's
figures are the analytics builder's, the Markdown shows them, the HTML is self-contained with
decodable PNG charts, the weekly adds week-over-week and error analysis, and the phase report's
verdict is what ``advance`` does."""

from __future__ import annotations

import base64
import random
import re
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from analytics.admin import build_analytics
from common.vocab import Access, Fn, Outcome, SourceStatus, Tier
from recording.recorder import CallRecord, Recorder, SourceOutcome, Switches
from rollout_control import changes
from stores.base import Write
from stores.memory import MemoryStore
from stores.schema import CONFIG_PATH
from tests.support.scripts import load_script
from usecases.requests import parse_analytics

DAY = date(2026, 11, 25)
T0 = datetime(2026, 11, 25, tzinfo=UTC)
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def report() -> ModuleType:
    return load_script("report", "report_cli", reuse=True)


def traffic(store: MemoryStore, recorder: Recorder, day: datetime, seed: int = 1) -> None:
    """A day of enrichments as the recorder writes them: mostly successful, some partial with a
    failing source, a few refusals of each kind, slower in the afternoon."""
    rng = random.Random(seed)
    outcomes = [Outcome.SUCCESS] * 12 + [Outcome.PARTIAL] * 3 + [Outcome.FAILED]
    outcomes += [Outcome.DENIED, Outcome.RATE_LIMITED, Outcome.NOT_FOUND, Outcome.INVALID]
    for hour in range(6, 22):
        for i in range(rng.randint(4, 12)):
            o = rng.choice(outcomes)
            tier = Tier.PREMIUM if i % 3 == 0 else Tier.FREE
            enriched = o in (Outcome.SUCCESS, Outcome.PARTIAL, Outcome.FAILED)
            src = [
                SourceOutcome("github", SourceStatus.SUCCESS, 300.0, False),
                SourceOutcome(
                    "web",
                    SourceStatus.TIMEOUT if o is Outcome.PARTIAL else SourceStatus.SUCCESS,
                    900.0,
                    False,
                ),
            ]
            rec = CallRecord(
                fn=Fn.ENRICH,
                at=day + timedelta(hours=hour, minutes=rng.randint(0, 59)),
                outcome=o,
                duration_ms=rng.uniform(400, 1200) * (2.5 if hour >= 14 else 1),
                uid=f"user{rng.randint(0, 9)}",
                tier=tier,
                access=(Access.FULL if tier is Tier.PREMIUM else Access.PREVIEW)
                if enriched
                else None,
                gated=True,
                gate_shown=o is Outcome.DENIED,
                service_error=o is Outcome.FAILED,
                reason={Outcome.DENIED: "premium_required", Outcome.NOT_FOUND: "CV missing"}.get(
                    o, ""
                ),
                sources=src if enriched else (),
                ip=f"198.51.100.{rng.randint(1, 4)}",
            )
            store.commit(recorder.writes(rec, Switches()))


@pytest.fixture
def filled(store: MemoryStore, recorder: Recorder) -> MemoryStore:
    traffic(store, recorder, T0)
    traffic(store, recorder, T0 - timedelta(days=7), seed=2)
    store.commit([Write(CONFIG_PATH, {"phase": "beta", "rolloutPercentage": 1, "version": 3})])
    return store


def gather(report: ModuleType, store: MemoryStore, kind: str, start: date, end: date) -> Any:
    now = datetime.combine(end, datetime.min.time(), tzinfo=UTC) + timedelta(hours=23)
    return report.gather(store, kind, report.Period(start, end), now, "memory")


def test_the_figures_are_the_callables_for_the_same_period(
    report: ModuleType, filled: MemoryStore
) -> None:
    r = gather(report, filled, "daily", DAY, DAY)
    query = parse_analytics(
        {"startDate": "2026-11-25", "endDate": "2026-11-25", "granularity": "hour"}
    )
    assert r.analytics == build_analytics(filled, query)
    assert r.analytics["totals"]["requests"] > 100


def test_the_markdown_shows_the_figures_and_links_the_charts(
    report: ModuleType, filled: MemoryStore, tmp_path: Path
) -> None:
    r = gather(report, filled, "daily", DAY, DAY)
    paths = report.write(r, tmp_path)
    md = (tmp_path / "daily.md").read_text()
    t, rates = r.analytics["totals"], r.analytics["rates"]
    assert f"| requests | {t['requests']} |" in md
    assert f"| success rate | {rates['successRate'] * 100:.1f}% |" in md
    for name in ("requests", "p95", "funnel", "sources", "refusals"):
        assert f"](daily-{name}.png)" in md
        assert (tmp_path / f"daily-{name}.png").read_bytes().startswith(PNG)
    assert "| unauthorized_access | premium_required |" in md
    assert len(paths) == 7


def test_the_html_is_self_contained_with_decodable_charts(
    report: ModuleType, filled: MemoryStore, tmp_path: Path
) -> None:
    r = gather(report, filled, "security", DAY, DAY)
    report.write(r, tmp_path)
    html = (tmp_path / "security.html").read_text()
    sources = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert sources and all(s.startswith("data:image/png;base64,") for s in sources)
    for s in sources:
        assert base64.b64decode(s.split(",", 1)[1]).startswith(PNG)
    assert "<script" not in html


def test_weekly_adds_week_over_week_and_error_analysis(
    report: ModuleType, filled: MemoryStore, tmp_path: Path
) -> None:
    r = gather(report, filled, "weekly", DAY - timedelta(days=6), DAY)
    before = build_analytics(
        filled,
        parse_analytics(
            {"startDate": "2026-11-12", "endDate": "2026-11-18", "granularity": "hour"}
        ),
    )
    assert r.previous == before
    errors = {(k, w): n for k, w, n in r.errors}
    assert (
        errors[("source calls timed out", "web")] == r.analytics["bySource"]["web"]["timeouts"] > 0
    )
    assert errors[("service failures (errorRate numerator)", "enrichCVWithExternalData")] == sum(
        p["errors"] for p in r.analytics["series"]
    )
    report.write(r, tmp_path)
    md = (tmp_path / "weekly.md").read_text()
    assert "## Week over week" in md and "## Error analysis" in md
    req0, req1 = before["totals"]["requests"], r.analytics["totals"]["requests"]
    assert f"| requests | {req0} | {req1} |" in md


def test_the_phase_verdict_is_what_advance_does(
    report: ModuleType, filled: MemoryStore, tmp_path: Path
) -> None:
    now = T0 + timedelta(hours=23)
    verdict = report.phase_verdict(filled, now)
    assert verdict["phase"] == "beta" and verdict["verdict"].startswith("advance refuses")
    failing = {c["name"] for c in verdict["checks"] if not c["ok"]}
    with pytest.raises(changes.AdvanceBlocked) as blocked:
        changes.advance(filled, by="test", reason="check", now=now)
    assert failing == {c.name for c in blocked.value.checks}
    assert "critical errors" in failing  # the day had service failures


def test_a_period_without_data_still_renders(
    report: ModuleType, store: MemoryStore, tmp_path: Path
) -> None:
    for kind in ("daily", "weekly", "security", "phase"):
        r = gather(report, store, kind, DAY, DAY)
        report.write(r, tmp_path)
        assert (tmp_path / f"{kind}.html").read_text().count("data:image/png;base64,") >= 1


def test_progress_goes_to_stderr_day_by_day(
    report: ModuleType, store: MemoryStore, capsys: pytest.CaptureFixture[str]
) -> None:
    gather(report, store, "weekly", DAY - timedelta(days=6), DAY)
    err = capsys.readouterr().err
    assert "reading aggregates 2026-11-19 (1/7 days)" in err
    assert "reading audit 2026-11-25 (7/7 days)" in err
