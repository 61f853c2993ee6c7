#!/usr/bin/env python3
"""Benchmarks (make bench): the hot path's cost, the limiter under contention, the burst by one
free user, and the enrichment engine's parallelism and cache. Runs under with-emulators.sh and
writes docs/benchmarks/results.md (and .json) with the command that produced them.

Speed is measured on the core beside the Firestore emulator (the functions emulator spaces
simultaneous calls ~100 ms apart, see TOOLCHAIN.md); correctness of the burst goes through the
real callable protocol. These machines are noisy: compare ratios measured in this one run.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import functools
import gc
import itertools
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:  # not at run time: ``--before`` runs this script over older engines
    from enrichment.engine import ReadAhead

ROOT = Path(__file__).resolve().parents[1]
# BENCH_FUNCTIONS: another version's functions/ (``--before REF`` runs the hot path on it).
sys.path[:0] = [str(ROOT), os.environ.get("BENCH_FUNCTIONS", str(ROOT / "functions"))]

transport: Any
try:  # first: gRPC's transport, as main.py chooses it (an older tree, run by --before, has none)
    from stores import transport
except ImportError:
    transport = None

# isort: split

import httpx  # noqa: E402
from google.cloud import firestore  # noqa: E402

from common import logs  # noqa: E402
from common.settings import EnrichmentSettings, load_settings  # noqa: E402
from enrichment.cache import MemoryCacheStore, StoreCacheStore  # noqa: E402
from enrichment.engine import Engine, EnrichmentInput  # noqa: E402
from enrichment.model import EnrichmentResult  # noqa: E402
from enrichment.sources.linkedin import LinkedInSource  # noqa: E402
from gating.ratelimit import SlidingWindowLimiter  # noqa: E402

try:  # the instance's cache as main.py builds it (an older tree, run by --before, has none)
    from enrichment.held import instance_cache
except ImportError:

    def instance_cache(store: Any, settings: Any) -> Any:  # type: ignore[misc]
        return StoreCacheStore(store)


# isort: split

from loadtests import paired  # noqa: E402
from loadtests.stack import Cores, cpu_seconds, firestore_emulator_pid  # noqa: E402
from scripts.devkit.emulator import GATED, call, require_emulators, seed, store  # noqa: E402
from scripts.devkit.fakes import fake_brave, fake_github, fake_website  # noqa: E402
from stores.base import Inc, Write  # noqa: E402
from stores.firestore import FirestoreStore, make_client  # noqa: E402
from stores.schema import RAW, created_once, raw_shard_path  # noqa: E402
from usecases import enrich  # noqa: E402
from usecases.app import App  # noqa: E402
from usecases.context import Caller  # noqa: E402

OUT = ROOT / "docs" / "benchmarks"
FIXTURES = ROOT / "tests" / "fixtures"


def progress(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


def pct(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return 0.0
    k = max(0, min(len(ordered) - 1, round(q * (len(ordered) - 1))))
    return round(ordered[k], 2)


def summary(values: Sequence[float]) -> dict[str, float]:
    return {
        "n": len(values),
        "p50": pct(values, 0.5),
        "p95": pct(values, 0.95),
        "mean": round(statistics.fmean(values), 2) if values else 0.0,
    }


class CountingStore:
    """Wraps a store and counts round trips per method, noting when each was in flight."""

    def __init__(self, inner: FirestoreStore) -> None:
        self.inner = inner
        self.calls: Counter[str] = Counter()
        self.spans: list[tuple[float, float]] = []
        self.ms: dict[str, float] = {}
        """Milliseconds in each method during the current call (its round trips, the client
        library's encoding and decoding included)."""
        self.last_commit: list[Write] = []
        """The writes of the last ``commit`` (a call's records)."""
        self.last_read: list[str] = []
        """The paths of the last started read (a call's cache read)."""
        self.ended: dict[str, float] = {}
        """When each kind of round trip last ended (``perf_counter``): the increment's end
        is when a call's admission is known, the end of its gate."""

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.inner, name)
        if not callable(attr):
            return attr
        if name in ("start_get_many", "start_increment"):
            return self._started(attr, "increment" if name == "start_increment" else name)

        def wrapped(*a: Any, **kw: Any) -> Any:
            self.calls[name] += 1
            if name == "commit":
                self.last_commit = list(a[0])
            started = time.perf_counter()
            try:
                return attr(*a, **kw)
            finally:
                ended = self.ended[name] = time.perf_counter()
                self.spans.append((started, ended))
                self.ms[name] = self.ms.get(name, 0.0) + (ended - started) * 1000

        return wrapped

    def _started(self, start: Callable[..., Any], kind: str) -> Callable[..., Any]:
        """A round trip sent now and collected later (a read, or an increment, counted as
        ``kind``): in flight from the send to the end of its collection."""

        def send(*a: Any, **kw: Any) -> Any:
            self.calls[kind] += 1
            if kind == "start_get_many":
                self.last_read = list(a[0])
            started = time.perf_counter()
            collect = start(*a, **kw)

            def collected() -> Any:
                try:
                    return collect()
                finally:
                    ended = self.ended[kind] = time.perf_counter()
                    self.spans.append((started, ended))
                    self.ms[kind] = self.ms.get(kind, 0.0) + (ended - started) * 1000

            return collected

        return send

    def waits(self) -> int:
        """Round trips waited for one after another: spans that overlap count once."""
        waits, end = 0, float("-inf")
        for started, ended in sorted(self.spans):
            if started >= end:
                waits += 1
            end = max(end, ended)
        return waits


class TimedEngine(Engine):
    """The real engine (its enrichment cache read included, through the instance's cache as
    ``main.py`` builds it) noting the round trips made before a call first used it
    (``from_cache`` while the increment is in flight, or ``enrich``)."""

    def __init__(self, settings: EnrichmentSettings, store: CountingStore) -> None:
        cache = instance_cache(store, settings)
        super().__init__(settings, cache, sources={"linkedin": LinkedInSource()})
        self.calls_before: Counter[str] | None = None
        self.store = store

    def _note(self) -> None:
        if self.calls_before is None:
            self.calls_before = Counter(self.store.calls)

    def from_cache(self, ahead: ReadAhead | None) -> EnrichmentResult | None:
        self._note()
        return super().from_cache(ahead)

    def enrich(self, inp: EnrichmentInput, ahead: ReadAhead | None = None) -> EnrichmentResult:
        self._note()
        if ahead is None:  # also the engine of an older commit (bench --before), which has none
            return super().enrich(inp)
        return super().enrich(inp, ahead)


def seed_premium(fs: FirestoreStore, prefix: str) -> str:
    """The gated config, a premium user and their CV ``cv-{uid}``; returns the uid."""
    return seed_premiums(fs, prefix, 1)[0]


def seed_premiums(fs: FirestoreStore, prefix: str, count: int) -> list[str]:
    """The gated config, ``count`` premium users and their CVs ``cv-{uid}``; the uids."""
    uids = [f"{prefix}-{uuid.uuid4().hex[:8]}" for _ in range(count)]
    premium = {"subscription": {"tier": "premium", "status": "active"}}
    writes = [Write("config/externalDataRollout", GATED, merge=False)]
    for uid in uids:
        writes.append(Write(f"users/{uid}", premium, merge=False))
        writes.append(Write(f"cvs/cv-{uid}", {"userId": uid}, merge=False))
    for start in range(0, len(writes), 400):
        fs.commit(writes[start : start + 400])
    return uids


POOL = 50
"""Users the hot path's calls take in turn (and documents its bare writes take in turn). The
emulator keeps every version of a document, and a write to one rewritten thousands of times
costs it more (``loadtests/emulator_growth.py``, docs/benchmarks/emulator-growth.md: 1.0-2.1 ms
of its CPU per write after 8,000-13,000 earlier writes, against 0.4-0.6 ms to a new document).
One user making every call of the bench measured that history, which no user's documents build
up at the limits' rates; ``--pool 1`` measures it that way still."""


