"""Security detection over the audit (``detectSuspiciousActivity``, every 5 minutes).

Four rules, each counted in fixed windows aligned to the epoch (a 10-minute window is
``10:00-10:10``, ``10:10-10:20``, ...; an hour window is a clock hour):

- ``rate_limit_burst``: ``rate_limit_exceeded`` entries of all callers together in one window
  (a scripted client, or a client bug retrying in a loop). Subject ``all``.
- ``shared_ip``: one hashed IP (``ipHash``) seen with many distinct users in one window
  (account farming, credential stuffing). Subject the hash.
- ``cv_probing``: one user's ``unauthorized_access`` entries that are *not* the premium gate
  (``reason != "premium_required"``): CVs that are missing or someone else's, another user's
  stats, admin analytics. Subject the uid.
- ``repeated_refusals``: one user's refusals of any kind (unauthorized, rate limited, invalid
  request) in one window. Subject the uid.

A rule fires when its count reaches its threshold (``>=``); thresholds live in ``Thresholds``.
Each finding is recorded once per (rule, subject, window): its audit entry has a deterministic
id, the keyed hash (``Recorder.hash``, HMAC under ``EXTERNAL_DATA_HASH_SALT``) of the rule,
subject and window, so nobody without the key can tell from an id whose finding it is, and is
created with ``compare_and_set(path, 0, ...)`` (create-if-absent), together with the
aggregate increment ``sec.suspiciousActivity``, in one atomic write. A later run that finds the
same subject in the same window (the window is still open, or it overlapped the previous run's
scan) loses that race and records nothing. Fixed windows can split a burst across a boundary;
the next window catches it if it goes on.

A user is one subject whether their entries carry the uid or, after an erasure (contract 2.5),
its keyed hash: the rules count them together and the finding's id is the same before and after,
so an erasure neither splits a count nor records a finding twice. A finding names the raw uid
while an entry still does, else the hash (``uidHashed: true``).

Each new finding is logged at WARNING with ``kind`` and ``event`` ``suspicious_activity`` (the
log-based metric ``external_data_suspicious_activity`` and its alert count these lines).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from common.logs import log
from stores.base import DocumentStore, Inc, Write
from stores.errors import ConfigConflict
from stores.schema import AUDIT, audit_path

FN = "detectSuspiciousActivity"
"""The scheduled function (the findings' ``fn``)."""
SUSPICIOUS = "suspicious_activity"
"""The findings' audit type, log ``kind`` and ``event``."""
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
REFUSALS = ("unauthorized_access", "rate_limit_exceeded", "invalid_request")
"""Audit types that are refusals of a signed-in caller."""
GATE_REASON = "premium_required"
"""An ``unauthorized_access`` with this reason is the premium gate, not probing."""
SCAN_LIMIT = 20_000
"""Audit entries read per run at most (a run that hits it says so in its log line)."""

AggregateWrites = Callable[[datetime, Mapping[str, Any]], list[Write]]
"""``recording.recorder.Recorder.aggregate_writes``: counters into the minute/hour/day buckets."""
KeyedHash = Callable[[str], str | None]
"""``recording.recorder.Recorder.hash``: HMAC-SHA256 under the salt (None for an empty value)."""


@dataclass(frozen=True)
class Thresholds:
    """Every rule's threshold and window, in one place. A rule fires at ``>= threshold``."""

    rate_limit_burst: int = 50
    """``rate_limit_exceeded`` entries, all callers, per ``rate_limit_burst_window``."""
    rate_limit_burst_window: timedelta = timedelta(minutes=10)
    shared_ip_users: int = 5
    """Distinct users behind one hashed IP per ``shared_ip_window``."""
    shared_ip_window: timedelta = timedelta(hours=1)
    cv_probing: int = 5
    """Non-gate ``unauthorized_access`` entries of one user per ``cv_probing_window``."""
    cv_probing_window: timedelta = timedelta(hours=1)
    repeated_refusals: int = 20
    """Refusals (``REFUSALS``) of one user per ``repeated_refusals_window``."""
    repeated_refusals_window: timedelta = timedelta(hours=1)
    lookback: timedelta = timedelta(minutes=15)
    """Windows that were still open this long ago are evaluated again (a missed run or two,
    and entries written after the previous run)."""


DEFAULT = Thresholds()


@dataclass(frozen=True)
class Finding:
    """One subject that passed one rule's threshold in one window."""

    rule: str
    subject: str
    """``all``, a hashed IP or a uid (see ``subject_kind``)."""
    subject_kind: str
    """``all``, ``ipHash`` or ``uid``."""
    count: int
    threshold: int
    window_start: datetime
    window_end: datetime
    subject_ref: str | None = None
    """A uid subject as counted: its keyed hash (``find`` with ``keyed``); None: ``subject``."""
    subject_hashed: bool = False
    """A uid subject whose entries all carry the keyed hash (the user was erased)."""

    def entry_id(self, keyed: KeyedHash) -> str:
        """The audit entry's id: the same for the same rule, subject and window, and the keyed
        hash of them (a bare digest of a uid could be recomputed by anyone who knows it)."""
        subject = self.subject_ref or self.subject
        key = f"{self.rule}|{self.subject_kind}|{subject}|{self.window_start.isoformat()}"
        return f"{SUSPICIOUS}_{keyed(key)}"


@dataclass
class DetectionReport:
    """What one run saw and did."""

    scanned: int = 0
    """Audit entries read."""
    truncated: bool = False
    """``SCAN_LIMIT`` was reached: some entries were not looked at."""
    findings: list[Finding] = field(default_factory=list)
    """Everything over a threshold in the scanned windows (new and already recorded)."""
    recorded: list[Finding] = field(default_factory=list)
    """Findings recorded by this run (the others were recorded before)."""


def window_of(at: datetime, size: timedelta) -> datetime:
    """The start of the epoch-aligned window of length ``size`` holding ``at``."""
    return at - (at - EPOCH) % size


def _when(doc: Mapping[str, Any]) -> datetime | None:
    at = doc.get("at")
    return at.astimezone(UTC) if isinstance(at, datetime) else None


def _counted(
    rule: str,
    kind: str,
    threshold: int,
    size: timedelta,
    rows: Iterable[tuple[datetime, str, str]],
) -> list[Finding]:
    """Findings of one rule: ``rows`` are (at, subject, item); the count is the number of
    distinct items per (window, subject)."""
    items: dict[tuple[datetime, str], set[str]] = defaultdict(set)
    for at, subject, item in rows:
        items[(window_of(at, size), subject)].add(item)
    return [
        Finding(rule, subject, kind, len(seen), threshold, start, start + size)
        for (start, subject), seen in sorted(items.items())
        if len(seen) >= threshold
    ]


@dataclass(frozen=True)
class _Entry:
    """The fields of an audit entry the rules look at."""

    n: str
    """Its position in the scan (an entry counts once)."""
    at: datetime
    type: str
    uid: str | None
    """The user as counted: the keyed hash of the uid (the uid itself without ``keyed``)."""
    ip: str | None
    reason: str
    raw_uid: str | None
    """The uid as the entry names it, unless the entry carries its hash only (erased)."""


def _entries(docs: Sequence[Mapping[str, Any]], keyed: KeyedHash | None) -> list[_Entry]:
    out = []
    for i, d in enumerate(docs):
        at = _when(d)
        if at is None or d.get("type") == SUSPICIOUS:
            continue
        uid, ip = d.get("uid"), d.get("ipHash")
        uid = uid if isinstance(uid, str) and uid else None
        raw = None if d.get("uidHashed") is True else uid
        ref = (keyed(raw) if keyed else raw) if raw else uid
        out.append(
            _Entry(
                str(i),
                at,
                str(d.get("type")),
                ref,
                ip if isinstance(ip, str) and ip else None,
                str(d.get("reason") or ""),
                raw,
            )
        )
    return out


def _named(f: Finding, raw: Mapping[str, str]) -> Finding:
    """A uid finding as recorded: counted by ``subject_ref``, naming the raw uid if seen."""
    if f.subject_kind != "uid":
        return f
    uid = raw.get(f.subject)
    return replace(f, subject=uid or f.subject, subject_ref=f.subject, subject_hashed=not uid)


def find(
    docs: Sequence[Mapping[str, Any]], th: Thresholds = DEFAULT, keyed: KeyedHash | None = None
) -> list[Finding]:
    """Pure: every rule over the audit entries (any order; ``suspicious_activity`` ignored).
    With ``keyed``, a user counts as one subject whether entries carry the uid or its hash."""
    es = _entries(docs, keyed)
    raw = {e.uid: e.raw_uid for e in es if e.uid and e.raw_uid}
    limited = [(e.at, "all", e.n) for e in es if e.type == "rate_limit_exceeded"]
    shared = [(e.at, e.ip, e.uid) for e in es if e.ip and e.uid]
    probing = [
        (e.at, e.uid, e.n)
        for e in es
        if e.uid and e.type == "unauthorized_access" and e.reason != GATE_REASON
    ]
    refused = [(e.at, e.uid, e.n) for e in es if e.uid and e.type in REFUSALS]
    found = [
        *_counted(
            "rate_limit_burst", "all", th.rate_limit_burst, th.rate_limit_burst_window, limited
        ),
        *_counted("shared_ip", "ipHash", th.shared_ip_users, th.shared_ip_window, shared),
        *_counted("cv_probing", "uid", th.cv_probing, th.cv_probing_window, probing),
        *_counted(
            "repeated_refusals", "uid", th.repeated_refusals, th.repeated_refusals_window, refused
        ),
    ]
    return [_named(f, raw) for f in found]


def scan_start(now: datetime, th: Thresholds = DEFAULT) -> datetime:
    """Where a run's scan starts: the start of the earliest window, of any rule, that was still
    open ``lookback`` ago."""
    sizes = (
        th.rate_limit_burst_window,
        th.shared_ip_window,
        th.cv_probing_window,
        th.repeated_refusals_window,
    )
    return min(window_of(now - th.lookback, s) for s in sizes)


def finding_doc(f: Finding, now: datetime, ttl: timedelta) -> dict[str, Any]:
    """The audit entry of a finding (``version`` 1: it is created once, never replaced)."""
    doc: dict[str, Any] = {
        "type": SUSPICIOUS,
        "at": now,
        "fn": FN,
        "rule": f.rule,
        "reason": f"{f.rule}: {f.count} >= {f.threshold} in {_span(f)}",
        "subjectKind": f.subject_kind,
        "subject": f.subject,
        "count": f.count,
        "threshold": f.threshold,
        "window": {"start": f.window_start, "end": f.window_end},
        "expireAt": now + ttl,
        "version": 1,
    }
    if f.subject_kind == "uid":
        doc["uid"] = f.subject
        if f.subject_hashed:
            doc["uidHashed"] = True
    if f.subject_kind == "ipHash":
        doc["ipHash"] = f.subject
    return doc


def _span(f: Finding) -> str:
    minutes = int((f.window_end - f.window_start).total_seconds() // 60)
    return f"{minutes} min from {f.window_start:%Y-%m-%d %H:%M} UTC"


def record(
    store: DocumentStore,
    f: Finding,
    now: datetime,
    aggregate: AggregateWrites,
    ttl: timedelta,
    keyed: KeyedHash,
) -> bool:
    """Create the finding's audit entry with its aggregate count, once; False if it exists."""
    counters = {"sec": {"suspiciousActivity": Inc(1)}}
    entry_id = f.entry_id(keyed)
    try:
        store.compare_and_set(
            audit_path(entry_id), 0, finding_doc(f, now, ttl), aggregate(now, counters)
        )
    except ConfigConflict:
        return False
    log(
        "WARNING",
        f"suspicious activity: {f.rule}",
        labels={"function": FN, "outcome": "finding"},
        kind=SUSPICIOUS,
        event=SUSPICIOUS,
        rule=f.rule,
        subjectKind=f.subject_kind,
        subject=f.subject,
        count=f.count,
        threshold=f.threshold,
        window={"start": f.window_start, "end": f.window_end},
        auditId=entry_id,
    )
    return True


def detect(
    store: DocumentStore,
    now: datetime,
    aggregate: AggregateWrites,
    keyed: KeyedHash,
    *,
    thresholds: Thresholds = DEFAULT,
    ttl: timedelta = timedelta(days=400),
) -> DetectionReport:
    """One run: scan the audit since ``scan_start``, record each new finding once."""
    start = scan_start(now, thresholds)
    rows = store.query(
        AUDIT,
        [("at", ">=", start), ("at", "<=", now)],
        order_by="at",
        descending=True,  # over the limit, the newest entries count
        limit=SCAN_LIMIT,
    )
    entries = [doc for _, doc in rows]
    report = DetectionReport(scanned=len(entries), truncated=len(entries) >= SCAN_LIMIT)
    report.findings = find(entries, thresholds, keyed)
    for f in report.findings:
        if record(store, f, now, aggregate, ttl, keyed):
            report.recorded.append(f)
    log(
        "WARNING" if report.truncated else "INFO",
        "security detection run",
        labels={"function": FN},
        scanned=report.scanned,
        truncated=report.truncated,
        findings=len(report.findings),
        recorded=len(report.recorded),
        since=start,
    )
    return report
