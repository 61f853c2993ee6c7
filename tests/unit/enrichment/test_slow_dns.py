"""A DNS answer slower than the enrichment's deadline does not hold the answer: the lookup is
abandoned at the deadline (its thread finishes on its own, in a bounded pool) and the source
reports ``timeout``. ``asyncio.run`` used to wait for the lookup's thread at exit: a name the
resolver took 12 s to answer made a 1 s enrichment take 12 s.

The slow names end in ``.test`` (RFC 6761); ``socket.getaddrinfo`` is patched to hold them until
the test lets go (at most ``HOLD_S``, so a regression fails in seconds instead of hanging)."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from common.vocab import SourceStatus
from enrichment import net
from enrichment.engine import EnrichmentInput
from enrichment.sources.github import GitHubSource
from enrichment.sources.website import WebsiteSource
from tests.unit.enrichment.helpers import make_engine

HOLD_S = 4.0
"""How long a slow name is held at most (the test lets go as soon as it is done)."""
TIMEOUT_MS = 300
ALLOWED_S = 1.5
"""The answer comes well within this; waiting for the lookup would take ``HOLD_S``."""


@dataclass
class SlowDns:
    asked: list[str] = field(default_factory=list)
    """The slow names asked for, in order."""
    release: threading.Event = field(default_factory=threading.Event)
    """Lets the held lookups go (they then fail: the name is not found)."""


@pytest.fixture
def slow_dns(monkeypatch: pytest.MonkeyPatch) -> Iterator[SlowDns]:
    """``getaddrinfo`` holding every ``*.slow.test`` name until released."""
    real = socket.getaddrinfo
    dns = SlowDns()

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        name = host.decode("ascii") if isinstance(host, bytes) else str(host)  # httpx: bytes
        if name.endswith(".slow.test"):
            dns.asked.append(name)
            dns.release.wait(HOLD_S)
            raise socket.gaierror(socket.EAI_NONAME, "held, then not found")
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    try:
        yield dns
    finally:
        dns.release.set()


def _timed(engine: Any, inp: EnrichmentInput) -> tuple[float, Any]:
    start = time.monotonic()
    result = engine.enrich(inp)
    return time.monotonic() - start, result


def test_a_slow_answer_for_the_website_host_ends_at_the_deadline(slow_dns: SlowDns) -> None:
    engine = make_engine(sources={"website": WebsiteSource()})
    inp = EnrichmentInput(
        sources=("website",), website="http://www.slow.test/", timeout_ms=TIMEOUT_MS
    )
    took, result = _timed(engine, inp)
    assert slow_dns.asked == ["www.slow.test"]  # the system resolver was asked, and held
    assert took < ALLOWED_S, f"the enrichment took {took:.2f} s for a {TIMEOUT_MS} ms deadline"
    (report,) = result.sources
    assert report.status is SourceStatus.TIMEOUT


def test_a_slow_answer_for_an_api_host_ends_at_the_deadline(slow_dns: SlowDns) -> None:
    """The API sources' names are looked up by httpx, on the loop's default executor."""
    engine = make_engine(
        sources={"github": GitHubSource()}, github_api_url="http://api.slow.test:1"
    )
    inp = EnrichmentInput(sources=("github",), github="octocat", timeout_ms=TIMEOUT_MS)
    took, result = _timed(engine, inp)
    assert "api.slow.test" in slow_dns.asked
    assert took < ALLOWED_S, f"the enrichment took {took:.2f} s for a {TIMEOUT_MS} ms deadline"
    (report,) = result.sources
    assert report.status is SourceStatus.TIMEOUT


def test_a_flood_of_slow_names_takes_a_bounded_number_of_threads(slow_dns: SlowDns) -> None:
    """At most ``RESOLVER_THREADS`` lookups are held at once; the others queue, and those whose
    caller gave up before they started never run."""
    flood = 3 * net.RESOLVER_THREADS

    async def ask_and_give_up() -> None:
        tasks = [
            asyncio.create_task(net.system_resolver(f"n{i}.slow.test", 80)) for i in range(flood)
        ]
        _, pending = await asyncio.wait(tasks, timeout=0.2)
        assert len(pending) == flood  # every lookup held or queued
        held = [t for t in threading.enumerate() if t.name.startswith("enrichment-dns")]
        assert len(held) <= net.RESOLVER_THREADS
        assert len(slow_dns.asked) == net.RESOLVER_THREADS
        for task in pending:
            task.cancel()
        await asyncio.wait(pending)

    asyncio.run(ask_and_give_up())
    slow_dns.release.set()
    net._RESOLVER_POOL.submit(lambda: None).result(timeout=HOLD_S)  # the queue has drained
    assert len(slow_dns.asked) == net.RESOLVER_THREADS
