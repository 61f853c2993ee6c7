"""The enrichment request parser's edges (contract 2.1; found by mutation testing, issue 13):
a complete request parsed field by field, and each refusal's field and message (the text the
client shows next to the field)."""

from __future__ import annotations

from typing import Any

import pytest

from common.errors import InvalidArgument
from common.vocab import Mode
from usecases.requests import (
    EnrichRequest,
    parse_analytics,
    parse_enrich,
    parse_stats,
    parse_track,
)


def test_a_complete_request_is_parsed_field_by_field() -> None:
    raw = {
        "cvId": "cv-1",
        "mode": "preview",
        "sources": ["github", "linkedin", "website"],
        "github": "octo-cat",
        "website": "https://ada.example.dev/",
        "linkedin": {"export": {"Skills.csv": "Name\nGo\n"}},
        "name": "Ada",
        "options": {"forceRefresh": True, "timeoutMs": 5000},
        "idempotencyKey": "key-12345",
    }
    assert parse_enrich(raw) == EnrichRequest(
        "cv-1",
        Mode.PREVIEW,
        ("github", "linkedin", "website"),
        "octo-cat",
        "https://ada.example.dev/",
        {"Skills.csv": "Name\nGo\n"},
        "Ada",
        True,
        5000,
        "key-12345",
    )


def test_the_website_may_be_2048_characters_and_not_2049() -> None:
    base = "https://ada.example.dev/"
    ok = base + "a" * (2048 - len(base))
    assert parse_enrich({"cvId": "c", "website": ok}).website == ok
    with pytest.raises(InvalidArgument) as err:
        parse_enrich({"cvId": "c", "website": ok + "a"})
    assert err.value.field == "website"


@pytest.mark.parametrize(
    ("raw", "field", "message"),
    [
        ({}, "cvId", "is required"),
        ({"cvId": "bad id!"}, "cvId", "must be 1 to 128 characters of letters, digits, _ or -"),
        ({"cvId": "c", "mode": "max"}, "mode", "must be full or preview"),
        ({"cvId": "c", "github": "bad name!"}, "github", "is not a valid GitHub username"),
        ({"cvId": "c", "sources": "github"}, "sources", "must be a list of sources"),
        ({"cvId": "c", "sources": []}, "sources", "must name at least one source"),
        (
            {"cvId": "c", "sources": ["myspace"]},
            "sources",
            "unknown source 'myspace'; use github, linkedin, website, web",
        ),
        (
            {"cvId": "c", "idempotencyKey": "short"},
            "idempotencyKey",
            "must be 8 to 64 letters, digits, _ or -",
        ),
    ],
)
def test_each_refusal_names_its_field_and_says_why(
    raw: dict[str, Any], field: str, message: str
) -> None:
    with pytest.raises(InvalidArgument) as err:
        parse_enrich(raw)
    assert (err.value.field, err.value.message) == (field, f"{field}: {message}")


@pytest.mark.parametrize(
    "url",
    [
        "http://exa mple.com/",
        "http://a\x00b.com/",
        "http://<script>.com/",
        'http://a"b.com/',
        "http://ex%41mple.com/",
        "http://\u2603.net/",  # IDNA 2003 takes it, IDNA 2008 (the fetcher's httpx) does not
        "http://-leading.example/",
        "http://" + "a" * 64 + ".example/",
    ],
)
def test_a_website_the_fetcher_could_never_request_is_invalid_argument(url: str) -> None:
    # Contract 2.1: "Any request the parser cannot accept, whatever its bytes (invalid URLs...)
    # is invalid-argument naming the field", not an answer whose website source failed.
    with pytest.raises(InvalidArgument) as err:
        parse_enrich({"cvId": "c", "website": url})
    assert err.value.field == "website"


@pytest.mark.parametrize(
    "url",
    [
        "https://b\u00fccher.example/",
        "http://xn--bcher-kva.example/",
        "http://[::1]:8080/x",
        "http://1.2.3.4/",
        "https://example.com./a b",
        "http://a_b.example.com/",
    ],
)
def test_a_website_the_fetcher_can_request_is_accepted(url: str) -> None:
    assert parse_enrich({"cvId": "c", "website": url}).website == url


def test_the_linkedin_limit_counts_file_names_in_utf8_bytes() -> None:
    """``1 MB in all`` is bytes: a file name of 100 two- and four-byte characters is 300 bytes, not
    100 (it was counted in characters)."""
    name = "é" * 50 + "📄" * 50  # 100 characters, 300 bytes
    assert len(name) == 100 and len(name.encode("utf-8")) == 300
    limit = 1000
    fits = {"cvId": "c", "linkedin": {"export": {name: "x" * (limit - 300)}}}
    assert parse_enrich(fits, limit).linkedin_export == {name: "x" * (limit - 300)}
    over = {"cvId": "c", "linkedin": {"export": {name: "x" * (limit - 299)}}}
    with pytest.raises(InvalidArgument) as err:
        parse_enrich(over, limit)
    assert err.value.field == "linkedin.export"


def test_every_optional_field_sent_as_null_means_absent() -> None:
    # The client SDKs send a field set to ``undefined`` as ``null``:
    # ``httpsCallable(fn)({cvId, mode: opts.mode})`` must not be refused for it.
    nulls = {
        "mode": None,
        "sources": None,
        "github": None,
        "website": None,
        "linkedin": None,
        "name": None,
        "idempotencyKey": None,
        "options": {"forceRefresh": None, "timeoutMs": None},
    }
    assert parse_enrich({"cvId": "cv-1", **nulls}) == parse_enrich({"cvId": "cv-1"})
    assert parse_enrich({"cvId": "cv-1", "options": None}) == parse_enrich({"cvId": "cv-1"})
    period = {"startDate": "2026-01-01", "endDate": "2026-01-07"}
    assert parse_analytics({**period, "granularity": None, "sources": None}) == parse_analytics(
        period
    )
    tracked = parse_track({"event": "gate_shown", "cvId": None, "source": None, "metadata": None})
    assert tracked == parse_track({"event": "gate_shown"})
    assert parse_stats({"userId": None}) == parse_stats({})


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ({"cvId": None}, "cvId"),
        ({"cvId": "c", "mode": False}, "mode"),
        ({"cvId": "c", "sources": 0}, "sources"),
        ({"cvId": "c", "options": {"timeoutMs": False}}, "options.timeoutMs"),
        ({"cvId": "c", "options": {"forceRefresh": 0}}, "options.forceRefresh"),
    ],
)
def test_a_required_null_or_a_falsy_value_of_the_wrong_type_is_still_refused(
    raw: dict[str, Any], field: str
) -> None:
    with pytest.raises(InvalidArgument) as err:
        parse_enrich(raw)
    assert err.value.field == field
