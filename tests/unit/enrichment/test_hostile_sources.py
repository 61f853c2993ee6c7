"""Hostile content never crashes a source (issue 8): each case is a result or a source error.

The sources run directly (``run_source``), so an exception other than ``SourceFailure`` /
``SourceSkipped`` fails the test; through the engine it would be an ``upstream`` report with a
traceback in the log. Before the fix: ``charset=idna``, unparseable links and ``Location:``
headers, deeply nested JSON-LD and GitHub numbers that are strings or ``Infinity`` crashed.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from contextlib import AbstractContextManager
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest

from common.settings import EnrichmentSettings
from enrichment.bounds import json_size
from enrichment.errors import ErrorCode, SourceFailure, SourceSkipped
from enrichment.fetch import Deadline, Fetcher
from enrichment.model import EnrichmentInput
from enrichment.net import UrlGuard
from enrichment.sources.base import Fetched, Source, SourceContext
from enrichment.sources.github import GitHubSource, parse_link_header
from enrichment.sources.linkedin import LinkedInSource
from enrichment.sources.website import WebsiteSource, normalise_url
from scripts.devkit.fakes import Reply, fake_github, fake_website
from tests.unit.enrichment.helpers import FAST, Clock

Outcome = Fetched | SourceFailure | SourceSkipped


def run_source(
    source: Source, inp: EnrichmentInput, *, deadline_s: float = 10.0, **overrides: Any
) -> Outcome:
    """``source``'s ``Fetched``, or the source error it raised; anything else propagates."""
    settings: EnrichmentSettings = replace(FAST, **overrides)

    async def go() -> Outcome:
        async with httpx.AsyncClient(trust_env=False) as client:
            fetcher = Fetcher(client, Deadline(deadline_s), attempts=1, rng=random.Random(1))
            ctx = SourceContext(fetcher, settings, UrlGuard(settings.allow_hosts), Clock())
            try:
                key = source.normalise(inp)
                return await source.fetch(key, inp, ctx, None)
            except (SourceFailure, SourceSkipped) as exc:
                return exc

    return asyncio.run(go())


def storable(payload: dict[str, Any]) -> None:
    """JSON without NaN/Infinity, UTF-8 encodable, under the cache's 1 MiB."""
    text = json.dumps(payload, allow_nan=False)
    text.encode("utf-8")
    assert json_size(payload) < 1_000_000


# ------------------------------------------------------------------------------ website

PAGE = """<html><head><title>Ada</title></head><body>
<a href="/projects/engine">Engine</a> <a href="https://github.com/ada">GitHub</a>
<a href="http://[">broken</a> <a href="http://h:99999/">bad port</a> <a href="//[x">x</a>
<a href="javascript:alert(1)">js</a> <a href="">empty</a>
</body></html>"""


def site(routes: dict[str, Any]) -> AbstractContextManager[Any]:
    return fake_website(routes=routes)


def run_website(url: str) -> Outcome:
    return run_source(
        WebsiteSource(),
        EnrichmentInput(sources=("website",), website=f"{url}/"),
        allow_hosts=(url.split("//", 1)[1],),
    )


@pytest.mark.parametrize(
    "charset",
    ["idna", "rot13", "base64", "utf-7", "undefined", "x-unknown", "punycode", "unicode_escape"],
)
def test_a_bogus_charset_falls_back_to_utf8(charset: str) -> None:
    page = Reply(200, PAGE, {"Content-Type": f"text/html; charset={charset}"})
    with site({"/": page}) as url:
        out = run_website(url)
    assert isinstance(out, Fetched), out
    assert out.payload["title"] == "Ada"
    storable(out.payload)


def test_unparseable_links_are_skipped() -> None:
    with site({"/": Reply(200, PAGE, {"Content-Type": "text/html"})}) as url:
        out = run_website(url)
    assert isinstance(out, Fetched), out
    assert [c["url"] for c in out.payload["contactLinks"]] == ["https://github.com/ada"]


@pytest.mark.parametrize("location", ["http://[", "http://h:99999/", "//[x", "http://\u0130/"])
def test_an_unparseable_location_is_a_source_error(location: str) -> None:
    with site({"/": Reply(302, b"", {"Location": location.encode().decode("latin-1")})}) as url:
        out = run_website(url)
    assert isinstance(out, SourceFailure), out


@pytest.mark.parametrize("depth", [50, 500, 990, 5000])
def test_deeply_nested_jsonld_is_a_result(depth: int) -> None:
    inner = "{" + '"name":' * 0 + '"@type":"Person","name":' + '{"name":' * depth + '"Ada"'
    inner += "}" * depth + ',"sameAs":["http://[","https://github.com/ada"]}'
    page = f'<html><script type="application/ld+json">{inner}</script><title>t</title></html>'
    with site({"/": Reply(200, page, {"Content-Type": "text/html"})}) as url:
        out = run_website(url)
    assert isinstance(out, Fetched), out
    storable(out.payload)


@pytest.mark.parametrize(
    "robots",
    [
        "User-agent: *\nAllow: http://[\nDisallow: /private\n",
        "User-agent: *\nCrawl-delay: \u00b2\nRequest-rate: \u00b2/\u00b2\n",
        "User-agent: *\nDisallow: %\udcff\n",
        "\x00\x01\x02 binary \xff",
    ],
)
def test_odd_robots_txt_is_a_result_or_a_source_error(robots: str) -> None:
    routes = {
        "/robots.txt": Reply(
            200, robots.encode("utf-8", "surrogateescape"), {"Content-Type": "text/plain"}
        ),
        "/": Reply(200, PAGE, {"Content-Type": "text/html"}),
    }
    with site(routes) as url:
        out = run_website(url)
    assert isinstance(out, Fetched | SourceFailure), out


