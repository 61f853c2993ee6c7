"""The security detector over an in-memory store: each rule fires at its threshold and stays
quiet just below, a finding is recorded once per subject and window (audit entry, aggregate
count, WARNING line), and the audit entries are the ones the real recorder writes."""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from analytics.metrics import num, read_buckets, total
from common.settings import load_settings
from common.vocab import Fn, Outcome, Tier
from observability.detector import (
    DEFAULT,
    SUSPICIOUS,
    Finding,
    Thresholds,
    detect,
    find,
    scan_start,
    window_of,
)
from recording.recorder import CallRecord, Recorder, Switches
from stores.base import Write
from stores.memory import MemoryStore
from stores.schema import AUDIT

T0 = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)
NOW = T0 + timedelta(minutes=7)
"""Runs happen at 10:07: the 10-minute window 10:00-10:10 and the hour 10:00-11:00 are open."""

REASONS = {
    Outcome.NOT_FOUND: "CV missing or not the caller's",
    Outcome.DENIED: "premium_required",
    Outcome.RATE_LIMITED: "limit 3/h",
    Outcome.INVALID: "cvId: required",
}


def refuse(
    store: MemoryStore,
    recorder: Recorder,
    outcome: Outcome,
    uid: str,
    *,
    ip: str = "203.0.113.7",
    at: datetime = T0,
    reason: str | None = None,
) -> None:
    """One refused enrichment, recorded exactly as ``usecases.hooks.record`` records it."""
    rec = CallRecord(
        fn=Fn.ENRICH,
        at=at,
        outcome=outcome,
        duration_ms=3.0,
        uid=uid,
        tier=Tier.FREE,
        reason=reason if reason is not None else REASONS[outcome],
        request_id=f"req-{uid}-{at.timestamp()}",
        ip=ip,
    )
    store.commit(recorder.writes(rec, Switches()))


def run(store: MemoryStore, recorder: Recorder, **kw: Any) -> list[Finding]:
    return detect(store, NOW, recorder.aggregate_writes, recorder.hash, **kw).recorded


def rules(found: list[Finding]) -> list[str]:
    return sorted(f.rule for f in found)


def findings_in_audit(store: MemoryStore) -> list[dict[str, Any]]:
    return [d for _, d in store.query(AUDIT, [("type", "==", SUSPICIOUS)])]


# -- each rule at its threshold and just below ---------------------------------------------------


@pytest.mark.parametrize("n", [DEFAULT.rate_limit_burst - 1, DEFAULT.rate_limit_burst])
def test_rate_limit_burst_fires_at_its_threshold(
    store: MemoryStore, recorder: Recorder, n: int
) -> None:
    for i in range(n):  # spread over many users: no one user passes its own rules
        refuse(store, recorder, Outcome.RATE_LIMITED, f"u{i % 25}", ip=f"ip{i % 25}", at=T0)
    found = run(store, recorder)
    if n < DEFAULT.rate_limit_burst:
        assert found == []
    else:
        assert rules(found) == ["rate_limit_burst"]
        assert (found[0].subject, found[0].count) == ("all", n)
        assert found[0].window_start == T0 and found[0].window_end == T0 + timedelta(minutes=10)


@pytest.mark.parametrize("users", [DEFAULT.shared_ip_users - 1, DEFAULT.shared_ip_users])
def test_one_hashed_ip_across_many_users_fires_at_its_threshold(
    store: MemoryStore, recorder: Recorder, users: int
) -> None:
    for i in range(users):
        refuse(store, recorder, Outcome.DENIED, f"user{i}", ip="198.51.100.1")
    for _ in range(10):  # one user many times from one IP: one user, not many
        refuse(store, recorder, Outcome.DENIED, "user0", ip="198.51.100.2")
    found = run(store, recorder)
    if users < DEFAULT.shared_ip_users:
        assert found == []
    else:
        assert rules(found) == ["shared_ip"]
        f = found[0]
        assert f.count == users and f.subject_kind == "ipHash"
        assert f.subject == recorder.hash("198.51.100.1") and "198.51.100.1" not in f.subject


@pytest.mark.parametrize("n", [DEFAULT.cv_probing - 1, DEFAULT.cv_probing])
def test_cv_id_probing_fires_at_its_threshold(
    store: MemoryStore, recorder: Recorder, n: int
) -> None:
    for i in range(n):
        refuse(store, recorder, Outcome.NOT_FOUND, "prober", at=T0 + timedelta(minutes=i))
    found = run(store, recorder)
    if n < DEFAULT.cv_probing:
        assert found == []
    else:
        assert rules(found) == ["cv_probing"]
        assert (found[0].subject, found[0].subject_kind, found[0].count) == ("prober", "uid", n)


