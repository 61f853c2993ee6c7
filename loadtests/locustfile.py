"""The plan's load profile ("Load Testing": 10 rps for 5 minutes, then 20 rps for 10 minutes;
70% premium full enrichment, 30% free preview) as a Locust scenario, with the phases, the mix
and the arrival model as parameters (environment variables, set by ``loadtests/run.py``):

``LOAD_PHASES``   JSON ``[[seconds, rps], ...]`` (default: the plan's)
``LOAD_MIX``      ``premium_full=70,free_preview=30`` (also ``free_full``: a free user asking
                  for full inside the gate, refused with ``permission-denied`` and audited)
``LOAD_ARRIVAL``  ``open``: each simulated user fires at Poisson-spaced instants (exponential
                  gaps, mean ``LOAD_PACING`` s), users = rps x pacing, so the superposed
                  arrivals are a Poisson stream at the phase's rate whatever the answers'
                  latency (open-loop, as real users arrive);
                  ``burst``: users = rps, each fires at every whole second of the wall clock:
                  synchronized bursts of ``rps`` calls (the worst case)
``LOAD_USERS``    the seeded users (``seed.py``), ``LOAD_ROWS`` a CSV of every answer
``LOAD_FRESH``    share of premium calls with ``options.forceRefresh`` (the sources are really
                  fetched from the loopback fakes instead of the cache)
``LOAD_SOURCES``  sources asked for (default ``github,linkedin``)

Every answer is classified by the callable protocol: ``OK`` or the error's ``status``
(``UNAVAILABLE``, ``INTERNAL``...), ``HTTP nnn`` for a non-callable answer, ``TRANSPORT`` when
no answer came. Expected refusals (``free_full``) count as successes in Locust's statistics.
"""

from __future__ import annotations

import csv
import itertools
import json
import math
import os
import random
import time
from pathlib import Path
from typing import Any

from locust import LoadTestShape, events, task
from locust.contrib.fasthttp import FastHttpUser

from loadtests.protocol import classify

ROOT = Path(__file__).resolve().parents[1]
PLAN_PHASES = [[300, 10], [600, 20]]
PHASES: list[list[float]] = json.loads(os.environ.get("LOAD_PHASES", json.dumps(PLAN_PHASES)))
ARRIVAL = os.environ.get("LOAD_ARRIVAL", "open")
PACING = float(os.environ.get("LOAD_PACING", "2"))
FRESH = float(os.environ.get("LOAD_FRESH", "0"))
SOURCES = os.environ.get("LOAD_SOURCES", "github,linkedin").split(",")
EXPECTED = {"free_full": "PERMISSION_DENIED"}


def parse_mix(text: str) -> dict[str, float]:
    """``premium_full=70,free_preview=30`` → weights."""
    out = {}
    for part in text.split(","):
        name, _, weight = part.partition("=")
        if name.strip():
            out[name.strip()] = float(weight)
    return out


MIX = parse_mix(os.environ.get("LOAD_MIX", "premium_full=70,free_preview=30"))
_USERS: list[dict[str, str]] = (
    json.loads(Path(os.environ["LOAD_USERS"]).read_text()) if os.environ.get("LOAD_USERS") else []
)
_POOLS = {
    tier: itertools.cycle(random.sample(us, len(us)) or [{}])
    for tier in ("premium", "free")
    for us in [[u for u in _USERS if u["tier"] == tier]]
}
_LINKEDIN = {
    p.name: p.read_text("utf-8")
    for p in sorted((ROOT / "tests/fixtures/linkedin/complete").glob("*.csv"))
}


