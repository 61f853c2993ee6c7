"""Merge (skills, projects) and redaction (issue: "Merge", "Redaction")."""

from __future__ import annotations

import pytest

from enrichment.merge import canonical_skill, merge
from enrichment.redact import EMAIL_MARK, PHONE_MARK, redact, redact_text


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("JS", "JavaScript"),
        ("ts", "TypeScript"),
        ("golang", "Go"),
        ("k8s", "Kubernetes"),
        ("postgres", "PostgreSQL"),
        ("NodeJS", "Node.js"),
        ("react.js", "React"),
        ("PYTHON", "python"),
    ],
)
def test_aliases_fold_to_one_skill(a: str, b: str) -> None:
    assert canonical_skill(a)[0] == canonical_skill(b)[0]


def test_skills_deduplicated_with_sources_and_confidence() -> None:
    data = {
        "github": {
            "totals": {"ownRepos": 2},
            "languages": [{"name": "JavaScript", "repos": 2, "bytes": 10}],
            "repos": [{"name": "a", "fork": False, "topics": ["k8s"]}],
        },
        "linkedin": {"skills": [{"name": "JS"}, {"name": "Kubernetes"}, {"name": "Leadership"}]},
        "website": {"skills": ["javascript"]},
    }
    skills = {s["name"]: s for s in merge(data)["skills"]}
    assert set(skills) == {"JavaScript", "Kubernetes", "Leadership"}
    assert skills["JavaScript"]["sources"] == ["github", "linkedin", "website"]
    assert (
        0
        < skills["Leadership"]["confidence"]
        < skills["Kubernetes"]["confidence"]
        < skills["JavaScript"]["confidence"]
        <= 1
    )


def test_projects_ranked_by_stars_then_recency_and_deduplicated() -> None:
    data = {
        "github": {
            "repos": [
                {
                    "name": "old",
                    "url": "https://github.com/u/old",
                    "stars": 5,
                    "pushedAt": "2020-01-01T00:00:00Z",
                },
                {
                    "name": "new",
                    "url": "https://github.com/u/new",
                    "stars": 5,
                    "pushedAt": "2025-01-01T00:00:00Z",
                },
                {
                    "name": "top",
                    "url": "https://github.com/u/top",
                    "stars": 50,
                    "pushedAt": "2019-01-01T00:00:00Z",
                },
                {
                    "name": "forked",
                    "url": "https://github.com/u/forked",
                    "stars": 999,
                    "fork": True,
                },
            ]
        },
        "website": {
            "projects": [
                {"name": "Top!", "url": "https://github.com/u/top/", "description": "from site"}
            ]
        },
        "linkedin": {"projects": [{"title": "Side thing", "url": None, "end": "2024-05"}]},
    }
    projects = merge(data)["projects"]
    assert [p["name"] for p in projects] == ["top", "new", "old", "Side thing"]
    assert projects[0]["description"] == "from site"
    assert set(projects[0]) == {"name", "url", "description", "stars", "updatedAt", "source"}


@pytest.mark.parametrize(
    "text",
    [
        "mail jane.doe+cv@example.co.uk now",
        "jane [at] example [dot] com",
        "call +1 (415) 555-0100",
        "tel 0044 20 7946 0958",
        "ring 415.555.0100",
        "(020) 7946-0958",
    ],
)
def test_contacts_are_removed(text: str) -> None:
    out = redact_text(text)
    assert EMAIL_MARK in out or PHONE_MARK in out
    assert "555" not in out and "example" not in out and "7946" not in out


@pytest.mark.parametrize(
    "text",
    [
        "from 2019-2023",
        "2019 - 2023",
        "released 2023-01-15",
        "v1.2.3",
        "12345 users",
        "ISBN-less 1,234,567",
    ],
)
def test_ordinary_numbers_are_kept(text: str) -> None:
    assert redact_text(text) == text


def test_urls_and_dates_are_not_touched_but_free_text_is() -> None:
    doc = {
        "url": "https://x.dev/u/jane@example.com",
        "updatedAt": "2024-01-01",
        "description": "jane@example.com",
        "items": [{"summary": "call +44 20 7946 0958"}],
    }
    out = redact(doc)
    assert out["url"] == doc["url"] and out["updatedAt"] == doc["updatedAt"]
    assert out["description"] == EMAIL_MARK and PHONE_MARK in out["items"][0]["summary"]
