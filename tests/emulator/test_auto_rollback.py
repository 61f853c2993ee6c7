"""End to end (issue 4): a failing source trips the automatic rollback.

The GitHub fake answers 500 to everything; a premium user keeps asking for GitHub-only
enrichments, so every call is an error in the sense of contract 2.4 (every source tried failed
with ``upstream``) and none succeeds. After two complete minutes of that, ``scripts/rollout.py
evaluate`` (the same evaluator as the scheduled function) must fire the ``no-success`` trigger:
the kill switch goes on (``components.premiumGating = false``, version bumped, one history entry
with the evidence), and a free user who was denied before gets full enrichment again within
30 s. A second ``evaluate`` does nothing. The test then heals the fake, writes the gated config
back and waits until the free user is denied again, so later tests see the gated config.

This takes 2-3 minutes of real time: the evaluator only reads complete minutes of the minute
aggregates. Progress goes to stderr (``pytest -s`` shows it).

Runs under ``scripts/with-emulators.sh``; fails (never skips) without the emulators.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from gating.rollout import CONFIG_PATH, HISTORY_COLLECTION
from scripts.devkit.emulator import GATED, Answer, call, seed
from scripts.devkit.services import Services
from stores.base import Write

ROOT = Path(__file__).resolve().parents[2]
CLI = ROOT / "scripts" / "rollout.py"
FIXTURES = ROOT / "tests" / "fixtures"
ENRICH = "enrichCVWithExternalData"
BOUND_S = 30.0
CALL_EVERY_S = 3.0
OUTAGE_MINUTES = 2
"""The ``no-success`` trigger's window (evaluator.Thresholds.outage_minutes)."""
SETTLE_S = 4.0
"""Wait after the last complete minute ends before evaluating (aggregate writes in flight)."""


def _progress(text: str) -> None:
    print(f"[auto-rollback {datetime.now(UTC):%H:%M:%S}] {text}", file=sys.stderr, flush=True)


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - our own script, fixed arguments
        [sys.executable, str(CLI), *args],
        cwd=ROOT,
        env=dict(os.environ),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _config(store: Any) -> dict[str, Any]:
    return store.get_many([CONFIG_PATH])[CONFIG_PATH] or {}


def _history(store: Any) -> list[dict[str, Any]]:
    return [d for _, d in store.query(HISTORY_COLLECTION)]


def _wait_for(check: Callable[[], bool], bound: float = BOUND_S) -> float:
    started = time.monotonic()
    while time.monotonic() - started < bound + 5:
        if check():
            return time.monotonic() - started
        time.sleep(0.5)
    return float("inf")


def _linkedin_export() -> dict[str, str]:
    folder = FIXTURES / "linkedin" / "complete"
    return {p.name: p.read_text(encoding="utf-8") for p in sorted(folder.glob("*.csv"))}


def _full_for_free_user(user: Any, cv: str) -> Answer:
    return call(
        ENRICH,
        {"cvId": cv, "sources": ["linkedin"], "linkedin": {"export": _linkedin_export()}},
        user,
    )


def _failing_github_call(user: Any, cv: str) -> Answer:
    # forceRefresh: a cached GitHub profile would be a success, not an outage.
    return call(
        ENRICH,
        {
            "cvId": cv,
            "sources": ["github"],
            "github": "octocat",
            "options": {"forceRefresh": True},
        },
        user,
    )


def _restore_gated(store: Any) -> None:
    doc = {**GATED, "version": int(time.time() * 1000)}
    store.commit([Write(CONFIG_PATH, doc, merge=False)])


