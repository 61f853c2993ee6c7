"""A hostile robots.txt (32,773 rules in 513 KB, under the 512 KiB limit) and pages of 1,000
links held the event loop for seconds past the deadline: the stdlib parser tries the rules one by
one for every link, and the links were filtered with no look at the clock. Now robots.txt ends
after ``ROBOTS_MAX_RULES`` rule lines, and link filtering checks the deadline (and lets the loop
run) every ``LINKS_PER_CHECK`` links."""

from __future__ import annotations

import asyncio
import time

import pytest

from common.vocab import SourceStatus
from enrichment.engine import EnrichmentInput
from enrichment.errors import ErrorCode, SourceFailure
from enrichment.fetch import Deadline
from enrichment.sources.html_extract import parse_page
from enrichment.sources.website import (
    LINKS_PER_CHECK,
    ROBOTS_MAX_BYTES,
    ROBOTS_MAX_RULES,
    Robots,
    WebsiteSource,
    robots_lines,
)
from scripts.devkit.fakes import Recorded, Reply, serve
from tests.unit.enrichment.helpers import make_engine

RULES = 32_773
HOSTILE = "User-agent: *\n" + "".join(f"Disallow:/{i}\n" for i in range(RULES))
ORIGIN = ("https", "ada.example")
BASE = "https://ada.example/"


def _page(links: int, prefix: str = "p") -> str:
    return "<html><body>" + "".join(f'<a href="/{prefix}{j}">x</a>' for j in range(links))


def test_the_hostile_file_is_within_the_byte_limit() -> None:
    assert len(HOSTILE.encode()) <= ROBOTS_MAX_BYTES  # so the rule cap, not the byte one, acts


def test_robots_txt_ends_after_the_rule_cap() -> None:
    kept = robots_lines(HOSTILE)
    assert len(kept) == ROBOTS_MAX_RULES  # "User-agent: *" and the first 1,999 rules
    assert kept[0] == "User-agent: *" and kept[-1] == f"Disallow:/{ROBOTS_MAX_RULES - 2}"
    robots = Robots()
    robots.parse(kept)
    assert not robots.can_fetch("ua", BASE + "1")  # the kept rules still apply
    assert robots.can_fetch("ua", BASE + "p1")


def test_comments_and_blank_lines_do_not_count_as_rules() -> None:
    text = "# hello\n\nUser-agent: *\nCrawl-delay: 5\nDisallow: /private\n"
    assert robots_lines(text) == ["# hello", "", "User-agent: *", "Disallow: /private"]


class _Ticking:
    """A monotonic clock that each robots check moves on by ``step`` seconds."""

    def __init__(self, step: float) -> None:
        self.now = 0.0
        self.step = step

    def __call__(self) -> float:
        return self.now


class _SlowRobots(Robots):
    def __init__(self, clock: _Ticking) -> None:
        super().__init__()
        self.rule = True
        self.clock = clock
        self.checks = 0

    def can_fetch(self, useragent: str, url: str) -> bool:
        self.checks += 1
        self.clock.now += self.clock.step
        return super().can_fetch(useragent, url)


def test_link_filtering_stops_at_the_deadline() -> None:
    clock = _Ticking(step=0.01)  # each link's robots check "takes" 10 ms
    robots = _SlowRobots(clock)
    deadline = Deadline(1.0, clock)
    page = parse_page(_page(1000))
    with pytest.raises(SourceFailure) as err:
        asyncio.run(
            WebsiteSource._links(page, BASE, ORIGIN, robots, "ua", set(), deadline=deadline)
        )
    assert err.value.code is ErrorCode.TIMEOUT
    # Stopped at the first check past the deadline (100 links), not after all 1,000.
    assert robots.checks <= 100 + LINKS_PER_CHECK


def test_a_hostile_robots_txt_does_not_hold_the_answer_past_the_deadline() -> None:
    def site(rec: Recorded) -> Reply:
        if rec.path == "/robots.txt":
            return Reply(200, HOSTILE, {"Content-Type": "text/plain"})
        prefix = "p" + rec.path.strip("/").replace("/", "_") + "-"
        return Reply(200, _page(1000, prefix), {"Content-Type": "text/html"})

    timeout_ms = 1000
    with serve(site) as url:
        engine = make_engine(
            sources={"website": WebsiteSource()},
            allow_hosts=(url.host_port,),
            website_max_pages=1,  # the first page's 1,000 links are still filtered
        )
        inp = EnrichmentInput(sources=("website",), website=str(url), timeout_ms=timeout_ms)
        start = time.monotonic()
        result = engine.enrich(inp)
        took = time.monotonic() - start
    # Generous for a loaded machine; without the fix the first page's links alone took 3.5 s.
    assert took < 2.0, f"{took:.2f} s for a {timeout_ms} ms deadline"
    (report,) = result.sources
    assert report.status in (SourceStatus.SUCCESS, SourceStatus.TIMEOUT)
