"""A ``Link: rel="next"`` that loops (every page pointing back to page 1, or page 2 to page 1)
ends the repository list: each page is read once at most and each repository counted once,
so ``items`` and ``totals`` are the real ones (they were ten times them, up to the page
limit)."""

from __future__ import annotations

from typing import Any

from enrichment.engine import EnrichmentInput
from enrichment.sources.github import GitHubSource
from scripts.devkit.fakes import FakeService, Recorded, Reply, serve
from tests.unit.enrichment.helpers import make_engine


def _repos(start: int, n: int) -> list[dict[str, Any]]:
    return [
        {"name": f"r{i}", "full_name": f"u/r{i}", "stargazers_count": i, "forks_count": 1}
        for i in range(start, start + n)
    ]


def _looping(next_page: dict[int, int]) -> tuple[Any, list[str]]:
    """A fake whose repository page ``p`` holds 3 repositories and links to ``next_page[p]``."""
    base: list[str] = []

    def answer(rec: Recorded) -> Reply:
        if rec.path == "/users/u":
            return Reply(200, {"login": "u"})
        page = int(rec.query.get("page", ["1"])[0])
        link = f'<{base[0]}/users/u/repos?page={next_page[page]}&per_page=100>; rel="next"'
        return Reply(200, _repos(3 * (page - 1), 3), {"Link": link})

    return answer, base


def _run(next_page: dict[int, int]) -> tuple[dict[str, Any], int, FakeService]:
    answer, base = _looping(next_page)
    with serve(answer) as url:
        base.append(str(url))
        engine = make_engine(
            sources={"github": GitHubSource()}, github_api_url=url, github_language_repos=0
        )
        result = engine.enrich(EnrichmentInput(sources=("github",), github="u"))
    return result.data["github"], result.sources[0].items, url


def test_a_next_link_back_to_the_same_page_ends_the_list() -> None:
    data, items, url = _run({1: 1})
    assert url.hits("/users/u/repos") <= 2  # page 1, perhaps once more under its other URL
    assert items == 3 and [r["name"] for r in data["repos"]] == ["r2", "r1", "r0"]
    assert data["totals"] == {"repos": 3, "ownRepos": 3, "stars": 3, "forks": 3}
    assert not data["truncated"]


def test_a_loop_over_two_pages_reads_each_once() -> None:
    data, items, url = _run({1: 2, 2: 1})
    assert url.hits("/users/u/repos") <= 3
    assert items == 6 and len({r["fullName"] for r in data["repos"]}) == 6
    assert data["totals"]["repos"] == 6 and data["totals"]["stars"] == 15
    assert not data["truncated"]
