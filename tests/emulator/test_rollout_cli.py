"""The operator CLI (``scripts/rollout.py``) against the Firestore emulator (issue 4): config
changes are versioned with history, bad configs and racing edits are refused, advance checks
the metrics, and ``evaluate`` acts on (synthetic) minute aggregates.

Runs under ``scripts/with-emulators.sh``; fails (never skips) without FIRESTORE_EMULATOR_HOST.
Every test starts from a missing config document, and the module puts the config that was in
force back at the end, so the other emulator tests see what they set up.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from common.settings import Settings
from gating.rollout import CONFIG_PATH, HISTORY_COLLECTION
from recording.recorder import Recorder
from rollout_control import changes
from stores.base import Inc

ROOT = Path(__file__).resolve().parents[2]
CLI = ROOT / "scripts" / "rollout.py"
T0 = datetime(2020, 1, 1, tzinfo=UTC) + timedelta(minutes=uuid.uuid4().int % 500_000)
"""Synthetic aggregates live at a past minute, far from the other tests' real-time ones, and a
different one on every run (aggregates are counters: a rerun must not add to old ones)."""


def _require_emulator() -> None:
    if not os.environ.get("FIRESTORE_EMULATOR_HOST"):
        raise RuntimeError(
            "FIRESTORE_EMULATOR_HOST not set: run these tests through `scripts/with-emulators.sh` "
            "(make test does)"
        )


@pytest.fixture(scope="module")
def fs() -> Iterator[Any]:
    _require_emulator()
    from stores.firestore import FirestoreStore, make_client

    s = FirestoreStore(make_client())
    original = s.get_many([CONFIG_PATH])[CONFIG_PATH]
    yield s
    ref = s.client.document(CONFIG_PATH)
    if original is None:
        ref.delete()
    else:
        ref.set(original)


@pytest.fixture(autouse=True)
def fresh(fs: Any) -> Any:
    fs.client.document(CONFIG_PATH).delete()
    return fs


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - our own script, fixed arguments
        [sys.executable, str(CLI), *args],
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def config(fs: Any) -> dict[str, Any]:
    return fs.get_many([CONFIG_PATH])[CONFIG_PATH] or {}


def history(fs: Any, version: int) -> dict[str, Any]:
    rows = fs.query(HISTORY_COLLECTION, [("version", "==", version)])
    return dict(max(rows, key=lambda r: r[1]["at"])[1])


def test_status_of_a_missing_config_is_phase_off(fs: Any) -> None:
    r = cli("status")
    assert r.returncode == 0, r.stderr
    rows = [" ".join(line.split()) for line in r.stdout.splitlines()]
    assert any(row.startswith("phase off") for row in rows), r.stdout
    assert "no document yet" in r.stdout


def test_advance_from_off_to_beta_is_versioned_with_history(fs: Any) -> None:
    r = cli("advance", "--reason", "start the beta", "--as", "alice")
    assert r.returncode == 0, r.stderr
    doc = config(fs)
    assert (doc["phase"], doc["rolloutPercentage"], doc["version"]) == ("beta", 1, 1)
    assert doc["updatedBy"] == "alice"
    entry = history(fs, 1)
    assert entry["by"] == "alice" and entry["reason"] == "start the beta"
    assert entry["action"] == "advance" and entry["before"] is None
    assert entry["after"]["phase"] == "beta"
    r = cli("history")
    assert r.returncode == 0 and "advance off -> beta" in r.stdout and "alice" in r.stdout


def test_bad_values_are_usage_errors_with_a_clear_message(fs: Any) -> None:
    """The README's exit codes: a bad value is a usage error (2), caught before any read."""
    assert cli("advance", "--reason", "beta").returncode == 0
    r = cli("set", "--percentage", "140", "--reason", "typo")
    assert r.returncode == 2
    assert "'140': a whole number from 0 to 100" in r.stderr
    assert "Traceback" not in r.stderr
    r = cli("set", "--phase", "gamma", "--reason", "typo")
    assert r.returncode == 2 and "invalid choice: 'gamma'" in r.stderr
    assert config(fs)["version"] == 1


