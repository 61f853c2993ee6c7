"""LinkedIn "Get a copy of your data" export: the CSV files the user uploaded, parsed locally.

Column names are LinkedIn's, e.g. ``Positions.csv``: ``Company Name,Title,Description,Location,
Started On,Finished On``. Quoted multi-line fields, a UTF-8 BOM and CRLF line ends are handled.
A file that cannot be read is reported in ``malformedFiles`` and the others still count; the
source fails (``invalid_input``) only when no known file could be read. File names are matched
case-insensitively, folders ignored; two different texts under names of one file
(``Profile.csv``, ``profile.csv``) make it malformed, whatever their order (the cache key does
not depend on the order either).

Odd files are malformed, never a crash: NUL bytes, text that is not valid Unicode (lone
surrogates), fields over the csv module's limit, more than ``MAX_COLUMNS`` columns. At most
``MAX_ROWS`` rows of a file are read (``truncated: true`` then); the lists kept are cut further
to contract 2.1's caps.
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ..bounds import bound_payload, trim_for_redaction
from ..cache import CacheEntry
from ..errors import ErrorCode, SourceFailure, SourceSkipped
from ..model import EnrichmentInput
from ..redact import redact_async
from .base import Fetched, SourceContext

Row = dict[str, str]
MAX_ROWS = 2000
"""Rows read per file (the result keeps at most 200 of a list)."""
MAX_COLUMNS = 200
"""Columns of a file (LinkedIn's have fewer than 20)."""

_MONTHS = {
    m: i
    for i, m in enumerate(
        ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"),
        start=1,
    )
}


def normalise_date(raw: str) -> str | None:
    """LinkedIn dates ("Jan 2020", "2020", "2020-01-15", "1/15/20") as ISO prefixes."""
    s = raw.strip()
    if not s or s.lower() in ("present", "current"):
        return None
    if re.fullmatch(r"\d{4}", s):
        return s
    if m := re.fullmatch(r"([A-Za-z]{3})[a-z]*\.?\s+(\d{4})", s):
        month = _MONTHS.get(m.group(1).lower())
        return f"{m.group(2)}-{month:02d}" if month else None
    if m := re.fullmatch(r"(\d{4})-(\d{2})(?:-(\d{2}))?", s):
        return s
    if m := re.fullmatch(r"(\d{1,2})/(\d{1,2})/(\d{2,4})", s):
        year = int(m.group(3))
        year += 2000 if year < 100 else 0
        return f"{year:04d}-{int(m.group(1)):02d}-{int(m.group(2)):02d}"
    return None


def _bracket_list(raw: str) -> list[str]:
    """ "[PERSONAL:https://a.dev,COMPANY:https://b.com]" → ["https://a.dev", "https://b.com"]."""
    inner = raw.strip().strip("[]")
    out = []
    for part in inner.split(","):
        part = part.strip()
        if not part:
            continue
        label, sep, rest = part.partition(":")
        # "PERSONAL:https://..." carries a label; "https://..." itself has a colon too.
        out.append(rest.strip() if sep and label.isupper() and not rest.startswith("//") else part)
    return out


def _profile(rows: list[Row]) -> dict[str, Any]:
    r = rows[0] if rows else {}
    # Address, birth date, zip code, maiden name and messengers are left out on purpose.
    return {
        "firstName": r.get("First Name") or None,
        "lastName": r.get("Last Name") or None,
        "headline": r.get("Headline") or None,
        "summary": r.get("Summary") or None,
        "industry": r.get("Industry") or None,
        "location": r.get("Geo Location") or None,
        "websiteUrls": _bracket_list(r.get("Websites", "")),
        "twitterHandles": [h.lstrip("@") for h in _bracket_list(r.get("Twitter Handles", ""))],
    }


def _span(r: Row, start: str, end: str) -> dict[str, Any]:
    return {
        "startedOn": r.get(start) or None,
        "finishedOn": r.get(end) or None,
        "start": normalise_date(r.get(start, "")),
        "end": normalise_date(r.get(end, "")),
    }


def _positions(rows: list[Row]) -> list[dict[str, Any]]:
    return [
        {
            "company": r.get("Company Name") or None,
            "title": r.get("Title") or None,
            "description": r.get("Description") or None,
            "location": r.get("Location") or None,
            **_span(r, "Started On", "Finished On"),
            "current": not (r.get("Finished On") or "").strip(),
        }
        for r in rows
        if r.get("Company Name") or r.get("Title")
    ]


def _education(rows: list[Row]) -> list[dict[str, Any]]:
    return [
        {
            "school": r.get("School Name") or None,
            "degree": r.get("Degree Name") or None,
            "notes": r.get("Notes") or None,
            "activities": r.get("Activities") or None,
            **_span(r, "Start Date", "End Date"),
        }
        for r in rows
        if r.get("School Name")
    ]


def _skills(rows: list[Row]) -> list[dict[str, Any]]:
    seen: dict[str, dict[str, Any]] = {}
    for r in rows:
        name = (r.get("Name") or "").strip()
        if name and name.lower() not in seen:
            seen[name.lower()] = {"name": name}
    return list(seen.values())


def _certifications(rows: list[Row]) -> list[dict[str, Any]]:
    # "License Number" is an identifier of the person: not kept.
    return [
        {
            "name": r.get("Name") or None,
            "authority": r.get("Authority") or None,
            "url": r.get("Url") or None,
            **_span(r, "Started On", "Finished On"),
        }
        for r in rows
        if r.get("Name")
    ]


def _languages(rows: list[Row]) -> list[dict[str, Any]]:
    return [
        {"name": r.get("Name"), "proficiency": r.get("Proficiency") or None}
        for r in rows
        if r.get("Name")
    ]


def _projects(rows: list[Row]) -> list[dict[str, Any]]:
    return [
        {
            "title": r.get("Title") or None,
            "description": r.get("Description") or None,
            "url": r.get("Url") or None,
            **_span(r, "Started On", "Finished On"),
        }
        for r in rows
        if r.get("Title")
    ]


@dataclass(frozen=True)
class FileSpec:
    """A known export file: where it goes, which columns it must have, how rows become data."""

    section: str
    required: tuple[str, ...]
    build: Callable[[list[Row]], Any]


FILES: dict[str, FileSpec] = {
    "Profile.csv": FileSpec("profile", ("First Name", "Last Name"), _profile),
    "Positions.csv": FileSpec("positions", ("Company Name", "Title"), _positions),
    "Education.csv": FileSpec("education", ("School Name",), _education),
    "Skills.csv": FileSpec("skills", ("Name",), _skills),
    "Certifications.csv": FileSpec("certifications", ("Name",), _certifications),
    "Languages.csv": FileSpec("languages", ("Name",), _languages),
    "Projects.csv": FileSpec("projects", ("Title",), _projects),
}
LIST_SECTIONS = tuple(s.section for s in FILES.values() if s.section != "profile")


class MalformedCsv(ValueError):
    """A file that is not a readable CSV in LinkedIn's format; the message is the reason."""


def _is_text(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates
        return False
    return True


def parse_csv(text: str, required: tuple[str, ...], *, max_rows: int = MAX_ROWS) -> list[Row]:
    """Rows of a LinkedIn CSV as dicts by header name (at most ``max_rows``; one more row in
    the list says there were more). Raises ``MalformedCsv``."""
    if "\x00" in text:
        raise MalformedCsv("binary content")
    if not _is_text(text):
        raise MalformedCsv("not valid Unicode text")
    reader = csv.reader(io.StringIO(text.lstrip("\ufeff"), newline=""), strict=True)
    try:
        header: list[str] | None = None
        rows: list[Row] = []
        for fields in reader:
            if not any(f.strip() for f in fields):
                continue  # blank line
            if header is None:
                if len(fields) > MAX_COLUMNS:
                    raise MalformedCsv(f"more than {MAX_COLUMNS} columns")
                header = [f.strip() for f in fields]
                missing = [c for c in required if c not in header]
                if missing:
                    raise MalformedCsv(f"missing column {missing[0]!r}")
                continue
            if len(fields) > len(header):
                raise MalformedCsv(
                    f"line {reader.line_num} has {len(fields)} fields, the header {len(header)}"
                )
            rows.append(
                {h: (fields[i].strip() if i < len(fields) else "") for i, h in enumerate(header)}
            )
            if len(rows) > max_rows:
                break
    except csv.Error as exc:
        raise MalformedCsv(f"line {reader.line_num}: {exc}") from None
    if header is None:
        raise MalformedCsv("empty file")
    return rows


def _canonical_name(name: str) -> str | None:
    base = name.replace("\\", "/").rsplit("/", 1)[-1].strip().lower()
    for known in FILES:
        if known.lower() == base:
            return known
    return None


def _by_known_file(files: Mapping[str, str]) -> tuple[dict[str, list[object]], list[str]]:
    """The texts given for each known file (in FILES order; several when more than one name
    maps to it, such as ``Profile.csv`` and ``profile.csv``) and the names of the others
    (sorted). Independent of the mapping's order, like the cache key."""
    texts: dict[str, list[object]] = {}
    ignored: list[str] = []
    for name, text in sorted(files.items(), key=lambda item: str(item[0])):
        known = _canonical_name(name) if isinstance(name, str) else None
        if known is None:
            if len(ignored) < 50:
                ignored.append(str(name).encode("utf-8", "replace").decode("utf-8")[:200])
            continue
        if text not in texts.setdefault(known, []):
            texts[known].append(text)
    return {f: texts[f] for f in FILES if f in texts}, ignored


def parse_export(files: Mapping[str, str]) -> dict[str, Any]:
    """The ``linkedin`` section from the export's files (not redacted yet). Two different texts
    under names of the same file (``Profile.csv``, ``profile.csv``) make that file malformed:
    which one the user meant cannot be told."""
    out: dict[str, Any] = {"profile": None, **{s: [] for s in LIST_SECTIONS}}
    parsed: list[str] = []
    malformed: list[dict[str, str]] = []
    truncated = False
    known_files, ignored = _by_known_file(files)
    for known, texts in known_files.items():
        spec = FILES[known]
        text = texts[0]
        try:
            if len(texts) > 1:
                raise MalformedCsv(f"{len(texts)} different files are named {known}")
            if not isinstance(text, str):
                raise MalformedCsv("not text")
            rows = parse_csv(text, spec.required)
            truncated = truncated or len(rows) > MAX_ROWS
            out[spec.section] = spec.build(rows[:MAX_ROWS])
            parsed.append(known)
        except MalformedCsv as exc:
            malformed.append({"file": known, "reason": str(exc)})
    out["parsedFiles"] = parsed
    out["missingFiles"] = [
        f for f in FILES if f not in parsed and f not in {m["file"] for m in malformed}
    ]
    out["malformedFiles"] = malformed
    out["ignoredFiles"] = sorted(ignored)
    if truncated:
        out["truncated"] = True
    return out


def _bytes(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")


class LinkedInSource:
    """``linkedin``: the user's own export, so bad files are ``invalid_input``, never ``upstream``."""

    name = "linkedin"

    def __init__(self, max_bytes: int | None = None) -> None:
        self._max_bytes = max_bytes

    def normalise(self, inp: EnrichmentInput) -> str:
        """A hash of the files (names and texts); checks types and the size limit."""
        files = inp.linkedin_export
        if not files:
            raise SourceSkipped(ErrorCode.INVALID_INPUT, "no LinkedIn export given")
        if not all(isinstance(n, str) and isinstance(t, str) for n, t in files.items()):
            raise SourceFailure(ErrorCode.INVALID_INPUT, "LinkedIn export files must be text")
        digest = hashlib.sha256()
        for name in sorted(files):
            # surrogatepass: a lone surrogate is the file's problem (reported as malformed),
            # not a crash of the cache key.
            digest.update(_bytes(name) + b"\x00" + _bytes(files[name]) + b"\x00")
        return digest.hexdigest()

    def count(self, payload: dict[str, Any]) -> int:
        """Rows read from every section (the profile counts as one)."""
        return (1 if payload.get("profile") else 0) + sum(
            len(payload.get(s) or []) for s in LIST_SECTIONS
        )

    async def fetch(
        self, key: str, inp: EnrichmentInput, ctx: SourceContext, stale: CacheEntry | None
    ) -> Fetched:
        """Parse the export (no network)."""
        files = inp.linkedin_export or {}
        limit = self._max_bytes or ctx.settings.linkedin_max_bytes
        size = sum(len(_bytes(t)) if isinstance(t, str) else 0 for t in files.values())
        if size > limit:
            raise SourceFailure(
                ErrorCode.INVALID_INPUT,
                f"the LinkedIn export is larger than {limit / 1_000_000:g} MB",
            )
        data = parse_export(files)
        if not data["parsedFiles"]:
            if data["malformedFiles"]:
                first = data["malformedFiles"][0]
                raise SourceFailure(
                    ErrorCode.INVALID_INPUT, f"{first['file']} could not be read: {first['reason']}"
                )
            raise SourceFailure(
                ErrorCode.INVALID_INPUT, "the export has none of the LinkedIn files we read"
            )
        return Fetched(
            bound_payload(
                await redact_async(trim_for_redaction(data), deadline=ctx.fetcher.deadline)
            )
        )
