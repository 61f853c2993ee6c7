"""Data rights (contract 2.5) over the in-memory store: export answers everything stored about
the user, deletion leaves nothing of theirs but audit entries that carry the keyed hash, others'
records stay, and both are limited to 5 per user per hour. The emulator suite
(tests/emulator/test_data_rights.py) repeats the essentials through the callable protocol."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest

from common.errors import PermissionDenied, ResourceExhausted
from stores.memory import MemoryStore
from tests.support.clock import FakeClock
from tests.support.doubles import seed_user, set_config
from usecases import conversions, data_rights, enrich, track
from usecases.app import App
from usecases.context import Caller

UID, NEIGHBOUR = "alice", "alice_x"
"""``alice_x``'s rate-limit counters start with ``alice_``: they must survive her erasure."""


def strings(value: Any) -> Iterator[str]:
    """Every string in a stored value (keys too), recursively."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield str(k)
            yield from strings(v)
    elif isinstance(value, list | tuple):
        for v in value:
            yield from strings(v)


def traces(store: MemoryStore, uid: str) -> list[str]:
    """Paths that name ``uid``: as a path segment, in a rate-limit counter's id
    (``{uid}_{scope}_{window}``), or as a stored value."""
    counter = re.compile(re.escape(uid) + r"_[a-z]+_[0-9T:-]+")
    found = []
    for path, doc in store.docs.items():
        segments = path.split("/")
        in_path = any(s == uid or counter.fullmatch(s) for s in segments)
        named = uid in set(strings(doc))
        if in_path or named:
            found.append(path)
    return found


def use_everything(app: App, store: MemoryStore, clock: FakeClock, uid: str) -> None:
    """Enrichments, a refusal, funnel events, a conversion: every kind of record."""
    me = Caller(uid, ip="203.0.113.7", user_agent="test-agent")
    enrich.run(app, me, {"cvId": f"cv-{uid}", "mode": "preview", "sources": ["github"]})
    with pytest.raises(PermissionDenied):
        enrich.run(app, me, {"cvId": f"cv-{uid}", "sources": ["github"]})
    track.run(app, me, {"event": "upgrade_clicked", "cvId": f"cv-{uid}"})
    clock.advance(minutes=5)
    premium = {"subscription": {"tier": "premium", "status": "active"}}
    conversions.subscription_changed(app, uid, {}, premium, f"evt-{uid}")
    store.docs[f"users/{uid}"].update(premium)
    enrich.run(app, me, {"cvId": f"cv-{uid}", "sources": ["github"]})


@pytest.fixture
def app(svc: App, store: MemoryStore, clock: FakeClock) -> App:
    set_config(store)
    for uid in (UID, NEIGHBOUR):
        seed_user(store, uid)
        use_everything(svc, store, clock, uid)
    return svc


def test_export_answers_every_kind_of_record(app: App) -> None:
    out = data_rights.run_export(app, Caller(UID), {})
    assert out["userId"] == UID and out["generatedAt"].endswith("Z")
    assert set(out) == {
        "userId",
        "generatedAt",
        "stats",
        "events",
        "results",
        "conversions",
        "audit",
        "idempotency",
        "rateLimits",
        "cohort",
    }
    assert out["stats"]["totals"]["requests"] == 3
    kinds = [e["type"] for e in out["events"]]
    assert {"preview", "gate", "upgrade_clicked", "full"} <= set(kinds)
    assert [r["cvId"] for r in out["results"]] == [f"cv-{UID}"]
    assert len(out["conversions"]) == 1 and out["conversions"][0]["precededByFunnel"] is True
    assert {a["type"] for a in out["audit"]} >= {"access_granted", "unauthorized_access"}
    assert all(a["uid"] == UID for a in out["audit"])
    assert all(e["uid"] == UID for e in out["events"])
    json.dumps(out)  # JSON all the way down: times are ISO strings


def test_delete_leaves_only_hashed_audit_entries_and_spares_others(
    app: App, store: MemoryStore
) -> None:
    neighbour_before = sorted(traces(store, NEIGHBOUR))
    out = data_rights.run_delete(app, Caller(UID), {})
    assert out["deleted"]["external_data_usage"] == 1
    assert out["deleted"]["events"] >= 4 and out["deleted"]["conversions"] == 1
    assert out["deleted"]["externalData"] == 1 and out["deleted"]["rate_limits"] >= 2
    left = traces(store, UID)
    # Only the profile and the CV stay (the product's data, not these functions').
    assert sorted(left) == [f"cvs/cv-{UID}", f"users/{UID}"], left
    hashed = app.recorder.hash(UID)
    audit = [d for p, d in store.docs.items() if p.startswith("external_data_security_audit/")]
    mine = [d for d in audit if d.get("uid") == hashed]
    assert len(mine) == out["anonymised"]["external_data_security_audit"] + 1  # + the erasure's
    assert any(d["type"] == "data_erasure" and d["deleted"] == out["deleted"] for d in mine)
    assert sorted(traces(store, NEIGHBOUR)) == neighbour_before


def test_a_result_follows_the_user_it_was_made_for_not_the_cvs_new_owner(
    app: App, store: MemoryStore
) -> None:
    """The server moves alice's CV to her neighbour: the result stored there is still alice's
    (its ``userId``; the rules let the new owner read none of it). Export picked results by the
    CV's current owner: the neighbour's export carried alice's result, hers left it out, and her
    erasure left it behind."""
    moved = f"cvs/cv-{UID}"
    store.docs[moved]["userId"] = NEIGHBOUR
    theirs = data_rights.run_export(app, Caller(NEIGHBOUR), {})
    assert [r["cvId"] for r in theirs["results"]] == [f"cv-{NEIGHBOUR}"]
    assert UID not in set(strings(theirs["results"]))
    hers = data_rights.run_export(app, Caller(UID), {})
    assert [(r["cvId"], r["userId"]) for r in hers["results"]] == [(f"cv-{UID}", UID)]
    out = data_rights.run_delete(app, Caller(UID), {})
    assert out["deleted"]["externalData"] == 1
    assert not [p for p in store.docs if p.startswith(f"{moved}/externalData/")]
    assert any(p.startswith(f"cvs/cv-{NEIGHBOUR}/externalData/") for p in store.docs)


def test_an_erasure_hashes_the_requests_the_user_made_too(app: App, store: MemoryStore) -> None:
    """The audit entries of alice's own export and of her request (as an admin) for another
    user name her in ``by``: after her erasure they keep the keyed hash only (contract 2.5)."""
    data_rights.run_export(app, Caller(UID), {})
    data_rights.run_export(app, Caller(UID, admin=True), {"userId": NEIGHBOUR})
    data_rights.run_delete(app, Caller(UID), {})
    assert sorted(traces(store, UID)) == [f"cvs/cv-{UID}", f"users/{UID}"]
    hashed = app.recorder.hash(UID)
    exports = [
        d
        for p, d in store.docs.items()
        if p.startswith("external_data_security_audit/") and d["type"] == "data_export"
    ]
    assert sorted((d["uid"], d["by"]) for d in exports) == sorted(
        [(hashed, hashed), (NEIGHBOUR, hashed)]
    )


def test_deleting_the_user_document_runs_the_same_erasure(app: App, store: MemoryStore) -> None:
    erasure = data_rights.user_deleted(app, UID)
    assert erasure.deleted["events"] >= 4
    assert sorted(traces(store, UID)) == [f"cvs/cv-{UID}", f"users/{UID}"]
    again = data_rights.user_deleted(app, UID)  # a redelivered trigger finds nothing
    assert sum(again.deleted.values()) == 0 and again.anonymised == 0


def test_only_an_admin_may_name_another_user(app: App, store: MemoryStore) -> None:
    with pytest.raises(PermissionDenied):
        data_rights.run_export(app, Caller(NEIGHBOUR), {"userId": UID})
    with pytest.raises(PermissionDenied):
        data_rights.run_delete(app, Caller(NEIGHBOUR), {"userId": UID})
    assert f"external_data_usage/{UID}" in store.docs
    out = data_rights.run_export(app, Caller("support-agent", admin=True), {"userId": UID})
    assert out["userId"] == UID
    entry = next(
        d
        for p, d in store.docs.items()
        if p.startswith("external_data_security_audit/") and d.get("type") == "data_export"
    )
    assert entry["uid"] == UID and entry["by"] == "support-agent"


def test_five_requests_per_user_per_hour(app: App, clock: FakeClock) -> None:
    for _ in range(3):
        data_rights.run_export(app, Caller(UID), {})
    data_rights.run_delete(app, Caller(UID), {})
    data_rights.run_delete(app, Caller(UID), {})  # the erasure did not reset the limit
    with pytest.raises(ResourceExhausted) as refused:
        data_rights.run_export(app, Caller(UID), {})
    details = refused.value.details or {}
    assert details["limit"] == 5 and details["remaining"] == 0 and details["scope"] == "rights"
    assert details["tier"] == "premium"  # the caller's own tier, as in every limit's details
    data_rights.run_export(app, Caller(NEIGHBOUR), {})  # per user
    clock.advance(hours=2)
    data_rights.run_export(app, Caller(UID), {})


def test_the_rights_counter_names_nobody(app: App, store: MemoryStore) -> None:
    data_rights.run_export(app, Caller(UID), {})
    counters = [p for p in store.docs if p.startswith("rate_limits/") and "_rights_" in p]
    assert counters and not any(UID in p for p in counters)


def test_an_erasure_hashes_the_subject_of_the_detectors_findings_too(
    app: App, store: MemoryStore, clock: FakeClock
) -> None:
    """A ``suspicious_activity`` finding about a user names them in ``subject`` as well as in
    ``uid``: both become the keyed hash (contract 2.5), and the next run of the detector finds
    the same finding rather than a second one."""
    from common.errors import NotFound
    from observability.detector import DEFAULT, SUSPICIOUS, detect

    for i in range(DEFAULT.cv_probing):
        with pytest.raises(NotFound):
            enrich.run(app, Caller(UID), {"cvId": f"cv-someone-{i}"})
    run = detect(store, clock(), app.recorder.aggregate_writes, app.recorder.hash)
    assert [f.subject for f in run.recorded] == [UID]
    data_rights.run_delete(app, Caller(UID), {})
    assert sorted(traces(store, UID)) == [f"cvs/cv-{UID}", f"users/{UID}"]
    hashed = app.recorder.hash(UID)
    (finding,) = [
        d for _, d in store.query("external_data_security_audit") if d["type"] == SUSPICIOUS
    ]
    assert finding["subject"] == hashed and finding["uid"] == hashed
    again = detect(store, clock(), app.recorder.aggregate_writes, app.recorder.hash)
    assert again.recorded == [] and [f.subject for f in again.findings] == [hashed]


def test_export_answers_what_an_erasure_deletes_and_keeps(
    svc: App, store: MemoryStore, clock: FakeClock
) -> None:
    """Stored idempotent answers (whole answers, enrichment data included), rate-limit counters
    and the cohort seat are the user's records too: the export shows each document the erasure
    then deletes or keeps under the hash (contract 2.5: "everything these functions store")."""
    from stores.userdata import erasable_paths

    set_config(store, phase="beta", rolloutPercentage=100, fallbackEnabled=True, maxCohortUsers=5)
    seed_user(store, UID)
    request = {"cvId": f"cv-{UID}", "mode": "preview", "idempotencyKey": "retry-key-1"}
    first = enrich.run(svc, Caller(UID), request)
    out = data_rights.run_export(svc, Caller(UID), {})
    json.dumps(out)
    (kept,) = out["idempotency"]
    assert kept["id"] == f"{UID}_retry-key-1" and kept["state"] == "done"
    assert json.loads(kept["answer"])["requestId"] == first["requestId"]
    assert isinstance(kept["at"], str) and kept["at"].endswith("Z")
    assert all(c["id"].startswith(f"{UID}_") and c["count"] >= 1 for c in out["rateLimits"])
    (seat,) = out["cohort"]
    assert seat["seat"] is True and seat["id"] == UID and seat["phase"].startswith("beta_")
    exported = {
        name: {d["id"] for d in out[key]}
        for name, key in (
            ("rate_limits", "rateLimits"),
            ("external_data_idempotency", "idempotency"),
        )
    }
    found = erasable_paths(store, UID)
    for name, ids in exported.items():
        assert ids == {p.rpartition("/")[2] for p in found[name]} != set()
    data_rights.run_delete(svc, Caller(UID), {})
    after = data_rights.run_export(svc, Caller(UID), {})
    assert [s["id"] for s in after["cohort"]] == [svc.recorder.hash(UID)]  # kept, hashed
    assert after["idempotency"] == [] and after["cohort"][0]["seat"] is True


def test_with_the_audit_switched_off_data_rights_requests_write_no_audit_entry(
    store: MemoryStore, clock: FakeClock
) -> None:
    # Contract 5: EXTERNAL_DATA_AUDIT_ENABLED (and components.securityAudit) switch the audit
    # records off; exports, erasures and account deletions still wrote theirs.
    from common.settings import load_settings
    from tests.support.doubles import StaticEngine

    set_config(store)
    seed_user(store, "bo")
    quiet = App(load_settings({"EXTERNAL_DATA_AUDIT_ENABLED": "false"}), store, StaticEngine())
    data_rights.run_export(quiet, Caller("bo"), {})
    data_rights.run_delete(quiet, Caller("bo"), {})
    data_rights.user_deleted(quiet, "bo")
    assert not [p for p in store.docs if p.startswith("external_data_security_audit/")]
    set_config(store, components={"securityAudit": False})
    switched = App(load_settings({}), store, StaticEngine())
    data_rights.run_export(switched, Caller("bo"), {})
    assert not [p for p in store.docs if p.startswith("external_data_security_audit/")]
