"""GitHub source against a loopback fake of the REST API (issue: "GitHub")."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

from enrichment.cache import MemoryCacheStore
from enrichment.engine import Engine, EnrichmentInput
from enrichment.model import EnrichmentResult
from enrichment.sources.github import GitHubSource
from scripts.devkit.fakes import FIXTURES, fake_github
from tests.support.clock import FakeClock
from tests.unit.enrichment.helpers import error_of, make_engine


def gh(
    url: str,
    clock: FakeClock | None = None,
    cache: MemoryCacheStore | None = None,
    **overrides: Any,
) -> Engine:
    return make_engine(clock, cache, {"github": GitHubSource()}, github_api_url=url, **overrides)


def run(engine: Engine, user: str | None = "octocat", **kw: Any) -> EnrichmentResult:
    return engine.enrich(EnrichmentInput(sources=("github",), github=user, **kw))


def test_profile_repos_and_languages_are_returned() -> None:
    with fake_github() as url:
        result = run(gh(url))
    assert result.status == "success"
    report = result.sources[0]
    assert (report.source, report.status, report.items, report.cached) == (
        "github",
        "success",
        5,
        False,
    )
    data = result.data["github"]
    assert data["profile"]["login"] == "octocat"
    assert "email" not in data["profile"]
    assert [r["name"] for r in data["repos"]][:3] == ["Hello-World", "kube-tools", "linguist"]
    langs = {lang["name"]: lang for lang in data["languages"]}
    assert langs["Go"]["bytes"] == 182000  # from languages_url of a top repository
    assert langs["Shell"]["repos"] == 0 and langs["Shell"]["bytes"] == 5200
    assert "HTML" not in langs  # only on a fork
    assert data["totals"] == {"repos": 5, "ownRepos": 4, "stars": 4340, "forks": 434}


def test_free_text_is_redacted() -> None:
    with fake_github() as url:
        data = run(gh(url)).data["github"]
    assert "@example.com" not in json.dumps(data)
    assert "555" not in data["profile"]["bio"]
    assert "[email removed]" in data["profile"]["bio"]


def test_token_is_sent_as_bearer_and_username_is_normalised() -> None:
    with fake_github() as url:
        result = run(gh(url, github_token="t0ken"), user="https://github.com/OctoCat/")
        assert result.status == "success"
        assert all(r.headers.get("authorization") == "Bearer t0ken" for r in url.requests)
        assert url.hits("/users/octocat") == 1


def test_all_pages_are_read_when_repositories_span_three_pages() -> None:
    with fake_github() as url:
        result = run(gh(url), user="prolific")
        pages = sorted(
            int(r.query["page"][0]) for r in url.requests if r.path == "/users/prolific/repos"
        )
        assert all(
            r.query["per_page"] == ["100"] for r in url.requests if r.path.endswith("/repos")
        )
    assert result.sources[0].items == 230
    assert pages == [1, 2, 3]
    assert len({r["name"] for r in result.data["github"]["repos"]}) == 230


def test_language_calls_are_bounded() -> None:
    with fake_github() as url:
        run(gh(url, github_language_repos=2), user="prolific")
        assert sum(1 for r in url.requests if r.path.endswith("/languages")) == 2


def test_unknown_user_is_not_found() -> None:
    with fake_github() as url:
        result = run(gh(url), user="nobody-here")
    report = result.sources[0]
    assert (report.status, error_of(report).code) == ("failed", "not_found")
    assert result.status == "failed" and not result.service_failure


def test_rate_limit_403_is_quota_with_reset_time() -> None:
    with fake_github(quota_reset=1_900_000_000) as url:
        report = run(gh(url)).sources[0]
    assert (report.status, error_of(report).code) == ("failed", "quota")
    assert "2030-03-17T17:46:40Z" in error_of(report).message


def test_429_with_retry_after_beyond_the_deadline_is_quota_at_once() -> None:
    with fake_github(fail_always=True, fail_status=429, fail_headers={"Retry-After": "120"}) as url:
        result = run(gh(url), timeout_ms=2000)
        # No retry: it would not fit. The profile and the first repository page go out
        # together and the first 429 cancels the other, which may not have reached the fake
        # yet (under CPU load it often had not): at most one request each, at least one in all.
        assert url.hits("/users/octocat") <= 1 and url.hits("/users/octocat/repos") <= 1
        assert len(url.requests) >= 1
    report = result.sources[0]
    assert error_of(report).code == "quota"  # a retry waited for would end in "timeout"
    assert "2026-11-26T12:02:00Z" in error_of(report).message  # now (injected) + Retry-After
    assert report.duration_ms < 2000  # answered before the deadline, not at it


def test_missing_username_is_skipped() -> None:
    result = run(gh("http://127.0.0.1:9"), user=None)
    report = result.sources[0]
    assert (report.status, error_of(report).code, error_of(report).message) == (
        "skipped",
        "invalid_input",
        "no GitHub username given",
    )
    assert result.status == "failed" and not result.service_failure


def test_invalid_username_fails_without_a_request() -> None:
    report = run(gh("http://127.0.0.1:9"), user="../../admin").sources[0]
    assert (report.status, error_of(report).code) == ("failed", "invalid_input")


def test_server_errors_are_retried_until_success() -> None:
    with fake_github(fail_first=2) as url:
        result = run(gh(url))
    assert result.sources[0].status == "success"


def test_persistent_server_errors_fail_as_upstream() -> None:
    with fake_github(fail_always=True) as url:
        result = run(gh(url, retry_attempts=3))
        # profile and first page go out together; the first to give up stops the other
        assert max(url.hits("/users/octocat"), url.hits("/users/octocat/repos")) == 3
    report = result.sources[0]
    assert (report.status, error_of(report).code) == ("failed", "upstream")
    assert result.service_failure


def test_malformed_json_fails_as_upstream() -> None:
    with fake_github(malformed=True) as url:
        report = run(gh(url)).sources[0]
    assert (report.status, error_of(report).code) == ("failed", "upstream")


def test_fresh_cache_is_served_without_requests(clock: FakeClock, cache: MemoryCacheStore) -> None:
    with fake_github() as url:
        engine = gh(url, clock, cache)
        run(engine)
        first = len(url.requests)
        clock.advance(minutes=30)
        again = run(engine)
        assert len(url.requests) == first
    assert again.sources[0].cached is True and again.sources[0].items == 5
    assert again.data["github"] == run(gh("http://127.0.0.1:9", clock, cache)).data["github"]


def test_force_refresh_bypasses_the_cache(clock: FakeClock, cache: MemoryCacheStore) -> None:
    with fake_github() as url:
        engine = gh(url, clock, cache)
        run(engine)
        first = len(url.requests)
        refreshed = run(engine, force_refresh=True)
        assert len(url.requests) > first
        assert not any("if-none-match" in r.headers for r in url.requests[first:])
    assert refreshed.sources[0].cached is False


def test_expired_entry_is_revalidated_with_etags_and_304_reuses_it(
    clock: FakeClock, cache: MemoryCacheStore
) -> None:
    with fake_github() as url:
        engine = gh(url, clock, cache, cache_ttl_seconds=60)
        run(engine)
        n = len(url.requests)
        clock.advance(seconds=61)
        result = run(engine)
        conditional = url.requests[n:]
    assert result.sources[0].cached is True and result.status == "success"
    # profile + one repository page, both answered 304; no language calls
    assert len(conditional) == 2
    assert all(r.headers.get("if-none-match", "").startswith('W/"') for r in conditional)
    entry = next(iter(cache._entries.values()))
    assert entry.expire_at == clock() + timedelta(seconds=60)  # expiry refreshed


def test_changed_upstream_after_expiry_is_fetched_again(
    clock: FakeClock, cache: MemoryCacheStore, tmp_path: Path
) -> None:
    import shutil

    shutil.copytree(FIXTURES / "github", tmp_path / "gh")
    with fake_github(tmp_path / "gh") as url:
        engine = gh(url, clock, cache, cache_ttl_seconds=60)
        run(engine)
        profile = tmp_path / "gh" / "users" / "octocat.json"
        doc = json.loads(profile.read_text())
        doc["name"] = "Renamed Octocat"
        profile.write_text(json.dumps(doc))
        clock.advance(seconds=61)
        result = run(engine)
    assert result.sources[0].cached is False
    assert result.data["github"]["profile"]["name"] == "Renamed Octocat"
