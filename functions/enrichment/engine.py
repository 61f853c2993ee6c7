"""Runs the requested sources concurrently under one deadline, with the cache in front.

``Engine.enrich`` is synchronous (it owns an event loop per call, started only when a source
must be fetched), so it can be called from a plain thread such as a Flask request.
``Engine.read_ahead`` sends an enrichment's cache read early (the store starts it and the
calling thread collects it later, ``stores.inflight``), so that the caller's own round trip
(the rate limit's increment) and the cache read are in flight together.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import random
import ssl
import time
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import httpx

from common.logs import error_ref
from common.memo import IdentityMemo
from common.settings import EnrichmentSettings
from common.ttlcache import TTLCache
from common.vocab import ResultStatus, SourceStatus

from .cache import CacheEntry, CacheStore, cache_key
from .errors import ErrorCode, SourceFailure, SourcesCrashed, SourceSkipped
from .fetch import Deadline, Fetcher
from .merge import merge
from .model import EnrichmentInput, EnrichmentResult, SourceError, SourceReport
from .net import UrlGuard
from .sources.base import Fetched, Source, SourceContext

log = logging.getLogger(__name__)
T = TypeVar("T")

# Cache I/O runs here, not in the loop's default executor: asyncio.run() waits for that one at
# exit, so a hung store would hold the answer past its deadline. Shared by all enrichments.
_CACHE_POOL = concurrent.futures.ThreadPoolExecutor(
    max_workers=8, thread_name_prefix="enrichment-cache"
)


class _NeverJoined(concurrent.futures.ThreadPoolExecutor):
    """A process-wide pool that an enrichment's loop takes as its default executor, and that
    the loop's shutdown cannot shut down or wait for (``shutdown`` does nothing)."""

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Nothing: the pool outlives every loop that uses it."""


LOOP_THREADS = 16
"""Threads of the loops' shared default executor (the DNS lookups httpx makes for the GitHub
and search APIs), in the whole process."""
_LOOP_POOL = _NeverJoined(max_workers=LOOP_THREADS, thread_name_prefix="enrichment-loop")
"""``asyncio.run`` waits for its loop's default executor at exit: a DNS lookup stuck there held
the answer past its deadline for as long as the resolver took."""


def _run(main: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run(main)``, on a loop whose default executor is ``_LOOP_POOL``, so that the
    loop's exit does not wait for a blocking call its deadline abandoned."""
    with asyncio.Runner() as runner:
        runner.get_loop().set_default_executor(_LOOP_POOL)
        return runner.run(main)


CACHE_WRITE_GRACE_S = 2.0
"""How long an enrichment waits, after its sources are done, for its cache writes."""
CACHE_READ_GRACE_S = 2.0
"""The deadline of a cache read sent ahead: after it the sources are fetched without it (the
rest of the enrichment's deadline is left to them)."""

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


@dataclass(frozen=True)
class _Todo:
    """A requested source that may need fetching: its normalised input and cache key."""

    name: str
    source: Source
    normalised: str
    key: str


_Plan = tuple[str, "_Todo | _Outcome"]
"""One requested source before it runs: what to look up, or the outcome it already has (not
configured, nothing to look up, an invalid input)."""


@dataclass(frozen=True)
class ReadAhead:
    """An enrichment's cache read, started before the enrichment itself (``Engine.read_ahead``).

    Its clock and deadline start when the read does: waiting for the caller's own round trip
    does not earn the sources a fresh budget."""

    inp: EnrichmentInput
    plans: tuple[_Plan, ...]
    entries: Callable[[], dict[str, CacheEntry | None]] | None
    """Waits for and returns the entries by cache key (None: nothing to read)."""
    start: float
    deadline: Deadline


def _budget(inp: EnrichmentInput) -> float:
    return max(0.001, inp.timeout_ms / 1000)


