"""Runs the requested sources concurrently under one deadline, with the cache in front.

``Engine.enrich`` is synchronous (it owns an event loop per call), so it can be called from a
plain thread such as a Flask request; ``enrich_async`` is the same for async callers.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import random
import ssl
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from common.logs import error_ref
from common.settings import EnrichmentSettings
from common.vocab import ResultStatus, SourceStatus

from .cache import CacheEntry, CacheStore, cache_key
from .errors import ErrorCode, SourceFailure, SourceSkipped
from .fetch import Deadline, Fetcher
from .merge import merge
from .model import EnrichmentInput, EnrichmentResult, SourceError, SourceReport
from .net import UrlGuard
from .sources.base import Fetched, Source, SourceContext

log = logging.getLogger(__name__)

# Cache I/O runs here, not in the loop's default executor: asyncio.run() waits for that one at
# exit, so a hung store would hold the answer past its deadline. Shared by all enrichments.
_CACHE_POOL = concurrent.futures.ThreadPoolExecutor(
    max_workers=8, thread_name_prefix="enrichment-cache"
)
CACHE_WRITE_GRACE_S = 2.0
"""How long an enrichment waits, after its sources are done, for its cache writes."""

SERVICE_ERRORS = frozenset({ErrorCode.UPSTREAM.value, ErrorCode.TIMEOUT.value})

__all__ = [
    "Engine",
    "EnrichmentInput",
    "EnrichmentResult",
    "SourceError",
    "SourceReport",
    "default_sources",
    "utcnow",
]


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


def default_sources(settings: EnrichmentSettings) -> dict[str, Source]:
    """The four real sources."""
    from .sources.github import GitHubSource
    from .sources.linkedin import LinkedInSource
    from .sources.web import WebSearchSource
    from .sources.website import WebsiteSource

    return {
        "github": GitHubSource(),
        "linkedin": LinkedInSource(),
        "website": WebsiteSource(),
        "web": WebSearchSource.from_settings(settings),
    }


@dataclass
class _Outcome:
    report: SourceReport
    payload: dict[str, Any] | None
    write: asyncio.Future[None] | None = None


def _elapsed_ms(start: float) -> int:
    return int((time.monotonic() - start) * 1000)


def _skipped(name: str, code: str, message: str, ms: int) -> _Outcome:
    """A source that did not run (not configured, or nothing to look up in the input)."""
    return _Outcome(
        SourceReport(name, SourceStatus.SKIPPED, 0, ms, False, SourceError(code, message)), None
    )


async def _await_cache_writes(done: set[asyncio.Task[_Outcome]]) -> None:
    """Wait a bounded grace for the finished sources' cache writes."""
    writes = [
        o.write
        for t in done
        if not t.cancelled() and t.exception() is None
        if (o := t.result()).write is not None
    ]
    if writes:
        # Writes do not count against a source's duration, but are done before we answer
        # (a later request should find them); a slow store is abandoned after a grace.
        await asyncio.wait(writes, timeout=CACHE_WRITE_GRACE_S)


