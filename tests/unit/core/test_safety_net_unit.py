"""Contract 2.1 and 3 at unit level, on the in-memory store: idempotent retries, shadow mode,
the capped cohort, switched-off sources, bounded answers, and a result write that fails alone."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from common.errors import InvalidArgument, PermissionDenied, ResourceExhausted
from common.settings import load_settings
from stores.base import Write
from stores.errors import StoreError
from stores.memory import MemoryStore
from tests.support.aggregates import counter
from tests.support.doubles import StaticEngine, seed_user, set_config
from usecases import enrich
from usecases.app import App
from usecases.context import Caller


def _metric(store: MemoryStore, name: str) -> int:
    return counter(store, f"c.{name}")


def test_simultaneous_retries_with_one_key_run_once_and_share_the_answer(
    svc: App, store: MemoryStore, engine: StaticEngine
) -> None:
    seed_user(store, "pat", premium=True)
    set_config(store)
    engine.delay_s = 0.05
    request = {"cvId": "cv-pat", "idempotencyKey": "key-12345678"}
    answers: list[dict[str, Any]] = []
    lock = threading.Lock()

    def one() -> None:
        out = enrich.run(svc, Caller("pat"), request)
        with lock:
            answers.append(out)

    threads = [threading.Thread(target=one) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(answers) == 20 and len(engine.calls) == 1
    assert len({a["requestId"] for a in answers}) == 1
    assert store.docs[next(p for p in store.docs if p.startswith("rate_limits/"))]["count"] == 1
    assert _metric(store, "requests") == 1  # the replays are not new calls
    with pytest.raises(InvalidArgument) as err:
        enrich.run(svc, Caller("pat"), {**request, "mode": "preview"})
    assert err.value.field == "idempotencyKey"


def test_a_refused_call_releases_its_key_so_a_retry_runs(
    svc: App, store: MemoryStore, engine: StaticEngine
) -> None:
    seed_user(store, "alice")
    set_config(store)
    for i in range(3):
        enrich.run(svc, Caller("alice"), {"cvId": "cv-alice", "mode": "preview", "name": f"n{i}"})
    request = {"cvId": "cv-alice", "mode": "preview", "idempotencyKey": "key-abcdefgh"}
    with pytest.raises(ResourceExhausted):
        enrich.run(svc, Caller("alice"), request)
    with pytest.raises(ResourceExhausted):  # run again (not replayed): still over the limit
        enrich.run(svc, Caller("alice"), request)
    assert len(engine.calls) == 3


def test_shadow_mode_serves_everyone_and_counts_what_the_gate_would_do(
    svc: App, store: MemoryStore
) -> None:
    seed_user(store, "alice")
    set_config(store, shadow=True)
    full = enrich.run(svc, Caller("alice"), {"cvId": "cv-alice"})
    preview = enrich.run(svc, Caller("alice"), {"cvId": "cv-alice", "mode": "preview"})
    assert full["access"] == "full" and preview["access"] == "full"
    assert "locked" not in preview["enrichedData"]
    assert _metric(store, "wouldRefuse") == 1 and _metric(store, "wouldPreview") == 1
    assert _metric(store, "gateShown") == 0 and _metric(store, "unauthorizedFull") == 0
    set_config(store, shadow=False, version=2)


def test_the_cohort_cap_is_exact_under_concurrency(
    store: MemoryStore, engine: StaticEngine
) -> None:
    from common.settings import load_settings
    from tests.support.clock import FakeClock

    app = App(load_settings({}), store, engine, now=FakeClock(), rng=lambda n: 0)
    set_config(store, phase="beta", rolloutPercentage=100, fallbackEnabled=True, maxCohortUsers=3)
    users = [f"u{i}" for i in range(12)]
    for uid in users:
        seed_user(store, uid)
    outcomes: dict[str, str] = {}
    lock = threading.Lock()

    def one(uid: str) -> None:
        try:
            enrich.run(app, Caller(uid), {"cvId": f"cv-{uid}"})
            result = "served"
        except PermissionDenied:
            result = "gated"
        with lock:
            outcomes[uid] = result

    threads = [threading.Thread(target=one, args=(uid,)) for uid in users]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes.values()).count("gated") == 3
    again = {uid: outcomes[uid] for uid in users}
    for uid in users:  # seats hold for the phase
        one(uid)
    assert outcomes == again


def test_a_switched_off_source_is_skipped_as_disabled_and_not_run(
    svc: App, store: MemoryStore, engine: StaticEngine
) -> None:
    seed_user(store, "pat", premium=True)
    set_config(store, sources={"github": {"enabled": False}})
    out = enrich.run(svc, Caller("pat"), {"cvId": "cv-pat", "sources": ["github", "linkedin"]})
    (gh,) = [s for s in out["sources"] if s["source"] == "github"]
    assert gh["status"] == "skipped" and gh["error"]["code"] == "disabled"
    assert gh["durationMs"] == 0 and engine.calls[-1].sources == ("linkedin",)


def test_every_requested_source_switched_off_still_answers_the_whole_shape(
    svc: App, store: MemoryStore, engine: StaticEngine
) -> None:
    seed_user(store, "pat", premium=True)
    set_config(store, sources={"github": {"enabled": False}})
    out = enrich.run(svc, Caller("pat"), {"cvId": "cv-pat", "sources": ["github"]})
    assert out["status"] == "failed" and not engine.calls
    assert out["enrichedData"] == {"skills": [], "projects": []}
    assert [(s["source"], s["status"]) for s in out["sources"]] == [("github", "skipped")]


def test_answers_are_bounded_and_say_truncated(
    svc: App, store: MemoryStore, engine: StaticEngine
) -> None:
    seed_user(store, "pat", premium=True)
    set_config(store)
    engine.data = {
        "skills": [{"name": f"s{i}"} for i in range(300)],
        "linkedin": {"summary": "x" * 9000, "positions": [{"t": i} for i in range(150)]},
    }
    out = enrich.run(svc, Caller("pat"), {"cvId": "cv-pat"})
    data = out["enrichedData"]
    assert out["truncated"] is True and len(data["skills"]) == 200
    assert len(data["linkedin"]["summary"]) == 4000 and len(data["linkedin"]["positions"]) == 100


def test_a_failed_result_write_keeps_the_records_and_says_so(svc: App, store: MemoryStore) -> None:
    seed_user(store, "pat", premium=True)
    set_config(store)
    real = store.commit

    def no_results(writes: Any) -> None:
        if any(isinstance(w, Write) and "/externalData/" in w.path for w in writes):
            raise StoreError("result write failed")
        real(writes)

    store.commit = no_results  # type: ignore[method-assign]
    out = enrich.run(svc, Caller("pat"), {"cvId": "cv-pat"})
    store.commit = real  # type: ignore[method-assign]
    assert "notSaved" in out["messages"] and out["status"] == "success"
    assert _metric(store, "requests") == 1
    assert any(p.startswith("external_data_security_audit/") for p in store.docs)
    assert not any("/externalData/" in p for p in store.docs)


def test_waiting_retries_back_off_and_do_not_starve_the_first_call() -> None:
    """19 retries waiting 2 s for the first call read its record about ten times each, not
    every 50 ms (forty times): they would starve the call they wait for, and each read is
    billed."""

    class Reads(MemoryStore):
        def __init__(self) -> None:
            super().__init__()
            self.idem_reads = 0
            self.count_lock = threading.Lock()

        def get_many(self, paths: Any, fields: Any = None) -> Any:
            if any(p.startswith("external_data_idempotency/") for p in paths):
                with self.count_lock:
                    self.idem_reads += 1
            return super().get_many(paths, fields)

    store = Reads()
    engine = StaticEngine()
    engine.delay_s = 2.0
    app = App(load_settings({}), store, engine, rng=lambda n: 0)
    seed_user(store, "pat", premium=True)
    set_config(store)
    request = {"cvId": "cv-pat", "idempotencyKey": "key-backoff-1"}
    threads = [
        threading.Thread(target=enrich.run, args=(app, Caller("pat"), request)) for _ in range(20)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(engine.calls) == 1
    assert store.idem_reads <= 20 * 12, store.idem_reads


@pytest.mark.parametrize(
    "retry",
    [
        {"mode": "full"},
        {"sources": ["web", "website", "linkedin", "github", "github"]},
        {"github": None, "name": None, "linkedin": None},
        {"options": {"timeoutMs": 10000.0, "forceRefresh": False}},
    ],
    ids=["default-spelled-out", "sources-reordered-repeated", "nulls", "options-defaults"],
)
def test_a_retry_that_spells_the_same_request_differently_gets_the_first_answer(
    svc: App, store: MemoryStore, engine: StaticEngine, retry: dict[str, Any]
) -> None:
    # Contract 2.1: "the same request" is what the request means once validated, not its bytes.
    seed_user(store, "pat", premium=True)
    set_config(store)
    request = {"cvId": "cv-pat", "idempotencyKey": "key-spelling-1"}
    first = enrich.run(svc, Caller("pat"), request)
    again = enrich.run(svc, Caller("pat"), {**request, **retry})
    assert again["requestId"] == first["requestId"] and len(engine.calls) == 1
    with pytest.raises(InvalidArgument) as err:
        enrich.run(svc, Caller("pat"), {**request, "options": {"timeoutMs": 12000}})
    assert err.value.field == "idempotencyKey"


def test_a_call_beside_a_users_undecided_first_call_is_gated_not_free(
    svc: App, store: MemoryStore
) -> None:
    # Contract 3: in the cohort, free + full is permission-denied. A second call made while the
    # user's first call was still drawing their seat was served as outside: one free full
    # enrichment. One whose first call died before writing its seat was outside forever.
    from stores.schema import cohort_member_path
    from usecases.cohort import phase_key

    seed_user(store, "mal")
    set_config(store, phase="beta", rolloutPercentage=100, fallbackEnabled=True, maxCohortUsers=5)
    cfg = svc.config.current()
    member = cohort_member_path(phase_key(cfg), "mal")
    store.docs[member] = {"calls": 1}  # a first call that never wrote its decision
    with pytest.raises(PermissionDenied):  # a seat was left: in the cohort, gated
        enrich.run(svc, Caller("mal"), {"cvId": "cv-mal", "mode": "full"})
    assert store.docs[member]["seat"] is True  # decided now, not left undecided for the phase
    assert enrich.run(svc, Caller("mal"), {"cvId": "cv-mal", "mode": "preview"})["access"] == (
        "preview"
    )