def test_usage_errors_exit_2(fs: Any) -> None:
    r = cli("rollback", "immediate")
    assert r.returncode == 2 and "--reason" in r.stderr
    r = cli("rollback", "partial", "--reason", "x")
    assert r.returncode == 2 and "--component" in r.stderr
    assert CONFIG_PATH not in [p for p, _ in fs.query("config")]


def test_advance_refuses_without_metrics_and_force_is_recorded(fs: Any) -> None:
    assert cli("advance", "--reason", "beta").returncode == 0
    r = cli("advance", "--reason", "premium please")
    assert r.returncode == 1
    assert "failing:" in r.stderr and "window elapsed" in r.stderr and "completion" in r.stderr
    assert config(fs)["phase"] == "beta"
    r = cli("advance", "--force", "--reason", "demo: skip the 48 h", "--as", "lead")
    assert r.returncode == 0, r.stderr
    assert config(fs)["phase"] == "premium" and config(fs)["rolloutPercentage"] == 25
    entry = history(fs, 2)
    assert entry["forced"] is True and entry["action"] == "advance (forced)"
    assert {c["name"] for c in entry["evidence"]["checks"]} >= {"completion", "window elapsed"}
    r = cli("history", "--limit", "1", "--details")
    assert "advance (forced)" in r.stdout and "demo: skip the 48 h" in r.stdout
    assert "evidence [window elapsed]" in r.stdout


def test_rollbacks_restore_and_messages(fs: Any) -> None:
    assert (
        cli(
            "set",
            "--phase",
            "full",
            "--percentage",
            "100",
            "--fallback",
            "off",
            "--force",
            "--reason",
            "setup",
        ).returncode
        == 0
    )
    r = cli("rollback", "gradual", "--reason", "p95 up")
    assert r.returncode == 0, r.stderr
    doc = config(fs)
    assert (doc["phase"], doc["rolloutPercentage"], doc["fallbackEnabled"]) == ("premium", 50, True)
    assert (
        cli(
            "rollback", "partial", "--component", "rateLimiting", "--reason", "limiter bug"
        ).returncode
        == 0
    )
    assert config(fs)["components"]["rateLimiting"] is False
    assert cli("rollback", "immediate", "--reason", "incident").returncode == 0
    assert config(fs)["components"]["premiumGating"] is False
    r = cli("rollback", "immediate", "--reason", "again")
    assert r.returncode == 0 and "Nothing changed" in r.stdout
    assert cli("restore", "--reason", "all clear").returncode == 0
    assert all(config(fs)["components"].values())
    r = cli("set-messages", "gate=Go premium today", "--reason", "copy test")
    assert r.returncode == 0, r.stderr
    assert config(fs)["messages"] == {"gate": "Go premium today"}
    assert config(fs)["version"] == 6
    r = cli("status")
    assert "overridden: gate" in r.stdout and "premium (Phase B, premium)" in r.stdout