def test_the_premium_gate_is_not_probing(store: MemoryStore, recorder: Recorder) -> None:
    for i in range(DEFAULT.cv_probing * 2):
        refuse(store, recorder, Outcome.DENIED, "free-user", at=T0 + timedelta(minutes=i % 7))
    assert run(store, recorder) == []


@pytest.mark.parametrize("n", [DEFAULT.repeated_refusals - 1, DEFAULT.repeated_refusals])
def test_repeated_refusals_of_one_user_fire_at_their_threshold(
    store: MemoryStore, recorder: Recorder, n: int
) -> None:
    for i in range(n):
        outcome = Outcome.RATE_LIMITED if i % 2 else Outcome.INVALID
        refuse(store, recorder, outcome, "noisy", at=T0 + timedelta(seconds=10 * i))
    found = run(store, recorder)
    if n < DEFAULT.repeated_refusals:
        assert found == []
    else:
        assert rules(found) == ["repeated_refusals"]
        assert (found[0].subject, found[0].count) == ("noisy", n)


def test_thresholds_come_from_one_place(store: MemoryStore, recorder: Recorder) -> None:
    strict = replace(DEFAULT, cv_probing=2)
    for i in range(2):
        refuse(store, recorder, Outcome.NOT_FOUND, "prober", at=T0 + timedelta(minutes=i))
    assert run(store, recorder) == []
    assert rules(run(store, recorder, thresholds=strict)) == ["cv_probing"]


# -- windows -------------------------------------------------------------------------------------


def test_windows_are_aligned_and_a_burst_split_by_a_boundary_is_two_windows() -> None:
    assert window_of(T0 + timedelta(minutes=13), timedelta(minutes=10)) == T0 + timedelta(
        minutes=10
    )
    assert window_of(T0 + timedelta(minutes=59), timedelta(hours=1)) == T0
    entries = [
        {"type": "unauthorized_access", "uid": "p", "reason": "x", "at": T0 - timedelta(minutes=k)}
        for k in (1, 2, 3)
    ] + [
        {"type": "unauthorized_access", "uid": "p", "reason": "x", "at": T0 + timedelta(minutes=k)}
        for k in (1, 2)
    ]
    assert find(entries) == []  # 3 in 09:00-10:00, 2 in 10:00-11:00: neither reaches 5


def test_a_run_looks_back_over_every_window_still_open_15_minutes_ago() -> None:
    th = Thresholds()
    assert scan_start(T0 + timedelta(minutes=7), th) == T0 - timedelta(hours=1)
    assert scan_start(T0 + timedelta(minutes=20), th) == T0


def test_entries_after_now_and_before_the_scan_are_not_read(
    store: MemoryStore, recorder: Recorder
) -> None:
    for i in range(DEFAULT.cv_probing):
        refuse(store, recorder, Outcome.NOT_FOUND, "old", at=T0 - timedelta(hours=2, minutes=i))
        refuse(store, recorder, Outcome.NOT_FOUND, "future", at=NOW + timedelta(minutes=1 + i))
    assert run(store, recorder) == []


# -- recorded once, counted, logged --------------------------------------------------------------


def test_a_finding_is_recorded_once_per_subject_and_window(
    store: MemoryStore, recorder: Recorder
) -> None:
    for i in range(DEFAULT.cv_probing):
        refuse(store, recorder, Outcome.NOT_FOUND, "prober", at=T0 + timedelta(minutes=i))
    first = run(store, recorder)
    refuse(store, recorder, Outcome.NOT_FOUND, "prober", at=T0 + timedelta(minutes=6))
    second = detect(store, NOW, recorder.aggregate_writes, recorder.hash)
    assert len(first) == 1 and second.recorded == []
    assert [f.count for f in second.findings] == [DEFAULT.cv_probing + 1]  # seen, not recorded
    entries = findings_in_audit(store)
    assert len(entries) == 1
    e = entries[0]
    assert e["rule"] == "cv_probing" and e["uid"] == "prober" and e["subjectKind"] == "uid"
    assert e["count"] == DEFAULT.cv_probing and e["threshold"] == DEFAULT.cv_probing
    assert e["window"] == {"start": T0, "end": T0 + timedelta(hours=1)}
    assert e["fn"] == "detectSuspiciousActivity" and e["expireAt"] > NOW
    day = total(read_buckets(store, "d", T0 - timedelta(days=1), T0 + timedelta(days=1)))
    assert num(day, "sec.suspiciousActivity") == 1
    minute = read_buckets(store, "m", NOW, NOW + timedelta(minutes=1))
    assert num(total(minute), "sec.suspiciousActivity") == 1