def _as_user(writes: Sequence[Write], old: str, new: str) -> list[Write]:
    """A call's records as the same call of user ``new`` would write them (its usage and
    result documents), the documents a call creates with new ids."""
    return _fresh([Write(w.path.replace(old, new), w.data, merge=w.merge) for w in writes])


# -- 1. the hot path ----------------------------------------------------------------------


HOT_SETTINGS = {
    "EXTERNAL_DATA_RATE_LIMIT_PREMIUM_HOURLY": "1000000",
    "EXTERNAL_DATA_PEAK_RPS": "250",
}
"""The hot path's settings: no limit in the way, and the aggregates sized for the rate its
series call at (one call every 4-6 ms), as an operator sizes them for a peak (README): at the
default 20 rps each of the 40 shards of a minute took 4-5 writes a second here, beyond the one
a document sustains."""


def hot_settings() -> dict[str, str]:
    """``HOT_SETTINGS``, with the cache hold of the environment when it sets one
    (``EXTERNAL_DATA_CACHE_HOLD_SECONDS=0 make bench``: every warm call reads its cache entry,
    as a call does once the instance's hold on it has run out)."""
    hold = os.environ.get("EXTERNAL_DATA_CACHE_HOLD_SECONDS")
    return {**HOT_SETTINGS, **({"EXTERNAL_DATA_CACHE_HOLD_SECONDS": hold} if hold else {})}


WARM = 4000
"""Calls (each with a bare write) made before the hot path's series are measured. The emulator's
JVM keeps getting faster well past its first thousand requests: measured three times in one
run (the same code as a child process, this process, the child again; 06:42), the first series,
after 2,000 calls of its own, had a whole warm call p95 of 7.15 ms against 5.14 and 4.98 ms for
the two after it, and a bare write p95 of 1.79 ms against 1.58 and 1.49."""


def warm_request(uid: str, export: dict[str, str]) -> dict[str, Any]:
    """The hot path's call: LinkedIn only (parsed locally), answered from the enrichment cache
    once the first call has filled it."""
    return {"cvId": f"cv-{uid}", "sources": ["linkedin"], "linkedin": {"export": export}}


