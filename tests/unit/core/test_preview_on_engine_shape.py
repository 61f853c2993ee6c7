"""Preview trimming on what the real engine returns (contract 2.1; issue 13).

The engine runs once against the loopback fakes (GitHub with one repository given six topics,
the portfolio site, Brave, a LinkedIn export); its result then goes through the enrichment use
case for a free user asking for a preview and a premium user asking for full. The preview must
keep the shape, hold at most 3 items in every list at every depth, and carry ``locked: true``
exactly on the sections it trimmed (docs: ``gating/preview.py``).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator, Mapping
from dataclasses import replace
from typing import Any

import pytest

from common.settings import load_settings
from enrichment.bounds import STRING_CAP, compact_json
from enrichment.engine import EnrichmentInput
from enrichment.model import EnrichmentResult
from enrichment.sources.linkedin import LinkedInSource
from gating.preview import trim_preview
from scripts.devkit.fakes import FIXTURES, fake_brave, fake_github, fake_website
from stores.memory import MemoryStore
from tests.support.clock import FakeClock
from tests.support.doubles import seed_user, set_config
from tests.unit.enrichment.helpers import make_engine
from tests.unit.enrichment.test_enrichment_engine import all_sources, full_input
from usecases import enrich
from usecases.app import App
from usecases.context import Caller

TOPICS = ["javascript", "node", "http", "examples", "hello", "world"]


class Replay:
    """Answers every call with one result the real engine produced."""

    def __init__(self, result: EnrichmentResult) -> None:
        self.result = result

    def read_ahead(self, inp: EnrichmentInput) -> None:
        return None

    def from_cache(self, ahead: object) -> None:
        return None

    def enrich(self, inp: EnrichmentInput, ahead: object = None) -> EnrichmentResult:
        return self.result


@pytest.fixture(scope="module")
def engine_result(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EnrichmentResult]:
    gh_dir = tmp_path_factory.mktemp("gh") / "github"
    shutil.copytree(FIXTURES / "github", gh_dir)
    repos_file = gh_dir / "repos" / "octocat.json"
    repos = json.loads(repos_file.read_text())
    repos[0]["topics"] = TOPICS  # Hello-World: a list inside a list item, longer than 3
    repos_file.write_text(json.dumps(repos))
    with fake_github(gh_dir) as gh, fake_website() as site, fake_brave() as brave:
        engine = make_engine(
            sources=all_sources(brave), github_api_url=gh, allow_hosts=(site.host_port,)
        )
        yield engine.enrich(full_input(gh, site))


def _answers(result: EnrichmentResult) -> tuple[dict[str, Any], dict[str, Any]]:
    store = MemoryStore()
    seed_user(store, "free")
    seed_user(store, "paid", premium=True)
    set_config(store)
    app = App(load_settings({}), store, Replay(result), now=FakeClock(), rng=lambda n: 0)
    preview = enrich.run(app, Caller("free"), {"cvId": "cv-free", "mode": "preview"})
    full = enrich.run(app, Caller("paid"), {"cvId": "cv-paid"})
    assert (preview["access"], full["access"]) == ("preview", "full")
    return preview["enrichedData"], full["enrichedData"]


def _expected(full: Mapping[str, Any], propagate: bool) -> dict[str, Any]:
    """The preview of ``full`` as gating/preview.py documents it, written out independently:
    lists cut to 3 (their mapping items previewed as sections), ``locked`` on a mapping whose
    own list was cut, and on a nested section (not the top) when something in a nested map or
    in an item of one of its lists was."""
    out: dict[str, Any] = {}
    locked = False
    for key, value in full.items():
        if isinstance(value, list):
            locked |= len(value) > 3
            out[key] = [_expected(v, True) if isinstance(v, Mapping) else v for v in value[:3]]
            locked |= propagate and any(isinstance(v, dict) and "locked" in v for v in out[key])
        elif isinstance(value, Mapping):
            out[key] = _expected(value, True)
            locked |= propagate and out[key].get("locked") is True
        else:
            out[key] = value
    if locked:
        out["locked"] = True
    return out


def _lists(value: Any, path: str = "") -> Iterator[tuple[str, list[Any]]]:
    if isinstance(value, Mapping):
        for k, v in value.items():
            yield from _lists(v, f"{path}.{k}")
    elif isinstance(value, list):
        yield path, value
        for i, v in enumerate(value):
            yield from _lists(v, f"{path}[{i}]")


def test_the_engine_result_has_lists_to_trim_at_every_depth(
    engine_result: EnrichmentResult,
) -> None:
    # Guards the fixture: without long lists at these depths the tests below prove nothing.
    data = engine_result.data
    assert len(data["skills"]) > 3 and len(data["projects"]) > 3
    assert len(data["github"]["repos"]) > 3 and len(data["linkedin"]["skills"]) > 3
    hello = next(r for r in data["github"]["repos"] if r["name"] == "Hello-World")
    assert hello["topics"] == TOPICS
    assert len(data["web"]["results"]) <= 3  # a section with nothing to trim


def test_every_list_of_the_preview_holds_at_most_3_items(engine_result: EnrichmentResult) -> None:
    preview, full = _answers(engine_result)
    long_in_full = [p for p, items in _lists(full) if len(items) > 3]
    assert len(long_in_full) >= 6
    too_long = [(p, len(items)) for p, items in _lists(preview) if len(items) > 3]
    assert too_long == []


def test_the_preview_is_the_full_answer_trimmed_and_locked_as_documented(
    engine_result: EnrichmentResult,
) -> None:
    preview, full = _answers(engine_result)
    assert preview == _expected(full, propagate=False)


def test_locked_marks_the_trimmed_sections_and_only_them(engine_result: EnrichmentResult) -> None:
    preview, _ = _answers(engine_result)
    assert preview["locked"] is True  # skills and projects were cut
    assert preview["github"]["locked"] is True and len(preview["github"]["repos"]) == 3
    assert preview["website"]["locked"] is True and preview["linkedin"]["locked"] is True
    assert "locked" not in preview["web"] and len(preview["web"]["results"]) == 3
    assert "locked" not in preview["github"]["profile"]
    assert "locked" not in preview["github"]["totals"]
    hello = preview["github"]["repos"][0]
    assert hello["name"] == "Hello-World"
    assert hello["topics"] == TOPICS[:3] and hello["locked"] is True
    assert all("locked" not in repo for repo in preview["github"]["repos"][1:])
    assert all("locked" not in skill for skill in preview["skills"])
    assert all(len(skill["sources"]) <= 3 for skill in preview["skills"])


def _linkedin_only(websites: int) -> EnrichmentResult:
    src = FIXTURES / "linkedin" / "complete"
    urls = ",".join(f"SITE{i}:https://site{i}.example.dev" for i in range(websites))
    profile = (src / "Profile.csv").read_text()
    old = "[PERSONAL:https://ada.example.dev,COMPANY:https://engines.example.com]"
    assert old in profile
    export = {p.name: p.read_text() for p in src.glob("*.csv")}
    export["Profile.csv"] = profile.replace(old, f"[{urls}]")
    export["Skills.csv"] = "Name\nPython\nGo\n"
    engine = make_engine(sources={"linkedin": LinkedInSource()})
    return engine.enrich(EnrichmentInput(sources=("linkedin",), linkedin_export=export))


def test_a_nested_map_trimmed_locks_itself_and_its_section_but_not_the_answer() -> None:
    preview, full = _answers(_linkedin_only(websites=5))
    assert len(full["linkedin"]["profile"]["websiteUrls"]) == 5
    assert len(full["skills"]) <= 3 and len(full["projects"]) <= 3
    profile = preview["linkedin"]["profile"]
    assert profile["locked"] is True and len(profile["websiteUrls"]) == 3
    assert preview["linkedin"]["locked"] is True  # (its file lists hold 7 names too)
    assert "locked" not in preview  # its own lists (skills, projects) were not cut
    assert preview == _expected(full, propagate=False)


def test_a_nested_map_with_nothing_to_trim_is_not_locked() -> None:
    preview, full = _answers(_linkedin_only(websites=2))
    assert "locked" not in preview and "locked" not in preview["linkedin"]["profile"]
    assert preview["linkedin"]["profile"] == full["linkedin"]["profile"]


def test_the_stored_result_of_a_preview_is_the_preview(engine_result: EnrichmentResult) -> None:
    store = MemoryStore()
    seed_user(store, "free")
    set_config(store)
    app = App(load_settings({}), store, Replay(engine_result), now=FakeClock(), rng=lambda n: 0)
    answer = enrich.run(app, Caller("free"), {"cvId": "cv-free", "mode": "preview"})
    stored = json.loads(store.docs["cvs/cv-free/externalData/latest"]["enrichedDataJson"])
    assert stored == answer["enrichedData"]


def test_the_stored_result_of_a_full_call_is_the_bounded_answer(
    engine_result: EnrichmentResult,
) -> None:
    # A string over the cap is cut in the answer; the stored JSON (encoded once, while the
    # answer's size was measured) must be that same bounded data, byte for byte.
    data = {**engine_result.data, "web": {"summary": "é" * (STRING_CAP + 50)}}
    result = replace(engine_result, data=data)
    store = MemoryStore()
    seed_user(store, "pro", premium=True)
    set_config(store)
    app = App(load_settings({}), store, Replay(result), now=FakeClock(), rng=lambda n: 0)
    answer = enrich.run(app, Caller("pro"), {"cvId": "cv-pro", "mode": "full"})
    assert answer["access"] == "full" and answer["truncated"] is True
    assert len(answer["enrichedData"]["web"]["summary"]) == STRING_CAP
    text = store.docs["cvs/cv-pro/externalData/latest"]["enrichedDataJson"]
    assert text == compact_json(answer["enrichedData"])
    assert json.loads(text) == answer["enrichedData"]


def test_a_section_is_locked_when_only_a_map_inside_it_was_trimmed() -> None:
    # No engine section today has a nested map as its only trimmed part (LinkedIn's file lists
    # always hold 7 names), so propagation is checked on the engine's GitHub shape by hand.
    data = {
        "github": {"profile": {"login": "o", "orgs": ["a", "b", "c", "d"]}, "repos": [{"n": 1}]},
        "skills": [{"name": "Go"}],
    }
    preview = trim_preview(data)
    assert preview["github"]["profile"] == {"login": "o", "orgs": ["a", "b", "c"], "locked": True}
    assert preview["github"]["locked"] is True
    assert "locked" not in preview and preview["skills"] == [{"name": "Go"}]


def test_a_section_is_locked_when_an_item_of_its_list_was_trimmed() -> None:
    # Contract 2.1: `locked: true` on the sections a preview trims. A repository whose owner map
    # lost organisations is locked itself, and so is its section, though the list of repositories
    # (1 item) was not cut. The answer's top is locked only by its own lists.
    data = {
        "github": {"repos": [{"name": "r", "owner": {"orgs": ["a", "b", "c", "d"]}}]},
        "skills": [{"name": "Go", "sources": ["a", "b", "c", "d"]}],
    }
    preview = trim_preview(data)
    repo = preview["github"]["repos"][0]
    assert repo == {"name": "r", "owner": {"orgs": ["a", "b", "c"], "locked": True}, "locked": True}
    assert preview["github"]["locked"] is True
    assert preview["skills"] == [{"name": "Go", "sources": ["a", "b", "c"], "locked": True}]
    assert "locked" not in preview


def test_a_section_whose_items_were_not_trimmed_is_not_locked() -> None:
    data = {"github": {"repos": [{"name": "r", "topics": ["a", "b", "c"]}]}}
    assert trim_preview(data) == data


def _projects(n: int) -> EnrichmentResult:
    rows = "".join(f"Project {i},About {i},https://p{i}.example.dev,Jan 2020,\n" for i in range(n))
    export = {"Projects.csv": "Title,Description,Url,Started On,Finished On\n" + rows}
    engine = make_engine(sources={"linkedin": LinkedInSource()})
    return engine.enrich(EnrichmentInput(sources=("linkedin",), linkedin_export=export))


@pytest.mark.parametrize(("made", "kept"), [(80, 80), (130, 100)])
def test_projects_are_capped_at_100_and_a_cut_says_truncated(made: int, kept: int) -> None:
    # Contract 2.1: lists are capped (projects 100) and "when anything was cut, truncated: true".
    store = MemoryStore()
    seed_user(store, "paid", premium=True)
    set_config(store)
    app = App(load_settings({}), store, Replay(_projects(made)), now=FakeClock(), rng=lambda n: 0)
    answer = enrich.run(app, Caller("paid"), {"cvId": "cv-paid"})
    assert len(answer["enrichedData"]["linkedin"]["projects"]) == min(made, 100)
    assert len(answer["enrichedData"]["projects"]) == kept
    assert answer.get("truncated") is (True if made > kept else None)