def test_two_operators_racing_exactly_one_wins(fs: Any) -> None:
    assert cli("advance", "--reason", "beta").returncode == 0
    results: dict[str, subprocess.CompletedProcess[str]] = {}

    def run(name: str, *args: str) -> None:
        results[name] = cli(*args, "--expect-version", "1", "--as", name)

    threads = [
        threading.Thread(target=run, args=("alice", "rollback", "immediate", "--reason", "errors")),
        threading.Thread(target=run, args=("bob", "set-messages", "gate=Hi", "--reason", "copy")),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    codes = sorted(r.returncode for r in results.values())
    assert codes == [0, 1], {k: (v.returncode, v.stderr) for k, v in results.items()}
    loser = next(r for r in results.values() if r.returncode == 1)
    assert "someone else changed" in loser.stderr and "Traceback" not in loser.stderr
    doc = config(fs)
    assert doc["version"] == 2
    winner = next(k for k, v in results.items() if v.returncode == 0)
    assert doc["updatedBy"] == winner


def test_a_stale_read_loses_the_compare_and_set(fs: Any) -> None:
    now = datetime.now(UTC)
    changes.advance(fs, by="a", reason="beta", now=now)
    stale = changes.read_current(fs)
    changes.rollback_partial(fs, "usageTracking", by="alice", reason="r", now=now)
    with pytest.raises(changes.Conflict):
        changes.apply_change(
            fs,
            "rollback immediate",
            changes.kill_switch_mutation,
            by="bob",
            reason="r",
            now=now,
            current=stale,
        )
    doc = config(fs)
    assert doc["version"] == 2 and doc["components"]["premiumGating"] is True


def _seed_minutes(fs: Any, end: datetime, n: int, requests: int, errors: int) -> None:
    rec = Recorder(Settings(project_id="demo-cv-enrichment"), rng=lambda k: 0)
    writes = []
    for k in range(1, n + 1):
        counters = {
            "c": {
                "requests": Inc(requests),
                "errors": Inc(errors),
                "failed": Inc(errors),
                "successful": Inc(requests - errors),
            }
        }
        # Failures of five distinct users (contract 6 needs at least five for a rollback).
        failing = {"failedUsers": {f"user{i}": Inc(1) for i in range(5)}} if errors else None
        writes.extend(rec.aggregate_writes(end - timedelta(minutes=k), counters, failing))
    fs.commit(writes)


def test_evaluate_turns_gating_off_and_explains_why(fs: Any) -> None:
    at = T0 - timedelta(hours=1)
    assert (
        cli(
            "set",
            "--phase",
            "premium",
            "--percentage",
            "25",
            "--force",
            "--reason",
            "setup",
            "--at",
            at.isoformat(),
        ).returncode
        == 0
    )
    _seed_minutes(fs, T0, 10, requests=20, errors=8)
    when = (T0 + timedelta(seconds=20)).isoformat()
    r = cli("evaluate", "--dry-run", "--at", when)
    assert r.returncode == 0 and "DRY RUN" in r.stdout
    assert config(fs)["components"]["premiumGating"] is True
    r = cli("evaluate", "--at", when)
    assert r.returncode == 0, r.stderr
    out = " ".join(r.stdout.split())
    assert "Automatic immediate rollback" in out and "error rate above 5%" in out
    severities = [json.loads(x)["severity"] for x in r.stderr.splitlines() if x.startswith("{")]
    assert "CRITICAL" in severities, r.stderr
    doc = config(fs)
    assert doc["components"]["premiumGating"] is False and doc["version"] == 2
    hid = changes.history_id(T0 + timedelta(seconds=20), 2)
    assert hid in out
    entry = fs.get_many([f"{HISTORY_COLLECTION}/{hid}"])[f"{HISTORY_COLLECTION}/{hid}"]
    assert entry["action"] == "auto-rollback immediate" and entry["by"].startswith("evaluator")
    (trig,) = entry["evidence"]["triggers"]
    assert trig["errors"] == 80 and trig["requests"] == 200 and len(trig["perMinute"]) == 10
    r = cli("evaluate", "--at", (T0 + timedelta(seconds=40)).isoformat())
    assert r.returncode == 0 and "nothing to roll back" in " ".join(r.stdout.split())
    assert config(fs)["version"] == 2


def test_unreachable_firestore_exits_3_without_traceback(fs: Any) -> None:
    r = cli("status", env={"FIRESTORE_EMULATOR_HOST": "127.0.0.1:9"})
    assert r.returncode == 3, (r.stdout, r.stderr)
    assert "cannot reach Firestore" in r.stderr and "Traceback" not in r.stderr


def test_status_shows_how_far_the_aggregates_are_rolled_up(fs: Any) -> None:
    from datetime import UTC, datetime

    from analytics.rollup import roll_up

    run = roll_up(fs, datetime.now(UTC))
    assert run.through is not None and not run.conflict
    r = cli("status")
    assert r.returncode == 0, r.stderr
    rows = [" ".join(line.split()) for line in r.stdout.splitlines()]
    shown = f"aggregates rolled up through {run.through:%Y-%m-%d %H:%M}"
    assert any(row.startswith(shown) for row in rows), r.stdout
