"""Contract 2.1 / issue 3: all four sources end to end through the callable protocol, against
the loopback fakes, with the cache shared across CVs and bypassed by forceRefresh."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from scripts.devkit.emulator import call, seed
from scripts.devkit.services import WEBSITE_URL

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def _export() -> dict[str, str]:
    folder = FIXTURES / "linkedin" / "complete"
    return {p.name: p.read_text(encoding="utf-8") for p in sorted(folder.glob("*.csv"))}


def _request(cv: str, **extra: Any) -> dict[str, Any]:
    return {
        "cvId": cv,
        "github": "octocat",
        "website": WEBSITE_URL,
        "linkedin": {"export": _export()},
        "name": "Ada Lovelace",
        **extra,
    }


def test_four_sources_merge_and_share_the_cache(store: Any, services: Any) -> None:
    first, first_cv = seed(store, "four", premium=True)
    out = call("enrichCVWithExternalData", _request(first_cv), first).result
    by_source = {s["source"]: s for s in out["sources"]}
    assert set(by_source) == {"github", "linkedin", "website", "web"}
    assert all(s["status"] == "success" and s["items"] > 0 for s in by_source.values()), by_source
    data = out["enrichedData"]
    assert {"github", "linkedin", "website", "web"} <= set(data)
    names = [s["name"].lower() for s in data["skills"]]
    assert len(names) == len(set(names))  # deduplicated
    multi = [s for s in data["skills"] if len(s["sources"]) > 1]
    assert multi and all(0 < s["confidence"] <= 1 for s in data["skills"])
    stars = [p.get("stars") or 0 for p in data["projects"] if p.get("source") == "github"]
    assert stars == sorted(stars, reverse=True)
    text = json.dumps(data)
    assert "@example.org" not in text and "7946 0958" not in text  # redacted before returning

    # Another user's CV pointing at the same GitHub user, site and name shares the cache.
    second, second_cv = seed(store, "four-b", premium=True)
    again = call("enrichCVWithExternalData", _request(second_cv), second).result
    assert all(s["cached"] for s in again["sources"]), again["sources"]
    hits_before = services.github.hits("/users/octocat")
    fresh = call(
        "enrichCVWithExternalData", _request(second_cv, options={"forceRefresh": True}), second
    ).result
    assert not any(s["cached"] for s in fresh["sources"] if s["source"] != "github")
    assert services.github.hits("/users/octocat") == hits_before + 1

    stored = store.get_many([f"cvs/{second_cv}/externalData/latest"])
    doc = stored[f"cvs/{second_cv}/externalData/latest"]
    assert doc is not None and json.loads(doc["enrichedDataJson"])["skills"]


def test_a_source_the_user_points_at_that_does_not_exist_is_reported(store: Any) -> None:
    user, cv = seed(store, "missing", premium=True)
    out = call(
        "enrichCVWithExternalData",
        {
            "cvId": cv,
            "sources": ["github", "website"],
            "github": "no-such-user-xyz",
            "website": "http://10.0.0.1/",
        },
        user,
    ).result
    by_source = {s["source"]: s for s in out["sources"]}
    assert by_source["github"]["status"] == "failed"
    assert by_source["github"]["error"]["code"] == "not_found"
    assert by_source["website"]["error"]["code"] == "refused"  # SSRF guard, no connection made
    assert out["status"] == "failed"