@pytest.mark.parametrize(
    "raw", ["http://[", "http://[::1", "http://\uff21\u2100/", "http://h:x/", "http://h:-1/"]
)
def test_a_website_that_does_not_parse_is_invalid_input(raw: str) -> None:
    with pytest.raises(SourceFailure) as err:
        normalise_url(raw)
    assert err.value.code is ErrorCode.INVALID_INPUT


# ------------------------------------------------------------------------------- GitHub

ODD_PROFILE = """{"login": "odd", "name": {"first": "Ada"}, "bio": ["x"], "blog": 7,
 "public_repos": "12", "followers": Infinity, "following": NaN, "created_at": 5}"""
ODD_REPOS = """[
 {"name": "strings", "full_name": "odd/strings", "stargazers_count": "12", "forks_count": "x",
  "language": "Go", "topics": "not-a-list", "fork": "false"},
 {"name": "inf", "full_name": "odd/inf", "stargazers_count": Infinity, "forks_count": NaN,
  "language": ["Go"], "topics": [1, "rust", null]},
 {"name": "huge", "full_name": "odd/huge", "stargazers_count": 1e400,
  "forks_count": 1000000000000000000000000000000, "language": {"x": 1}},
 {"name": "neg", "full_name": "../../evil?x#y", "stargazers_count": -5, "language": "Rust"},
 {"name": {"nested": true}, "full_name": null, "stargazers_count": 1.5},
 "not a repo", 12, null
]"""


@pytest.fixture
def odd_github(tmp_path: Path) -> Path:
    (tmp_path / "users").mkdir()
    (tmp_path / "repos").mkdir()
    (tmp_path / "users" / "odd.json").write_text(ODD_PROFILE)
    (tmp_path / "repos" / "odd.json").write_text(ODD_REPOS)
    return tmp_path


def test_github_numbers_that_are_strings_infinite_or_huge_are_a_result(odd_github: Path) -> None:
    with fake_github(odd_github) as url:
        out = run_source(
            GitHubSource(), EnrichmentInput(sources=("github",), github="odd"), github_api_url=url
        )
        requested = [r.path for r in url.requests]
    assert isinstance(out, Fetched), out
    storable(out.payload)
    repos = {r["name"]: r for r in out.payload["repos"] if isinstance(r["name"], str)}
    assert repos["strings"]["stars"] == 12 and repos["strings"]["forks"] == 0
    assert repos["inf"]["stars"] == 0 and repos["huge"]["forks"] <= 2**53
    assert repos["neg"]["stars"] == 0 and repos["strings"]["fork"] is False
    assert out.payload["profile"]["publicRepos"] == 12
    assert out.payload["profile"]["name"] is None
    assert not any("evil" in p for p in requested)  # never built into a URL


def test_a_profile_with_a_non_string_login_is_upstream(tmp_path: Path) -> None:
    (tmp_path / "users").mkdir()
    (tmp_path / "users" / "odd.json").write_text('{"login": {"a": 1}}')
    with fake_github(tmp_path) as url:
        out = run_source(
            GitHubSource(), EnrichmentInput(sources=("github",), github="odd"), github_api_url=url
        )
    assert isinstance(out, SourceFailure) and out.code is ErrorCode.UPSTREAM


def test_a_link_header_of_many_angle_brackets_is_parsed_in_linear_time() -> None:
    started = time.process_time()
    assert parse_link_header("<" * 200_000) == {}
    assert time.process_time() - started < 0.5


# ----------------------------------------------------------------------------- LinkedIn


def run_linkedin(files: dict[str, str]) -> Outcome:
    return run_source(
        LinkedInSource(), EnrichmentInput(sources=("linkedin",), linkedin_export=files)
    )


SKILLS = "Name\nPython\nGo\n"


@pytest.mark.parametrize(
    "bad",
    [
        "Name\nPy\x00thon\n",
        "Name\nPy\udcffthon\n",
        "Name\n\ud800\n",
        'Name\n"' + "x" * 200_000 + '"\n',
        ",".join(f"c{i}" for i in range(300)) + ",Name\n",
        '"unclosed\n',
        "\ufeff\ufeff\ufeffName\n\u2028\u2029\x85\n",
    ],
)
def test_odd_csv_is_malformed_or_a_result_never_a_crash(bad: str) -> None:
    out = run_linkedin({"Skills.csv": bad, "Languages.csv": "Name,Proficiency\nEnglish,Native\n"})
    assert isinstance(out, Fetched), out
    storable(out.payload)
    assert "Languages.csv" in out.payload["parsedFiles"]


def test_lone_surrogates_in_file_names_do_not_crash() -> None:
    out = run_linkedin({"Skills.csv": SKILLS, "\udcffodd.csv": "x", "a\ud800/Skills.csv": SKILLS})
    assert isinstance(out, Fetched | SourceFailure), out
    if isinstance(out, Fetched):
        storable(out.payload)


def test_a_max_size_skills_file_gives_a_bounded_payload_quickly() -> None:
    text = "Name\n" + "".join(f"skill{i}\n" for i in range(90_000))
    assert 900_000 < len(text) < 1_000_000
    started = time.process_time()
    out = run_linkedin({"Skills.csv": text})
    assert time.process_time() - started < 3.0
    assert isinstance(out, Fetched), out
    assert out.payload["truncated"] is True
    assert json_size(out.payload) < 200_000