def test_the_same_subject_in_the_next_window_is_a_new_finding(
    store: MemoryStore, recorder: Recorder
) -> None:
    for i in range(DEFAULT.cv_probing):
        refuse(store, recorder, Outcome.NOT_FOUND, "prober", at=T0 + timedelta(minutes=i))
    assert len(run(store, recorder)) == 1
    later = T0 + timedelta(hours=1, minutes=7)
    for i in range(DEFAULT.cv_probing):
        refuse(store, recorder, Outcome.NOT_FOUND, "prober", at=later - timedelta(minutes=i + 1))
    again = detect(store, later, recorder.aggregate_writes, recorder.hash)
    assert [f.window_start for f in again.recorded] == [T0 + timedelta(hours=1)]
    assert len(findings_in_audit(store)) == 2


def test_findings_are_not_findings_themselves(store: MemoryStore, recorder: Recorder) -> None:
    for i in range(DEFAULT.shared_ip_users):
        refuse(store, recorder, Outcome.DENIED, f"user{i}", ip="198.51.100.9")
    assert len(run(store, recorder)) == 1
    entries = [d for _, d in store.query(AUDIT)]
    assert find(entries) == find([e for e in entries if e["type"] != SUSPICIOUS])


def test_a_new_finding_is_logged_at_warning_with_its_rule(
    store: MemoryStore, recorder: Recorder, caplog: pytest.LogCaptureFixture
) -> None:
    for i in range(DEFAULT.cv_probing):
        refuse(store, recorder, Outcome.NOT_FOUND, "prober", at=T0 + timedelta(minutes=i))
    with caplog.at_level(logging.INFO):
        run(store, recorder)
        run(store, recorder)
    lines = [r for r in caplog.records if getattr(r, "json_fields", {}).get("kind") == SUSPICIOUS]
    assert len(lines) == 1
    fields = lines[0].json_fields  # type: ignore[attr-defined]
    assert lines[0].levelno == logging.WARNING
    assert fields["rule"] == "cv_probing" and fields["event"] == SUSPICIOUS
    assert fields["count"] == DEFAULT.cv_probing
    assert lines[0].labels == {"function": "detectSuspiciousActivity", "outcome": "finding"}  # type: ignore[attr-defined]


# -- finding ids and erased users ----------------------------------------------------------------


def test_a_finding_id_is_the_keyed_hash_not_a_digest_anyone_can_recompute(
    store: MemoryStore, recorder: Recorder
) -> None:
    """Contract 2.5 keeps audit entries with the uid replaced by its salted hash: an id that is
    the bare sha256 of ``rule|uid|<uid>|window`` names the user to anyone who can guess it."""
    import hashlib

    for i in range(DEFAULT.cv_probing):
        refuse(store, recorder, Outcome.NOT_FOUND, "prober", at=T0 + timedelta(minutes=i))
    (found,) = run(store, recorder)
    (path,) = [p for p, d in store.query(AUDIT, [("type", "==", SUSPICIOUS)])]
    key = f"cv_probing|uid|prober|{T0.isoformat()}"
    keyed = recorder.hash(f"cv_probing|uid|{recorder.hash('prober')}|{T0.isoformat()}")
    assert path == f"{AUDIT}/{SUSPICIOUS}_{keyed}"
    assert hashlib.sha256(key.encode()).hexdigest()[:32] not in path
    other = Recorder(load_settings({"EXTERNAL_DATA_HASH_SALT": "another-salt"}), rng=lambda n: 0)
    assert found.entry_id(other.hash) != found.entry_id(recorder.hash)


def hash_in_audit(store: MemoryStore, uid: str, hashed: str | None) -> None:
    """What an erasure does to the user's audit entries (``usecases.data_rights``)."""
    for path, _ in store.query(AUDIT, [("uid", "==", uid)]):
        store.commit([Write(path, {"uid": hashed, "uidHashed": True})])


def test_an_erased_users_entries_count_with_their_earlier_ones_and_find_the_same_finding(
    store: MemoryStore, recorder: Recorder
) -> None:
    """After an erasure the user's entries carry the keyed hash (``uidHashed``); entries made
    since carry the uid again. They are one subject, and the finding recorded before the
    erasure is the one found after it (not recorded twice)."""
    for i in range(DEFAULT.cv_probing - 2):
        refuse(store, recorder, Outcome.NOT_FOUND, "prober", at=T0 + timedelta(minutes=i))
    hashed = recorder.hash("prober")
    hash_in_audit(store, "prober", hashed)
    for i in range(2):
        refuse(store, recorder, Outcome.NOT_FOUND, "prober", at=T0 + timedelta(minutes=5 + i))
    (found,) = run(store, recorder)
    assert found.subject == "prober" and found.count == DEFAULT.cv_probing  # named while seen
    hash_in_audit(store, "prober", hashed)
    again = detect(store, NOW, recorder.aggregate_writes, recorder.hash)
    assert again.recorded == [] and [f.subject for f in again.findings] == [hashed]
    assert again.findings[0].subject_hashed is True
    assert len(findings_in_audit(store)) == 1
