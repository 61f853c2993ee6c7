"""The enrichment's source parsers under the long fuzz profile (see ``conftest.py``).

The checks and strategies are those of ``tests/unit/enrichment/test_hostile_properties.py``;
only the number of examples differs.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.unit.enrichment.test_hostile_properties import (
    any_text,
    check_bounds,
    check_brave,
    check_decode,
    check_fetch,
    check_github_json,
    check_html,
    check_jsonld,
    check_linkedin,
    check_robots,
    check_website_url,
    codings,
    decoded_text,
    html_text,
    json_values,
    linkedin_files,
    locations,
    statuses,
)

# 12,500 examples of the slower checks take 5-15 minutes on a shared machine: the project's
# 300 s per-test timeout would cut them off (and Hypothesis then reports a flaky strategy).
pytestmark = pytest.mark.timeout(3600)


@given(html_text)
def test_fuzz_html(html: str) -> None:
    check_html(html)


@given(json_values)
def test_fuzz_jsonld(value: Any) -> None:
    check_jsonld(value)


@given(any_text, decoded_text.map(lambda t: t[:50]))
def test_fuzz_robots(text: str, path: str) -> None:
    check_robots(text, path)


@given(st.binary(max_size=500), st.one_of(any_text, st.just("text/html; charset=idna")))
def test_fuzz_decode(body: bytes, content_type: str) -> None:
    check_decode(body, content_type)


@given(st.one_of(any_text, st.builds("http://{}".format, any_text)))
def test_fuzz_website_url(raw: str) -> None:
    check_website_url(raw)


@given(linkedin_files)
def test_fuzz_linkedin(files: dict[str, str]) -> None:
    check_linkedin(files)


@given(json_values, st.lists(json_values, max_size=5), any_text, any_text.map(lambda t: t[:20]))
def test_fuzz_github_json(profile: Any, repos: Any, link: str, reset: str) -> None:
    check_github_json(profile, repos, link, reset)


@given(st.binary(max_size=2000), codings, locations, statuses)
def test_fuzz_fetch(body: bytes, coding: str, location: str, status: int) -> None:
    check_fetch(body, coding, location, status)


@given(json_values)
def test_fuzz_web_search(body: Any) -> None:
    check_brave(body)


@given(st.dictionaries(st.text(max_size=10), json_values, max_size=6))
def test_fuzz_bounds(data: dict[str, Any]) -> None:
    check_bounds(data)
