"""Faults injected while a run is going, on a schedule relative to its start (issue 11, item 4):
the Firestore emulator frozen for 30 s, a flapping source, the rollout config deleted and then
corrupted. Each action is logged with the second it happened, for the run's summary."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from loadtests.stack import Stack
from scripts.devkit.emulator import GATED
from stores.schema import CONFIG_PATH

CORRUPT = {"phase": "everyone-free", "rolloutPercentage": "all", "components": []}
"""A config document no validator accepts (wrong phase, percentage, components)."""


@dataclass
class Timeline:
    """What was done when (seconds after the run's start)."""

    t0: float
    entries: list[tuple[float, str]] = field(default_factory=list)

    def note(self, what: str) -> None:
        """Record ``what`` now."""
        self.entries.append((time.time() - self.t0, what))


def _flap(stack: Stack, until: float, period_s: float, timeline: Timeline) -> None:
    gh = stack.github
    if gh is None:
        return
    timeline.note(f"GitHub fake starts flapping: failing (HTTP 500) every other {period_s:g} s")
    failing = False
    while time.time() < until:
        failing = not failing
        gh.behaviour.fail_always = failing
        time.sleep(period_s)
    gh.behaviour.fail_always = False
    timeline.note("GitHub fake healthy again")


def actions(stack: Stack, client: Any, timeline: Timeline) -> dict[str, Callable[[], None]]:
    """The named faults, bound to a running stack and a Firestore client."""
    config = client.document(CONFIG_PATH)

    def note(what: str, fn: Callable[[], Any]) -> Callable[[], None]:
        def run() -> None:
            fn()
            timeline.note(what)

        return run

    return {
        "flap": lambda: _flap(stack, time.time() + 40, 5, timeline),
        "config-delete": note("config document deleted", config.delete),
        "config-corrupt": note(
            "config document replaced by an invalid one", lambda: config.set(CORRUPT)
        ),
        "config-restore": note(
            "config document restored (phase full)", lambda: config.set(dict(GATED))
        ),
        "store-stop": note("Firestore emulator frozen (SIGSTOP)", stack.firestore.pause),
        "store-start": note("Firestore emulator resumed (SIGCONT)", stack.firestore.resume),
    }


FAULT_SCHEDULE: list[tuple[float, str]] = [
    (30, "flap"),
    (80, "config-delete"),
    (100, "config-restore"),
    (110, "config-corrupt"),
    (130, "config-restore"),
    (150, "store-stop"),
    (180, "store-start"),
]
"""(seconds after the start, action) of the faults run (which lasts 240 s)."""


def schedule(
    plan: list[tuple[float, str]], named: dict[str, Callable[[], None]], t0: float
) -> threading.Thread:
    """Run ``plan`` in a daemon thread, each action at its offset from ``t0``."""

    def loop() -> None:
        for at, name in plan:
            time.sleep(max(0.0, t0 + at - time.time()))
            threading.Thread(target=named[name], daemon=True).start()

    thread = threading.Thread(target=loop, name="faults", daemon=True)
    thread.start()
    return thread
