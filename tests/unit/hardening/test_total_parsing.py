"""Contract 2.1: any request, whatever its bytes, is parsed or refused as ``invalid-argument``
naming the field; never ``internal`` (issue 8, "Why" 1).

The named cases are the crashes found by hand (each failed before the parsers were made total);
the properties drive every parser and every use case with arbitrary JSON under the fast profile.
The long profile of the same properties is ``tests/fuzz/test_requests_fuzz.py``.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings

from common.errors import InvalidArgument
from tests.support.aggregates import buckets
from usecases import analytics, enrich, stats, track
from usecases.requests import parse_analytics, parse_enrich, parse_stats, parse_track

from .strategies import (
    CV,
    REQUESTS,
    arbitrary,
    check_parser,
    check_use_case,
    make_app,
)

FAST = settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# -------------------------------------------------------------- the crashes found by hand


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        ({"cvId": CV, "website": "http://["}, "website"),
        ({"cvId": CV, "website": "http://a\uff03b/"}, "website"),
        ({"cvId": CV, "website": "http://ex\u2100ample.com/"}, "website"),
        ({"cvId": CV, "website": "http://" + "a" * 64 + ".com/"}, "website"),
        ({"cvId": CV, "website": "http://\ud800.example/"}, "website"),
        ({"cvId": CV, "website": "http://user:pw@example.com/"}, "website"),
        ({"cvId": CV, "website": "http://example.com:99999/"}, "website"),
        (
            {"cvId": CV, "linkedin": {"export": {"Profile.csv": "Ada,\ud800"}}},
            "linkedin.export.Profile.csv",
        ),
        ({"cvId": CV, "linkedin": {"export": {"\ud800.csv": "Ada"}}}, "linkedin.export"),
        ({"cvId": CV, "name": "Ada \udfff"}, "name"),
        ({"cvId": CV, "sources": [[[[]]] * 2] * 2}, "sources"),
        ({"cvId": CV, "sources": [int("9" * 4300)]}, "sources"),
        ({"cvId": CV, "idempotencyKey": "short"}, "idempotencyKey"),
        ({"cvId": CV, "idempotencyKey": "\ud800" * 10}, "idempotencyKey"),
    ],
)
def test_enrich_requests_that_crashed_are_invalid_arguments(
    request_: dict[str, Any], field: str
) -> None:
    with pytest.raises(InvalidArgument) as caught:
        parse_enrich(request_)
    assert caught.value.field == field


def test_a_deeply_nested_source_list_is_refused_not_crashed() -> None:
    deep: Any = "github"
    for _ in range(5000):
        deep = [deep]
    with pytest.raises(InvalidArgument) as caught:
        parse_enrich({"cvId": CV, "sources": deep})
    assert caught.value.field == "sources"


def test_track_metadata_with_lone_surrogates_nan_or_deep_nesting_is_refused() -> None:
    deep: Any = 1
    for _ in range(5000):
        deep = {"a": deep}
    for metadata in ({"k": "\ud800"}, {"\udfff": 1}, {"x": float("nan")}, deep):
        with pytest.raises(InvalidArgument) as caught:
            parse_track({"event": "gate_shown", "metadata": metadata})
        assert caught.value.field == "metadata"


def test_a_linkedin_export_of_many_empty_files_is_bounded() -> None:
    files = {f"f{i}.csv": "" for i in range(5000)}
    with pytest.raises(InvalidArgument) as caught:
        parse_enrich({"cvId": CV, "linkedin": {"export": files}})
    assert caught.value.field == "linkedin.export"


def test_valid_requests_still_parse() -> None:
    req = parse_enrich(
        {
            "cvId": CV,
            "mode": "preview",
            "sources": ["github", "website", "github"],
            "github": "octocat",
            "website": "https://b\u00fccher.example:8443/p?q=1",
            "linkedin": {"export": {"Profile.csv": "First Name\nAda \u00e9\U0001f600"}},
            "name": "Ada Lovelace",
            "options": {"forceRefresh": True, "timeoutMs": 5000.0},
            "idempotencyKey": "retry-key_01",
        }
    )
    assert req.sources == ("github", "website")
    assert req.website == "https://b\u00fccher.example:8443/p?q=1"
    assert req.timeout_ms == 5000 and req.idempotency_key == "retry-key_01"
    assert parse_track({"event": "gate_shown", "metadata": {"k": ["v", 1.5]}}).metadata


def test_a_crashing_request_does_not_reach_the_service_error_count() -> None:
    """The rollback trigger of "Why" 1: a malformed website was recorded as a service error."""
    app = make_app()
    from usecases.context import Caller

    with pytest.raises(InvalidArgument):
        enrich.run(app, Caller("alice"), {"cvId": CV, "website": "http://["})
    errors = [d.get("c", {}).get("errors") for d in buckets(app.store, "m")]
    assert errors and not any(errors), errors


# ------------------------------------------------------------------------ the properties


@FAST
@given(REQUESTS["enrich"] | arbitrary)
def test_parse_enrich_is_total(raw: Any) -> None:
    check_parser(parse_enrich, raw)


@FAST
@given(REQUESTS["track"] | arbitrary)
def test_parse_track_is_total(raw: Any) -> None:
    check_parser(parse_track, raw)


@FAST
@given(REQUESTS["stats"] | arbitrary)
def test_parse_stats_is_total(raw: Any) -> None:
    check_parser(parse_stats, raw)


@FAST
@given(REQUESTS["analytics"] | arbitrary)
def test_parse_analytics_is_total(raw: Any) -> None:
    check_parser(parse_analytics, raw)


@FAST
@given(REQUESTS["enrich"] | arbitrary)
def test_enrich_use_case_never_crashes(raw: Any) -> None:
    check_use_case(enrich.run, raw)


@FAST
@given(REQUESTS["track"] | arbitrary)
def test_track_use_case_never_crashes(raw: Any) -> None:
    check_use_case(track.run, raw)


@FAST
@given(REQUESTS["stats"] | arbitrary)
def test_stats_use_case_never_crashes(raw: Any) -> None:
    check_use_case(stats.run, raw, admin=True)


@FAST
@given(REQUESTS["analytics"] | arbitrary)
def test_analytics_use_case_never_crashes(raw: Any) -> None:
    check_use_case(analytics.run, raw, admin=True)
