"""Request validation for the four callables, in one place (contract section 2).

Every refusal is ``InvalidArgument`` naming the field, so a client can point at it. The parsers
are total (contract 2.1): whatever JSON value the callable protocol delivers (lone surrogates,
odd Unicode, unparseable URLs, integers of thousands of digits, values nested a thousand deep)
gives a request or ``InvalidArgument``, never another exception. Every string they accept is
valid Unicode (encodable as UTF-8), so it can be stored, logged by length and sent upstream.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any
from urllib.parse import urlsplit

from analytics.admin import AnalyticsQuery
from common.errors import InvalidArgument
from common.vocab import SOURCES, Mode
from enrichment.fetch import requestable

MODES = tuple(m.value for m in Mode)
EVENTS = (
    "preview_viewed",
    "gate_shown",
    "upgrade_clicked",
    "feature_discovered",
    "upgrade_completed_view",
)
_CV_ID = re.compile(r"^[A-Za-z0-9_-]{1,128}$")
_GITHUB_USER = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9]|-(?=[A-Za-z0-9])){0,38}$")
_SAFE_NAME = re.compile(r"[A-Za-z][A-Za-z_.-]{0,31}")
"""Client-chosen names shown in errors: word-like only (a key holding digits may be a token)."""
_UID = re.compile(r"[A-Za-z0-9_-]{1,128}")
_IDEMPOTENCY_KEY = re.compile(r"[A-Za-z0-9_-]{8,64}")
LINKEDIN_MAX_FILES = 100
"""Files in one LinkedIn export at most (LinkedIn's own export has about 40)."""


def _shown(name: Any) -> str:
    """A client-chosen name as it may appear in an error: short and plain, or not at all
    (messages never echo e-mail addresses or other free text). Only strings are shown: ``str``
    of a deeply nested list or a huge integer raises."""
    if isinstance(name, str) and _SAFE_NAME.fullmatch(name) and "@" not in name:
        return name
    return "(unnamed)"


def _unicode(value: str, field: str, recorded: str | None = None) -> str:
    """``value`` if it is valid Unicode text: no lone surrogates, which JSON's ``\\ud800``
    escapes can carry but UTF-8, Firestore and every upstream API refuse."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidArgument(field, "must be valid Unicode text", recorded) from None
    return value


@dataclass(frozen=True)
class EnrichRequest:
    """A validated ``enrichCVWithExternalData`` request."""

    cv_id: str
    mode: Mode
    sources: tuple[str, ...]
    github: str | None
    website: str | None
    linkedin_export: Mapping[str, str] | None
    name: str | None
    force_refresh: bool
    timeout_ms: int
    idempotency_key: str | None = None
    """Retries with this key within an hour get the first answer (contract 2.1: 8..64
    characters of ``[A-Za-z0-9_-]``)."""


@dataclass(frozen=True)
class TrackRequest:
    """A validated ``trackExternalDataUsage`` request."""

    event: str
    cv_id: str | None
    source: str | None
    metadata: Mapping[str, Any] | None


@dataclass(frozen=True)
class StatsRequest:
    """A validated ``getUserExternalDataUsageStats`` request."""

    user_id: str | None


def _object(raw: Any, field: str = "data") -> Mapping[str, Any]:
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise InvalidArgument(field, "must be an object")
    return raw


def _no_unknown(obj: Mapping[str, Any], allowed: set[str], prefix: str = "") -> None:
    for key in obj:
        if key not in allowed:
            raise InvalidArgument(
                f"{prefix}{_shown(key)}", "is not a known field", f"{prefix}(unknown field)"
            )


def _string(obj: Mapping[str, Any], field: str, max_len: int, prefix: str = "") -> str | None:
    value = obj.get(field)
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidArgument(prefix + field, "must be a string")
    if len(value) > max_len:
        raise InvalidArgument(prefix + field, f"must be at most {max_len} characters")
    return _unicode(value, prefix + field)


def _cv_id(obj: Mapping[str, Any], required: bool) -> str | None:
    value = obj.get("cvId")
    if value is None:
        if required:
            raise InvalidArgument("cvId", "is required")
        return None
    if not isinstance(value, str) or not _CV_ID.fullmatch(value):
        raise InvalidArgument("cvId", "must be 1 to 128 characters of letters, digits, _ or -")
    return value


def _given(obj: Mapping[str, Any], field: str, default: Any) -> Any:
    """An optional field's value, ``default`` when it is absent or ``null``: the client SDKs
    send a field set to ``undefined`` as ``null``, so the two mean the same."""
    value = obj.get(field)
    return default if value is None else value


def _sources(obj: Mapping[str, Any]) -> tuple[str, ...]:
    """The optional ``sources`` (all four when absent or ``null``)."""
    value = obj.get("sources")
    return SOURCES if value is None else _source_list(value, "sources")


def _source_list(value: Any, field: str) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise InvalidArgument(field, "must be a list of sources")
    out: list[str] = []
    for item in value:
        if not isinstance(item, str) or item not in SOURCES:
            raise InvalidArgument(
                field, f"unknown source {_shown(item)!r}; use {', '.join(SOURCES)}"
            )
        if item not in out:
            out.append(item)
    if not out:
        raise InvalidArgument(field, "must name at least one source")
    return tuple(out)


def parse_enrich(raw: Any, linkedin_max_bytes: int = 1_000_000) -> EnrichRequest:
    """Validate an enrichment request (``linkedin_max_bytes``: ``EXTERNAL_DATA_LINKEDIN_MAX_BYTES``)."""
    obj = _object(raw)
    _no_unknown(obj, _ENRICH_FIELDS)
    cv_id = _cv_id(obj, required=True)
    if cv_id is None:  # _cv_id raises first when required; this narrows the type
        raise InvalidArgument("cvId", "is required")
    mode = _given(obj, "mode", "full")
    if not isinstance(mode, str) or mode not in MODES:
        raise InvalidArgument("mode", "must be full or preview")
    sources = _sources(obj)
    github = _string(obj, "github", 39)
    if github is not None and not _GITHUB_USER.fullmatch(github):
        raise InvalidArgument("github", "is not a valid GitHub username")
    website = _website(_string(obj, "website", 2048))
    name = _string(obj, "name", 200)
    export = _linkedin(obj.get("linkedin"), linkedin_max_bytes)
    force, timeout = _options(obj.get("options"))
    key = _string(obj, "idempotencyKey", 64)
    if key is not None and not _IDEMPOTENCY_KEY.fullmatch(key):
        raise InvalidArgument("idempotencyKey", "must be 8 to 64 letters, digits, _ or -")
    return EnrichRequest(
        cv_id, Mode(mode), sources, github, website, export, name, force, timeout, key
    )


_ENRICH_FIELDS = {
    "cvId",
    "mode",
    "sources",
    "github",
    "website",
    "linkedin",
    "name",
    "options",
    "idempotencyKey",
}


def _website(value: str | None) -> str | None:
    """An http(s) URL the website source can fetch: it parses (as the fetcher parses it too),
    has a host that IDNA can encode and DNS can hold, no credentials and a valid port (``urlsplit`` raises on ``http://[`` and on hosts that NFKC
    changes into delimiters; ``.port`` raises on ``:99999``)."""
    if value is None:
        return None
    problem = "must be an http or https URL"
    try:
        parts = urlsplit(value)
        host = parts.hostname
        _ = parts.port
        if parts.scheme not in ("http", "https") or not host:
            raise InvalidArgument("website", problem)
        if ":" not in host:  # IPv6 literals are not IDNA names
            host.encode("idna")
    except (ValueError, UnicodeError):
        raise InvalidArgument("website", problem) from None
    if not requestable(value):
        raise InvalidArgument("website", "must name a valid host")
    if parts.username is not None or parts.password is not None:
        raise InvalidArgument("website", "must not contain a user name or password")
    return value


def _options(raw: Any) -> tuple[bool, int]:
    options = _object(raw, "options")
    _no_unknown(options, {"forceRefresh", "timeoutMs"}, "options.")
    force = _given(options, "forceRefresh", False)
    if not isinstance(force, bool):
        raise InvalidArgument("options.forceRefresh", "must be true or false")
    timeout = _given(options, "timeoutMs", 10000)
    if isinstance(timeout, float) and timeout.is_integer():
        timeout = int(timeout)
    if not isinstance(timeout, int) or isinstance(timeout, bool) or not 1000 <= timeout <= 30000:
        raise InvalidArgument("options.timeoutMs", "must be an integer from 1000 to 30000")
    return force, timeout


def _linkedin(value: Any, max_bytes: int) -> Mapping[str, str] | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise InvalidArgument("linkedin", "must be an object with an export")
    _no_unknown(value, {"export"}, "linkedin.")
    export = value.get("export")
    if not isinstance(export, Mapping):
        raise InvalidArgument("linkedin.export", "must map file names to file text")
    if len(export) > LINKEDIN_MAX_FILES:
        raise InvalidArgument("linkedin.export", f"must hold at most {LINKEDIN_MAX_FILES} files")
    total = 0
    for fname, text in export.items():
        if not isinstance(fname, str) or len(fname) > 100:
            raise InvalidArgument("linkedin.export", "file names must be short strings")
        _unicode(fname, "linkedin.export")
        field = f"linkedin.export.{_shown(fname)}"
        if not isinstance(text, str):
            raise InvalidArgument(field, "must be the file's text", "linkedin.export")
        if len(text) > max_bytes:  # before encoding: a 100 MB string is refused at once
            raise InvalidArgument("linkedin.export", f"must be at most {max_bytes:,} bytes in all")
        text = _unicode(text, field, "linkedin.export")
        total += len(fname.encode("utf-8")) + len(text.encode("utf-8"))
        if total > max_bytes:
            raise InvalidArgument("linkedin.export", f"must be at most {max_bytes:,} bytes in all")
    return dict(export)


def parse_track(raw: Any) -> TrackRequest:
    """Validate a funnel event. A ``userId`` in the request is ignored (the token decides)."""
    obj = _object(raw)
    _no_unknown(obj, {"event", "cvId", "source", "metadata", "userId"})
    event = obj.get("event")
    if not isinstance(event, str) or event not in EVENTS:
        raise InvalidArgument("event", f"must be one of {', '.join(EVENTS)}")
    source = obj.get("source")
    if source is not None and (not isinstance(source, str) or source not in SOURCES):
        raise InvalidArgument("source", f"must be one of {', '.join(SOURCES)}")
    metadata = _metadata(obj.get("metadata"))
    return TrackRequest(event, _cv_id(obj, required=False), source, metadata)


def _metadata(metadata: Any) -> Mapping[str, Any] | None:
    """At most 2 KB of plain JSON: no NaN or Infinity, no lone surrogates, not nested past what
    ``json.dumps`` can walk (``RecursionError``, not a ``ValueError``)."""
    if metadata is None:
        return None
    if not isinstance(metadata, Mapping):
        raise InvalidArgument("metadata", "must be an object")
    try:
        text = json.dumps(metadata, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
        size = len(text.encode("utf-8"))
    except (TypeError, ValueError, RecursionError):
        raise InvalidArgument("metadata", "must be plain JSON") from None
    if size > 2048:
        raise InvalidArgument("metadata", "must be at most 2 KB")
    return metadata


def parse_stats(raw: Any) -> StatsRequest:
    """Validate a stats request."""
    obj = _object(raw)
    _no_unknown(obj, {"userId"})
    user_id = _string(obj, "userId", 128)
    if user_id is not None and not _UID.fullmatch(user_id):
        raise InvalidArgument("userId", "must be a user id (letters, digits, _ or -)")
    return StatsRequest(user_id)


_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
"""The calendar form only (``fromisoformat`` also takes week dates such as ``2026-W01-1``)."""


def _date(obj: Mapping[str, Any], field: str) -> date:
    value = obj.get(field)
    if not isinstance(value, str):
        raise InvalidArgument(field, "is required as an ISO date (YYYY-MM-DD)")
    try:
        if not _ISO_DATE.fullmatch(value):
            raise ValueError(value)
        day = date.fromisoformat(value)
    except ValueError:
        raise InvalidArgument(field, "must be an ISO date (YYYY-MM-DD)") from None
    if not _FIRST_DAY <= day <= _LAST_DAY:
        raise InvalidArgument(field, f"must be between {_FIRST_DAY} and {_LAST_DAY}")
    return day


_FIRST_DAY, _LAST_DAY = date(1970, 1, 1), date(9998, 12, 31)
"""The dates a period may name: the readers work a few days past either end of it (the next
midnight, the bucket after, the 7 days before for conversions), which ``date`` must hold."""


def parse_analytics(raw: Any) -> AnalyticsQuery:
    """Validate an analytics request (span at most 92 days; hours only up to 7 days)."""
    obj = _object(raw)
    _no_unknown(obj, {"startDate", "endDate", "granularity", "sources"})
    start, end = _date(obj, "startDate"), _date(obj, "endDate")
    if end < start:
        raise InvalidArgument("endDate", "must not be before startDate")
    span = (end - start) + timedelta(days=1)
    if span > timedelta(days=92):
        raise InvalidArgument("endDate", "the period may span at most 92 days")
    granularity = _given(obj, "granularity", "day")
    if not isinstance(granularity, str) or granularity not in ("hour", "day"):
        raise InvalidArgument("granularity", "must be hour or day")
    if granularity == "hour" and span > timedelta(days=7):
        raise InvalidArgument("granularity", "hour is allowed for periods of at most 7 days")
    sources = _sources(obj)
    return AnalyticsQuery(start, end, granularity, sources)


_JSON_TOKENS = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}:]')
"""A JSON text's strings (whole, so that brackets inside them do not count) and structure."""


def too_deep_field(body: bytes) -> str | None:
    """The field of a callable body ``{"data": {...}}`` whose value is nested too deeply for
    the JSON parser (``data`` itself when the nesting is not under a field of it), or None
    when the body parses or fails for another reason. Contract 2.1: a deeply nested value is
    ``invalid-argument`` naming the field. Walks the text without recursion."""
    try:
        json.loads(body)
        return None
    except RecursionError:
        pass
    except ValueError:
        return None
    depth, deepest, key, last = 0, 0, None, None
    field = None
    for token in _JSON_TOKENS.finditer(body):
        mark = token.group()[:1]
        if mark in b"[{":
            depth += 1
            if depth > deepest:
                deepest, field = depth, key
        elif mark in b"]}":
            depth -= 1
        elif mark == b":":
            key = last if depth == 2 else key
        else:
            last = token.group()
    if field is None:
        return "data"
    try:
        return _shown(json.loads(field))
    except ValueError:
        return "(unnamed)"
