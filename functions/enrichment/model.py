"""Values that go in and out of the engine (contract 2.1 ``sources[]`` and ``enrichedData``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from common.vocab import ResultStatus, SourceStatus, failed_upstream


@dataclass(frozen=True)
class EnrichmentInput:
    """One enrichment request, already validated by the caller."""

    sources: tuple[str, ...]
    """Subset of ``("github", "linkedin", "website", "web")``, deduplicated, in request order."""
    github: str | None = None
    """GitHub username."""
    website: str | None = None
    """http(s) URL of the person's site."""
    linkedin_export: Mapping[str, str] | None = None
    """LinkedIn "copy of your data" files by name, e.g. ``{"Profile.csv": text}``."""
    name: str | None = None
    """The person's name, the web search query."""
    force_refresh: bool = False
    """Skip cache reads (answers are still written to the cache)."""
    timeout_ms: int = 10000
    """Deadline of the whole enrichment; a source still running then reports ``timeout``."""


@dataclass(frozen=True)
class SourceError:
    """Why a source did not succeed."""

    code: str
    """``not_found|invalid_input|refused|quota|upstream|timeout|not_configured``."""
    message: str
    """Short and human; safe to show the user."""
    crashed: bool = False
    """Our own code raised (a bug, not the third party): shown as ``upstream``, the closest code
    the contract has, but recorded as a failure of the service, never as an upstream failure
    (which would hide it from ``errorRate`` and open the source's breaker for everyone)."""


@dataclass(frozen=True)
class SourceReport:
    """The outcome of one source (an element of ``sources[]``)."""

    source: str
    """``github|linkedin|website|web``."""
    status: SourceStatus
    """``success|failed|skipped|timeout``."""
    items: int
    """Entries the source produced (repositories, CSV rows, extracted links, results)."""
    duration_ms: int
    """Wall time spent on this source, cache look-up included."""
    cached: bool
    """True when the answer's data is the cached copy (fresh, or revalidated by a 304)."""
    error: SourceError | None = None
    """Set unless ``status == "success"``."""
    revalidated: bool = False
    """The cached copy was revalidated: the source was asked (conditional requests answered
    304), so for the records this was a try of the source, not a cache hit. Not in the
    answer (contract 2.1's shape)."""

    @property
    def failed_upstream(self) -> bool:
        """Not a success, with code ``upstream`` or ``timeout`` (contract 2.4), not a crash."""
        if self.error is not None and self.error.crashed:
            return False
        return failed_upstream(self.status, self.error.code if self.error else None)

    def to_dict(self) -> dict[str, Any]:
        """The contract's shape: ``{source, status, items, durationMs, cached, error?}``."""
        out: dict[str, Any] = {
            "source": self.source,
            "status": self.status.value,
            "items": self.items,
            "durationMs": self.duration_ms,
            "cached": self.cached,
        }
        if self.error is not None:
            out["error"] = {"code": self.error.code, "message": self.error.message}
        return out


@dataclass(frozen=True)
class EnrichmentResult:
    """What ``Engine.enrich`` returns."""

    data: dict[str, Any]
    """``enrichedData``: per-source sections of the successful sources, plus merged ``skills``
    and ``projects``. Redacted (no e-mail addresses or phone numbers in free text)."""
    sources: tuple[SourceReport, ...]
    """One report per requested source, in request order."""
    status: ResultStatus
    """``success`` (every tried source succeeded), ``partial``, or ``failed`` (none did, or none
    was tried). Skipped sources are not tried."""
    service_failure: bool
    """True when every tried source failed with ``upstream`` or ``timeout`` (an error of the
    service in contract 2.4, as opposed to the user's input)."""
    duration_ms: int
    """Wall time of the whole enrichment."""