def test_a_failing_source_rolls_gating_back_automatically(store: Any, services: Services) -> None:
    free_user, free_cv = seed(store, "rollback-free")
    premium_user, premium_cv = seed(store, "rollback-premium", premium=True)
    # Before the incident: the free user is gated (phase full, no fallback).
    took = _wait_for(lambda: _full_for_free_user(free_user, free_cv).status == "PERMISSION_DENIED")
    assert took <= BOUND_S, "the free user is not gated before the incident"
    before = _config(store)
    assert before["components"]["premiumGating"] is True
    history_before = len(_history(store))

    services.github.behaviour.fail_always = True
    try:
        # The incident: every call fails until two complete minutes are behind us.
        start = datetime.now(UTC)
        first_complete = start.replace(second=0, microsecond=0) + timedelta(minutes=1)
        window_end = first_complete + timedelta(minutes=OUTAGE_MINUTES)
        _progress(
            f"GitHub fake failing; premium user calls every {CALL_EVERY_S:.0f} s until "
            f"{window_end:%H:%M:%S} UTC (minutes {first_complete:%H:%M}-{window_end:%H:%M} "
            f"must show errors and no success)"
        )
        calls = 0
        last_report = time.monotonic()
        while datetime.now(UTC) < window_end - timedelta(seconds=1):
            t = time.monotonic()
            answer = _failing_github_call(premium_user, premium_cv)
            calls += 1
            result = answer.result
            assert result["access"] == "full" and result["status"] == "failed", result
            (gh,) = result["sources"]
            assert gh["status"] == "failed" and gh["error"]["code"] == "upstream", gh
            if time.monotonic() - last_report >= 30:
                left = (window_end - datetime.now(UTC)).total_seconds()
                _progress(f"{calls} failing calls so far, {left:.0f} s to go")
                last_report = time.monotonic()
            time.sleep(max(0.0, CALL_EVERY_S - (time.monotonic() - t)))
        settle = (window_end - datetime.now(UTC)).total_seconds() + SETTLE_S
        time.sleep(max(0.0, settle))
        _progress(f"{calls} failing calls made; running `rollout.py evaluate`")

        r = cli("evaluate")
        assert r.returncode == 0, (r.stdout, r.stderr)
        out = " ".join(r.stdout.split())
        assert "Automatic immediate rollback" in out, out
        assert "no successful call in the last 2 minutes" in out, out
        assert "CRITICAL" in _severities(r.stderr), r.stderr

        # The kill switch is on, the version bumped, one history entry explains why.
        after = _config(store)
        assert after["components"]["premiumGating"] is False
        assert after["version"] == before["version"] + 1
        assert after["autoRollback"]["immediate"]["trigger"] == "no-success"
        entries = _history(store)
        assert len(entries) == history_before + 1
        (entry,) = [e for e in entries if e.get("version") == after["version"]]
        assert entry["action"] == "auto-rollback immediate"
        assert entry["by"].startswith("evaluator")
        (trig,) = entry["evidence"]["triggers"]
        assert trig["name"] == "no-success" and trig["successful"] == 0
        assert trig["errors"] >= OUTAGE_MINUTES
        assert [m["errors"] >= 1 for m in trig["perMinute"]] == [True] * OUTAGE_MINUTES

        # The free user gets full enrichment again within 30 s (config cache <= 10 s).
        took = _wait_for(lambda: _full_for_free_user(free_user, free_cv).ok)
        assert took <= BOUND_S, "the free user is still gated 30 s after the rollback"
        answer = _full_for_free_user(free_user, free_cv).result
        assert answer["access"] == "full" and answer["status"] == "success", answer
        _progress(f"free user ungated {took:.1f} s after the rollback")

        # The history shows the entry that explains why, with its numbers.
        r = cli("history", "--details")
        assert r.returncode == 0, r.stderr
        text = " ".join(r.stdout.split())
        assert "auto-rollback immediate" in text
        assert "evidence [no-success]: no successful call in the last 2 minutes" in text
        assert f"while {trig['errors']} calls failed" in text
        assert f"v{after['version']}" in text

        # The same incident is never acted on twice.
        r = cli("evaluate")
        assert r.returncode == 0, (r.stdout, r.stderr)
        assert "nothing to roll back" in " ".join(r.stdout.split())
        assert len(_history(store)) == history_before + 1
        assert _config(store)["version"] == after["version"]
    finally:
        services.github.behaviour.fail_always = False
        _restore_gated(store)
    # Leave the functions gated again before the next test.
    took = _wait_for(lambda: _full_for_free_user(free_user, free_cv).status == "PERMISSION_DENIED")
    assert took <= BOUND_S, "the gated config is not back in force after 30 s"


def _severities(stderr: str) -> list[str]:
    """Severities of the structured log lines a CLI wrote (one JSON object per line)."""
    out = []
    for line in stderr.splitlines():
        if line.startswith("{"):
            out.append(str(json.loads(line).get("severity")))
    return out
