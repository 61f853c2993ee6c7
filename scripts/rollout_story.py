#!/usr/bin/env python3
"""The demo's closing rollout story (issue 4), told in the operator CLI's own output.

beta, then premium (refused on metrics, then forced), then a failing source, the automatic
rollback (``rollout.py evaluate``, the scheduled function's logic), a free user ungated again,
the history, and recovery. The story leaves the config as it ends (phase premium, gating on).

Importable: ``run(services, store)`` with the *running* fakes (``scripts.devkit.services``),
which is how ``scripts/demo.py`` calls it (the fakes live in the demo's process, on fixed
ports, so only that process can make GitHub fail). Alone it starts its own fakes:

    scripts/with-emulators.sh .venv/bin/python scripts/rollout_story.py

It takes 2-3 minutes of real time: the evaluator only reads complete minutes, and the fastest
trigger is "no successful call for 2 minutes while calls fail".
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

from scripts.devkit.emulator import Answer, call, require_emulators, seed  # noqa: E402
from scripts.devkit.emulator import store as make_store  # noqa: E402
from scripts.devkit.services import Services, fixed_port_services  # noqa: E402

CLI = ROOT / "scripts" / "rollout.py"
FIXTURES = ROOT / "tests" / "fixtures"
ENRICH = "enrichCVWithExternalData"
OPERATOR = "alice"
CALL_EVERY_S = 3.0
OUTAGE_MINUTES = 2
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


def _drive_failures(user: Any, cv: str) -> int:
    """GitHub-only calls every few seconds until two complete minutes have no success."""
    start = datetime.now(UTC)
    window_end = start.replace(second=0, microsecond=0) + timedelta(minutes=1 + OUTAGE_MINUTES)
    say(
        f"Pat (premium) keeps asking for GitHub data every {CALL_EVERY_S:.0f} s until "
        f"{window_end:%H:%M:%S} UTC (two complete minutes)…"
    )
    calls = failed = 0
    last_line = 0.0
    while datetime.now(UTC) < window_end - timedelta(seconds=1):
        t = time.monotonic()
        answer = call(
            ENRICH,
            {
                "cvId": cv,
                "sources": ["github"],
                "github": "octocat",
                "options": {"forceRefresh": True},
            },
            user,
        )
        calls += 1
        if answer.ok and answer.result["status"] == "failed":
            failed += 1
        left = max(0, int((window_end - datetime.now(UTC)).total_seconds()))
        line = f"{calls} call{'s' if calls != 1 else ''}, {failed} failed (GitHub: upstream), {left} s to go"
        if _TTY:
            print(f"\r    {DIM}…{RESET} {line}   ", end="", flush=True)
        elif time.monotonic() - last_line >= 45 or calls == 1:
            print(f"    … {line}", flush=True)
            last_line = time.monotonic()
        time.sleep(max(0.0, CALL_EVERY_S - (time.monotonic() - t)))
    if _TTY:
        print()
    time.sleep(max(0.0, (window_end - datetime.now(UTC)).total_seconds() + SETTLE_S))
    ok(f"{failed} of {calls} calls failed, none succeeded")
    return failed


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

    heading("A failing source")
    say("GitHub starts answering 500 to everything (the fake's fail_always).")
    services.github.behaviour.fail_always = True
    try:
        _drive_failures(pat, pat_cv)
        say("The scheduled evaluator runs every minute; the CLI runs the same logic now:")
        rollout("evaluate")
        took = _wait_for(lambda: _full(sam, sam_cv).ok)
        if took is None:
            raise RuntimeError("Sam is still gated 30 s after the automatic rollback")
        access = _full(sam, sam_cv).result["access"]
        when = f"{took:.0f} s after the rollback" if took >= 1 else "right after the rollback"
        ok(f"Sam gets {access} enrichment again, {when}")
        again = " ".join(rollout("evaluate", show=False).split())
        if "No action" not in again:
            raise RuntimeError(f"the second evaluate acted again: {again}")
        ok("a second `evaluate` does nothing: the same incident is never acted on twice")
        rollout("history")
    finally:
        services.github.behaviour.fail_always = False

    heading("Recovery")
    say("GitHub answers again (the fake is healthy); alice turns the gate back on.")
    rollout("restore", "--reason", "GitHub recovered")
    rollout("status")


def main() -> int:
    require_emulators()
    with fixed_port_services() as services:
        run(services, make_store())
    return 0


if __name__ == "__main__":
    sys.exit(main())
