"""The product's vocabulary as ``StrEnum``s (contract sections 2 and 3), shared by every layer.

Values are the exact strings of the contract and of the stored documents.
"""

from __future__ import annotations

from enum import StrEnum


class Fn(StrEnum):
    """The deployed functions, by their exact names (``firebase deploy --only functions:NAME``)."""

    ENRICH = "enrichCVWithExternalData"
    TRACK = "trackExternalDataUsage"
    STATS = "getUserExternalDataUsageStats"
    ANALYTICS = "getExternalDataAnalytics"
    EXPORT = "exportMyExternalData"
    DELETE = "deleteMyExternalData"


class Source(StrEnum):
    """The four external sources, in their default order."""

    GITHUB = "github"
    LINKEDIN = "linkedin"
    WEBSITE = "website"
    WEB = "web"


SOURCES: tuple[str, ...] = tuple(s.value for s in Source)
"""The source names in default order (requests, stats and analytics list them this way)."""


class SourceStatus(StrEnum):
    """One source's part in an enrichment (contract 2.1 ``sources[].status``)."""

    SUCCESS = "success"
    FAILED = "failed"
    SKIPPED = "skipped"
    TIMEOUT = "timeout"


class SourceErrorCode(StrEnum):
    """Why a source did not succeed (contract 2.1 ``sources[].error.code``). User-caused:
    ``not_found``, ``invalid_input``, ``refused``; upstream: ``upstream``, ``timeout``;
    operational: ``quota``, ``not_configured``, ``disabled``."""

    NOT_FOUND = "not_found"
    INVALID_INPUT = "invalid_input"
    REFUSED = "refused"
    QUOTA = "quota"
    UPSTREAM = "upstream"
    TIMEOUT = "timeout"
    NOT_CONFIGURED = "not_configured"
    DISABLED = "disabled"


UPSTREAM_CODES = frozenset({SourceErrorCode.UPSTREAM, SourceErrorCode.TIMEOUT})
"""Error codes that make a source try an upstream failure (contract 2.4)."""


def failed_upstream(status: SourceStatus, code: str | None) -> bool:
    """Whether a source's try failed upstream: not a success, with an ``UPSTREAM_CODES`` code."""
    return status is not SourceStatus.SUCCESS and code in UPSTREAM_CODES


class ResultStatus(StrEnum):
    """An enrichment's overall status (contract 2.1 ``status``)."""

    SUCCESS = "success"
    PARTIAL = "partial"
    FAILED = "failed"


class Mode(StrEnum):
    """What the caller asked for."""

    FULL = "full"
    PREVIEW = "preview"


class Tier(StrEnum):
    """The two plans."""

    FREE = "free"
    PREMIUM = "premium"


class Access(StrEnum):
    """What the caller gets."""

    FULL = "full"
    PREVIEW = "preview"
    DENIED = "denied"


class Outcome(StrEnum):
    """How a call ended, as recorded."""

    SUCCESS = "success"
    PARTIAL = "partial"
    FAILED = "failed"
    """Enrichment ran and no source succeeded."""
    DENIED = "denied"
    """permission-denied (premium required, or not an admin)."""
    RATE_LIMITED = "rate_limited"
    UNAUTHENTICATED = "unauthenticated"
    INVALID = "invalid"
    NOT_FOUND = "not_found"
    UNAVAILABLE = "unavailable"
    INTERNAL = "internal"


ENRICHED = frozenset({Outcome.SUCCESS, Outcome.PARTIAL, Outcome.FAILED})
"""Outcomes of calls in which the engine ran."""
DENIALS = frozenset(
    {
        Outcome.DENIED,
        Outcome.RATE_LIMITED,
        Outcome.UNAUTHENTICATED,
        Outcome.INVALID,
        Outcome.NOT_FOUND,
    }
)
"""Outcomes that refuse the call for a reason of the caller's (never a failure of the service)."""
