"""A cache entry its source cannot use is a miss, never a crash: a GitHub payload such as
``{"profile": {"login": "octocat"}, "repos": 5}`` made ``count`` or the merge raise, and every
call for that input ended ``internal`` until the entry's TTL ran out. Such an entry, fresh or
stale, is ignored (logged by the exception's type, never its content) and the source fetched
as if nothing were cached; a document whose JSON nests too deep is a miss of that key alone."""

from __future__ import annotations

import json
import logging
from datetime import timedelta
from typing import Any

import pytest

from enrichment.cache import CacheEntry, MemoryCacheStore, StoreCacheStore, cache_key
from enrichment.engine import EnrichmentInput
from enrichment.sources.github import GitHubSource
from enrichment.sources.linkedin import LinkedInSource
from scripts.devkit.fakes import fake_github
from stores.memory import MemoryStore
from stores.schema import cache_path
from tests.unit.enrichment.helpers import T0, make_engine

BAD_GITHUB = [
    {"profile": {"login": "octocat"}, "repos": 5},
    {"repos": "abc"},
    {"repos": [1, 2]},
    {"profile": "x", "repos": None, "languages": 7},
    {"repos": [], "totals": [], "languages": [{"name": 5}, 3]},
]
SECRET = "secret-marker-in-the-cached-payload"


@pytest.mark.parametrize("payload", BAD_GITHUB)
@pytest.mark.parametrize("fresh", [True, False])
def test_a_github_entry_of_the_wrong_shape_is_a_miss(
    payload: dict[str, Any], fresh: bool, caplog: pytest.LogCaptureFixture
) -> None:
    cache = MemoryCacheStore()
    expire = T0 + (timedelta(hours=1) if fresh else -timedelta(hours=1))
    etag = json.dumps({"http://127.0.0.1:1/users/octocat": '"v1"'})
    cache.put(
        cache_key("github", "octocat"), CacheEntry({**payload, "x": SECRET}, T0, expire, etag)
    )
    with fake_github() as url:
        engine = make_engine(cache=cache, sources={"github": GitHubSource()}, github_api_url=url)
        with caplog.at_level(logging.WARNING):
            result = engine.enrich(EnrichmentInput(sources=("github",), github="octocat"))
        assert url.hits("/users/octocat") == 1
        assert not any("if-none-match" in r.headers for r in url.requests)  # not revalidated
    report = result.sources[0]
    assert (report.status, report.cached, report.items) == ("success", False, 5)
    assert result.data["github"]["profile"]["login"] == "octocat"
    replaced = cache.get(cache_key("github", "octocat"))
    assert replaced is not None and replaced.payload["totals"]["repos"] == 5
    logged = [r for r in caplog.records if r.getMessage() == "unusable cache entry ignored"]
    assert len(logged) == 1 and SECRET not in caplog.text
    assert logged[0].__dict__["json_fields"]["source"] == "github"


def test_a_linkedin_entry_of_the_wrong_shape_is_a_miss() -> None:
    files = {"Skills.csv": "Name\nPython\n"}
    cache = MemoryCacheStore()
    key = cache_key(
        "linkedin",
        LinkedInSource().normalise(EnrichmentInput(("linkedin",), linkedin_export=files)),
    )
    cache.put(key, CacheEntry({"skills": 5}, T0, T0 + timedelta(hours=1)))
    engine = make_engine(cache=cache, sources={"linkedin": LinkedInSource()})
    result = engine.enrich(EnrichmentInput(sources=("linkedin",), linkedin_export=files))
    assert (result.sources[0].status, result.sources[0].cached) == ("success", False)
    assert result.data["linkedin"]["skills"] == [{"name": "Python"}]


@pytest.mark.parametrize(
    "text",
    [
        pytest.param(json.dumps({"profile": {"login": "octocat"}, "repos": 5}), id="shape"),
        pytest.param("[" * 100_000 + "]" * 100_000, id="deep"),
    ],
)
def test_a_stored_document_that_is_unusable_is_a_miss_of_its_key_alone(text: str) -> None:
    store = MemoryStore()
    bad, good = cache_key("github", "octocat"), cache_key("linkedin", "x")
    for key, payload in ((bad, text), (good, json.dumps({"skills": []}))):
        store.docs[cache_path(key)] = {
            "payload": payload,
            "etag": None,
            "fetchedAt": T0,
            "expireAt": T0 + timedelta(hours=1),
        }
    cache = StoreCacheStore(store)
    got = cache.get_many([bad, good])
    assert got[good] is not None
    with fake_github() as url:
        engine = make_engine(cache=cache, sources={"github": GitHubSource()}, github_api_url=url)
        result = engine.enrich(EnrichmentInput(sources=("github",), github="octocat"))
    assert (result.sources[0].status, result.sources[0].cached) == ("success", False)


def test_an_entry_is_checked_once_per_version_not_on_every_hit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The check runs the merge; a warm call (a cache hit) must not pay for it every time.
    import enrichment.engine as engine_module
    from enrichment.merge import merge as real

    calls: list[int] = []

    def counting(data: dict[str, Any]) -> dict[str, Any]:
        calls.append(1)
        return real(data)

    monkeypatch.setattr(engine_module, "merge", counting)
    cache = MemoryCacheStore()
    engine = make_engine(cache=cache, sources={"linkedin": LinkedInSource()})
    inp = EnrichmentInput(sources=("linkedin",), linkedin_export={"Skills.csv": "Name\nGo\n"})
    engine.enrich(inp)  # fetched: the result's merge
    calls.clear()
    assert engine.enrich(inp).sources[0].cached
    assert len(calls) == 2  # first hit: the check and the result
    calls.clear()
    assert engine.enrich(inp).sources[0].cached
    assert len(calls) == 1  # later hits of the same entry: the result only
