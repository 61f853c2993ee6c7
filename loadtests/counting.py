"""Firestore cost as the served process sees it: a counting ``DocumentStore`` and its analysis.

Inside each gunicorn worker, ``counting_store_class`` wraps the real ``FirestoreStore``: every
operation is counted (round trips, documents read, documents written, at Firestore's billing
units: a batch get of N paths is N reads, missing documents included; a commit of N writes is N
writes; an increment with its transform is one write; a query is one read per document
returned, at least one). Writes to documents that more than one call can touch (everything but
usage events and audit entries, which are new documents each time) are also kept per document
and second, and flushed every few seconds to ``<dir>/writes-<pid>.jsonl``; totals go to
``<dir>/ops-<pid>.json``. ``analyse`` merges the workers' files after the run.
"""

from __future__ import annotations

import atexit
import json
import os
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from stores.schema import created_once

if TYPE_CHECKING:
    from stores.base import Fields

FLUSH_EVERY_S = 5.0


class Sink:
    """One process's counts, flushed to files by a daemon thread (started per process, so a
    gunicorn fork gets its own)."""

    def __init__(self, directory: str) -> None:
        self.dir = Path(directory)
        self.lock = threading.Lock()
        self.ops: Counter[str] = Counter()
        self.per_second: dict[int, Counter[str]] = defaultdict(Counter)
        self.pid = 0

    def _ensure_thread(self) -> None:
        if self.pid == os.getpid():
            return
        self.pid = os.getpid()
        self.ops = Counter()
        self.per_second = defaultdict(Counter)
        threading.Thread(target=self._loop, name="loadtest-counts", daemon=True).start()
        atexit.register(self.flush, final=True)

    def count(self, op: str, reads: int = 0, writes: Iterable[str] = ()) -> None:
        """Count one round trip of kind ``op`` with ``reads`` documents read and ``writes``."""
        with self.lock:
            self._ensure_thread()
            self.ops[f"rt.{op}"] += 1
            self.ops["reads"] += reads
            now = int(time.time())
            bucket = None
            for path in writes:
                self.ops["writes"] += 1
                if created_once(path):  # written once: never a hot spot
                    continue
                if bucket is None:
                    bucket = self.per_second[now]
                bucket[path] += 1

    def rpc(self, name: str) -> None:
        """Count one RPC of ``name`` really sent (a batch of several calls' commits is one)."""
        with self.lock:
            self._ensure_thread()
            self.ops[f"rpc.{name}"] += 1

    def _loop(self) -> None:
        while True:
            time.sleep(FLUSH_EVERY_S)
            self.flush()

    def flush(self, final: bool = False) -> None:
        """Append finished seconds to the writes file and rewrite the totals file."""
        with self.lock:
            now = int(time.time())
            done = sorted(s for s in self.per_second if final or s < now)
            lines = [json.dumps({"s": s, "w": self.per_second.pop(s)}) for s in done]
            ops = dict(self.ops)
        self.dir.mkdir(parents=True, exist_ok=True)
        if lines:
            with open(self.dir / f"writes-{os.getpid()}.jsonl", "a") as f:
                f.write("\n".join(lines) + "\n")
        tmp = self.dir / f".ops-{os.getpid()}.tmp"
        tmp.write_text(json.dumps(ops))
        tmp.replace(self.dir / f"ops-{os.getpid()}.json")


def counting_store_class(base: type[Any], directory: str) -> type[Any]:
    """A subclass of ``base`` (``FirestoreStore``) that counts each protocol method."""
    sink = Sink(directory)

    class CountingFirestoreStore(base):  # type: ignore[misc]
        """``FirestoreStore`` that counts what it does (load tests only)."""

        def get_many(
            self, paths: Sequence[str], fields: Fields | None = None
        ) -> dict[str, dict[str, Any] | None]:
            sink.count("get_many", reads=len(paths))
            # ``fields`` only when given: a paired run's other tree may be older than it.
            return dict(super().get_many(paths, fields) if fields else super().get_many(paths))

        def start_get_many(
            self,
            paths: Sequence[str],
            deadline_s: float | None = None,
            fields: Fields | None = None,
        ) -> Callable[[], dict[str, dict[str, Any] | None]]:
            # Counted as get_many's are: one round trip (a GetDocument per document, sent
            # together), one read per document.
            sink.count("get_many", reads=len(paths))
            pending: Callable[[], dict[str, dict[str, Any] | None]] = (
                super().start_get_many(paths, deadline_s, fields)
                if fields
                else super().start_get_many(paths, deadline_s)
            )
            return pending

        def increment(self, path: str, field_name: str, by: int, extra: Mapping[str, Any]) -> int:
            sink.count("increment", writes=[path])
            return int(super().increment(path, field_name, by, extra))

        def start_increment(
            self, path: str, field_name: str, by: int, extra: Mapping[str, Any]
        ) -> Callable[[], int]:
            # Counted as increment's are: one round trip, one write.
            sink.count("increment", writes=[path])
            pending: Callable[[], int] = super().start_increment(path, field_name, by, extra)
            return pending

        def commit(self, writes: Sequence[Any]) -> None:
            sink.count("commit", writes=[w.path for w in writes])
            super().commit(writes)

        def _send_commit(self, request: Any, timeout: float) -> Any:
            # Each Commit RPC really sent: one per batch of commits and increments that went
            # together (``stores.group_commit``), and one per member sent again alone.
            sink.rpc("Commit")
            return super()._send_commit(request, timeout)

        def query(self, collection: str, *args: Any, **kwargs: Any) -> list[Any]:
            out = list(super().query(collection, *args, **kwargs))
            sink.count("query", reads=max(1, len(out)))
            return out

        def compare_and_set(
            self, path: str, expected_version: int, data: Mapping[str, Any], extra: Sequence[Any]
        ) -> None:
            sink.count("compare_and_set", reads=1, writes=[path, *(w.path for w in extra)])
            super().compare_and_set(path, expected_version, data, extra)

    return CountingFirestoreStore