def request_body(kind: str, cv: str, fresh: bool) -> dict[str, Any]:
    """The callable's ``data`` for one call of ``kind``."""
    body: dict[str, Any] = {"cvId": cv, "mode": "preview" if kind == "free_preview" else "full"}
    body["sources"] = SOURCES
    if "github" in SOURCES:
        body["github"] = "octocat"
    if "linkedin" in SOURCES:
        body["linkedin"] = {"export": _LINKEDIN}
    if "website" in SOURCES:
        body["website"] = os.environ.get("LOAD_WEBSITE_URL", "http://127.0.0.1/")
    if "web" in SOURCES:
        body["name"] = "The Octocat"
    if fresh:
        body["options"] = {"forceRefresh": True}
    return body


class _Rows:
    """Every answer as one CSV row (the summary and the checker read these)."""

    FIELDS = ("t", "kind", "ms", "status", "access", "result", "requestId", "uid", "host")

    def __init__(self) -> None:
        path = os.environ.get("LOAD_ROWS")
        self.file = open(path, "w", newline="") if path else None  # noqa: SIM115 - closed at quit
        self.writer = csv.writer(self.file) if self.file else None
        if self.writer:
            self.writer.writerow(self.FIELDS)

    def add(self, *row: Any) -> None:
        if self.writer:
            self.writer.writerow(row)

    def close(self) -> None:
        if self.file:
            self.file.close()


ROWS = _Rows()


@events.quitting.add_listener  # type: ignore[untyped-decorator]
def _close(**_: Any) -> None:
    ROWS.close()


_HOSTS = itertools.cycle([h for h in os.environ.get("LOAD_HOSTS", "").split(",") if h] or [None])
"""The function instances: each new user takes the next, so they hold equal shares of users."""


class Caller(FastHttpUser):
    """A signed-in client calling ``enrichCVWithExternalData`` through the callable protocol."""

    connection_timeout = 30.0
    network_timeout = 60.0

    def __init__(self, environment: Any) -> None:
        # Before the base class builds the user's HTTP client for ``self.host``.
        self.host = next(_HOSTS) or self.host
        super().__init__(environment)

    def on_start(self) -> None:
        # Spread the users' first calls (open) or align them to the next second (burst): Locust
        # runs the first task right after on_start.
        if ARRIVAL == "open":
            time.sleep(random.uniform(0, PACING))
        else:
            time.sleep(math.ceil(time.time()) - time.time())
        self.next_at = time.time()

    def wait_time(self) -> float:
        now = time.time()
        if ARRIVAL == "burst":
            return math.ceil(now) - now
        self.next_at += random.expovariate(1 / PACING)
        return max(0.0, self.next_at - now)

    @task
    def enrich(self) -> None:
        kind = random.choices(list(MIX), weights=list(MIX.values()))[0]
        user = next(_POOLS["premium" if kind.startswith("premium") else "free"])
        fresh = kind == "premium_full" and random.random() < FRESH
        body = request_body(kind, user.get("cv", "cv-none"), fresh)
        headers = {"Authorization": f"Bearer {user.get('token', '')}"}
        started = time.time()
        with self.client.post(
            "/", json={"data": body}, headers=headers, name=kind, catch_response=True
        ) as resp:
            status, result = classify(resp.status_code or 0, resp.text)
            if status == "TRANSPORT" and resp.error is not None:
                status = f"TRANSPORT {type(resp.error).__name__}"
            if status == "OK" or EXPECTED.get(kind) == status:
                resp.success()
            else:
                resp.failure(status)
        ms = (time.time() - started) * 1000
        ROWS.add(
            f"{started:.3f}",
            kind,
            f"{ms:.1f}",
            status,
            result.get("access", ""),
            result.get("status", ""),
            result.get("requestId", ""),
            user.get("uid", ""),
            self.host,
        )


class Phases(LoadTestShape):
    """The phases as user counts: ``open`` users = rps x pacing, ``burst`` users = rps."""

    def tick(self) -> tuple[int, float] | None:
        t = self.get_run_time()  # type: ignore[no-untyped-call]
        end = 0.0
        for seconds, rps in PHASES:
            end += seconds
            if t < end:
                users = math.ceil(rps * PACING) if ARRIVAL == "open" else math.ceil(rps)
                return users, max(users, 1)
        return None
