"""GitHub's secondary rate limit (a 403 or 429 whose message speaks of a rate limit, without
rate-limit headers) is ``quota``, not ``upstream``: it is no outage and must not feed the
source's breaker. A 429 without ``Retry-After`` is not retried at once (GitHub asks to wait at
least a minute)."""

from __future__ import annotations

import pytest

from enrichment.engine import EnrichmentInput
from enrichment.sources.github import GitHubSource
from scripts.devkit.fakes import Recorded, Reply, serve
from tests.unit.enrichment.helpers import error_of, make_engine

SECONDARY = {
    "message": "You have exceeded a secondary rate limit. Please wait a few minutes before you "
    "try again."
}


@pytest.mark.parametrize("status", [403, 429])
def test_a_secondary_rate_limit_is_quota_and_is_not_retried(status: int) -> None:
    with serve(lambda rec: Reply(status, SECONDARY)) as url:
        engine = make_engine(sources={"github": GitHubSource()}, github_api_url=url)
        result = engine.enrich(EnrichmentInput(sources=("github",), github="octocat"))
        # The profile and the first repository page go out together; neither is retried.
        assert url.hits("/users/octocat") <= 1 and url.hits("/users/octocat/repos") <= 1
    report = result.sources[0]
    assert (report.status, error_of(report).code) == ("failed", "quota")
    assert not report.failed_upstream and not result.service_failure


def test_a_403_about_something_else_is_still_upstream() -> None:
    with serve(lambda rec: Reply(403, {"message": "Resource not accessible"})) as url:
        engine = make_engine(sources={"github": GitHubSource()}, github_api_url=url)
        report = engine.enrich(EnrichmentInput(sources=("github",), github="octocat")).sources[0]
    assert error_of(report).code == "upstream"


def test_a_429_with_a_short_retry_after_is_still_retried() -> None:
    def answer(rec: Recorded) -> Reply:
        return Reply(200, {"login": "octocat"} if rec.path == "/users/octocat" else [])

    with serve(answer, fail_first=1, fail_status=429, fail_headers={"Retry-After": "0"}) as url:
        engine = make_engine(sources={"github": GitHubSource()}, github_api_url=url)
        result = engine.enrich(EnrichmentInput(sources=("github",), github="octocat"))
        assert len(url.requests) == 3  # one 429 answered, asked again
    assert result.sources[0].status == "success"
