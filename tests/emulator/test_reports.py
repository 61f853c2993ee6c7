"""Issue 10, reports: after traffic through the real callables, ``scripts/report.py``'s figures
equal ``getExternalDataAnalytics``'s answer for the same period, and the CLI writes every kind
of report (Markdown, self-contained HTML, PNG charts) from the emulator.

Runs under ``scripts/with-emulators.sh``; fails (never skips) without the emulators.
"""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from scripts.devkit.emulator import GATED, call, seed
from tests.support.scripts import load_script

ROOT = Path(__file__).resolve().parents[2]
ENRICH = "enrichCVWithExternalData"
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def report() -> ModuleType:
    return load_script("report", "report_cli", reuse=True)


@pytest.fixture(scope="module")
def traffic(store: Any) -> Any:
    """A premium enrichment, a free preview, a premium gate, a foreign CV, an upgrade click;
    returns the admin who reads the analytics."""
    from stores.base import Write

    store.commit([Write("config/externalDataRollout", GATED, merge=False)])
    admin, _ = seed(store, "rep-admin", admin=True)
    premium, pcv = seed(store, "rep-premium", premium=True)
    free, fcv = seed(store, "rep-free")
    gh = {"sources": ["github"], "github": "prolific"}
    assert call(ENRICH, {"cvId": pcv, "mode": "full", **gh}, premium).ok
    assert call(ENRICH, {"cvId": fcv, "mode": "preview", **gh}, free).ok
    assert call(ENRICH, {"cvId": fcv, "mode": "full", **gh}, free).status == "PERMISSION_DENIED"
    assert call(ENRICH, {"cvId": pcv, "mode": "preview", **gh}, free).status == "NOT_FOUND"
    tracked = call("trackExternalDataUsage", {"event": "upgrade_clicked", "cvId": fcv}, free)
    assert tracked.ok
    return admin


def normal(value: Any) -> Any:
    """As the callable protocol carries it (JSON)."""
    return json.loads(json.dumps(value))


def test_the_report_figures_equal_the_callables_for_the_same_period(
    report: ModuleType, store: Any, traffic: Any
) -> None:
    today = datetime.now(UTC).date()
    # The traffic may be made before midnight UTC and read after it: the period holds both days.
    period = report.Period(today - timedelta(days=1), today)
    req = {
        "startDate": period.start.isoformat(),
        "endDate": today.isoformat(),
        "granularity": "hour",
    }
    for _ in range(5):  # the subscription trigger writes asynchronously: wait until still
        before = report.gather(store, "daily", period, datetime.now(UTC), "emulator")
        answer = call("getExternalDataAnalytics", req, traffic).result
        after = report.gather(store, "daily", period, datetime.now(UTC), "emulator")
        if normal(before.analytics) == normal(after.analytics):
            break
    else:
        pytest.fail("the aggregates kept changing while the report was read")
    assert normal(before.analytics) == answer
    t = answer["totals"]
    assert t["requests"] >= 4 and t["previews"] >= 1 and t["gateShown"] >= 1
    assert t["upgradeClicks"] >= 1 and answer["security"]["unauthorizedAttempts"] >= 2
    md, html = report.render(before, "daily")
    assert f"| requests | {t['requests']} |" in md
    assert f"| conversions (subscription trigger) | {t['conversions']} |" in md
    assert f"<td>requests</td><td>{t['requests']}</td>" in html
    reasons = {(ty, reason) for ty, reason, _ in before.refusals}
    assert ("unauthorized_access", "premium_required") in reasons
    assert ("unauthorized_access", "CV missing or not the caller's") in reasons


def test_the_cli_writes_every_kind_from_the_emulator(traffic: Any, tmp_path: Path) -> None:
    today = datetime.now(UTC).date()
    week = (today - timedelta(days=6)).isoformat()
    runs = {
        "daily": ["--start", today.isoformat()],
        "weekly": ["--start", week, "--end", today.isoformat()],
        "security": ["--start", today.isoformat()],
        "phase": [],
    }
    for kind, extra in runs.items():
        done = subprocess.run(  # noqa: S603 - our own script, fixed arguments
            [
                sys.executable,
                str(ROOT / "scripts" / "report.py"),
                kind,
                "--out",
                str(tmp_path),
                *extra,
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=240,
            check=False,
        )
        assert done.returncode == 0, done.stderr[-2000:]
        assert "report: reading audit" in done.stderr  # the progress line
        html = (tmp_path / f"{kind}.html").read_text()
        assert "data:image/png;base64," in html and 'src="http' not in html
        md = (tmp_path / f"{kind}.md").read_text()
        for png in sorted(tmp_path.glob(f"{kind}-*.png")):
            assert png.read_bytes().startswith(PNG)
            assert f"]({png.name})" in md
    phase = (tmp_path / "phase.md").read_text()
    assert "full is the last phase" in phase  # GATED is phase full