# -- analysis after the run -------------------------------------------------------------------


@dataclass
class DocRate:
    """The busiest second and the busiest 60 s of one document."""

    path: str
    peak_per_s: int
    sustained_per_s: float
    """Writes in its busiest 60-second window / 60."""
    total: int


@dataclass
class Cost:
    """Per-call Firestore cost and the hottest documents of a run."""

    calls: int
    ops: dict[str, int]
    hottest: list[DocRate] = field(default_factory=list)
    by_kind: dict[str, DocRate] = field(default_factory=dict)
    """The hottest document of each kind (aggregate m/h/d shard, rate limit, usage totals...)."""
    per_worker: list[int] = field(default_factory=list)
    """Record commits each worker process asked for (one a call), busiest first: how evenly
    the calls were spread over the workers."""

    def spread(self) -> str:
        """The workers' shares of the calls, busiest first (``52% / 48%``)."""
        total = sum(self.per_worker)
        return " / ".join(f"{n / total:.0%}" for n in self.per_worker) if total else "none"

    def per_call(self, key: str) -> float:
        """``ops[key]`` per call."""
        return self.ops.get(key, 0) / self.calls if self.calls else 0.0

    def usd_per_million(self, read_usd: float, write_usd: float) -> float:
        """List-price cost of a million calls (prices per 100,000 operations)."""
        return 1e6 * (self.per_call("reads") * read_usd + self.per_call("writes") * write_usd) / 1e5


def kind_of(path: str) -> str:
    """A short name for the kind of document at ``path``."""
    coll, _, rest = path.partition("/")
    if coll == "external_data_metrics":
        prefix = rest.partition("_")[0]
        return "aggregate raw minute shard" if prefix == "raw" else f"aggregate rolled ({prefix})"
    if coll == "rate_limits":
        return "rate-limit window"
    if coll == "external_data_usage":
        return "per-user usage totals"
    if coll == "cvs":
        return "CV result document"
    if coll == "external_data_cache":
        return "source cache entry"
    return coll


def _sustained(per_s: Mapping[int, int], window: int = 60) -> float:
    """The most writes in any ``window`` consecutive seconds, per second."""
    secs = sorted(per_s)
    best = total = 0
    lo = 0
    for s in secs:
        total += per_s[s]
        while secs[lo] <= s - window:
            total -= per_s[secs[lo]]
            lo += 1
        best = max(best, total)
    return best / window


def analyse(directory: str | Path, calls: int, top: int = 8) -> Cost:
    """Merge the workers' files in ``directory``; ``calls`` is how many calls were served."""
    d = Path(directory)
    ops: Counter[str] = Counter()
    per_worker = []
    for f in d.glob("ops-*.json"):
        mine = json.loads(f.read_text())
        ops.update(mine)
        per_worker.append(int(mine.get("rt.commit", 0)))
    per_doc: dict[str, Counter[int]] = defaultdict(Counter)
    for f in d.glob("writes-*.jsonl"):
        with open(f) as lines:
            for line in lines:
                rec = json.loads(line)
                for path, n in rec["w"].items():
                    per_doc[path][rec["s"]] += n
    rates = [
        DocRate(p, max(c.values()), _sustained(c), sum(c.values())) for p, c in per_doc.items()
    ]
    rates.sort(key=lambda r: (r.sustained_per_s, r.peak_per_s), reverse=True)
    by_kind: dict[str, DocRate] = {}
    for r in rates:
        by_kind.setdefault(kind_of(r.path), r)
    return Cost(calls, dict(ops), rates[:top], by_kind, sorted(per_worker, reverse=True))
