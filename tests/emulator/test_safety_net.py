"""End to end (issue 9, contract sections 2.1, 3 and 6) through the callable protocol and the
operator CLI on the emulators: an upstream outage opens the source's breaker and never turns
gating off; one user's failures never trip a rollback, five users' do; a failed enrichment costs
no quota; retries with one ``idempotencyKey`` run once; ``maxCohortUsers`` caps the cohort.

The breaker test takes about two minutes of real time (the evaluator reads complete minutes).
Progress goes to stderr (``pytest -s`` shows it). Fails (never skips) without the emulators.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from rollout_control.breakers import PROBES_PER_HALF_OPEN
from scripts.devkit.emulator import GATED, Answer, User, call, seed
from scripts.devkit.faults import record_service_failures
from scripts.devkit.services import Services
from stores.base import Write
from stores.schema import CONFIG_PATH, HISTORY_COLLECTION

ROOT = Path(__file__).resolve().parents[2]
CLI = ROOT / "scripts" / "rollout.py"
FIXTURES = ROOT / "tests" / "fixtures"
ENRICH = "enrichCVWithExternalData"
BOUND_S = 30.0
SETTLE_S = 4.0


def _progress(text: str) -> None:
    print(f"[safety-net {datetime.now(UTC):%H:%M:%S}] {text}", file=sys.stderr, flush=True)


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


def _wait_for(check: Callable[[], bool], bound: float = BOUND_S) -> float:
    started = time.monotonic()
    while time.monotonic() - started < bound + 5:
        if check():
            return time.monotonic() - started
        time.sleep(0.5)
    return float("inf")


def _export() -> dict[str, str]:
    folder = FIXTURES / "linkedin" / "complete"
    return {p.name: p.read_text(encoding="utf-8") for p in sorted(folder.glob("*.csv"))}


def _both(user: User, cv: str) -> Answer:
    return call(
        ENRICH,
        {
            "cvId": cv,
            "sources": ["github", "linkedin"],
            "github": "octocat",
            "linkedin": {"export": _export()},
            "options": {"forceRefresh": True},
        },
        user,
    )


def _free_full(user: User, cv: str) -> Answer:
    return call(
        ENRICH, {"cvId": cv, "sources": ["linkedin"], "linkedin": {"export": _export()}}, user
    )


def _github(answer: Answer) -> dict[str, Any]:
    return next(s for s in answer.result["sources"] if s["source"] == "github")


def _set_config(store: Any, **fields: Any) -> None:
    doc = {**GATED, **fields, "version": int(time.time() * 1000)}
    store.commit([Write(CONFIG_PATH, doc, merge=False)])


def _next_minute_settled() -> None:
    now = datetime.now(UTC)
    boundary = now.replace(second=0, microsecond=0) + timedelta(minutes=1)
    time.sleep((boundary - now).total_seconds() + SETTLE_S)


def test_a_github_outage_opens_its_breaker_and_gating_stays_on(
    store: Any, services: Services
) -> None:
    free_user, free_cv = seed(store, "breaker-free")
    premium_user, premium_cv = seed(store, "breaker-premium", premium=True)
    # a breaker needs failed tries from 5 distinct users (contract 6: no single user moves it)
    callers = [(premium_user, premium_cv)]
    callers += [seed(store, f"breaker-premium-{i}", premium=True) for i in range(4)]
    _set_config(store)
    assert (
        _wait_for(lambda: _free_full(free_user, free_cv).status == "PERMISSION_DENIED") <= BOUND_S
    )
    services.github.behaviour.fail_always = True
    try:
        _progress("GitHub fake answering 500; 24 calls of 5 premium users with GitHub and LinkedIn")
        for i in range(24):
            answer = _both(*callers[i % len(callers)])
            assert answer.result["status"] == "partial", answer.body
            assert _github(answer)["error"]["code"] == "upstream"
        _next_minute_settled()
        r = cli("evaluate")
        assert r.returncode == 0, (r.stdout, r.stderr)
        out = " ".join(r.stdout.split())
        assert "Circuit breaker: github:" in out and "switched off for 5 minutes" in out, out
        assert "No action" in out  # the kill switch is for failures of the service only
        cfg = _config(store)
        assert cfg["breakers"]["github"]["state"] == "open"
        assert cfg["components"]["premiumGating"] is True

        def skipped() -> bool:
            gh = _github(_both(premium_user, premium_cv))
            return bool(gh["status"] == "skipped" and gh["error"]["code"] == "disabled")

        assert _wait_for(skipped) <= BOUND_S, "GitHub still tried 30 s after the breaker opened"
        answer = _both(premium_user, premium_cv)
        assert answer.result["status"] == "partial" and _github(answer)["durationMs"] == 0
        assert _free_full(free_user, free_cv).status == "PERMISSION_DENIED"  # still gated
    finally:
        services.github.behaviour.fail_always = False
    # Five minutes pass (the stored "until" is moved to now instead of waiting for it).
    breakers = {**_config(store)["breakers"]}
    breakers["github"] = {**breakers["github"], "until": datetime.now(UTC)}
    store.commit([Write(CONFIG_PATH, {"breakers": breakers})])
    assert (
        _wait_for(lambda: _github(_both(premium_user, premium_cv))["status"] == "success")
        <= BOUND_S
    )
    # all the half-open period's probe calls report before it closes
    for _ in range(PROBES_PER_HALF_OPEN - 1):
        assert _github(_both(premium_user, premium_cv))["status"] == "success"
    _next_minute_settled()
    r = cli("evaluate")
    assert r.returncode == 0, (r.stdout, r.stderr)
    assert "github: probe calls succeeded" in " ".join(r.stdout.split()), r.stdout
    assert _config(store)["breakers"]["github"]["state"] == "closed"
    entries = [
        d for _, d in store.query(HISTORY_COLLECTION) if d.get("action", "").startswith("breaker")
    ]
    actions = [e["action"] for e in sorted(entries, key=lambda e: e["at"])][-2:]
    assert actions == ["breaker open", "breaker closed"]
    assert all(e["reason"].startswith("automatic circuit breaker: github") for e in entries[-2:])


def test_one_users_failures_never_trip_a_rollback_five_users_do(store: Any) -> None:
    _set_config(store)  # no earlier automatic rollback that would mark these minutes as seen
    one_at = datetime(2021, 3, 1, 12, 0, 30, tzinfo=UTC)
    record_service_failures(store, one_at, ["only-me"], 25)
    r = cli("evaluate", "--dry-run", "--at", one_at.isoformat())
    out = " ".join(r.stdout.split())
    assert r.returncode == 0 and "No action" in out, out
    assert "failures from 1 distinct user(s), 5 needed" in out, out
    five_at = datetime(2021, 3, 2, 12, 0, 30, tzinfo=UTC)
    record_service_failures(store, five_at, [f"user-{i}" for i in range(5)], 25)
    r = cli("evaluate", "--dry-run", "--at", five_at.isoformat())
    out = " ".join(r.stdout.split())
    assert r.returncode == 0 and "DRY RUN" in out and "turn premium gating off" in out, out


def test_a_failed_enrichment_of_a_free_user_costs_no_quota(store: Any, services: Services) -> None:
    user, cv = seed(store, "fair-free")
    services.github.behaviour.fail_always = True
    try:
        request = {
            "cvId": cv,
            "mode": "preview",
            "sources": ["github"],
            "github": "octocat",
            "options": {"forceRefresh": True},
        }
        answer = call(ENRICH, request, user)
        assert answer.result["status"] == "failed", answer.body
        assert answer.result["usage"]["remaining"] == 3
    finally:
        services.github.behaviour.fail_always = False
    stats = call("getUserExternalDataUsageStats", {}, user).result
    assert stats["hourly"]["used"] == 0 and stats["hourly"]["remaining"] == 3


def test_twenty_simultaneous_retries_with_one_key_run_once(store: Any) -> None:
    user, cv = seed(store, "idem", premium=True)
    request = {
        "cvId": cv,
        "sources": ["linkedin"],
        "linkedin": {"export": _export()},
        "idempotencyKey": "retry-key-0001",
    }
    answers: list[Answer] = []
    lock = threading.Lock()

    def one() -> None:
        a = call(ENRICH, request, user)
        with lock:
            answers.append(a)

    threads = [threading.Thread(target=one) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(a.ok for a in answers), [a.body for a in answers if not a.ok]
    assert len({a.result["requestId"] for a in answers}) == 1
    events = store.query(f"external_data_usage/{user.uid}/events")
    assert len([e for _, e in events if e.get("fn") == ENRICH]) == 1
    assert call("getUserExternalDataUsageStats", {}, user).result["hourly"]["used"] == 1
    other = call(ENRICH, {**request, "sources": ["github"], "github": "octocat"}, user)
    assert (
        other.status == "INVALID_ARGUMENT" and other.error["details"]["field"] == "idempotencyKey"
    )


def test_with_max_cohort_users_3_the_fourth_new_user_stays_outside(store: Any) -> None:
    users = [seed(store, f"cap-{i}") for i in range(4)]
    _set_config(
        store,
        phase="beta",
        rolloutPercentage=100,
        fallbackEnabled=True,
        maxCohortUsers=3,
        phaseSince=datetime.now(UTC),
    )
    try:
        time.sleep(11)  # the config cache (10 s) of the running instance
        statuses = [_free_full(u, cv).status for u, cv in users]
        assert statuses == ["PERMISSION_DENIED"] * 3 + ["OK"], statuses
        assert _free_full(*users[3]).ok  # and stays outside for the phase
        r = cli("status")
        assert "3 of 3 seats taken this phase" in r.stdout, r.stdout
    finally:
        _set_config(store)
        time.sleep(11)


def test_shadow_mode_refuses_nobody_and_counts_what_the_gate_would_do(store: Any) -> None:
    user, cv = seed(store, "shadow-free")
    _set_config(store, shadow=True)
    try:
        assert _wait_for(lambda: _free_full(user, cv).ok) <= BOUND_S, "shadow still refuses"
        answer = _free_full(user, cv)
        assert answer.result["access"] == "full" and answer.result["status"] == "success"
        preview = call(
            ENRICH,
            {
                "cvId": cv,
                "mode": "preview",
                "sources": ["linkedin"],
                "linkedin": {"export": _export()},
            },
            user,
        )
        assert preview.result["access"] == "full"  # served as if ungated
        r = cli("status")
        out = " ".join(r.stdout.split())
        assert "shadow ON: nobody is refused" in out, out
        would = int(out.split("would refuse ")[1].split(",")[0])
        assert would >= 2  # this test's two full asks at least (one per poll that was served)
    finally:
        _set_config(store)
        time.sleep(11)
