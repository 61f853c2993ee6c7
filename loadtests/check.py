"""Nothing lost: after a load run, what the callers were answered must agree with what the
service recorded (issue 11, item 3).

Compared (all for ``enrichCVWithExternalData``):

- admitted enrichments (``OK`` answers) == usage events with an enriched outcome == aggregate
  ``c.previews + c.fullRequests`` (the raw minute shards the calls wrote) == ``access_granted``
  audit entries, and the requestIds of the answers == those of the events;
- the minute, hour and day aggregates as the readers see them (``analytics.metrics.
  read_buckets``: what the roll-up folded plus the raw minutes after its cursor) == the raw
  shards, counter by counter (nothing folded twice or dropped by the roll-up);
- refusals (permission-denied, resource-exhausted, not-found, invalid-argument,
  unauthenticated) == refusal audit entries == aggregate ``c.denied``;
- every answer == aggregate ``c.requests`` == usage events (each call records one, in the same
  batch as its aggregates); ``unavailable`` answers == ``c.unavailable``;
- every admitted call took one unit of its rate limit (fewer units than admissions would be a
  free pass; more only when the store failed after an increment);
- 0 internal answers, 0 internal events, 0 transport failures, ``c.unauthorizedFull`` == 0.

With ``faults=True`` (a run in which Firestore was stopped) a record may be lost *only* if the
function logged it ("recording failed; the record follows", with its requestId): such records
are added back before comparing, so the books must still balance exactly.
"""

from __future__ import annotations

import csv
import json
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ENRICH = "enrichCVWithExternalData"
ENRICHED = {"success", "partial", "failed"}
REFUSALS = {
    "PERMISSION_DENIED": "denied",
    "RESOURCE_EXHAUSTED": "rate_limited",
    "NOT_FOUND": "not_found",
    "INVALID_ARGUMENT": "invalid",
    "UNAUTHENTICATED": "unauthenticated",
}
REFUSAL_AUDITS = {
    "unauthorized_access",
    "rate_limit_exceeded",
    "invalid_request",
    "unauthenticated",
}
LOST_MESSAGE = "recording failed; the record follows"


@dataclass
class Client:
    """What the callers were answered (from the Locust rows)."""

    kinds: Counter[str] = field(default_factory=Counter)
    ok_ids: set[str] = field(default_factory=set)

    @property
    def answered(self) -> int:
        """Answers of the callable protocol (transport failures and non-callable HTTP excluded)."""
        return sum(
            n for k, n in self.kinds.items() if k != "TRANSPORT" and not k.startswith("HTTP")
        )

    @property
    def refusals(self) -> int:
        """Refusals of every kind."""
        return sum(self.kinds[k] for k in REFUSALS)


@dataclass
class Server:
    """What the service recorded."""

    events: Counter[str] = field(default_factory=Counter)
    """Usage events of the enrichment by outcome."""
    event_ids: set[str] = field(default_factory=set)
    enriched_ids: set[str] = field(default_factory=set)
    audits: Counter[str] = field(default_factory=Counter)
    agg: dict[str, Counter[str]] = field(default_factory=dict)
    """Summed ``c`` counters of the stored documents per ``granularity``: ``raw`` (the calls'
    shards), ``m``/``h``/``d`` (what the roll-up folded)."""
    read: dict[str, Counter[str]] = field(default_factory=dict)
    """Summed ``c`` counters per granularity as the readers see them."""
    rate_units: int = 0
    """Units taken from the enrichment rate limit (summed window counters, refunds applied)."""


@dataclass
class Lost:
    """Records the function logged as lost (the store failed while recording)."""

    by_outcome: Counter[str] = field(default_factory=Counter)
    ids: set[str] = field(default_factory=set)


def read_rows(path: Path) -> Client:
    """The client's answers from the Locust rows CSV."""
    client = Client()
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            client.kinds[row["status"]] += 1
            if row["status"] == "OK" and row["requestId"]:
                client.ok_ids.add(row["requestId"])
    return client


def read_lost(log_lines: Iterable[str], already: set[str]) -> Lost:
    """Records logged as lost whose event is not in the store (a commit that timed out can still
    have been applied once the store came back: ``already`` holds the recorded requestIds)."""
    lost = Lost()
    for line in log_lines:
        if LOST_MESSAGE not in line:
            continue
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        rid = entry.get("requestId")
        if entry.get("fn") == ENRICH and rid and rid not in already and rid not in lost.ids:
            lost.ids.add(rid)
            lost.by_outcome[str(entry.get("outcome"))] += 1
    return lost


def _sum_c(docs: Iterable[Mapping[str, Any]]) -> dict[str, Counter[str]]:
    out: dict[str, Counter[str]] = {}
    for d in docs:
        c = out.setdefault(str(d.get("granularity")), Counter())
        for k, v in (d.get("c") or {}).items():
            if isinstance(v, int | float):
                c[k] += int(v)
    return out


