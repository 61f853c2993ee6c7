"""The four callables' request parsers and use cases under the long fuzz profile (see
``conftest.py``): ``HYPOTHESIS_PROFILE=fuzz .venv/bin/python -m pytest tests/fuzz -q``.

The checks and strategies are those of ``tests/unit/hardening/test_total_parsing.py`` (the fast
profile in ``make test``); only the number of examples differs.
"""

from __future__ import annotations

from typing import Any

from hypothesis import given

from tests.unit.hardening.strategies import REQUESTS, arbitrary, check_parser, check_use_case
from usecases import analytics, enrich, stats, track
from usecases.requests import parse_analytics, parse_enrich, parse_stats, parse_track


@given(REQUESTS["enrich"] | arbitrary)
def test_fuzz_parse_enrich(raw: Any) -> None:
    check_parser(parse_enrich, raw)


@given(REQUESTS["track"] | arbitrary)
def test_fuzz_parse_track(raw: Any) -> None:
    check_parser(parse_track, raw)


@given(REQUESTS["stats"] | arbitrary)
def test_fuzz_parse_stats(raw: Any) -> None:
    check_parser(parse_stats, raw)


@given(REQUESTS["analytics"] | arbitrary)
def test_fuzz_parse_analytics(raw: Any) -> None:
    check_parser(parse_analytics, raw)


@given(REQUESTS["enrich"] | arbitrary)
def test_fuzz_enrich_use_case(raw: Any) -> None:
    check_use_case(enrich.run, raw)


@given(REQUESTS["track"] | arbitrary)
def test_fuzz_track_use_case(raw: Any) -> None:
    check_use_case(track.run, raw)


@given(REQUESTS["stats"] | arbitrary)
def test_fuzz_stats_use_case(raw: Any) -> None:
    check_use_case(stats.run, raw, admin=True)


@given(REQUESTS["analytics"] | arbitrary)
def test_fuzz_analytics_use_case(raw: Any) -> None:
    check_use_case(analytics.run, raw, admin=True)
