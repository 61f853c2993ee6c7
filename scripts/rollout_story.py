#!/usr/bin/env python3
"""The demo's closing rollout story, told in the operator CLI's own output.

beta, then premium (refused on metrics, then forced), then a GitHub outage that opens GitHub's
circuit breaker (``rollout.py evaluate``, the scheduled function's logic) while the gate stays
on, the breaker closing again on probe calls, and the kill switch reserved for failures of the
service itself (five users' internal errors would move it, one user's never). The story leaves
the config as it ends (phase premium, gating on).

Importable: ``run(services, store)`` with the *running* fakes (``scripts.devkit.services``),
which is how ``scripts/demo.py`` calls it (the fakes live in the demo's process, on fixed
ports, so only that process can make GitHub fail). Alone it starts its own fakes:

    scripts/with-emulators.sh .venv/bin/python scripts/rollout_story.py

It takes about 2 minutes of real time: the evaluator only reads complete minutes.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
for _p in (str(ROOT / "functions"), str(ROOT)):
    if _p not in sys.path:
        sys.path.insert(0, _p)

from rollout_control.breakers import PROBES_PER_HALF_OPEN  # noqa: E402
from scripts.devkit.emulator import Answer, call, require_emulators, seed  # noqa: E402
from scripts.devkit.emulator import store as make_store  # noqa: E402
from scripts.devkit.faults import record_service_failures  # noqa: E402
from scripts.devkit.services import Services, fixed_port_services  # noqa: E402
from stores.base import Write  # noqa: E402
from stores.schema import CONFIG_PATH  # noqa: E402

CLI = ROOT / "scripts" / "rollout.py"
FIXTURES = ROOT / "tests" / "fixtures"
ENRICH = "enrichCVWithExternalData"
OPERATOR = "alice"
SETTLE_S = 4.0
BOUND_S = 30.0

_TTY = sys.stdout.isatty()
BOLD, DIM, GREEN, YELLOW, RESET = (
    ("\033[1m", "\033[2m", "\033[32m", "\033[33m", "\033[0m") if _TTY else ("",) * 5
)


def heading(text: str) -> None:
    print(f"\n{BOLD}== {text} =={RESET}", flush=True)


def say(text: str) -> None:
    print(f"  {text}", flush=True)


def ok(text: str) -> None:
    print(f"    {GREEN}✓{RESET} {text}", flush=True)


def rollout(*args: str, expect: int = 0, show: bool = True) -> str:
    """Run ``scripts/rollout.py ARGS`` and print the command and its output, indented."""
    argv = list(args)
    if argv and argv[0] not in ("status", "history"):
        argv += ["--as", OPERATOR]
    shown = " ".join(f'"{a}"' if " " in a else a for a in args)
    print(f"  {DIM}${RESET} rollout.py {shown}", flush=True)
    r = subprocess.run(
        [sys.executable, str(CLI), *argv],
        cwd=ROOT,
        env=dict(os.environ),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    # Structured log lines (the evaluator's CRITICAL alert) go to stderr as JSON: not shown.
    err = "\n".join(ln for ln in r.stderr.splitlines() if not ln.startswith("{"))
    text = (r.stdout.rstrip("\n") + ("\n" + err if err.strip() else "")).strip("\n")
    if r.returncode != expect:
        raise RuntimeError(
            f"rollout.py {shown} exited {r.returncode} (expected {expect}):\n{r.stdout}\n{r.stderr}"
        )
    if show:
        for line in text.splitlines():
            print(f"    {line}".rstrip())
        sys.stdout.flush()
    return text


def _linkedin_export() -> dict[str, str]:
    folder = FIXTURES / "linkedin" / "complete"
    return {p.name: p.read_text(encoding="utf-8") for p in sorted(folder.glob("*.csv"))}


def _full(user: Any, cv: str) -> Answer:
    data = {"cvId": cv, "sources": ["linkedin"], "linkedin": {"export": _linkedin_export()}}
    return call(ENRICH, data, user)


def _wait_for(check: Callable[[], bool], bound: float = BOUND_S) -> float | None:
    started = time.monotonic()
    while time.monotonic() - started < bound:
        if check():
            return time.monotonic() - started
        time.sleep(0.5)
    return None


def _both(user: Any, cv: str) -> Answer:
    data = {
        "cvId": cv,
        "sources": ["github", "linkedin"],
        "github": "octocat",
        "linkedin": {"export": _linkedin_export()},
        "options": {"forceRefresh": True},
    }
    return call(ENRICH, data, user)


def _github_report(answer: Answer) -> dict[str, Any]:
    return dict(next(s for s in answer.result["sources"] if s["source"] == "github"))


def _drive_outage(users: list[tuple[Any, str]], calls: int = 24) -> None:
    """GitHub-and-LinkedIn calls during the outage, spread over ``users`` (a breaker needs
    failures from 5 distinct users), then wait for the minute to complete."""
    say(
        f"Pat and {len(users) - 1} other premium users make {calls} enrichments with GitHub and"
        " LinkedIn…"
    )
    statuses = [_both(*users[i % len(users)]).result["status"] for i in range(calls)]
    ok(
        f"all {calls} answered {', '.join(sorted(set(statuses)))}: LinkedIn served, GitHub failed upstream"
    )
    now = datetime.now(UTC)
    boundary = now.replace(second=0, microsecond=0) + timedelta(minutes=1)
    say(
        f"waiting for the minute to complete ({boundary:%H:%M:%S} UTC): the evaluator reads complete minutes"
    )
    time.sleep((boundary - now).total_seconds() + SETTLE_S)


def _outage_scene(
    services: Services, store: Any, pat: Any, pat_cv: str, sam: Any, sam_cv: str
) -> None:
    heading("A GitHub outage: the source's breaker opens, the gate stays on")
    say("GitHub starts answering 500 to everything (the fake's fail_always).")
    others = [seed(store, f"story-premium-{i}", premium=True) for i in range(4)]
    services.github.behaviour.fail_always = True
    try:
        _drive_outage([(pat, pat_cv), *others])
        say("The scheduled evaluator runs every minute; the CLI runs the same logic now:")
        rollout("evaluate")
        took = _wait_for(lambda: _github_report(_both(pat, pat_cv))["status"] == "skipped")
        if took is None:
            raise RuntimeError("GitHub is still tried 30 s after its breaker opened")
        report = _github_report(_both(pat, pat_cv))
        ok(
            f"Pat's next enrichment: GitHub {report['status']} ({report['error']['code']}), no time spent on it"
        )
        if _full(sam, sam_cv).status != "PERMISSION_DENIED":
            raise RuntimeError("Sam was ungated by an upstream outage")
        ok("Sam (free) is still gated: an upstream outage never hands out the paid feature")
    finally:
        services.github.behaviour.fail_always = False
    say("GitHub recovers. (The story moves the breaker's 5 minutes along instead of waiting.)")
    cfg = store.get_many([CONFIG_PATH])[CONFIG_PATH] or {}
    breakers = {**cfg.get("breakers", {})}
    breakers["github"] = {**breakers.get("github", {}), "until": datetime.now(UTC)}
    store.commit([Write(CONFIG_PATH, {"breakers": breakers})])
    if _wait_for(lambda: _github_report(_both(pat, pat_cv))["status"] == "success") is None:
        raise RuntimeError("the half-open GitHub breaker let no probe call through")
    more = [_github_report(_both(pat, pat_cv))["status"] for _ in range(PROBES_PER_HALF_OPEN - 1)]
    if more != ["success"] * (PROBES_PER_HALF_OPEN - 1):
        raise RuntimeError(f"the half-open GitHub breaker's other probe calls: {more}")
    ok(f"the {PROBES_PER_HALF_OPEN} probe calls through the half-open breaker succeed")
    now = datetime.now(UTC)
    time.sleep(
        (now.replace(second=0, microsecond=0) + timedelta(minutes=1) - now).total_seconds()
        + SETTLE_S
    )
    rollout("evaluate")
    rollout("history", "--limit", "4")


def _kill_switch_scene(store: Any) -> None:
    heading("The kill switch is for failures of the service itself")
    at = datetime(2021, 3, 2, 12, 0, 30, tzinfo=UTC)
    say("Replaying ten minutes of internal errors (our own code failing) from one user, then five:")
    record_service_failures(store, at - timedelta(days=1), ["one-user"], 25)
    rollout("evaluate", "--dry-run", "--at", (at - timedelta(days=1)).isoformat())
    record_service_failures(store, at, [f"user-{i}" for i in range(5)], 25)
    rollout("evaluate", "--dry-run", "--at", at.isoformat())
    ok("one user's failures never move it; five users' failures of the service would")


def run(services: Services, store: Any) -> None:
    """Tell the story against the running emulators, with ``services`` the running fakes."""
    heading("Rollout story: beta, premium, a failing source, automatic rollback, recovery")
    pat, pat_cv = seed(store, "story-pat", premium=True)
    sam, sam_cv = seed(store, "story-sam", groups=["beta-testers"])
    say("The scenarios above ran with everyone gated. Operator alice starts over from phase off.")
    rollout("set", "--phase", "off", "--percentage", "0", "--reason", "story: start from off")
    rollout("status")

    heading("Phase A, beta")
    rollout("advance", "--reason", "start beta")

    heading("Phase B, premium")
    say("Advancing needs the beta's success metrics over 48 h; the story has minutes:")
    rollout("advance", "--reason", "to premium", expect=1)
    rollout("advance", "--force", "--reason", "demo: skip the 48 h beta window")
    took = _wait_for(lambda: _full(sam, sam_cv).status == "PERMISSION_DENIED")
    if took is None:
        raise RuntimeError("Sam (free, beta tester) is not gated in phase premium after 30 s")
    ok("Sam (free, beta tester) is in the gated cohort: full enrichment → premium_required")

    _outage_scene(services, store, pat, pat_cv, sam, sam_cv)
    _kill_switch_scene(store)

    heading("Where it ends")
    rollout("status")


def main() -> int:
    require_emulators()
    with fixed_port_services() as services:
        run(services, make_store())
    return 0


if __name__ == "__main__":
    sys.exit(main())