def bench_hot_path(
    n: int, *, floor: bool = True, pool: int = POOL, warm_up: int = WARM, both: bool = False
) -> dict[str, Any]:
    """Warm calls and bare writes, one then the other, ``n`` of each, after ``warm_up`` of
    them; then cold calls, the CPU per call, and (``floor``) the floor and the round trips'
    costs. With ``both``, the measured series runs in each CPU placement (``Cores``: shared,
    and separate where possible), in blocks taking turns; the rest with shared cores."""
    progress(
        f"hot path: {warm_up} calls to warm up, then {n} warm and {n // 2} cold gated calls"
        f" by {pool} users in turn,"
        f" {n} bare writes to {pool} documents in turn"
    )
    client = make_client()
    raw = FirestoreStore(client)
    settings = load_settings(hot_settings())
    uids = seed_premiums(raw, "bench", pool)
    turn = itertools.cycle(range(pool))
    last = {"uid": uids[0]}
    # A real call's shape with no source to fetch: LinkedIn (parsed locally) answered from the
    # enrichment cache, so the call makes every read a warm real call makes, the cache's too.
    export = _linkedin()

    def one(
        svc: App, eng: TimedEngine, *, hit: bool = True
    ) -> tuple[float, float, int, Counter[str], int, float]:
        eng.store.calls.clear()
        eng.store.spans.clear()
        eng.store.ms.clear()
        eng.store.ended.clear()
        eng.calls_before = None
        uid = last["uid"] = uids[next(turn)]
        started = time.perf_counter()
        out = enrich.run(svc, Caller(uid), warm_request(uid, export))
        ended = time.perf_counter()
        if hit and not all(s["cached"] for s in out["sources"]):
            raise RuntimeError(f"not a cache hit: {out['sources']}")
        before = sum((eng.calls_before or Counter()).values())
        calls = Counter(eng.store.calls)
        waits = eng.store.waits()
        # The two round trips a warm call waits for in sequence, timed inside the call.
        store_ms = eng.store.ms.get("increment", 0.0) + eng.store.ms.get("commit", 0.0)
        return (
            (eng.store.ended["increment"] - started) * 1000,
            (ended - started) * 1000,
            before,
            calls,
            waits,
            store_ms,
        )

    def app() -> tuple[App, TimedEngine]:
        eng = TimedEngine(settings.enrichment, CountingStore(raw))
        return App(settings, eng.store, eng), eng

    warm_svc, eng = app()
    one(warm_svc, eng, hit=False)  # warm up the instance's caches, fill the enrichment cache
    refs = [client.document(f"bench/{uid}") for uid in uids]
    # The emulator's JVM keeps getting faster for thousands of requests (``WARM``). Both sides
    # are measured warm, and side by side: a call, then a bare write, in turn.
    for i in range(warm_up):
        one(warm_svc, eng)
        refs[i % pool].set({"n": i})
    cpu = time.process_time()
    for _ in range(n):
        one(warm_svc, eng)
    cpu_ms = (time.process_time() - cpu) * 1000 / n
    emulator = firestore_emulator_pid()
    cores = Cores(emulator)
    placements = [Cores.SHARED, Cores.SEPARATE] if both and cores.possible else [Cores.SHARED]
    series: dict[str, tuple[list[Any], list[float]]] = {p: ([], []) for p in placements}
    try:
        # Blocks of BLOCK calls, the placements in turn (ABBA): both see the same machine.
        size = min(BLOCK, n)
        for b in range(len(placements) * max(1, n // size)):
            turn_order = placements if (b // len(placements)) % 2 == 0 else placements[::-1]
            cores.place(turn_order[b % len(placements)])
            warm, bare = series[cores.placement]
            for i in range(b * size, (b + 1) * size):
                warm.append(one(warm_svc, eng))
                t = time.perf_counter()
                refs[i % pool].set({"n": i})
                bare.append((time.perf_counter() - t) * 1000)
    finally:
        cores.place(Cores.SHARED)  # the rest of the hot path runs with shared cores
    # The emulator's CPU per warm call is measured after the series: its JVM is still
    # compiling during the first (measured there, it was more than twice the sum of the round
    # trips' costs).
    emulator_cpu = emulator_cpu_s(emulator)
    for _ in range(n):
        one(warm_svc, eng)
    emulator_cpu_ms = (emulator_cpu_s(emulator) - emulator_cpu) * 1000 / n
    cold = [one(*app()) for _ in range(n // 2)]
    records = Recorded(eng.store.last_commit, last["uid"], uids)
    floor_ms = bench_floor(raw, records, n) if floor else None
    costs = bench_round_trip_costs(raw, records, eng.store.last_read, n) if floor else None
    warm, bare = series[Cores.SHARED]
    gate_warm = summary([w[0] for w in warm])
    total_warm = summary([w[1] for w in warm])
    bare_s = summary(bare)
    per_kind: Counter[str] = Counter()
    for w in warm:
        per_kind.update(w[3])
    return {
        "placements": {p: _placed(w, b) for p, (w, b) in series.items()},
        "bare_write_ms": bare_s,
        "gate_warm_ms": gate_warm,
        "gate_cold_ms": summary([c[0] for c in cold]),
        "gate_plus_recording_warm_ms": total_warm,
        "cpu_ms_per_warm_call": round(cpu_ms, 2),
        "emulator_cpu_ms_per_warm_call": round(emulator_cpu_ms, 2) if emulator else None,
        "round_trips_warm_call": sorted(Counter(sum(w[3].values()) for w in warm).items()),
        "round_trips_warm_call_by_kind": {k: round(v / n, 2) for k, v in sorted(per_kind.items())},
        "increment_plus_commit_warm_ms": summary([w[5] for w in warm]),
        "ratio_increment_plus_commit_p95_to_bare_write_p95": round(
            summary([w[5] for w in warm])["p95"] / bare_s["p95"], 2
        ),
        "round_trips_waited_in_sequence_warm_call": sorted(Counter(w[4] for w in warm).items()),
        "round_trips_cold_call": sorted(Counter(sum(c[3].values()) for c in cold).items()),
        "round_trips_before_engine_warm": sorted(Counter(w[2] for w in warm).items()),
        "round_trips_before_engine_cold": sorted(Counter(c[2] for c in cold).items()),
        "ratio_gate_warm_p50_to_bare_write_p50": round(gate_warm["p50"] / bare_s["p50"], 2),
        "ratio_gate_warm_p95_to_bare_write_p95": round(gate_warm["p95"] / bare_s["p95"], 2),
        "ratio_whole_warm_call_p95_to_bare_write_p95": round(total_warm["p95"] / bare_s["p95"], 2),
        "floor": floor_ms,
        "round_trip_costs": costs,
        "pool": pool,
        "warm": warm_up,
        "cache_hold_s": getattr(settings.enrichment, "cache_hold_seconds", 0),
    }


class WholeReads(FirestoreStore):
    """A store that reads every document whole, ``fields`` or not: the gate's reads as they
    were before it read client-written documents for some fields only."""

    def get_many(self, paths: Sequence[str], fields: Any = None) -> Any:
        return super().get_many(paths)

    def start_get_many(
        self, paths: Sequence[str], deadline_s: float | None = None, fields: Any = None
    ) -> Any:
        return super().start_get_many(paths, deadline_s)


LARGE_CV = {
    "title": "Staff Engineer",
    "summary": "s" * 2_000,
    "experience": [
        {
            "title": f"Role {i}",
            "company": f"Company {i}",
            "location": "London",
            "start": "2020-01",
            "end": "2021-01",
            "description": "d" * 400,
            "bullets": [f"Did thing {j} of role {i}, " + "b" * 80 for j in range(10)],
        }
        for i in range(100)
    ],
    "skills": [{"name": f"skill {i}", "level": i % 5} for i in range(200)],
    "education": [{"school": f"School {i}", "degree": "BSc", "year": 2000 + i} for i in range(20)],
}
"""A large CV within the rules (100 experience entries, 200 skills: their caps), about 170 KB
of many small values, as its owner may write it. A warm call re-reads its CV's owner on every
call."""


def bench_large_cv(n: int, pool: int = 10) -> dict[str, Any]:
    """Warm calls on CVs of about 170 KB, the gate reading each CV for its owner only, and
    the same calls reading it whole (``WholeReads``), in turn; the CPU of this process per
    call of each."""
    progress(
        f"large CVs: {n} warm calls on {pool} CVs of about 170 KB, read for the owner or whole"
    )
    raw = FirestoreStore(make_client())
    settings = load_settings(hot_settings())
    uids = seed_premiums(raw, "large", pool)
    raw.commit([Write(f"cvs/cv-{u}", {"userId": u, **LARGE_CV}, merge=False) for u in uids])
    export = _linkedin()
    sides = {}
    for name, side in (("owner only", raw), ("whole", WholeReads(raw.client))):
        eng = TimedEngine(settings.enrichment, CountingStore(side))
        sides[name] = App(settings, eng.store, eng)
    ms: dict[str, list[float]] = {k: [] for k in sides}
    cpu = dict.fromkeys(sides, 0.0)
    for i in range(n + 50):  # 50 to warm up, the sides in turn
        for name, app in sides.items():
            uid = uids[i % pool]
            t, c = time.perf_counter(), time.process_time()
            enrich.run(app, Caller(uid), warm_request(uid, export))
            if i >= 50:
                ms[name].append((time.perf_counter() - t) * 1000)
                cpu[name] += time.process_time() - c
    size = len(json.dumps({"userId": uids[0], **LARGE_CV}))
    out: dict[str, Any] = {"cv_json_chars": size, "n": n}
    for name in sides:
        out[name] = {**summary(ms[name]), "cpu_ms": round(cpu[name] * 1000 / n, 2)}
    out["ratio_whole_to_owner_p50"] = round(out["whole"]["p50"] / out["owner only"]["p50"], 1)
    out["ratio_whole_to_owner_cpu"] = round(out["whole"]["cpu_ms"] / out["owner only"]["cpu_ms"], 1)
    return out


def large_cv_lines(lc: dict[str, Any]) -> list[str]:
    if not lc:
        return []
    own, whole = lc["owner only"], lc["whole"]
    return [
        "## A large CV (what its owner may write to it)",
        "",
        f"Warm calls as above on CVs of {lc['cv_json_chars']:,} characters of JSON, {lc['n']}"
        " each way, in turn: the gate reading each CV for its owner only (`CV_FIELDS`, as it"
        " does), and reading it whole (as it did before).",
        "",
        "| CV read | p50 ms | p95 ms | CPU of this process per call, ms |",
        "|---|---|---|---|",
        f"| owner only | {own['p50']} | {own['p95']} | {own['cpu_ms']} |",
        f"| whole | {whole['p50']} | {whole['p95']} | {whole['cpu_ms']} |",
        "",
        f"- Whole / owner only: p50 **{lc['ratio_whole_to_owner_p50']}x**, CPU"
        f" **{lc['ratio_whole_to_owner_cpu']}x**.",
        "",
    ]


BLOCK = 50
"""Calls (each with a bare write) of one CPU placement before the other takes its turn."""


def _placed(warm: Sequence[Any], bare: Sequence[float]) -> dict[str, Any]:
    """One placement's series: the bare write, the whole warm call, its two sequential round
    trips, and the ratios at p95."""
    bare_s, total = summary(bare), summary([w[1] for w in warm])
    store = summary([w[5] for w in warm])
    return {
        "bare_write_ms": bare_s,
        "gate_plus_recording_warm_ms": total,
        "increment_plus_commit_warm_ms": store,
        "ratio_whole_warm_call_p95_to_bare_write_p95": round(total["p95"] / bare_s["p95"], 2),
        "ratio_increment_plus_commit_p95_to_bare_write_p95": round(store["p95"] / bare_s["p95"], 2),
    }


@dataclass(frozen=True)
class Recorded:
    """One warm call's record commit, to be replayed as the same call of each user in turn."""

    writes: Sequence[Write]
    uid: str
    """The user who made that call."""
    uids: Sequence[str]

    def of(self, i: int) -> list[Write]:
        """The records as the ``i``-th call would write them: users in turn, and the raw
        minute aggregate's shards in turn (as many as the pool; calls take theirs in turn)."""
        pool = len(self.uids)
        writes = [
            _shard(w, i % pool) if w.data.get("granularity") == RAW else w for w in self.writes
        ]
        return _as_user(writes, self.uid, self.uids[i % pool])


def _shard(w: Write, shard: int) -> Write:
    """A raw minute aggregate's write, as it goes to another shard of the same minute."""
    data = {**w.data, "shard": shard}
    return Write(raw_shard_path(data["bucketStart"], shard), data, merge=w.merge)


def _fresh(writes: Sequence[Write]) -> list[Write]:
    """The same writes with new ids for the documents a call creates (usage event, audit
    entry), as the next call would write them."""
    return [
        Write(f"{w.path.rsplit('/', 1)[0]}/{uuid.uuid4().hex}", w.data, merge=w.merge)
        if created_once(w.path)
        else w
        for w in writes
    ]


def _turns(raw: FirestoreStore, tag: str, pool: int) -> tuple[list[str], dict[str, Any], list[Any]]:
    """``pool`` new rate-limit counters (and the ``extra`` of their increments) and ``pool``
    new bare-write documents, taken in turn as the calls take their users' documents."""
    counters = [f"rate_limits/bench-{tag}-{uuid.uuid4().hex}" for _ in range(pool)]
    expire = {"expireAt": datetime.now(UTC) + timedelta(hours=2)}
    refs = [raw.client.document(f"bench/{tag}-{uuid.uuid4().hex}") for _ in range(pool)]
    return counters, expire, refs


def bench_floor(raw: FirestoreStore, records: Recorded, n: int) -> dict[str, Any]:
    """A warm call's two sequential round trips made outside any call: the same increment and
    one warm call's own record commit (``records``, replayed with new event and audit ids, as
    each user's call in turn), back to back, then a bare write, in turn (counters and bare
    documents in turn too). No code of ours runs between them: what the emulator and the client
    library alone take."""
    progress(f"hot path floor: {n} increments + record commits outside a call, {n} bare writes")
    if not any(created_once(w.path) for w in records.writes):
        raise RuntimeError(f"not a call's record commit: {[w.path for w in records.writes]}")
    pool = len(records.uids)
    counters, expire, refs = _turns(raw, "floor", pool)
    inc, rec, pair, bare = [], [], [], []
    for i in range(2 * n):  # the first half warms the emulator's code for these documents
        writes = records.of(i)
        t0 = time.perf_counter()
        raw.increment(counters[i % pool], "count", 1, expire)
        t1 = time.perf_counter()
        raw.commit(writes)
        t2 = time.perf_counter()
        refs[i % pool].set({"n": i})
        t3 = time.perf_counter()
        if i >= n:
            inc.append((t1 - t0) * 1000)
            rec.append((t2 - t1) * 1000)
            pair.append((t2 - t0) * 1000)
            bare.append((t3 - t2) * 1000)
    b95 = summary(bare)["p95"]
    return {
        "documents": len(records.writes),
        "fields": sum(_leaves(w.data) for w in records.writes),
        "bare_write_ms": summary(bare),
        "increment_ms": summary(inc),
        "record_commit_ms": summary(rec),
        "both_ms": summary(pair),
        "ratio_increment_p95": round(summary(inc)["p95"] / b95, 2),
        "ratio_record_commit_p95": round(summary(rec)["p95"] / b95, 2),
        "ratio_both_p95": round(summary(pair)["p95"] / b95, 2),
    }


def emulator_cpu_s(pid: int | None) -> float:
    """CPU seconds the emulator has used so far (0 when it was not found)."""
    return cpu_seconds(pid) if pid else 0.0


def bench_round_trip_costs(
    raw: FirestoreStore, records: Recorded, cache_read: Sequence[str], n: int
) -> dict[str, Any]:
    """What each kind of round trip a warm call makes costs, alone: its time, the CPU of this
    process (the client library and gRPC, all threads) and the emulator's CPU, per round
    trip. ``n`` of each, one kind after another, after a warm-up of a fifth as many; writes
    go to the pool's documents in turn, as the calls do."""
    progress(f"round trip costs: {n} of each kind")
    if not cache_read:
        raise RuntimeError("no cache read was recorded for the warm call")
    pid = firestore_emulator_pid()
    if pid is None:
        progress("round trip costs: the Firestore emulator's process was not found here")
    pool = len(records.uids)
    counters, expire, refs = _turns(raw, "cost", pool)
    first_read = list(cache_read[:1])
    # Each kind makes the i-th round trip's call ready (its documents chosen, its writes built)
    # before the series is timed: the CPU measured is the round trip's, not the bench's.
    kinds: dict[str, Callable[[int], Callable[[], Any]]] = {
        "cache read, one document (GetDocument)": lambda i: functools.partial(
            raw.get_many, first_read
        ),
        "rate limit increment (Commit with a transform)": lambda i: functools.partial(
            raw.increment, counters[i % pool], "count", 1, expire
        ),
        f"record commit, {len(records.writes)} documents (Commit)": lambda i: functools.partial(
            raw.commit, records.of(i)
        ),
        "bare write, the client's set (Commit)": lambda i: functools.partial(
            refs[i % pool].set, {"n": i}
        ),
    }
    for j, w in enumerate(records.writes):  # where the record commit's cost lies: each alone
        kind = f"{_kind(w.path)} alone ({_leaves(w.data)} fields, {_increments(w.data)} increments)"
        kinds[f"record commit: {kind}"] = functools.partial(_commit_alone, raw, records, j)
    out: dict[str, Any] = {"emulator_found": pid is not None, "n": n, "kinds": {}}
    for name, prepare in kinds.items():
        for i in range(max(1, n // 5)):
            prepare(i)()
        ops = [prepare(i) for i in range(n)]
        times = []
        cpu, emu = time.process_time(), emulator_cpu_s(pid)
        for op in ops:
            t = time.perf_counter()
            op()
            times.append((time.perf_counter() - t) * 1000)
        out["kinds"][name] = {
            "ms": summary(times),
            "cpu_ms": round((time.process_time() - cpu) * 1000 / n, 3),
            "emulator_cpu_ms": round((emulator_cpu_s(pid) - emu) * 1000 / n, 3) if pid else None,
        }
    return out


def _commit_alone(raw: FirestoreStore, records: Recorded, j: int, i: int) -> Callable[[], Any]:
    """The commit of the ``j``-th document of the ``i``-th call's records, alone."""
    return functools.partial(raw.commit, [records.of(i)[j]])


def _kind(path: str) -> str:
    """A document's collection path with its ids left out (``external_data_usage/*/events``)."""
    parts = path.split("/")
    return "/".join(p if i % 2 == 0 else "*" for i, p in enumerate(parts[:-1]))


def _increments(data: Any) -> int:
    """The increments among a document's fields."""
    if isinstance(data, dict):
        return sum(_increments(v) for v in data.values())
    return 1 if isinstance(data, Inc) else 0


def _leaves(data: Any) -> int:
    """Fields of a document, counting each leaf of a map (what the emulator indexes)."""
    if isinstance(data, dict):
        return sum(_leaves(v) for v in data.values())
    return 1


class Pairs:
    """One tree's warm calls, each followed by a bare write (the hot path's measured series),
    set up and warmed once, then run in blocks on demand: a side of ``--before``'s paired
    comparison. Its users are its own; the emulator is shared."""

    def __init__(self, pool: int, warm_up: int) -> None:
        client = make_client()
        raw = FirestoreStore(client)
        settings = load_settings(hot_settings())
        self.uids = seed_premiums(raw, "pairs", pool)
        self.refs = [client.document(f"bench/{uid}") for uid in self.uids]
        self.eng = TimedEngine(settings.enrichment, CountingStore(raw))
        self.svc = App(settings, self.eng.store, self.eng)
        self.export = _linkedin()
        self.i = 0
        self.block(1)  # fills the enrichment cache
        self.block(warm_up)

    def block(self, k: int) -> dict[str, Any]:
        """``k`` calls and bare writes, in turn: their times (ms) and this process's CPU."""
        warm, bare = [], []
        cpu = time.process_time()
        for _ in range(k):
            uid = self.uids[self.i % len(self.uids)]
            self.eng.store.spans.clear()
            t0 = time.perf_counter()
            enrich.run(self.svc, Caller(uid), warm_request(uid, self.export))
            t1 = time.perf_counter()
            self.refs[self.i % len(self.refs)].set({"n": self.i})
            t2 = time.perf_counter()
            warm.append((t1 - t0) * 1000)
            bare.append((t2 - t1) * 1000)
            self.i += 1
        return {"warm": warm, "bare": bare, "cpu_s": time.process_time() - cpu}

    def serve(self, answers: IO[str]) -> None:
        """The child's side: a line with a count runs a block and answers it on ``answers`` as
        one line of JSON; the end of the input ends it."""
        print("ready", file=answers, flush=True)
        for line in sys.stdin:
            print(json.dumps(self.block(int(line))), file=answers, flush=True)


class Side:
    """One side of the paired comparison: ``Pairs`` over the functions in ``functions``, in a
    child process (both sides are, so that neither is the process coordinating them)."""

    def __init__(self, functions: Path, pool: int, warm: int) -> None:
        env = {**os.environ, "BENCH_FUNCTIONS": str(functions)}
        if transport is not None and transport.APPLIED:
            # Set by this process, not by the operator: each tree chooses its own.
            del env["GRPC_EXPERIMENTS"]
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--pairs-child", "--pool", str(pool), "--warm", str(warm)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        if self.proc.stdin is None or self.proc.stdout is None:
            raise RuntimeError("the child's pipes were not opened")
        self.stdin, self.stdout = self.proc.stdin, self.proc.stdout

    def ready(self) -> None:
        """Wait for its warm-up to end."""
        if self.stdout.readline().strip() != "ready":
            raise RuntimeError(f"a side of the paired hot path did not start ({self.close()})")

    def block(self, k: int) -> dict[str, Any]:
        self.stdin.write(f"{k}\n")
        self.stdin.flush()
        line = self.stdout.readline()
        if not line:
            raise RuntimeError(f"a side of the paired hot path stopped ({self.close()})")
        got: dict[str, Any] = json.loads(line)
        return got

    def close(self) -> str:
        """End it; how it ended."""
        self.stdin.close()
        code = self.proc.wait()
        self.stdout.close()
        return f"exit {code}"


def bench_before(ref: str, n: int, pool: int, warm: int) -> dict[str, Any]:
    """The hot path of the functions at git ``ref`` (extracted with ``git archive``, the
    working tree untouched) and of this tree's, paired: each in a child process, warmed up at
    the same time, then blocks of ``BLOCK`` calls taking turns (ABBA), one side at a time,
    beside the same emulator, so that both see the same machine."""
    progress(f"hot path of {ref} (before) and of this tree, paired: {n} calls each")
    with tempfile.TemporaryDirectory() as tmp:
        _label, functions = paired.export(ref, Path(tmp))
        sides: dict[str, Side] = {}
        try:
            sides["before"] = Side(functions, pool, warm)
            sides["after"] = Side(ROOT / "functions", pool, warm)
            for side in sides.values():
                side.ready()
            size = min(BLOCK, n)
            blocks = max(1, n // size)
            runs: dict[str, dict[str, Any]] = {
                k: {"warm": [], "bare": [], "cpu_s": 0.0} for k in sides
            }
            for b in range(2 * blocks):
                order = ("before", "after") if (b // 2) % 2 == 0 else ("after", "before")
                name = order[b % 2]
                got = sides[name].block(size)
                runs[name]["warm"] += got["warm"]
                runs[name]["bare"] += got["bare"]
                runs[name]["cpu_s"] += got["cpu_s"]
        finally:
            for side in sides.values():
                side.close()
    out: dict[str, Any] = {"ref": ref, "block": size, "blocks_each": blocks}
    for key, r in runs.items():
        call, write = summary(r["warm"]), summary(r["bare"])
        out[key] = {
            "gate_plus_recording_warm_ms": call,
            "bare_write_ms": write,
            "ratio_whole_warm_call_p95_to_bare_write_p95": round(call["p95"] / write["p95"], 2),
            "cpu_ms_per_call_and_write": round(r["cpu_s"] * 1000 / len(r["warm"]), 3),
        }
    return out


# -- 2. the limiter under contention ------------------------------------------------------


def _hammer(threads: int, per_thread: int, op: Callable[[], bool]) -> dict[str, Any]:
    errors: list[str] = []
    admitted = 0
    lock = threading.Lock()
    barrier = threading.Barrier(threads)

    def worker() -> None:
        nonlocal admitted
        barrier.wait()
        for _ in range(per_thread):
            try:
                ok = op()
            except Exception as exc:  # noqa: BLE001 - counted, that's the point
                with lock:
                    errors.append(type(exc).__name__)
                continue
            with lock:
                admitted += int(ok)

    started = time.perf_counter()
    ts = [threading.Thread(target=worker) for _ in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    wall = time.perf_counter() - started
    decisions = threads * per_thread - len(errors)
    return {
        "attempts": threads * per_thread,
        "decisions": decisions,
        "admitted": admitted,
        "errors": len(errors),
        "error_kinds": dict(Counter(errors)),
        "wall_s": round(wall, 2),
        "decisions_per_s": round(decisions / wall, 4) if wall else 0.0,
    }


def bench_limiter(threads: int, ours_each: int, baseline_each: int) -> dict[str, Any]:
    client = make_client()
    store_ = FirestoreStore(client)
    limiter = SlidingWindowLimiter(store_, "bench", timedelta(hours=1))
    uid = f"contend-{uuid.uuid4().hex[:8]}"
    now = datetime.now(UTC)
    progress(f"limiter: {threads} threads x {ours_each} atomic-increment admissions, same user")
    ours = _hammer(
        threads, ours_each, lambda: limiter.admit(limiter.window(uid, now), 10**9, 0).allowed
    )

    ref = client.document(f"rate_limits/rmw-{uuid.uuid4().hex[:8]}")

    @firestore.transactional
    def rmw(txn: Any) -> bool:
        snap = ref.get(transaction=txn)
        count = (snap.to_dict() or {}).get("count", 0) if snap.exists else 0
        if count >= 10**9:
            return False
        txn.set(ref, {"count": count + 1})
        return True

    progress(
        f"baseline: {threads} threads x {baseline_each} read-modify-write transactions, same doc (slow)"
    )
    baseline = _hammer(threads, baseline_each, lambda: rmw(client.transaction()))
    exact_uid = f"exact-{uuid.uuid4().hex[:8]}"
    progress("limiter exactness: 50 simultaneous admissions with 3 left")
    exact = _hammer(50, 1, lambda: limiter.admit(limiter.window(exact_uid, now), 3, 0).allowed)
    return {
        "ours": ours,
        "baseline_rmw_transaction": baseline,
        # A baseline that decided nothing at all is reported as such, not divided by.
        "throughput_ratio": round(ours["decisions_per_s"] / baseline["decisions_per_s"])
        if baseline["decisions_per_s"]
        else f"inf (baseline decided nothing in {baseline['wall_s']} s)",
        "exactness_50_with_3_left": exact,
    }


# -- 3. the burst through the callable protocol -------------------------------------------


def bench_burst() -> dict[str, Any]:
    progress("burst: 50 simultaneous calls by one free user through the functions emulator")
    s = store()
    s.commit([Write("config/externalDataRollout", GATED, merge=False)])
    user, cv = seed(s, "burst")
    data = {"cvId": cv, "mode": "preview", "sources": ["linkedin"]}
    started = time.perf_counter()
    with (
        httpx.Client(limits=httpx.Limits(max_connections=50)) as client,
        concurrent.futures.ThreadPoolExecutor(50) as pool,
    ):
        answers = list(
            pool.map(
                lambda _: call("enrichCVWithExternalData", data, user, client=client, timeout=120),
                range(50),
            )
        )
    wall = time.perf_counter() - started
    return {"statuses": dict(Counter(a.status for a in answers)), "wall_s": round(wall, 2)}


# -- 4. enrichment: parallel sources and the cache ----------------------------------------


def _linkedin() -> dict[str, str]:
    return {
        p.name: p.read_text(encoding="utf-8")
        for p in (FIXTURES / "linkedin" / "complete").glob("*.csv")
    }


def bench_enrichment(n: int, target_ms: float) -> dict[str, Any]:
    progress(f"enrichment: calibrating each network source to about {target_ms:.0f} ms")
    with fake_github() as gh, fake_website() as site, fake_brave() as brave:
        settings = EnrichmentSettings(
            github_api_url=str(gh),
            web_search_api_key="test-brave-key",
            web_search_url=str(brave),
            allow_hosts=(site.host_port,),
            retry_base_ms=50,
        )
        inputs = {
            "github": EnrichmentInput(("github",), github="octocat", force_refresh=True),
            "website": EnrichmentInput(("website",), website=str(site), force_refresh=True),
            "web": EnrichmentInput(("web",), name="Ada Lovelace", force_refresh=True),
            "linkedin": EnrichmentInput(
                ("linkedin",), linkedin_export=_linkedin(), force_refresh=True
            ),
        }
        fakes = {"github": gh, "website": site, "web": brave}
        engine = Engine(settings, MemoryCacheStore())

        def alone(name: str) -> float:
            runs = [engine.enrich(inputs[name]).sources[0].duration_ms for _ in range(3)]
            return statistics.median(runs)

        delays: dict[str, float] = {}
        alone_ms: dict[str, float] = {}
        for name, fake in fakes.items():
            fake.behaviour.delay_s = 0.0
            base = alone(name)
            fake.behaviour.delay_s = 0.1
            slope = (alone(name) - base) / 0.1  # sequential request rounds x 1000
            delays[name] = round(max(0.0, (target_ms - base) / slope), 3) if slope > 0 else 0.0
            fake.behaviour.delay_s = delays[name]
            alone_ms[name] = alone(name)
        alone_ms["linkedin"] = alone("linkedin")
        progress(f"per-request delays {delays}; each source alone {alone_ms} ms")

        client = make_client()
        fs = FirestoreStore(client)
        svc = App(
            load_settings({"EXTERNAL_DATA_RATE_LIMIT_PREMIUM_HOURLY": "1000000"}),
            fs,
            Engine(settings, StoreCacheStore(fs)),
        )
        uid = seed_premium(fs, "enrich")
        request = {
            "cvId": f"cv-{uid}",
            "github": "octocat",
            "website": str(site),
            "name": "Ada Lovelace",
            "linkedin": {"export": _linkedin()},
        }
        progress(
            f"enrichment: {n} misses (forceRefresh) and {n} cache hits, all four sources, through the gate"
        )
        misses: list[float] = []
        hits: list[float] = []
        statuses: Counter[str] = Counter()
        enrich.run(svc, Caller(uid), request)  # warm the instance
        for _ in range(n):
            t = time.perf_counter()
            out = enrich.run(svc, Caller(uid), {**request, "options": {"forceRefresh": True}})
            misses.append((time.perf_counter() - t) * 1000)
            statuses[out["status"]] += 1
        for _ in range(n):
            t = time.perf_counter()
            out = enrich.run(svc, Caller(uid), request)
            hits.append((time.perf_counter() - t) * 1000)
            if not all(s["cached"] for s in out["sources"]):
                statuses["hit-not-cached"] += 1
        slowest_alone = max(alone_ms.values())
        miss_s, hit_s = summary(misses), summary(hits)
        return {
            "per_request_delay_s": delays,
            "each_source_alone_ms": alone_ms,
            "sum_of_sources_alone_ms": round(sum(alone_ms.values()), 1),
            "miss_ms": miss_s,
            "hit_ms": hit_s,
            "miss_statuses": dict(statuses),
            "overhead_p95_over_slowest_source_ms": round(miss_s["p95"] - slowest_alone, 1),
            "ratio_hit_p50_to_miss_p50": round(hit_s["p50"] / miss_s["p50"], 3),
        }


# -- report -------------------------------------------------------------------------------


def render(results: dict[str, Any], command: str) -> str:
    hp, lim, burst, en = (
        results.get(k, {}) for k in ("hot_path", "limiter", "burst", "enrichment")
    )
    lines = [
        "# Benchmark results",
        "",
        f"Produced by `{command}` on {results['at']} ({results['machine']}).",
        "One run; the machine is noisy, so read the ratios, which were measured side by side.",
        "",
    ]
    if hp:
        lines += [
            "## Hot path (core beside the Firestore emulator)",
            "",
            "A warm call is a real `enrichCVWithExternalData` call through the gate, the real",
            "engine and the recording, with no source to fetch: LinkedIn (parsed locally),",
            *cache_lines(hp.get("cache_hold_s")),
            "Both it and the bare write are measured after",
            f"a warm-up of {hp.get('warm', 'as many')} calls and writes (the emulator's JVM keeps",
            "getting faster for thousands of requests), one call then one write, in turn.",
            *pool_lines(hp.get("pool")),
            "",
            "| measure | p50 ms | p95 ms |",
            "|---|---|---|",
            f"| one bare Firestore write | {hp['bare_write_ms']['p50']} | {hp['bare_write_ms']['p95']} |",
            f"| gate, warm instance (decision + rate limit; a cache hit's engine runs while the increment is in flight) | {hp['gate_warm_ms']['p50']} | {hp['gate_warm_ms']['p95']} |",
            f"| gate, cold instance | {hp['gate_cold_ms']['p50']} | {hp['gate_cold_ms']['p95']} |",
            f"| whole warm call (gate + cache look-up + recording) | {hp['gate_plus_recording_warm_ms']['p50']} | {hp['gate_plus_recording_warm_ms']['p95']} |",
            *(
                [
                    f"| of which its increment and its record commit (the round trips it waits for in sequence, client library included) | {hp['increment_plus_commit_warm_ms']['p50']} | {hp['increment_plus_commit_warm_ms']['p95']} |"
                ]
                if "increment_plus_commit_warm_ms" in hp
                else []
            ),
            "",
            *placement_lines(hp),
            *(
                [
                    f"- Its two sequential round trips alone / bare write at p95: {hp['ratio_increment_plus_commit_p95_to_bare_write_p95']}x: the floor of any call that decides on an atomic increment and then commits its records (five documents, the result's JSON among them) before answering."
                ]
                if "ratio_increment_plus_commit_p95_to_bare_write_p95" in hp
                else []
            ),
            *floor_lines(hp.get("floor")),
            f"- Warm gate / bare write: p50 {hp['ratio_gate_warm_p50_to_bare_write_p50']}x, p95 {hp['ratio_gate_warm_p95_to_bare_write_p95']}x.",
            f"- CPU of this process per warm call (all its threads, gRPC's included): {hp['cpu_ms_per_warm_call']} ms{emulator_cpu_text(hp)}.",
            f"- Firestore round trips per warm call: {hp['round_trips_warm_call']} (count, calls), by kind {hp['round_trips_warm_call_by_kind']}; cold: {hp['round_trips_cold_call']}.",
            f"- Of those, waited for one after another (the cache read is in flight beside the rate limit's increment): {hp.get('round_trips_waited_in_sequence_warm_call')}.",
            f"- Round trips before the engine was called (the cache read, started beside the increment, may be among them), warm: {hp['round_trips_before_engine_warm']}; cold: {hp['round_trips_before_engine_cold']}.",
            "",
            *cost_lines(hp.get("round_trip_costs")),
        ]
    if results.get("before"):
        lines += before_after(results["before"])
    lines += large_cv_lines(results.get("large_cv") or {})
    if lim:
        o, b = lim["ours"], lim["baseline_rmw_transaction"]
        ex = lim["exactness_50_with_3_left"]
        lines += [
            "## Limiter under 20-way same-user contention",
            "",
            "| limiter | attempts | decisions | errors | wall s | decisions/s |",
            "|---|---|---|---|---|---|",
            f"| atomic increment (ours) | {o['attempts']} | {o['decisions']} | {o['errors']} | {o['wall_s']} | {o['decisions_per_s']} |",
            f"| read-modify-write transaction (baseline) | {b['attempts']} | {b['decisions']} | {b['errors']} {b['error_kinds'] or ''} | {b['wall_s']} | {b['decisions_per_s']} |",
            "",
            f"- Throughput ratio: **{ratio_text(lim['throughput_ratio'])}** (target at least 50x, with zero errors on ours).",
            f"- 50 simultaneous admissions with 3 left: {ex['admitted']} admitted, {ex['decisions'] - ex['admitted']} refused, {ex['errors']} errors.",
            "",
        ]
    if burst:
        lines += [
            "## 50 simultaneous calls by one free user (callable protocol, functions emulator)",
            "",
            f"- Answers: {burst['statuses']} in {burst['wall_s']} s (target: exactly 3 OK, 47 RESOURCE_EXHAUSTED, no INTERNAL).",
            "",
        ]
    if en:
        lines += [
            "## Enrichment: four sources in parallel, and the cache",
            "",
            f"- Per-request delays on the loopback fakes, calibrated so each network source alone takes about 300 ms: {en['per_request_delay_s']} s.",
            f"- Each source alone (median ms): {en['each_source_alone_ms']}; in sequence they would take {en['sum_of_sources_alone_ms']} ms. LinkedIn parses the uploaded export locally, with no network.",
            "",
            "| all four sources, through the gate | p50 ms | p95 ms |",
            "|---|---|---|",
            f"| cache miss (forceRefresh) | {en['miss_ms']['p50']} | {en['miss_ms']['p95']} |",
            f"| cache hit | {en['hit_ms']['p50']} | {en['hit_ms']['p95']} |",
            "",
            f"- Miss p95 minus the slowest source alone: {en['overhead_p95_over_slowest_source_ms']} ms (target under 150 ms).",
            f"- Hit / miss at p50: {en['ratio_hit_p50_to_miss_p50']} (target at most 0.1). Statuses: {en['miss_statuses']}.",
            "",
        ]
    return "\n".join(lines)


PLACES = {
    "separate": "separate cores (this process on one CPU, the emulator's JVM on the other, as a"
    " client and Firestore are in production: on different machines)",
    "shared": "shared cores (both on every CPU, as the scheduler likes: this machine's default)",
}


def placement_lines(hp: dict[str, Any]) -> list[str]:
    """The goal's ratio, and the series of each CPU placement side by side."""
    placed: dict[str, Any] = hp.get("placements") or {}
    ratio = hp["ratio_whole_warm_call_p95_to_bare_write_p95"]
    head = f"- Whole warm call / bare write at p95: **{ratio}x** (goal at most 3x)"
    if len(placed) < 2:
        return [head + "."]
    return [
        head + ", with shared cores.",
        "- The measured series ran in blocks of"
        f" {BLOCK} calls, with this process and the emulator placed in turn (ABBA) on:",
        *(f"  - {name}: {PLACES.get(name, name)};" for name in placed),
        "",
        "  | CPU placement | bare write p50 / p95 ms | whole warm call p50 / p95 ms | its increment and commit p95 ms | whole call / bare write at p95 |",
        "  |---|---|---|---|---|",
        *(
            f"  | {name} | {p['bare_write_ms']['p50']} / {p['bare_write_ms']['p95']}"
            f" | {p['gate_plus_recording_warm_ms']['p50']} / {p['gate_plus_recording_warm_ms']['p95']}"
            f" | {p['increment_plus_commit_warm_ms']['p95']}"
            f" | {p['ratio_whole_warm_call_p95_to_bare_write_p95']}x |"
            for name, p in placed.items()
        ),
        "",
        "- The rest of this section (the gate, cold calls, CPU, the floor, the costs) ran with"
        " shared cores.",
        "",
    ]


def ratio_text(ratio: float | str) -> str:
    """``34000x``, or the words said instead when the baseline decided nothing."""
    return f"{ratio}x" if isinstance(ratio, int | float) else str(ratio)


def cache_lines(hold_s: int | None) -> list[str]:
    """What the warm call's cache look-up was, by the instance's cache hold."""
    if not hold_s:
        return [
            "answered from the enrichment cache, so it makes every store round trip a warm real",
            "call makes, the cache read included (the instance holds no cache entry).",
        ]
    return [
        "answered from the cache entry the instance holds (`EXTERNAL_DATA_CACHE_HOLD_SECONDS`,",
        f"{hold_s} s), so it makes the store round trips of a real call repeated within the hold:",
        "no cache read. Once the hold has run out a call also reads the entry, sent beside its",
        "increment (`EXTERNAL_DATA_CACHE_HOLD_SECONDS=0 make bench` measures that call).",
    ]


def pool_lines(pool: int | None) -> list[str]:
    """How the calls and bare writes spread over users and documents."""
    if not pool:
        return []
    if pool == 1:
        return ["One user makes every call, and every bare write goes to one document."]
    return [
        f"The calls are made by {pool} users in turn and the bare writes go to {pool} documents",
        "in turn: the emulator keeps every version of a document, and its cost of a write grows",
        "with the document's earlier writes, which one user making every call measured instead",
        "(`--pool 1` still does).",
    ]


def emulator_cpu_text(hp: dict[str, Any]) -> str:
    """ ", and the emulator's N ms" when it was measured."""
    ms = hp.get("emulator_cpu_ms_per_warm_call")
    return f", and the Firestore emulator's {ms} ms" if ms is not None else ""


def cost_lines(costs: dict[str, Any] | None) -> list[str]:
    """The table of what each kind of round trip costs alone."""
    if not costs:
        return []
    if not costs["emulator_found"]:
        note = "The emulator's process was not found, so its CPU is not shown."
    else:
        note = "The emulator's CPU is its JVM's user and system time over the same series."
    return [
        f"What each kind of round trip a warm call makes costs alone ({costs['n']} of each, one"
        f" kind after another, after a warm-up). {note}",
        "",
        "| round trip | p50 ms | p95 ms | CPU of this process, ms | CPU of the emulator, ms |",
        "|---|---|---|---|---|",
        *(
            f"| {name} | {k['ms']['p50']} | {k['ms']['p95']} | {k['cpu_ms']} |"
            f" {'' if k['emulator_cpu_ms'] is None else k['emulator_cpu_ms']} |"
            for name, k in costs["kinds"].items()
        ),
        "",
    ]


def floor_lines(fl: dict[str, Any] | None) -> list[str]:
    """The floor measured outside a call, if this run measured it."""
    if not fl:
        return []
    return [
        f"- The same two round trips made outside any call, back to back (`bench_floor`: the"
        f" increment, then one warm call's own record commit of {fl['documents']} documents and"
        f" {fl['fields']} fields, replayed; then a bare write; {fl['bare_write_ms']['n']} of each"
        f" after as many to warm up): increment p50 {fl['increment_ms']['p50']} / p95"
        f" {fl['increment_ms']['p95']} ms ({fl['ratio_increment_p95']}x a bare write at p95),"
        f" record commit {fl['record_commit_ms']['p50']} / {fl['record_commit_ms']['p95']} ms"
        f" ({fl['ratio_record_commit_p95']}x), both {fl['both_ms']['p50']} /"
        f" {fl['both_ms']['p95']} ms (**{fl['ratio_both_p95']}x**), against a bare write's"
        f" {fl['bare_write_ms']['p50']} / {fl['bare_write_ms']['p95']} ms. With no code of ours"
        " between them, this is the least a call that decides on an atomic increment and then"
        " commits its records before answering can take on this emulator.",
    ]


def before_after(paired: dict[str, Any]) -> list[str]:
    """``--before``'s paired comparison: REF's hot path and this tree's, side by side."""
    b, a = paired["before"], paired["after"]

    def row(label: str, get: Callable[[dict[str, Any]], float]) -> str:
        old, new = get(b), get(a)
        ratio = f"{new / old:.2f}" if old else "-"
        return f"| {label} | {old} | {new} | {ratio} |"

    return [
        f"### Before ({paired['ref']}) and after (this tree), paired",
        "",
        f"Each side warmed up once in a process of its own, then {paired['blocks_each']} blocks of"
        f" {paired['block']} calls (each followed by a bare write) each, taking turns (ABBA),"
        " one side at a time, beside the same emulator.",
        "",
        "| measure | before | after | after / before |",
        "|---|---|---|---|",
        row("whole warm call p50, ms", lambda h: h["gate_plus_recording_warm_ms"]["p50"]),
        row("whole warm call p95, ms", lambda h: h["gate_plus_recording_warm_ms"]["p95"]),
        row("one bare write p50, ms", lambda h: h["bare_write_ms"]["p50"]),
        row("one bare write p95, ms", lambda h: h["bare_write_ms"]["p95"]),
        row(
            "whole warm call p95 / bare write p95",
            lambda h: h["ratio_whole_warm_call_p95_to_bare_write_p95"],
        ),
        row(
            "CPU of the process per call and bare write, ms",
            lambda h: h["cpu_ms_per_call_and_write"],
        ),
        "",
    ]


def svg_bars(title: str, rows: list[tuple[str, float, float]], unit: str = "ms") -> str:
    """A small horizontal bar chart (p50 solid, p95 light) as standalone SVG, no dependencies."""
    width, left, bar_h, gap = 720, 230, 16, 14
    top = 40
    height = top + len(rows) * (2 * bar_h + gap) + 30
    peak = max((max(p50, p95) for _, p50, p95 in rows), default=1.0) or 1.0
    scale = (width - left - 90) / peak
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        'font-family="sans-serif" font-size="12">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
        f'<text x="10" y="22" font-size="15" font-weight="bold">{title}</text>',
        f'<text x="{width - 200}" y="22"><tspan fill="#1f77b4">■ p50</tspan>'
        f'  <tspan fill="#9ecae1">■ p95</tspan></text>',
    ]
    y = top
    for label, p50, p95 in rows:
        out.append(f'<text x="10" y="{y + bar_h + 4}">{label}</text>')
        out.append(
            f'<rect x="{left}" y="{y}" width="{p50 * scale:.1f}" height="{bar_h}" fill="#1f77b4"/>'
        )
        out.append(f'<text x="{left + p50 * scale + 4:.1f}" y="{y + 12}">{p50:g} {unit}</text>')
        y2 = y + bar_h
        out.append(
            f'<rect x="{left}" y="{y2}" width="{p95 * scale:.1f}" height="{bar_h}" fill="#9ecae1"/>'
        )
        out.append(f'<text x="{left + p95 * scale + 4:.1f}" y="{y2 + 12}">{p95:g} {unit}</text>')
        y += 2 * bar_h + gap
    out.append("</svg>")
    return "\n".join(out) + "\n"


def charts(results: dict[str, Any]) -> list[str]:
    """Write the charts next to the report; returns their file names."""
    made = []
    hp = results.get("hot_path")
    if hp:
        rows = [
            ("one bare Firestore write", hp["bare_write_ms"]["p50"], hp["bare_write_ms"]["p95"]),
            ("gate, warm", hp["gate_warm_ms"]["p50"], hp["gate_warm_ms"]["p95"]),
            ("gate, cold", hp["gate_cold_ms"]["p50"], hp["gate_cold_ms"]["p95"]),
            (
                "whole warm call",
                hp["gate_plus_recording_warm_ms"]["p50"],
                hp["gate_plus_recording_warm_ms"]["p95"],
            ),
        ]
        (OUT / "hot-path.svg").write_text(svg_bars("Hot path vs one Firestore write", rows))
        made.append("hot-path.svg")
    en = results.get("enrichment")
    if en:
        alone = en["each_source_alone_ms"]
        rows = [(f"{k} alone (median)", float(v), float(v)) for k, v in alone.items()]
        rows += [
            ("all four, cache miss", en["miss_ms"]["p50"], en["miss_ms"]["p95"]),
            ("all four, cache hit", en["hit_ms"]["p50"], en["hit_ms"]["p95"]),
        ]
        (OUT / "enrichment.svg").write_text(
            svg_bars("Four sources in parallel, and the cache", rows)
        )
        made.append("enrichment.svg")
    return made


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--only", choices=("hot_path", "limiter", "burst", "enrichment"), action="append"
    )
    parser.add_argument(
        "--n", type=int, default=1000, help="calls per hot-path series (p95 of 200 moved 3.2x-5.8x)"
    )
    parser.add_argument("--quick", action="store_true", help="smaller series (smoke run)")
    parser.add_argument(
        "--warm", type=int, default=WARM, help="hot-path calls made before measuring (JVM warm-up)"
    )
    parser.add_argument(
        "--pool",
        type=int,
        default=POOL,
        help="users the hot path's calls take in turn (1: one user makes every call)",
    )
    parser.add_argument(
        "--before", metavar="REF", help="also run the hot path on the functions at git REF"
    )
    parser.add_argument(
        "--cores",
        choices=("shared", "both"),
        default="shared",
        help="hot path: measure with shared cores only, or also with this process and the"
        " emulator on separate cores, in blocks taking turns",
    )
    parser.add_argument("--pairs-child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    require_emulators()
    gc.freeze()  # what the imports made, out of the collector's full passes, as main.py does
    logs.configure("ERROR")  # per-call INFO lines would drown the report
    os.environ.setdefault("GCLOUD_PROJECT", "demo-cv-enrichment")
    if args.pairs_child:  # the child of --before: REF's side of the paired hot path
        # Its answers go to the parent on the original stdout; anything else printed (a log
        # line of REF's code) goes to stderr instead of into them.
        answers = os.fdopen(os.dup(1), "w")
        os.dup2(2, 1)
        Pairs(args.pool, args.warm).serve(answers)
        return 0
    only = set(args.only or ("hot_path", "limiter", "burst", "enrichment"))
    n = 40 if args.quick else args.n
    warm = 40 if args.quick else args.warm
    results: dict[str, Any] = {
        "at": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{os.cpu_count()} cores, Python {platform.python_version()}, Firestore emulator",
    }
    if "hot_path" in only and args.before:
        results["before"] = bench_before(args.before, n, args.pool, warm)
    if "hot_path" in only:
        results["hot_path"] = bench_hot_path(
            n, pool=args.pool, warm_up=warm, both=args.cores == "both"
        )
        results["large_cv"] = bench_large_cv(40 if args.quick else 200)
    if "limiter" in only:
        results["limiter"] = bench_limiter(20, 10 if args.quick else 50, 2 if args.quick else 5)
    if "burst" in only:
        results["burst"] = bench_burst()
    if "enrichment" in only:
        results["enrichment"] = bench_enrichment(10 if args.quick else 30, 300.0)
    command = (
        "make bench"
        if not (
            args.only
            or args.quick
            or args.n != parser.get_default("n")
            or args.pool != parser.get_default("pool")
            or args.warm != parser.get_default("warm")
            or args.before
            or args.cores != parser.get_default("cores")
        )
        else "scripts/with-emulators.sh .venv/bin/python scripts/bench.py " + " ".join(sys.argv[1:])
    )
    results["command"] = command
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "results.json").write_text(json.dumps(results, indent=2, default=str) + "\n")
    report = render(results, command)
    pictures = charts(results)
    if pictures:
        report += "\n" + "\n".join(f"![{name}]({name})" for name in pictures) + "\n"
    (OUT / "results.md").write_text(report + "\n")
    print(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
