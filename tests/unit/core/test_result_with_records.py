"""Issue 11: the result document rides in the call's record batch (one commit per call), and
issue 8's guarantee still holds: a result that cannot be stored never takes the audit, usage
and metrics records with it, and the answer then says ``notSaved``. An ``unavailable`` refusal
is recorded with a brief store deadline."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import pytest

from common.errors import Unavailable
from common.settings import load_settings
from stores.base import Write
from stores.errors import StoreError, StoreUnanswered
from stores.memory import MemoryStore
from stores.schema import usage_event_path
from tests.support.clock import FakeClock
from tests.support.doubles import StaticEngine, seed_user, set_config
from usecases import answer, enrich, records
from usecases.answer import NOT_SAVED
from usecases.app import App
from usecases.context import Caller

RESULT = "cvs/cv-pat/externalData/latest"


class Batches(MemoryStore):
    """The in-memory store, keeping every commit's paths; ``refuse`` fails the batches that
    hold the result document with that error (nothing applied)."""

    def __init__(self) -> None:
        super().__init__()
        self.batches: list[list[str]] = []
        self.refuse: StoreError | None = None
        self.hurried_with: list[float] = []

    def commit(self, writes: Sequence[Write]) -> None:
        self.batches.append([w.path for w in writes])
        if self.refuse is not None and any(w.path == RESULT for w in writes):
            raise self.refuse
        super().commit(writes)

    def hurried(self, deadline_s: float) -> MemoryStore:
        self.hurried_with.append(deadline_s)
        return self


@pytest.fixture
def batches() -> Batches:
    store = Batches()
    seed_user(store, "pat", premium=True)
    set_config(store)
    return store


@pytest.fixture
def app(batches: Batches, clock: FakeClock) -> App:
    return App(load_settings({}), batches, StaticEngine(), now=clock, rng=lambda n: 0)


def _events(store: MemoryStore) -> int:
    """Usage events of pat (one per admitted call)."""
    return sum(p.startswith(usage_event_path("pat", "")) for p in store.docs)


def _audits(store: MemoryStore) -> int:
    return sum(p.startswith("external_data_security_audit/") for p in store.docs)


def test_a_served_call_commits_its_records_and_its_result_in_one_batch(
    app: App, batches: Batches
) -> None:
    enrich.run(app, Caller("pat"), {"cvId": "cv-pat"})  # warms the instance's caches
    batches.batches.clear()
    out = enrich.run(app, Caller("pat"), {"cvId": "cv-pat"})
    assert "notSaved" not in out["messages"]
    assert len(batches.batches) == 1, batches.batches
    (batch,) = batches.batches
    assert RESULT in batch and any(p.startswith("external_data_security_audit/") for p in batch)
    assert batches.docs[RESULT]["requestId"] == out["requestId"]
    assert _events(batches) == 2


def test_a_refused_result_is_dropped_and_the_records_are_committed_alone(
    app: App, batches: Batches, caplog: pytest.LogCaptureFixture
) -> None:
    batches.refuse = StoreError("the store refused the document")
    with caplog.at_level(logging.ERROR):
        out = enrich.run(app, Caller("pat"), {"cvId": "cv-pat"})
    assert out["messages"]["notSaved"] == NOT_SAVED and out["status"] == "success"
    assert RESULT not in batches.docs
    assert _events(batches) == 1 and _audits(batches) == 1
    assert [RESULT in b for b in batches.batches] == [True, False]
    assert batches.hurried_with == [records.BRIEF_DEADLINE_S]  # the second try waits briefly
    messages = [r.getMessage() for r in caplog.records]
    assert (
        "result not stored" in messages and "recording failed; the record follows" not in messages
    )


def test_a_batch_that_may_have_landed_is_not_written_twice_and_the_record_is_logged(
    app: App, batches: Batches, caplog: pytest.LogCaptureFixture
) -> None:
    batches.refuse = StoreUnanswered("deadline exceeded")
    with caplog.at_level(logging.ERROR):
        out = enrich.run(app, Caller("pat"), {"cvId": "cv-pat"})
    assert out["messages"]["notSaved"] == NOT_SAVED
    assert len(batches.batches) == 1  # its increments are not applied a second time
    lost = [r for r in caplog.records if r.getMessage() == "recording failed; the record follows"]
    assert len(lost) == 1
    assert getattr(lost[0], "json_fields", {})["requestId"] == out["requestId"]


def test_a_result_too_large_is_not_attached_and_the_records_land(
    app: App, batches: Batches, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(answer, "STORED_MAX_BYTES", 100)
    out = enrich.run(app, Caller("pat"), {"cvId": "cv-pat"})
    assert out["messages"]["notSaved"] == NOT_SAVED
    assert RESULT not in batches.docs and _events(batches) == 1
    assert not any(RESULT in b for b in batches.batches)


def test_the_answer_is_the_same_with_the_result_attached_or_stored_alone(
    app: App, batches: Batches
) -> None:
    """The body is built once; only ``messages.notSaved`` depends on the write."""
    saved = enrich.run(app, Caller("pat"), {"cvId": "cv-pat"})
    batches.refuse = StoreError("refused")
    unsaved = enrich.run(app, Caller("pat"), {"cvId": "cv-pat"})
    assert list(saved) == list(unsaved)  # same keys, same order
    assert {k: v for k, v in unsaved["messages"].items() if k != "notSaved"} == saved["messages"]


def test_an_idempotent_call_stores_its_result_before_keeping_its_answer(
    app: App, batches: Batches
) -> None:
    batches.refuse = StoreError("refused")
    request = {"cvId": "cv-pat", "idempotencyKey": "key-12345678"}
    first = enrich.run(app, Caller("pat"), request)
    replay = enrich.run(app, Caller("pat"), request)
    assert first["messages"]["notSaved"] == NOT_SAVED
    assert replay == first  # the kept answer says notSaved too
    assert _events(batches) == 1 and _audits(batches) == 1


def test_an_unavailable_refusal_is_recorded_with_the_brief_deadline(
    app: App, batches: Batches
) -> None:
    real = batches.increment

    def down(path: str, field_name: str, by: int, extra: Any) -> int:
        raise StoreError("no answer")

    batches.increment = down  # type: ignore[method-assign]
    with pytest.raises(Unavailable):
        enrich.run(app, Caller("pat"), {"cvId": "cv-pat"})
    batches.increment = real  # type: ignore[method-assign]
    assert batches.hurried_with == [records.BRIEF_DEADLINE_S]
    audits = [d for p, d in batches.docs.items() if p.startswith("external_data_security_audit/")]
    assert [a.get("type") for a in audits] == ["service_unavailable"]


def test_other_records_use_the_store_as_it_is(app: App, batches: Batches) -> None:
    seed_user(batches, "sam")  # free, asking for full inside the gate: permission-denied
    with pytest.raises(Exception, match="Premium"):
        enrich.run(app, Caller("sam"), {"cvId": "cv-sam"})
    enrich.run(app, Caller("pat"), {"cvId": "cv-pat"})
    assert batches.hurried_with == []
