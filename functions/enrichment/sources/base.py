"""What a source is, and what it gets to work with."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from common.settings import EnrichmentSettings

from ..cache import CacheEntry
from ..fetch import Fetcher
from ..model import EnrichmentInput
from ..net import UrlGuard


@dataclass(frozen=True)
class SourceContext:
    """Shared by all sources of one enrichment."""

    fetcher: Fetcher
    settings: EnrichmentSettings
    guard: UrlGuard
    now: Callable[[], datetime]


@dataclass(frozen=True)
class Fetched:
    """A source's answer before caching."""

    payload: dict[str, Any]
    """Redacted data for ``enrichedData[source]``."""
    etag: str | None = None
    """Validators to store with it (see ``CacheEntry.etag``)."""
    revalidated: bool = False
    """True when upstream said "not modified" and the stale payload was reused."""


class Source(Protocol):
    """One kind of external data. Implementations raise ``SourceSkipped`` / ``SourceFailure``."""

    name: str
    """Contract name: ``github|linkedin|website|web``."""

    def normalise(self, inp: EnrichmentInput) -> str:
        """The normalised input this source's answer depends on (the cache key's input).
        Raises ``SourceSkipped`` when there is nothing to work on, ``SourceFailure`` when the
        input is unusable."""
        ...

    async def fetch(
        self, key: str, inp: EnrichmentInput, ctx: SourceContext, stale: CacheEntry | None
    ) -> Fetched:
        """Produce the data; ``stale`` is an expired cache entry (for conditional requests)."""
        ...

    def count(self, payload: dict[str, Any]) -> int:
        """``items`` of the report for this payload."""
        ...
