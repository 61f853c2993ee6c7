"""Contract 2.1: "the answer and the stored result stay under 900 KB". Only the data was bounded
to 900,000 bytes; the envelope (sources, usage, messages, requestId...) came on top, so data of
899,963 bytes made a callable answer of 900,641 bytes and a stored document over 900,000, with
no ``truncated`` flag. Now the data gets what the rest of the answer and of the document leave.

The answer is measured as the callable protocol sends it (``flask.jsonify(result=answer)`` with
the served app's ``AnswerJSON``), the document as Firestore counts it and as JSON."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

import flask
import pytest

from enrichment.bounds import MAX_RESULT_BYTES, STRING_CAP, compact_json, json_size
from stores.base import document_size
from stores.errors import StoreError
from stores.memory import MemoryStore
from stores.schema import result_path
from tests.support.doubles import StaticEngine, seed_user, set_config
from usecases import answer, enrich
from usecases.answer import NOT_SAVED
from usecases.app import App
from usecases.context import Caller
from usecases.encoded import AnswerJSON

RESULT = "cvs/cv-pat/externalData/latest"


def _data_of(size: int) -> dict[str, Any]:
    """A LinkedIn section of 100 projects of 3,500 characters and 100 positions, and the merged
    projects (within every list and string cap), whose compact JSON is exactly ``size`` bytes."""
    projects = [{"title": f"p{i}", "description": "d" * 3500} for i in range(100)]
    positions = [{"title": f"t{i}", "description": "e" * 3430} for i in range(100)]
    data = {"linkedin": {"projects": projects, "positions": positions}, "projects": projects}
    short = size - json_size(data)
    for item in reversed(positions):  # make up the difference in the last descriptions
        room = STRING_CAP - len(item["description"])
        grow = min(room, short) if short > 0 else max(short, -len(item["description"]))
        item["description"] = "e" * (len(item["description"]) + grow)
        short -= grow
        if short == 0:
            break
    assert json_size(data) == size
    return data


class _Store(MemoryStore):
    """Refuses the result document when ``refuse`` is set (the answer then says notSaved)."""

    refuse = False

    def commit(self, writes: Any) -> None:
        if self.refuse and any(w.path == RESULT for w in writes):
            raise StoreError("refused")
        super().commit(writes)


@pytest.fixture
def store() -> _Store:
    store = _Store()
    seed_user(store, "pat", premium=True)
    set_config(store)
    return store


def _app(store: MemoryStore, data: dict[str, Any]) -> App:
    from common.settings import load_settings
    from tests.support.clock import FakeClock

    engine = StaticEngine()
    engine.data = data
    return App(load_settings({}), store, engine, now=FakeClock(), rng=lambda n: 0)


def _sent(answer: dict[str, Any]) -> bytes:
    """The bytes the callable protocol sends for ``answer``."""
    app = flask.Flask(__name__)
    app.json = AnswerJSON(app)
    with app.app_context():
        return flask.jsonify(result=answer).get_data()


@pytest.mark.parametrize("size", [899_963, MAX_RESULT_BYTES])
def test_the_whole_answer_and_the_stored_document_stay_under_900_kb(
    store: _Store, size: int
) -> None:
    out = enrich.run(_app(store, _data_of(size)), Caller("pat"), {"cvId": "cv-pat"})
    sent = _sent(out)
    assert len(sent) < MAX_RESULT_BYTES, len(sent)
    assert json.loads(sent)["result"]["enrichedData"] == out["enrichedData"]
    assert out["truncated"] is True  # the data was cut to make room
    doc = store.docs[RESULT]
    assert document_size(RESULT, doc) < MAX_RESULT_BYTES
    rest = {k: v for k, v in doc.items() if k != "enrichedDataJson"}
    assert len(doc["enrichedDataJson"]) + len(compact_json(rest)) < MAX_RESULT_BYTES
    assert json.loads(doc["enrichedDataJson"]) == out["enrichedData"]


def test_the_unsaved_answer_stays_under_900_kb_too(store: _Store) -> None:
    store.refuse = True
    out = enrich.run(_app(store, _data_of(899_963)), Caller("pat"), {"cvId": "cv-pat"})
    assert out["messages"]["notSaved"] == NOT_SAVED
    assert len(_sent(out)) < MAX_RESULT_BYTES
    assert out["truncated"] is True


def test_data_that_fits_with_its_envelope_is_not_cut(store: _Store) -> None:
    out = enrich.run(_app(store, _data_of(850_000)), Caller("pat"), {"cvId": "cv-pat"})
    assert "truncated" not in out
    assert len(out["enrichedData"]["linkedin"]["projects"]) == 100
    assert RESULT in store.docs


def test_a_document_is_measured_as_firestore_counts_it() -> None:
    """Firestore's own worked example ("Storage size calculations"): 147 bytes."""
    doc = {"type": "Personal", "done": False, "priority": 1, "description": "Learn Cloud Firestore"}
    assert document_size("users/jeff/tasks/my_task_id", doc) == 147


@pytest.mark.parametrize("over", [-2, -1, 0, 1])
def test_the_result_document_is_kept_exactly_when_the_whole_document_fits(over: int) -> None:
    # ``_result_write`` adds the data's JSON (ASCII) to the size measured without it; the
    # document is stored exactly when measuring it whole says it fits.
    path = result_path("cv-pat")
    doc = {
        "requestId": "r1",
        "userId": "pat",
        "access": "full",
        "status": "success",
        "enrichedDataJson": "",
        "sources": [{"source": "github", "status": "success", "items": 3, "cached": False}],
    }
    without = document_size(path, doc)
    data = compact_json({"k": "v" * (MAX_RESULT_BYTES - without - len('{"k":""}') + over)})
    whole = {**doc, "enrichedDataJson": data}
    assert document_size(path, whole) == MAX_RESULT_BYTES + over
    req = SimpleNamespace(cv_id="cv-pat")
    ctx = SimpleNamespace(request_id="r1")
    kept = answer._result_write(ctx, req, whole, without)  # type: ignore[arg-type]
    assert (kept is not None) == (document_size(path, whole) < MAX_RESULT_BYTES)
