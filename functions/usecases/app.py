"""The long-lived parts of one function instance, shared by the use cases."""

from __future__ import annotations

import random
import threading
from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import Any, Protocol

from common.clock import Clock, utcnow
from common.settings import Settings
from common.ttlcache import TTLCache
from enrichment.model import EnrichmentInput, EnrichmentResult
from gating.config_source import ConfigSource
from gating.ratelimit import SlidingWindowLimiter
from recording.recorder import Recorder
from stores.base import DocumentStore
from usecases.shaping import SHAPED_CHARS, Kept


class Engine(Protocol):
    """What the use cases need of the enrichment engine."""

    def read_ahead(self, inp: EnrichmentInput) -> Any:
        """Start what ``enrich`` will read (its cache entries), to overlap other round trips;
        the value is passed back to ``enrich``, or dropped."""
        ...

    def enrich(self, inp: EnrichmentInput, ahead: Any = None) -> EnrichmentResult:
        """Run the sources under the input's deadline (``ahead``: from ``read_ahead``)."""
        ...

    def from_cache(self, ahead: Any) -> EnrichmentResult | None:
        """``enrich``'s result for ``read_ahead``'s input, if known without fetching or writing
        anything (every source answered by the cache); None otherwise. Never raises."""
        ...


class App:
    """Settings, store, engine, clock, limiters, caches and the config source of an instance."""

    def __init__(
        self,
        settings: Settings,
        store: DocumentStore,
        engine: Engine | None = None,
        *,
        engine_factory: Callable[[], Engine] | None = None,
        now: Clock = utcnow,
        rng: Callable[[int], int] | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self._engine = engine
        self._engine_factory = engine_factory
        self._engine_lock = threading.Lock()
        self.now = now
        self.recorder = Recorder(settings, rng=rng or (lambda n: random.randrange(n)))
        self.limiter = SlidingWindowLimiter(store, "enrich", timedelta(hours=1))
        self.track_limiter = SlidingWindowLimiter(store, "track", timedelta(minutes=1))
        self.config = ConfigSource(store, timedelta(seconds=settings.config_ttl_seconds), now)
        ent_ttl = timedelta(seconds=settings.entitlement_ttl_seconds)
        self.users: TTLCache[Mapping[str, Any] | None] = TTLCache(ent_ttl)
        """Positive entitlements (user docs) by uid."""
        self.owners: TTLCache[str] = TTLCache(ent_ttl)
        """CV owners by CV id."""
        self.closed_windows: TTLCache[int] = TTLCache(timedelta(hours=2))
        """Final counts of closed rate windows by path (they can no longer change)."""
        self.cohort_seats: TTLCache[bool] = TTLCache(timedelta(hours=1))
        """Capped-cohort seats by phase and uid (fixed for the phase once drawn)."""
        self.shaped: Kept = Kept(SHAPED_CHARS)
        """A cache hit's data shaped for answers, by the data object and access (``shaping``)."""

    @property
    def engine(self) -> Engine:
        """The enrichment engine, built on first use, once (a cold instance's first calls
        arrive together; one engine keeps one cache memo and one TLS context)."""
        if self._engine is not None:
            return self._engine
        with self._engine_lock:
            if self._engine is None:
                if self._engine_factory is None:
                    raise RuntimeError("no enrichment engine configured")
                self._engine = self._engine_factory()
            return self._engine
