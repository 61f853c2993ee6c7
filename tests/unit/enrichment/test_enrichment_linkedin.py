"""LinkedIn export source (issue: "LinkedIn data export")."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from enrichment.cache import MemoryCacheStore
from enrichment.engine import EnrichmentInput
from enrichment.model import EnrichmentResult
from enrichment.sources.linkedin import LinkedInSource, normalise_date, parse_csv
from scripts.devkit.fakes import FIXTURES
from tests.support.clock import FakeClock
from tests.unit.enrichment.helpers import error_of, make_engine


def export(folder: str = "complete") -> dict[str, str]:
    root = FIXTURES / "linkedin" / folder
    return {p.name: p.read_text("utf-8") for p in sorted(Path(root).glob("*.csv"))}


def run(files: dict[str, str] | None, **overrides: Any) -> EnrichmentResult:
    engine = make_engine(sources={"linkedin": LinkedInSource()}, **overrides)
    return engine.enrich(EnrichmentInput(sources=("linkedin",), linkedin_export=files))


def test_complete_export_is_parsed_in_linkedins_format() -> None:
    result = run(export())
    report = result.sources[0]
    assert (report.status, report.cached) == ("success", False)
    data = result.data["linkedin"]
    assert data["missingFiles"] == [] and data["malformedFiles"] == []
    assert data["profile"]["firstName"] == "Ada"
    assert data["profile"]["headline"] == "Staff Engineer at Analytical Engines"
    assert data["profile"]["websiteUrls"] == [
        "https://ada.example.dev",
        "https://engines.example.com",
    ]
    assert data["profile"]["twitterHandles"] == ["ada_codes"]
    # multi-line quoted fields survive; doubled quotes are unescaped
    assert data["positions"][0]["description"].count("\n") == 2
    assert '"exactly once"' in data["positions"][1]["description"]
    assert data["positions"][0]["current"] is True and data["positions"][0]["start"] == "2021-03"
    assert data["positions"][1]["end"] == "2021-02"
    assert [s["name"] for s in data["skills"]] == [
        "Python",
        "Golang",
        "JS",
        "Kubernetes",
        "postgres",
        "Technical Leadership",
    ]
    assert data["education"][0]["degree"] == "BSc Mathematics"
    assert data["certifications"][0]["authority"] == "The Linux Foundation"
    assert data["languages"][1] == {
        "name": "French",
        "proficiency": "Professional working proficiency",
    }
    assert data["projects"][0]["url"] == "https://github.com/octocat/engine-sim"
    # 1 profile + 3 positions + 1 education + 6 skills + 1 certification + 2 languages + 2 projects
    assert report.items == 16


def test_personal_data_is_left_out_and_free_text_redacted() -> None:
    text = json.dumps(run(export()).data["linkedin"])
    for secret in ("ada.lovelace@example.org", "7946", "St James", "1815", "SW1Y", "LF-123456"):
        assert secret not in text
    assert "[email removed]" in text and "[phone removed]" in text


def test_missing_and_unknown_files_are_reported() -> None:
    files = export()
    del files["Projects.csv"], files["Languages.csv"]
    files["Email Addresses.csv"] = "Email Address,Confirmed,Primary,Updated On\na@b.c,Yes,Yes,\n"
    data = run(files).data["linkedin"]
    assert data["missingFiles"] == ["Languages.csv", "Projects.csv"]
    assert data["ignoredFiles"] == ["Email Addresses.csv"]
    assert "a@b.c" not in json.dumps(data)


def test_malformed_files_are_reported_and_the_rest_is_used() -> None:
    files = {**export(), **export("malformed")}
    result = run(files)
    assert result.sources[0].status == "success"
    bad = {m["file"]: m["reason"] for m in result.data["linkedin"]["malformedFiles"]}
    assert set(bad) == {"Positions.csv", "Skills.csv", "Projects.csv"}
    assert "Name" in bad["Skills.csv"]
    assert "7 fields" in bad["Projects.csv"]
    assert result.data["linkedin"]["positions"] == []


def test_only_malformed_files_fail_as_invalid_input() -> None:
    report = run(export("malformed")).sources[0]
    assert (report.status, error_of(report).code) == ("failed", "invalid_input")


def test_only_unknown_files_fail_as_invalid_input() -> None:
    report = run({"Connections.csv": "First Name,Last Name\nA,B\n"}).sources[0]
    assert (report.status, error_of(report).code) == ("failed", "invalid_input")


def test_export_over_the_size_limit_is_invalid_input() -> None:
    files = {"Skills.csv": "Name\n" + "Python\n" * 200_000}  # ~1.4 MB
    report = run(files).sources[0]
    assert (report.status, error_of(report).code) == ("failed", "invalid_input")
    assert "1 MB" in error_of(report).message


def test_no_export_is_skipped() -> None:
    report = run(None).sources[0]
    assert (report.status, error_of(report).code) == ("skipped", "invalid_input")


def test_same_files_hit_the_cache(cache: MemoryCacheStore, clock: FakeClock) -> None:
    engine = make_engine(clock, cache, {"linkedin": LinkedInSource()})
    inp = EnrichmentInput(sources=("linkedin",), linkedin_export=export())
    engine.enrich(inp)
    again = engine.enrich(inp)
    assert again.sources[0].cached is True


def test_csv_details() -> None:
    assert parse_csv("\ufeffName\r\n\r\nGo\r\n", ("Name",)) == [{"Name": "Go"}]
    assert parse_csv("Name,Proficiency\nGerman\n", ("Name",)) == [
        {"Name": "German", "Proficiency": ""}
    ]
    assert normalise_date("Sep 2025") == "2025-09"
    assert normalise_date("2019") == "2019"
    assert normalise_date("1/5/23") == "2023-01-05"
    assert normalise_date("Present") is None
