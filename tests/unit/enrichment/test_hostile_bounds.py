"""Contract 2.1's size bounds (issue 8, "A result can be too big to store").

Before: a 960 KB Skills.csv became a 9.4 MB ``enrichedDataJson``; Firestore's limit is 1 MiB.
"""

from __future__ import annotations

import copy
import math
from typing import Any

from enrichment.bounds import MAX_RESULT_BYTES, STRING_CAP, bound_result, json_size
from enrichment.engine import EnrichmentInput
from enrichment.sources.linkedin import LinkedInSource
from tests.unit.enrichment.helpers import make_engine


def engine_shaped(n: int, text: str = "x") -> dict[str, Any]:
    """Like ``Engine.enrich(...).data``: per-source sections plus merged skills/projects."""
    return {
        "github": {
            "profile": {"login": "ada", "bio": text},
            "repos": [{"name": f"r{i}", "topics": ["go"] * n, "stars": i} for i in range(n)],
            "languages": [{"name": f"l{i}", "repos": 1, "bytes": 2} for i in range(n)],
            "totals": {"repos": n},
            "truncated": False,
        },
        "linkedin": {
            "profile": {"summary": text},
            "positions": [{"title": f"p{i}"} for i in range(n)],
            "skills": [{"name": f"s{i}"} for i in range(n)],
            "projects": [{"title": f"j{i}"} for i in range(n)],
        },
        "website": {"posts": [{"title": text} for _ in range(n)], "pages": []},
        "skills": [{"name": f"s{i}", "sources": ["linkedin"], "confidence": 0.6} for i in range(n)],
        "projects": [{"name": f"r{i}", "stars": i} for i in range(n)],
    }


def test_a_small_result_is_unchanged_and_not_truncated() -> None:
    data = engine_shaped(3, "hello")
    out, cut = bound_result(copy.deepcopy(data))
    assert out == data and cut is False


def test_lists_are_capped_by_their_key() -> None:
    out, cut = bound_result(engine_shaped(500))
    assert cut is True
    assert len(out["skills"]) == 200 and len(out["projects"]) == 100
    assert len(out["linkedin"]["positions"]) == 100
    assert len(out["linkedin"]["skills"]) == 200 and len(out["linkedin"]["projects"]) == 100
    assert len(out["github"]["repos"]) == 50 and len(out["github"]["languages"]) == 50
    assert len(out["github"]["repos"][0]["topics"]) == 50
    assert len(out["website"]["posts"]) == 50
    assert out["skills"][0] == {"name": "s0", "sources": ["linkedin"], "confidence": 0.6}


def test_strings_are_capped_at_4000_characters() -> None:
    out, cut = bound_result(engine_shaped(2, "y" * 10_000))
    assert cut is True and out["github"]["profile"]["bio"] == "y" * STRING_CAP


def test_a_capped_result_still_too_big_is_tightened_under_900kb() -> None:
    data = engine_shaped(60, "z" * 5000)
    for repo in data["github"]["repos"]:
        repo["topics"] = ["t" * 4000] * 60
    assert json_size(data) > 10 * MAX_RESULT_BYTES
    out, cut = bound_result(data)
    assert cut is True and json_size(out) <= MAX_RESULT_BYTES
    assert out["skills"] and out["github"]["repos"]  # cut, not emptied


def test_numbers_are_made_json_and_firestore_safe() -> None:
    out, cut = bound_result({"github": {"a": math.inf, "b": math.nan, "c": 10**30, "d": -(10**30)}})
    assert out["github"] == {"a": None, "b": None, "c": 2**53, "d": -(2**53)}
    assert cut is False


def test_a_section_that_says_truncated_makes_the_result_truncated() -> None:
    data = engine_shaped(1)
    data["github"]["truncated"] = True
    assert bound_result(data)[1] is True


def test_deep_values_are_dropped_not_a_recursion_error() -> None:
    deep: dict[str, Any] = {}
    node = deep
    for _ in range(5000):
        node["a"] = {}
        node = node["a"]
    out, cut = bound_result({"web": deep})
    assert cut is True and json_size(out) < 1000


def test_json_size_counts_bytes_as_stored() -> None:
    assert json_size({"a": "é"}) == len('{"a":"\\u00e9"}')


def test_a_960kb_skills_export_gives_a_result_under_900kb() -> None:
    text = "Name\n" + "".join(f"Skill number {i}\n" for i in range(50_000))
    assert len(text) > 900_000
    engine = make_engine(sources={"linkedin": LinkedInSource()})
    result = engine.enrich(
        EnrichmentInput(sources=("linkedin",), linkedin_export={"Skills.csv": text})
    )
    assert result.status == "success"
    out, cut = bound_result(result.data)
    assert cut is True and len(out["skills"]) == 200
    assert json_size(out) < MAX_RESULT_BYTES


def test_an_address_straddling_the_string_cap_is_redacted_not_cut_in_half() -> None:
    from enrichment.bounds import trim_for_redaction

    summary = "a " * 1995 + "ada.lovelace@example.com and more"
    profile = "First Name,Last Name,Summary\nAda,Lovelace," + summary + "\n"
    engine = make_engine(sources={"linkedin": LinkedInSource()})
    result = engine.enrich(
        EnrichmentInput(sources=("linkedin",), linkedin_export={"Profile.csv": profile})
    )
    out, cut = bound_result(result.data)
    kept = out["linkedin"]["profile"]["summary"]
    assert cut is True and len(kept) == STRING_CAP
    assert "ada.lovelace" not in kept and "lovelace@" not in kept
    long = {"s": "x" * 10_000, "l": list(range(5000))}
    trimmed = trim_for_redaction(long)
    assert len(trimmed["s"]) == STRING_CAP + 256 and trimmed["truncated"] is True
