"""The health answer (``externalDataHealth``) over an in-memory store: reachable with the
config's version and phase, unreachable as 503, nothing else in the body."""

from __future__ import annotations

from stores.base import Write
from stores.memory import MemoryStore
from stores.schema import CONFIG_PATH
from usecases.health import check, respond

KEYS = {"ok", "store", "configVersion", "phase"}


def test_a_reachable_store_answers_200_with_version_and_phase() -> None:
    store = MemoryStore()
    store.commit([Write(CONFIG_PATH, {"phase": "beta", "rolloutPercentage": 1, "version": 7})])
    a = respond(store, "GET")
    assert a.status == 200
    assert a.body == {"ok": True, "store": "reachable", "configVersion": 7, "phase": "beta"}


def test_no_config_yet_is_version_0_phase_off() -> None:
    a = check(MemoryStore())
    assert a.status == 200 and a.body["configVersion"] == 0 and a.body["phase"] == "off"


def test_an_unparsable_config_is_still_a_reachable_store() -> None:
    store = MemoryStore()
    store.commit([Write(CONFIG_PATH, {"phase": "sideways", "version": 3})])
    a = check(store)
    assert a.status == 200 and a.body["phase"] == "invalid" and a.body["configVersion"] == 3


def test_an_unreachable_store_answers_503() -> None:
    store = MemoryStore()
    store.fail = True
    a = respond(store, "GET")
    assert a.status == 503
    assert a.body == {"ok": False, "store": "unreachable", "configVersion": None, "phase": None}


def test_only_get_and_head_are_answered_and_nothing_else_is_said() -> None:
    store = MemoryStore()
    store.commit([Write(CONFIG_PATH, {"phase": "full", "version": 2, "messages": {}})])
    assert respond(store, "POST").status == 405
    assert respond(store, "head").status == 200
    assert set(respond(store, "GET").body) == KEYS
