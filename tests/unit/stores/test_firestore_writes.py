"""``stores.firestore_writes`` builds exactly the ``Write`` message the client library's
``set`` builds (``pbs_for_set_with_merge`` / ``pbs_for_set_no_merge``), for the documents the
services write: compared message to message, the recorder's real batches included."""

from __future__ import annotations

from collections import OrderedDict
from datetime import UTC, datetime, timedelta, timezone
from enum import IntEnum
from types import MappingProxyType
from typing import Any

import pytest
from google.api_core.datetime_helpers import DatetimeWithNanoseconds
from google.cloud import firestore
from google.cloud.firestore_v1 import _helpers

from common.settings import load_settings
from common.vocab import Access, Fn, Outcome, SourceStatus, Tier
from recording.recorder import CallRecord, Recorder, SourceOutcome, Switches
from stores.base import Inc, Write
from stores.firestore import FirestoreStore, _to_firestore, make_client
from stores.firestore_writes import Unsupported, write_pb

NAME = "projects/p/databases/(default)/documents/c/d"
T0 = datetime(2026, 11, 26, 12, 0, 1, 234567, tzinfo=UTC)


class Level(IntEnum):
    HIGH = 3


def _client_pbs(w: Write, name: str = NAME) -> list[Any]:
    """The raw messages the client's ``set`` makes of ``w``."""
    data = _to_firestore(w.data)
    if w.merge:
        made = _helpers.pbs_for_set_with_merge(name, data, merge=True)
    else:
        made = _helpers.pbs_for_set_no_merge(name, data)
    return [type(pb).pb(pb) for pb in made]


def _client_pb(w: Write) -> Any:
    (pb,) = _client_pbs(w)
    return pb


DOCS: list[dict[str, Any]] = [
    {},
    {"a": 1, "b": "x", "c": None, "d": True, "e": 1.5, "f": T0},
    {"n": Inc(1), "m": Inc(2.5)},
    {"c": {"requests": Inc(1), "fn": {"enrich": Inc(1)}}, "top": "t", "at": T0},
    {"c": {}, "d": {"e": {}}, "x": {"only": Inc(1)}},
    {"list": [1, "a", None, {"k": [T0, 2.0]}], "tuple": (1, 2), "empty": []},
    {"odd key": 1, "a.b": {"`q`": 2, "9lives": Inc(3)}, "ünï": "ç", "_ok": {"A1": 1}},
    {"enum": Fn.ENRICH, "int_enum": Level.HIGH, "big": 2**62, "neg": -(2**40)},
    {"when": datetime(1969, 12, 31, 23, 59, 59, 1, tzinfo=UTC), "naive": datetime(2026, 1, 1)},
    # Types the fast path does not take by identity: they go by the general rules.
    {
        "od": OrderedDict(a=1, b={"c": Inc(1)}),
        "proxy": MappingProxyType({"p": {"q": "r"}}),
        "nested": {"od": OrderedDict(x=False), "e": Fn.ENRICH, "f": 0.0, "n": None},
        "flags": [True, False, 0, 1],
    },
]


@pytest.mark.parametrize("merge", [True, False])
@pytest.mark.parametrize("data", DOCS)
def test_the_message_is_the_clients(data: dict[str, Any], merge: bool) -> None:
    w = Write("c/d", data, merge=merge)
    assert write_pb(NAME, w) == _client_pb(w)


def _rec(**fields: Any) -> CallRecord:
    base: dict[str, Any] = {"at": T0, "duration_ms": 12.5, "uid": "u1", "request_id": "r1"}
    return CallRecord(**{"fn": Fn.ENRICH, **base, **fields})