class Engine:
    """The enrichment engine. One instance per process; ``enrich`` is thread-safe."""

    def __init__(
        self,
        settings: EnrichmentSettings,
        cache: CacheStore,
        *,
        now: Callable[[], datetime] = utcnow,
        sources: Mapping[str, Source] | None = None,
        guard: UrlGuard | None = None,
        rng: random.Random | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.settings = settings
        self.cache = cache
        self.now = now
        self.sources: Mapping[str, Source] = (
            sources if sources is not None else default_sources(settings)
        )
        self.guard = guard or UrlGuard(settings.allow_hosts)
        self._rng = rng or random.Random()
        self._transport = transport
        # Loading the CA bundle costs ~20 ms; do it once per engine, not once per enrichment
        # (it was most of a cache hit's time).
        self._ssl = ssl.create_default_context()

    def enrich(self, inp: EnrichmentInput) -> EnrichmentResult:
        """Run the enrichment to completion (at most ``inp.timeout_ms`` plus a little)."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return asyncio.run(self.enrich_async(inp))
        # Called from inside a running loop: run ours on a helper thread rather than nest.
        with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
            return pool.submit(asyncio.run, self.enrich_async(inp)).result()

    async def enrich_async(self, inp: EnrichmentInput) -> EnrichmentResult:
        """The same as ``enrich`` for callers that already run an event loop."""
        start = time.monotonic()
        budget = max(0.001, inp.timeout_ms / 1000)
        deadline = Deadline(budget)
        limits = httpx.Limits(max_connections=32, max_keepalive_connections=16)
        async with httpx.AsyncClient(
            limits=limits, transport=self._transport, trust_env=False, verify=self._ssl
        ) as client:
            ctx = SourceContext(
                self._fetcher(client, deadline), self.settings, self.guard, self.now
            )
            names = list(dict.fromkeys(inp.sources))
            cached = await self._prefetch(names, inp)
            tasks = {
                name: asyncio.create_task(
                    self._run_source(name, inp, ctx, cached), name=f"source-{name}"
                )
                for name in names
            }
            # The sources share one deadline set before the client and the cache read; the wait
            # uses what is left of it, not a fresh budget.
            done, pending = await asyncio.wait(tasks.values(), timeout=deadline.remaining())
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending)
        await _await_cache_writes(done)
        outcomes = [
            self._outcome_of(name, task, task in done, budget, start)
            for name, task in tasks.items()
        ]
        return self._result(outcomes, start)

    def _fetcher(self, client: httpx.AsyncClient, deadline: Deadline) -> Fetcher:
        """The enrichment's one fetcher: the shared client and deadline, the retry settings."""
        return Fetcher(
            client,
            deadline,
            attempts=self.settings.retry_attempts,
            base_delay_s=self.settings.retry_base_ms / 1000,
            user_agent=self.settings.user_agent,
            rng=self._rng,
        )

    def _outcome_of(
        self, name: str, task: asyncio.Task[_Outcome], done: bool, budget: float, start: float
    ) -> _Outcome:
        """A source task's outcome: its own, a crash reported as an upstream failure (one
        source's bug must not fail the others), or a timeout when the budget ran out first."""
        if done and not task.cancelled() and task.exception() is None:
            return task.result()
        if done and task.exception() is not None:
            exc = task.exception()
            where = error_ref(exc) if exc is not None else {}
            log.error("source crashed", extra={"json_fields": {"source": name, **where}})
            return self._failed(name, ErrorCode.UPSTREAM, "internal error", start)
        return _Outcome(
            SourceReport(
                name,
                SourceStatus.TIMEOUT,
                0,
                int(budget * 1000),
                False,
                SourceError(ErrorCode.TIMEOUT.value, "the source did not answer in time"),
            ),
            None,
        )

    @staticmethod
    def _failed(name: str, code: ErrorCode, message: str, start: float) -> _Outcome:
        status = SourceStatus.TIMEOUT if code is ErrorCode.TIMEOUT else SourceStatus.FAILED
        return _Outcome(
            SourceReport(
                name, status, 0, _elapsed_ms(start), False, SourceError(code.value, message)
            ),
            None,
        )

    async def _prefetch(
        self, names: list[str], inp: EnrichmentInput
    ) -> dict[str, CacheEntry | None]:
        """Every requested source's cache entry in one store round trip (keyed by cache key).

        Sources whose input does not normalise are left out; they are skipped or fail later."""
        if inp.force_refresh:
            return {}
        keys = []
        for name in names:
            source = self.sources.get(name)
            if source is None:
                continue
            try:
                keys.append(cache_key(name, source.normalise(inp)))
            except (SourceSkipped, SourceFailure):
                continue
        if not keys:
            return {}
        try:
            return await asyncio.get_running_loop().run_in_executor(
                _CACHE_POOL, self.cache.get_many, keys
            )
        except Exception as exc:  # noqa: BLE001 - a cache that is down costs freshness only
            fields = {"sources": ",".join(names), **error_ref(exc)}
            log.warning("cache read failed", extra={"json_fields": fields})
            return dict.fromkeys(keys)

    async def _run_source(
        self,
        name: str,
        inp: EnrichmentInput,
        ctx: SourceContext,
        cached: dict[str, CacheEntry | None] | None = None,
    ) -> _Outcome:
        start = time.monotonic()
        source = self.sources.get(name)
        if source is None:
            return _skipped(name, ErrorCode.NOT_CONFIGURED.value, "this source is not available", 0)
        try:
            normalised = source.normalise(inp)
        except SourceSkipped as skip:
            return _skipped(name, skip.code.value, skip.message, _elapsed_ms(start))
        except SourceFailure as fail:
            return self._failed(name, fail.code, fail.message, start)
        key = cache_key(name, normalised)
        stale: CacheEntry | None = None
        if not inp.force_refresh:
            entry = (
                cached[key] if cached is not None and key in cached else await self._cache_get(key)
            )
            if entry is not None and entry.is_fresh(self.now()):
                report = SourceReport(
                    name,
                    SourceStatus.SUCCESS,
                    source.count(entry.payload),
                    _elapsed_ms(start),
                    True,
                )
                return _Outcome(report, entry.payload)
            stale = entry
        try:
            fetched = await source.fetch(normalised, inp, ctx, stale)
        except SourceFailure as fail:
            return self._failed(name, fail.code, fail.message, start)
        except SourceSkipped as skip:
            return _skipped(name, skip.code.value, skip.message, _elapsed_ms(start))
        return self._fetched(name, source, key, fetched, start)

    def _fetched(
        self, name: str, source: Source, key: str, fetched: Fetched, start: float
    ) -> _Outcome:
        """A successful fetch: its report, and the cache write that starts now (awaited
        before the answer, not counted in the source's duration)."""
        now = self.now()
        write = self._cache_put(
            key,
            CacheEntry(
                payload=fetched.payload,
                fetched_at=now,
                expire_at=now + timedelta(seconds=self.settings.ttl_for(name)),
                etag=fetched.etag,
            ),
        )
        return _Outcome(
            SourceReport(
                name,
                SourceStatus.SUCCESS,
                source.count(fetched.payload),
                _elapsed_ms(start),
                fetched.revalidated,
            ),
            fetched.payload,
            write,
        )

    async def _cache_get(self, key: str) -> CacheEntry | None:
        # A cache that is down costs freshness, never the enrichment.
        try:
            return await asyncio.get_running_loop().run_in_executor(
                _CACHE_POOL, self.cache.get, key
            )
        except Exception as exc:  # noqa: BLE001 - a cache that is down costs freshness only
            fields = {"source": key.split("_", 1)[0], **error_ref(exc)}
            log.warning("cache read failed", extra={"json_fields": fields})
            return None

    def _cache_put(self, key: str, entry: CacheEntry) -> asyncio.Future[None] | None:
        if self.settings.ttl_for(key.split("_", 1)[0]) <= 0:
            return None

        def put() -> None:
            try:
                self.cache.put(key, entry)
            except Exception as exc:  # noqa: BLE001 - a failed cache write loses only the cache
                fields = {"source": key.split("_", 1)[0], **error_ref(exc)}
                log.warning("cache write failed", extra={"json_fields": fields})

        return asyncio.get_running_loop().run_in_executor(_CACHE_POOL, put)

    def _result(self, outcomes: list[_Outcome], start: float) -> EnrichmentResult:
        data: dict[str, Any] = {}
        for o in outcomes:
            if o.payload is not None:
                data[o.report.source] = o.payload
        tried = [o.report for o in outcomes if o.report.status is not SourceStatus.SKIPPED]
        ok = [r for r in tried if r.status is SourceStatus.SUCCESS]
        if tried and len(ok) == len(tried):
            status = ResultStatus.SUCCESS
        elif ok:
            status = ResultStatus.PARTIAL
        else:
            status = ResultStatus.FAILED
        service_failure = bool(tried) and all(
            r.status is not SourceStatus.SUCCESS
            and r.error is not None
            and r.error.code in SERVICE_ERRORS
            for r in tried
        )
        return EnrichmentResult(
            data=merge(data),
            sources=tuple(o.report for o in outcomes),
            status=status,
            service_failure=service_failure,
            duration_ms=_elapsed_ms(start),
        )