def read_server(client: Any) -> Server:
    """Read the records from Firestore (``client``: a ``google.cloud.firestore.Client``)."""
    server = Server()
    events = client.collection_group("events").select(["fn", "outcome", "requestId"])
    for snap in events.stream():
        d = snap.to_dict() or {}
        if d.get("fn") != ENRICH:
            continue
        server.events[str(d.get("outcome"))] += 1
        rid = d.get("requestId")
        if rid:
            server.event_ids.add(rid)
            if d.get("outcome") in ENRICHED:
                server.enriched_ids.add(rid)
    audits = client.collection("external_data_security_audit").select(["type", "fn"])
    for snap in audits.stream():
        d = snap.to_dict() or {}
        if d.get("fn") == ENRICH:
            server.audits[str(d.get("type"))] += 1
    for snap in client.collection("rate_limits").select(["count"]).stream():
        if "_enrich_" in snap.id:
            server.rate_units += int((snap.to_dict() or {}).get("count") or 0)
    metrics = client.collection("external_data_metrics").select(["granularity", "c"])
    server.agg = _sum_c(s.to_dict() or {} for s in metrics.stream())
    server.read = read_as_readers(client)
    return server


def read_as_readers(client: Any) -> dict[str, Counter[str]]:
    """The ``c`` counters of all time per granularity, through the product's own reader."""
    from datetime import UTC, datetime

    from analytics.metrics import read_buckets, total
    from stores.firestore import FirestoreStore

    store = FirestoreStore(client, deadline_s=60.0)
    ever = (datetime(2000, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC))
    return {
        g: _sum_c([{"granularity": g, **total(read_buckets(store, g, *ever))}])[g] for g in "mhd"
    }


def compare(client: Client, server: Server, lost: Lost | None = None) -> list[str]:
    """Every difference, as a sentence; empty when the books balance."""
    lost = lost or Lost()
    problems: list[str] = []

    def same(what: str, **values: int) -> None:
        if len(set(values.values())) > 1:
            shown = ", ".join(f"{k} {v}" for k, v in values.items())
            problems.append(f"{what} differ: {shown}")

    m = server.agg.get("raw", Counter())
    lost_enriched = sum(n for o, n in lost.by_outcome.items() if o in ENRICHED)
    events_enriched = sum(n for o, n in server.events.items() if o in ENRICHED)
    same(
        "admitted enrichments",
        answers=client.kinds["OK"],
        events=events_enriched + lost_enriched,
        aggregates=m["previews"] + m["fullRequests"] + lost_enriched,
        audit_granted=server.audits["access_granted"] + lost_enriched,
    )
    missing = client.ok_ids - server.enriched_ids - lost.ids
    if missing:
        problems.append(
            f"{len(missing)} admitted answers have no usage event, e.g. {sorted(missing)[:3]}"
        )
    lost_refusals = sum(n for o, n in lost.by_outcome.items() if o in REFUSALS.values())
    same(
        "refusals",
        answers=client.refusals,
        audit=sum(server.audits[t] for t in REFUSAL_AUDITS) + lost_refusals,
        aggregates=m["denied"] + lost_refusals,
    )
    total_lost = sum(lost.by_outcome.values())
    same(
        "answers and records",
        answers=client.answered,
        aggregate_requests=m["requests"] + total_lost,
        events=sum(server.events.values()) + total_lost,
    )
    same(
        "unavailable answers",
        answers=client.kinds["UNAVAILABLE"],
        aggregates=m["unavailable"] + lost.by_outcome["unavailable"],
    )
    _rate_units(client, server, lost, problems)
    _must_be_zero(client, server, m, problems)
    return problems


def _must_be_zero(client: Client, server: Server, m: Counter[str], problems: list[str]) -> None:
    """Readers see what the calls wrote at every granularity; nothing internal, unanswered or
    leaked."""
    for g, c in server.read.items():
        differ = sorted(k for k in set(c) | set(m) if c[k] != m[k])
        if differ:
            shown = ", ".join(f"{k} {c[k]} vs {m[k]}" for k in differ)
            problems.append(f"{g} aggregates as read differ from the raw shards: {shown}")
    if client.kinds["INTERNAL"] or server.events["internal"]:
        problems.append(
            f"internal: {client.kinds['INTERNAL']} answers, {server.events['internal']} events"
        )
    transport = sum(n for k, n in client.kinds.items() if k.startswith("TRANSPORT"))
    if transport:
        problems.append(f"{transport} calls got no answer (transport)")
    if m["unauthorizedFull"]:
        problems.append(
            f"unauthorizedFull = {m['unauthorizedFull']} (a free user got a full answer)"
        )


def _rate_units(client: Client, server: Server, lost: Lost, problems: list[str]) -> None:
    """Every admitted call took a unit of its rate limit (an admission without one is a free
    pass). Only when the store failed may there be more units than admissions: an increment
    applied for a call then answered ``unavailable``."""
    admitted = client.kinds["OK"]
    if server.rate_units < admitted:
        problems.append(
            f"free passes: {admitted} admitted answers, {server.rate_units} rate-limit units taken"
        )
    elif server.rate_units > admitted and not lost.by_outcome:
        problems.append(
            f"{server.rate_units} rate-limit units taken for {admitted} admitted answers"
        )


def summary(client: Client, server: Server, lost: Lost) -> dict[str, Any]:
    """The figures compared, for the run's summary."""
    m = server.agg.get("raw", Counter())
    return {
        "answers": dict(client.kinds),
        "events": dict(server.events),
        "audit": dict(server.audits),
        "requests folded by the roll-up (minute, hour, day documents)": {
            g: server.agg.get(g, Counter())["requests"] for g in "mhd"
        },
        "aggregates (raw minute shards)": {
            k: m[k]
            for k in ("requests", "previews", "fullRequests", "denied", "unavailable", "errors")
        },
        "records logged as lost": dict(lost.by_outcome),
        "rate-limit units taken (every admission takes one)": server.rate_units,
    }