def _version(step: _Todo, entry: CacheEntry) -> str:
    """A cache entry's version, as ``Engine._usable`` remembers the ones it checked."""
    return f"{step.key}|{entry.fetched_at.isoformat()}|{entry.etag}"


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
        self._usable_seen: TTLCache[bool] = TTLCache(timedelta(minutes=10), max_items=10_000)
        self._merged: IdentityMemo[dict[str, Any]] = IdentityMemo(MERGED_CHARS)
        """Merged data by the cache entries' payloads it came from (``from_cache``)."""

    def read_ahead(self, inp: EnrichmentInput) -> ReadAhead:
        """Plan ``inp``'s sources and send the read of their cache entries; pass the result to
        ``enrich`` (for ``inp`` or for ``inp`` with fewer sources). An unused read ahead costs
        one read and nothing else."""
        start = time.monotonic()
        deadline = Deadline(_budget(inp))
        plans = tuple(self._plan(inp))
        keys = [step.key for _, step in plans if isinstance(step, _Todo)]
        entries = None
        if not inp.force_refresh and keys:
            grace = min(CACHE_READ_GRACE_S, deadline.remaining())
            try:
                entries = self.cache.start_get_many(keys, grace)
            except Exception as exc:  # noqa: BLE001 - a cache that is down costs freshness only
                entries = self._cache_failed(plans, keys, exc)
        return ReadAhead(inp, plans, entries, start, deadline)

    @staticmethod
    def _cache_failed(
        plans: tuple[_Plan, ...] | list[_Plan], keys: list[str], exc: Exception
    ) -> Callable[[], dict[str, CacheEntry | None]]:
        """A failed cache read, logged; every entry a miss."""
        fields = {"sources": ",".join(name for name, _ in plans), **error_ref(exc)}
        log.warning("cache read failed", extra={"json_fields": fields})
        return lambda: dict.fromkeys(keys)

    def enrich(self, inp: EnrichmentInput, ahead: ReadAhead | None = None) -> EnrichmentResult:
        """Run the enrichment to completion (at most ``inp.timeout_ms`` plus a little).

        The cache is read on the calling thread, or was started by ``read_ahead``; an event
        loop is started only when a source has to be fetched (a call answered from the cache,
        or with nothing to fetch, needs none)."""
        taken = self._take(ahead, inp) if ahead is not None else None
        if taken is None:
            start = time.monotonic()
            deadline = Deadline(_budget(inp))
            plans = self._plan(inp)
            cached = self._read_cache(plans, inp)
        else:
            plans, cached, start, deadline = taken
        cached = self._usable(plans, cached)
        settled = self._settle(plans, inp, cached, start)
        if len(settled) == len(plans):
            return self._result([settled[name] for name, _ in plans], start)
        run = self._fetch_rest(plans, inp, cached, settled, deadline, start)
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return _run(run)
        # Called from inside a running loop: run ours on a helper thread rather than nest.
        with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
            return pool.submit(_run, run).result()

    def from_cache(self, ahead: ReadAhead | None) -> EnrichmentResult | None:
        """``enrich``'s result for the read ahead's input when it settles every source without
        the network
        (fresh cache entries this instance has already found usable, and outcomes known before
        any look-up); None otherwise, and on any failure (``enrich`` then runs and reports it).
        It fetches nothing and writes nothing, so it may run before the call is admitted, while
        the rate limit's increment is in flight."""
        try:
            taken = self._take(ahead, ahead.inp) if ahead is not None else None
            if ahead is None or taken is None:
                return None
            plans, cached, start, _deadline = taken
            now = self.now()
            for _name, step in plans:
                entry = cached.get(step.key) if isinstance(step, _Todo) else None
                if isinstance(step, _Todo) and (entry is None or not self._seen(step, entry, now)):
                    return None
            settled = self._settle(plans, ahead.inp, cached, start)
            if len(settled) != len(plans):
                return None
            outcomes = [settled[name] for name, _ in plans]
            return self._result(outcomes, start, _stored_chars(plans, cached))
        except Exception:  # noqa: BLE001 - enrich, run next, answers for any failure
            return None

    def _take(
        self, ahead: ReadAhead, inp: EnrichmentInput
    ) -> tuple[list[_Plan], dict[str, CacheEntry | None], float, Deadline] | None:
        """The plans and entries of a read ahead, if it was for ``inp`` (or for ``inp`` with
        more sources); None when it was not (the caller's input changed: read again)."""
        by_name = dict(ahead.plans)
        names = list(dict.fromkeys(inp.sources))
        if replace(ahead.inp, sources=inp.sources) != inp or not set(names) <= by_name.keys():
            return None
        plans = [(name, by_name[name]) for name in names]
        if ahead.entries is None:
            return plans, {}, ahead.start, ahead.deadline
        try:
            cached = ahead.entries()
        except Exception as exc:  # noqa: BLE001 - a cache that is down costs freshness only
            keys = [step.key for _, step in ahead.plans if isinstance(step, _Todo)]
            cached = self._cache_failed(ahead.plans, keys, exc)()
        return plans, cached, ahead.start, ahead.deadline

    def _plan(self, inp: EnrichmentInput) -> list[_Plan]:
        """Each requested source once: what to look up, or the outcome it already has."""
        plans: list[_Plan] = []
        for name in dict.fromkeys(inp.sources):
            start = time.monotonic()
            source = self.sources.get(name)
            step: _Todo | _Outcome
            if source is None:
                step = _skipped(
                    name, ErrorCode.NOT_CONFIGURED.value, "this source is not available", 0
                )
            else:
                try:
                    normalised = source.normalise(inp)
                    step = _Todo(name, source, normalised, cache_key(name, normalised))
                except SourceSkipped as skip:
                    step = _skipped(name, skip.code.value, skip.message, _elapsed_ms(start))
                except SourceFailure as fail:
                    step = self._failed(name, fail.code, fail.message, start)
            plans.append((name, step))
        return plans

    def _read_cache(self, plans: list[_Plan], inp: EnrichmentInput) -> dict[str, CacheEntry | None]:
        """Every source's cache entry in one store round trip (keyed by cache key); none when
        the caller forces a refresh. A cache that is down costs freshness, never the answer."""
        keys = [step.key for _, step in plans if isinstance(step, _Todo)]
        if inp.force_refresh or not keys:
            return {}
        try:
            return self.cache.get_many(keys)
        except Exception as exc:  # noqa: BLE001 - a cache that is down costs freshness only
            return self._cache_failed(plans, keys, exc)()

    def _usable(
        self, plans: list[_Plan], cached: dict[str, CacheEntry | None]
    ) -> dict[str, CacheEntry | None]:
        """The entries their source can use; any other is a miss, fresh or stale (a stale one
        revalidated by a 304 would be served as it is). An entry is usable when its source can
        count it and the merge can read it: a document of another shape (an older version's,
        or a hand-edited one) was a crash of every call until its TTL ran out."""
        now = self.now()
        out = dict(cached)
        for name, step in plans:
            entry = cached.get(step.key) if isinstance(step, _Todo) else None
            if entry is None or not isinstance(step, _Todo):
                continue
            # Checked once per entry version on this instance: the check runs the merge, which
            # a warm call (a cache hit) would otherwise pay twice.
            if self._seen(step, entry, now):
                continue
            try:
                step.source.count(entry.payload)
                merge({name: entry.payload})
                entry.is_fresh(now)
                self._usable_seen.put(_version(step, entry), True, now)
            except Exception as exc:  # noqa: BLE001 - an unusable entry is a miss
                fields = {"source": name, **error_ref(exc)}
                log.warning("unusable cache entry ignored", extra={"json_fields": fields})
                out[step.key] = None
        return out

    def _seen(self, step: _Todo, entry: CacheEntry, now: datetime) -> bool:
        """Whether this version of the entry was found usable on this instance."""
        return bool(self._usable_seen.get(_version(step, entry), now))

    def _settle(
        self,
        plans: list[_Plan],
        inp: EnrichmentInput,
        cached: dict[str, CacheEntry | None],
        start: float,
    ) -> dict[str, _Outcome]:
        """The outcomes known without the network: the early ones and fresh cache entries (whose
        duration is the cache look-up's: from the enrichment's start, or its read ahead's, to
        the entry in hand)."""
        settled: dict[str, _Outcome] = {}
        now = self.now()
        read_ms = _elapsed_ms(start)
        for name, step in plans:
            if isinstance(step, _Outcome):
                settled[name] = step
                continue
            entry = None if inp.force_refresh else cached.get(step.key)
            if entry is not None and entry.is_fresh(now):
                count = step.source.count(entry.payload)
                report = SourceReport(name, SourceStatus.SUCCESS, count, read_ms, True)
                settled[name] = _Outcome(report, entry.payload)
        return settled

    async def _fetch_rest(
        self,
        plans: list[_Plan],
        inp: EnrichmentInput,
        cached: dict[str, CacheEntry | None],
        settled: dict[str, _Outcome],
        deadline: Deadline,
        start: float,
    ) -> EnrichmentResult:
        """Fetch the sources the cache could not answer, concurrently, under what is left of
        the deadline (set before the cache read: the wait does not get a fresh budget)."""
        limits = httpx.Limits(max_connections=32, max_keepalive_connections=16)
        async with httpx.AsyncClient(
            limits=limits, transport=self._transport, trust_env=False, verify=self._ssl
        ) as client:
            ctx = SourceContext(
                self._fetcher(client, deadline), self.settings, self.guard, self.now
            )
            tasks = {
                step.name: asyncio.create_task(
                    self._run_source(step, inp, ctx, cached.get(step.key)),
                    name=f"source-{step.name}",
                )
                for _, step in plans
                if isinstance(step, _Todo) and step.name not in settled
            }
            done, pending = await asyncio.wait(tasks.values(), timeout=deadline.remaining())
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending)
        await _await_cache_writes(done)
        budget = _budget(inp)
        outcomes = [
            settled[name]
            if name in settled
            else self._outcome_of(name, tasks[name], tasks[name] in done, budget, start)
            for name, _ in plans
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
        """A source task's outcome: its own, a crash (shown as ``upstream``, marked as ours: one
        source's bug must not fail the others), or a timeout when the budget ran out first."""
        if done and not task.cancelled() and task.exception() is None:
            return task.result()
        if done and task.exception() is not None:
            exc = task.exception()
            where = error_ref(exc) if exc is not None else {}
            log.error("source crashed", extra={"json_fields": {"source": name, **where}})
            return self._failed(name, ErrorCode.UPSTREAM, "internal error", start, crashed=True)
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
    def _failed(
        name: str, code: ErrorCode, message: str, start: float, crashed: bool = False
    ) -> _Outcome:
        status = SourceStatus.TIMEOUT if code is ErrorCode.TIMEOUT else SourceStatus.FAILED
        error = SourceError(code.value, message, crashed)
        return _Outcome(
            SourceReport(name, status, 0, _elapsed_ms(start), False, error),
            None,
        )

    async def _run_source(
        self, todo: _Todo, inp: EnrichmentInput, ctx: SourceContext, stale: CacheEntry | None
    ) -> _Outcome:
        """Fetch one source (``stale``: its expired cache entry, whose validators may
        revalidate it; never used when the caller forces a refresh)."""
        start = time.monotonic()
        try:
            fetched = await todo.source.fetch(
                todo.normalised, inp, ctx, None if inp.force_refresh else stale
            )
        except SourceFailure as fail:
            return self._failed(todo.name, fail.code, fail.message, start)
        except SourceSkipped as skip:
            return _skipped(todo.name, skip.code.value, skip.message, _elapsed_ms(start))
        return self._fetched(todo.name, todo.source, todo.key, fetched, start)

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
                revalidated=fetched.revalidated,
            ),
            fetched.payload,
            write,
        )

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

    def _result(
        self, outcomes: list[_Outcome], start: float, chars: int | None = None
    ) -> EnrichmentResult:
        """The enrichment of these outcomes; ``chars``: what their payloads, all from cache
        entries, weigh (``_stored_chars``), when the merged data may be kept for the next call
        given the same payloads (a warm call on entries the instance holds)."""
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
            if any(r.error is not None and r.error.crashed for r in tried):
                raise SourcesCrashed("no source succeeded and a source crashed")
        service_failure = bool(tried) and all(r.failed_upstream for r in tried)
        return EnrichmentResult(
            data=merge(data) if chars is None else self._merge_kept(data, chars),
            sources=tuple(o.report for o in outcomes),
            status=status,
            service_failure=service_failure,
            duration_ms=_elapsed_ms(start),
        )

    def _merge_kept(self, data: dict[str, Any], chars: int) -> dict[str, Any]:
        """``merge(data)``, kept by the payloads' identities (``IdentityMemo``): the next call
        given the same held entries gets the same merged data (read-only) without merging."""
        payloads, names = tuple(data.values()), tuple(data)
        merged = self._merged.get(payloads, names)
        if merged is None:
            merged = merge(data)
            self._merged.put(payloads, names, merged, chars)
        return merged


MERGED_CHARS = 1_000_000
"""Payload characters (as stored JSON) whose merged data one engine keeps at most."""


def _stored_chars(plans: list[_Plan], cached: Mapping[str, CacheEntry | None]) -> int | None:
    """What the payloads the plans take from cache entries weigh, as stored; None when one is
    not from an entry (or its weight is not known)."""
    total = 0
    for _, step in plans:
        if isinstance(step, _Todo):
            entry = cached.get(step.key)
            if entry is None or entry.stored_chars is None:
                return None
            total += entry.stored_chars
        elif step.payload is not None:
            return None
    return total
