"""Every source parser, fed arbitrary input, gives a result or a source error (issue 8).

Fast profile: these run in ``make test`` with a few hundred examples each. The same checks run
with 15,000 examples each under ``tests/fuzz`` (``HYPOTHESIS_PROFILE=fuzz``). A "result" must
also be storable: JSON without NaN/Infinity and UTF-8 encodable.

Upstream answers reach the fetch layer through ``httpx.MockTransport`` (a transport, not a mock
of the code under test): a loopback server per example would make 100,000 examples take hours.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
from typing import Any

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from common.settings import EnrichmentSettings
from enrichment.bounds import MAX_RESULT_BYTES, bound_payload, bound_result, json_size
from enrichment.errors import SourceFailure, SourceSkipped
from enrichment.fetch import Deadline, Fetcher, FetchResponse
from enrichment.model import EnrichmentInput
from enrichment.net import UrlGuard
from enrichment.redact import redact
from enrichment.sources.base import Fetched, SourceContext
from enrichment.sources.github import _profile, _repo, parse_link_header, quota_message
from enrichment.sources.html_extract import jsonld_nodes, load_jsonld, parse_page
from enrichment.sources.linkedin import LinkedInSource
from enrichment.sources.web import BraveProvider
from enrichment.sources.website import (
    Robots,
    WebsiteSource,
    _Collected,
    decode_page,
    normalise_url,
    robots_lines,
)
from tests.unit.enrichment.helpers import Clock

FAST = settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
BASE = "https://ada.example/"
SETTINGS = EnrichmentSettings()

# ------------------------------------------------------------------------------ strategies

any_text = st.text(st.characters(codec=None, exclude_categories=()), max_size=2000)
"""Every Unicode category, lone surrogates included."""
decoded_text = st.text(st.characters(exclude_categories=["Cs"]), max_size=2000)
"""What a decoded body can be (bytes decoded with ``errors="replace"`` have no surrogates)."""
_tag = st.sampled_from(
    ["a", "div", "span", "p", "script", "title", "meta", "link", "article", "img", "data", "b"]
)
_attr = st.tuples(
    st.sampled_from(["href", "class", "rel", "type", "src", "name", "content", "property"]),
    st.one_of(
        st.sampled_from(
            ["h-card", "h-entry p-name", "u-url", "dt-published", "me", "application/ld+json"]
        ),
        st.sampled_from(["http://[", "/p", "https://github.com/a", "og:title", "javascript:"]),
        decoded_text.map(lambda t: t[:40]),
    ),
)
_markup_piece = st.one_of(
    st.builds(
        lambda t, attrs: f"<{t} " + " ".join(f'{k}="{v}"' for k, v in attrs) + ">",
        _tag,
        st.lists(_attr, max_size=3),
    ),
    _tag.map(lambda t: f"</{t}>"),
    st.sampled_from(["<!--", "-->", "<!", "<?", "</", "<", ">", "&amp;", "&#", "<![CDATA["]),
    decoded_text.map(lambda t: t[:50]),
)
html_text = st.one_of(decoded_text, st.lists(_markup_piece, max_size=60).map("".join))
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=30)
    | st.sampled_from(["Person", "BlogPosting", "SoftwareSourceCode", "http://[", "@graph"]),
    lambda inner: (
        st.lists(inner, max_size=6)
        | st.dictionaries(
            st.sampled_from(
                ["@type", "@graph", "name", "url", "sameAs", "knowsAbout", "mainEntity", "headline"]
            )
            | st.text(max_size=10),
            inner,
            max_size=6,
        )
    ),
    max_leaves=40,
)


def storable(value: Any) -> None:
    json.dumps(value, allow_nan=False).encode("utf-8")


def source_outcome(value: Any) -> None:
    assert isinstance(value, Fetched | SourceFailure | SourceSkipped), type(value)
    if isinstance(value, Fetched):
        storable(value.payload)


# ------------------------------------------------------------------------ check functions


def check_html(html: str) -> None:
    page = parse_page(html)
    found = _Collected()
    WebsiteSource._extract(page, BASE, found, is_start=True)
    robots = Robots()
    robots.rule = True
    asyncio.run(WebsiteSource._links(page, BASE, ("https", "ada.example"), robots, "ua", set()))
    payload = {
        "title": page.title,
        "person": found.person or None,
        "projects": list(found.projects.values()),
        "posts": list(found.posts.values()),
        "contactLinks": list(found.contacts.values()),
        "skills": found.skills,
    }
    storable(bound_payload(redact(payload)))


def check_jsonld(value: Any) -> None:
    text = json.dumps(value)
    ok, loaded = load_jsonld(text)
    page = parse_page(f'<script type="application/ld+json">{text}</script>')
    assert len(page.jsonld) + page.jsonld_errors == 1
    WebsiteSource._extract(page, BASE, _Collected(), is_start=False)
    jsonld_nodes([loaded] if ok else [])


def check_robots(text: str, path: str) -> None:
    robots = Robots()
    robots.parse(robots_lines(text))
    assert robots.can_fetch("cv-enrichment", BASE + path) in (True, False)


def check_decode(body: bytes, content_type: str) -> None:
    text = decode_page(body, content_type)
    text.encode("utf-8")


def check_website_url(raw: str) -> None:
    with contextlib.suppress(SourceFailure):
        normalise_url(raw)


def check_linkedin(files: dict[str, str]) -> None:
    async def go() -> Any:
        async with httpx.AsyncClient() as client:
            ctx = SourceContext(Fetcher(client, Deadline(5)), SETTINGS, UrlGuard(), Clock())
            inp = EnrichmentInput(sources=("linkedin",), linkedin_export=files)
            source = LinkedInSource()
            try:
                return await source.fetch(source.normalise(inp), inp, ctx, None)
            except (SourceFailure, SourceSkipped) as exc:
                return exc

    source_outcome(asyncio.run(go()))


def check_github_json(profile: Any, repos: Any, link: str, reset: str) -> None:
    try:
        p: Any = _profile(profile)
    except SourceFailure:
        p = None
    rows = [_repo(r) for r in repos if isinstance(r, dict)] if isinstance(repos, list) else []
    rows.sort(key=lambda r: (r["stars"], str(r["pushedAt"] or "")), reverse=True)
    parse_link_header(link)
    headers = httpx.Headers([(b"x-ratelimit-reset", reset.encode("utf-8", "surrogatepass"))])
    quota_message(FetchResponse(403, headers, b"", "u"), Clock()())
    storable(bound_payload(redact({"profile": p, "repos": rows})))


def fetch_with(body: bytes, headers: list[tuple[bytes, bytes]], status: int = 200) -> Any:
    """``Fetcher.get`` of one answer made of ``status``, ``headers`` and ``body``."""

    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, headers=headers, stream=httpx.ByteStream(body))

    async def go() -> Any:
        transport = httpx.MockTransport(answer)
        async with httpx.AsyncClient(transport=transport) as client:
            fetcher = Fetcher(client, Deadline(5), attempts=1, rng=random.Random(1))
            try:
                return await fetcher.get("https://api.example/x", max_bytes=100_000)
            except SourceFailure as exc:
                return exc

    return asyncio.run(go())


def check_fetch(body: bytes, coding: str, location: str, status: int) -> None:
    headers = [
        (b"content-encoding", coding.encode("utf-8", "surrogatepass")),
        (b"location", location.encode("utf-8", "surrogatepass")),
    ]
    out = fetch_with(body, headers, status)
    assert isinstance(out, FetchResponse | SourceFailure)
    if isinstance(out, FetchResponse):
        assert len(out.body) <= 100_000
        with contextlib.suppress(SourceFailure):
            out.json()


def check_brave(body: Any) -> None:
    async def go() -> Any:
        def answer(request: httpx.Request) -> httpx.Response:
            return httpx.Response(200, stream=httpx.ByteStream(json.dumps(body).encode()))

        async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as client:
            ctx = SourceContext(
                Fetcher(client, Deadline(5), attempts=1), SETTINGS, UrlGuard(), Clock()
            )
            try:
                results = await BraveProvider("https://brave.example", "k").search("q", ctx)
            except SourceFailure as exc:
                return exc
            return [(r.title, r.url, r.snippet) for r in results]

    out = asyncio.run(go())
    if not isinstance(out, SourceFailure):
        storable(redact(out))


def check_bounds(data: dict[str, Any]) -> None:
    out, _cut = bound_result(data)
    storable(out)
    assert json_size(out) <= MAX_RESULT_BYTES


# -------------------------------------------------------------------------------- strategies
# for the composite inputs, shared with tests/fuzz

csv_text = st.one_of(
    any_text,
    st.lists(
        st.lists(
            st.one_of(any_text.map(lambda t: t[:30]), st.sampled_from(['"', '""', ",", "\n"])),
            max_size=6,
        ).map(",".join),
        max_size=20,
    ).map(
        lambda rows: "Name,Title,Company Name,First Name,Last Name,School Name\n" + "\n".join(rows)
    ),
)
linkedin_files = st.dictionaries(
    st.one_of(
        st.sampled_from(
            ["Profile.csv", "Skills.csv", "Positions.csv", "Education.csv", "Projects.csv"]
        ),
        any_text.map(lambda t: t[:20]),
    ),
    csv_text,
    min_size=1,
    max_size=4,
)
codings = st.one_of(
    st.sampled_from(["", "gzip", "deflate", "gzip, gzip", "br", "identity", "x-gzip"]),
    any_text.map(lambda t: t[:20]),
)
locations = st.one_of(
    st.sampled_from(["http://[", "//[x", "/next", "http://h:99999/"]),
    any_text.map(lambda t: t[:40]),
)
statuses = st.sampled_from([200, 301, 302, 404, 500])

# ------------------------------------------------------------------------------ the tests


@FAST
@given(html_text)
def test_html_pages_parse_and_extract(html: str) -> None:
    check_html(html)


@FAST
@given(json_values)
def test_jsonld_blocks_parse_and_extract(value: Any) -> None:
    check_jsonld(value)


@FAST
@given(any_text, decoded_text.map(lambda t: t[:50]))
def test_robots_txt_parses(text: str, path: str) -> None:
    check_robots(text, path)


@FAST
@given(st.binary(max_size=500), st.one_of(any_text, st.just("text/html; charset=idna")))
def test_bodies_decode_in_any_charset(body: bytes, content_type: str) -> None:
    check_decode(body, content_type)


@FAST
@given(st.one_of(any_text, st.builds("http://{}".format, any_text)))
def test_website_urls_normalise_or_are_invalid_input(raw: str) -> None:
    check_website_url(raw)


@FAST
@given(linkedin_files)
def test_linkedin_exports_are_a_result_or_a_source_error(files: dict[str, str]) -> None:
    check_linkedin(files)


@FAST
@given(json_values, st.lists(json_values, max_size=5), any_text, any_text.map(lambda t: t[:20]))
def test_github_json_is_a_result_or_a_source_error(
    profile: Any, repos: Any, link: str, reset: str
) -> None:
    check_github_json(profile, repos, link, reset)


@FAST
@given(st.binary(max_size=2000), codings, locations, statuses)
def test_fetched_bodies_and_headers_are_a_response_or_a_source_error(
    body: bytes, coding: str, location: str, status: int
) -> None:
    check_fetch(body, coding, location, status)


@FAST
@given(json_values)
def test_web_search_answers_are_results_or_a_source_error(body: Any) -> None:
    check_brave(body)


@FAST
@given(st.dictionaries(st.text(max_size=10), json_values, max_size=6))
def test_bounds_hold_for_any_json(data: dict[str, Any]) -> None:
    check_bounds(data)
