"""The LinkedIn cache key hashes the files sorted by name, so their parse must not depend on
the order they came in: ``{"Profile.csv": A, "profile.csv": B}`` and the same files the other
way round share a key, and used to parse to A or B by whichever came last. Two different texts
under names of one known file now make that file malformed, in either order."""

from __future__ import annotations

from typing import Any

import pytest

from enrichment.cache import MemoryCacheStore
from enrichment.engine import EnrichmentInput
from enrichment.sources.linkedin import LinkedInSource, parse_export
from tests.unit.enrichment.helpers import error_of, make_engine

A = "First Name,Last Name,Headline\nAlice,Anders,Engineer\n"
B = "First Name,Last Name,Headline\nBob,Berg,Designer\n"
SKILLS = "Name\nPython\n"


def _both_orders(**extra: str) -> list[dict[str, str]]:
    return [
        {"Profile.csv": A, "profile.csv": B, **extra},
        {**extra, "profile.csv": B, "Profile.csv": A},
    ]


def test_the_parse_does_not_depend_on_the_order_of_the_files() -> None:
    first, second = (parse_export(files) for files in _both_orders(**{"Skills.csv": SKILLS}))
    assert first == second
    assert first["profile"] is None and first["parsedFiles"] == ["Skills.csv"]
    assert first["malformedFiles"] == [
        {"file": "Profile.csv", "reason": "2 different files are named Profile.csv"}
    ]


def test_the_same_text_under_two_names_is_one_file() -> None:
    data = parse_export({"export/Profile.csv": A, "Profile.csv": A})
    assert data["profile"]["firstName"] == "Alice" and data["malformedFiles"] == []


def test_a_cached_answer_is_the_one_a_fresh_parse_gives() -> None:
    cache = MemoryCacheStore()
    engine = make_engine(sources={"linkedin": LinkedInSource()}, cache=cache)
    fresh = make_engine(sources={"linkedin": LinkedInSource()})
    x, y = _both_orders(**{"Skills.csv": SKILLS})
    engine.enrich(EnrichmentInput(sources=("linkedin",), linkedin_export=x))
    from_cache = engine.enrich(EnrichmentInput(sources=("linkedin",), linkedin_export=y))
    uncached = fresh.enrich(EnrichmentInput(sources=("linkedin",), linkedin_export=y))
    assert from_cache.sources[0].cached and not uncached.sources[0].cached
    assert from_cache.data["linkedin"] == uncached.data["linkedin"]


@pytest.mark.parametrize("files", _both_orders())
def test_only_an_ambiguous_profile_is_invalid_input(files: dict[str, Any]) -> None:
    engine = make_engine(sources={"linkedin": LinkedInSource()})
    report = engine.enrich(EnrichmentInput(sources=("linkedin",), linkedin_export=files)).sources[0]
    assert (report.status, error_of(report).code) == ("failed", "invalid_input")
    assert "Profile.csv" in error_of(report).message