def _records() -> list[CallRecord]:
    sources = (
        SourceOutcome("github", SourceStatus.SUCCESS, 120.0, False),
        SourceOutcome("website", SourceStatus.FAILED, 80.0, False, "upstream"),
    )
    return [
        _rec(
            outcome=Outcome.SUCCESS,
            tier=Tier.PREMIUM,
            access=Access.FULL,
            gated=True,
            cv_id="cv1",
            sources=sources,
            ip="1.2.3.4",
            user_agent="ua",
        ),
        _rec(outcome=Outcome.DENIED, tier=Tier.FREE, gated=True, gate_shown=True),
        _rec(outcome=Outcome.UNAVAILABLE, reason="store unavailable"),
        _rec(outcome=Outcome.RATE_LIMITED, tier=Tier.FREE, reason="limit 3/h"),
        _rec(fn=Fn.TRACK, outcome=Outcome.SUCCESS, event="upgrade_clicked"),
    ]


@pytest.mark.parametrize("rec", _records(), ids=lambda r: f"{r.fn.value}-{r.outcome.value}")
def test_the_recorders_batches_encode_as_the_client_would(rec: CallRecord) -> None:
    writes = Recorder(load_settings({}), rng=lambda n: 0).writes(rec, Switches())
    assert len(writes) >= 2
    for w in writes:
        assert write_pb(NAME, w) == _client_pb(w), w.path


def test_a_result_document_encodes_as_the_client_would() -> None:
    doc = {
        "requestId": "r1",
        "userId": "u1",
        "at": T0,
        "access": "full",
        "status": "partial",
        "enrichedDataJson": '{"skills":[]}',
        "sources": [
            {"source": "github", "status": "success", "items": 3, "durationMs": 12, "cached": True},
            {
                "source": "web",
                "status": "failed",
                "items": 0,
                "durationMs": 5,
                "cached": False,
                "error": {"code": "upstream", "message": "x"},
            },
        ],
        "expireAt": T0 + timedelta(days=30),
    }
    w = Write("cvs/cv1/externalData/latest", doc, merge=False)
    assert write_pb(NAME, w) == _client_pb(w)


@pytest.mark.parametrize(
    "value",
    [
        b"bytes",
        {1, 2},
        firestore.SERVER_TIMESTAMP,
        DatetimeWithNanoseconds(2026, 1, 1, tzinfo=UTC),  # type: ignore[no-untyped-call]
        [Inc(1)],
        object(),
    ],
    ids=["bytes", "set", "sentinel", "nanos", "inc-in-list", "object"],
)
def test_values_it_does_not_encode_are_left_to_the_client(value: Any) -> None:
    with pytest.raises(Unsupported):
        write_pb(NAME, Write("c/d", {"v": value}))


@pytest.mark.parametrize(
    "when",
    [
        datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
        datetime(1900, 1, 1, tzinfo=UTC),
        datetime(1970, 1, 1, tzinfo=UTC),
        datetime(2026, 11, 27, 1, 2, 3, 456789, tzinfo=timezone(timedelta(hours=-7))),
        datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
        datetime(2026, 3, 29, 1, 30),
    ],
)
def test_timestamps_encode_as_the_client_would(when: datetime) -> None:
    w = Write("c/d", {"at": when}, merge=False)
    assert write_pb(NAME, w) == _client_pb(w)


def test_a_request_mixes_its_own_encoding_and_the_clients(monkeypatch: pytest.MonkeyPatch) -> None:
    """``FirestoreStore`` builds each write in place in the request; a write this module does
    not encode (left partly built) is removed and the client's messages take its place, in
    order."""
    monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", "127.0.0.1:9")  # nothing is sent
    store = FirestoreStore(make_client("p"))
    writes = [
        Write("c/a", {"n": Inc(1), "at": T0}, merge=True),
        Write("c/b", {"ok": 1, "late": firestore.SERVER_TIMESTAMP}, merge=False),
        Write("c/c", {"k": "v"}, merge=False),
    ]
    request = store._request(writes)
    expected = [
        pb
        for w in writes
        for pb in _client_pbs(w, f"projects/p/databases/(default)/documents/{w.path}")
    ]
    assert list(request.writes) == expected
    assert request.database == "projects/p/databases/(default)"
