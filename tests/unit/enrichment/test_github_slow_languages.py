"""The language calls are best effort: one that hangs must not make the whole GitHub source
time out and throw away the profile and repositories already fetched. They end
``LANGUAGES_RESERVE_S`` before the deadline; the answers gathered by then are used."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from enrichment.engine import EnrichmentInput
from enrichment.fetch import gather_within
from enrichment.sources.github import LANGUAGES_RESERVE_S, GitHubSource
from scripts.devkit.fakes import Recorded, Reply, serve
from tests.unit.enrichment.helpers import make_engine

REPOS = [
    {"name": "fast", "full_name": "u/fast", "language": "Go", "stargazers_count": 2},
    {"name": "slow", "full_name": "u/slow", "language": "Rust", "stargazers_count": 1},
]


def test_a_hanging_languages_call_keeps_the_profile_repos_and_the_answers_gathered() -> None:
    release = threading.Event()

    def answer(rec: Recorded) -> Reply:
        if rec.path == "/users/u":
            return Reply(200, {"login": "u"})
        if rec.path == "/users/u/repos":
            return Reply(200, REPOS)
        if rec.path == "/repos/u/slow/languages":
            release.wait(5)  # hangs past the deadline (released when the test ends)
            return Reply(200, {"Rust": 999})
        return Reply(200, {"Go": 1000})

    with serve(answer) as url:
        try:
            engine = make_engine(sources={"github": GitHubSource()}, github_api_url=url)
            started = time.monotonic()
            result = engine.enrich(
                EnrichmentInput(sources=("github",), github="u", timeout_ms=1000)
            )
            elapsed = time.monotonic() - started
        finally:
            release.set()
    report = result.sources[0]
    assert (report.status, report.items) == ("success", 2)
    data = result.data["github"]
    assert data["profile"]["login"] == "u"
    langs = {lang["name"]: (lang["repos"], lang["bytes"]) for lang in data["languages"]}
    assert langs == {"Go": (1, 1000), "Rust": (1, 0)}  # the fast answer used, the slow one not
    assert elapsed < 1.0 - LANGUAGES_RESERVE_S / 2  # answered before the deadline


def test_gather_within_cancels_what_is_late_and_raises_a_failure() -> None:
    cancelled: list[str] = []

    async def late() -> int:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            cancelled.append("late")
            raise
        return 0

    async def quick() -> int:
        return 1

    async def failing() -> int:
        raise ValueError("boom")

    assert asyncio.run(gather_within(0.05, quick(), late())) == [1, None]
    assert cancelled == ["late"]
    with pytest.raises(ValueError, match="boom"):
        asyncio.run(gather_within(1.0, failing(), late()))
    assert cancelled == ["late", "late"]
