"""A warm call answered from cache entries the instance holds is given the very same payload
objects as the call before it. Their merged data (``Engine.from_cache``) and its shaping for
each access (``shaping.shape``) are kept by those objects' identities (``common.memo``) and
handed out again, read-only: the answers are exactly those of a call that merges and shapes
afresh, and nothing kept is changed by the calls that use it."""

from __future__ import annotations

import copy
import gc
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

import pytest

from common.memo import IdentityMemo
from common.settings import load_settings
from enrichment.cache import StoreCacheStore
from enrichment.engine import Engine
from enrichment.held import HeldCacheStore, instance_cache
from enrichment.sources.linkedin import LinkedInSource
from stores.memory import MemoryStore
from tests.support.clock import FakeClock
from tests.support.doubles import seed_user, set_config
from usecases import enrich, shaping
from usecases.app import App
from usecases.context import Caller

EXPORT = {
    "Skills.csv": "Name\n" + "".join(f"Skill {i}\n" for i in range(12)),
    "Profile.csv": "First Name,Last Name,Headline\nAda,Lovelace,Engineer\n",
}
FULL: dict[str, Any] = {"cvId": "cv-pat", "sources": ["linkedin"], "linkedin": {"export": EXPORT}}
PREVIEW: dict[str, Any] = {
    "cvId": "cv-fay",
    "sources": ["linkedin"],
    "linkedin": {"export": EXPORT},
}
PREVIEW_MODE: dict[str, Any] = {**PREVIEW, "mode": "preview"}
LIMITS = {"EXTERNAL_DATA_RATE_LIMIT_FREE_HOURLY": "100"}
VARYING = ("requestId", "durationMs", "usage")
"""What differs between two calls' answers whatever was kept."""


def _app(store: MemoryStore, clock: FakeClock, *, keep: bool) -> App:
    settings = load_settings(LIMITS)
    engine = Engine(
        settings.enrichment,
        HeldCacheStore(StoreCacheStore(store), timedelta(seconds=60), clock),  # as main's
        now=clock,
        sources={"linkedin": LinkedInSource()},
    )
    app = App(settings, store, engine, now=clock, rng=lambda n: 0)
    if not keep:  # nothing kept: every call merges and shapes afresh
        app.shaped = shaping.Kept(0)
        engine._merged = IdentityMemo(0)
    return app


def _store() -> MemoryStore:
    store = MemoryStore()
    seed_user(store, "pat", premium=True)
    seed_user(store, "fay")
    set_config(store)
    return store


def _same(a: Mapping[str, Any], b: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in a.items() if k not in VARYING and v != b.get(k)}


def test_warm_hits_are_shaped_once_per_access_and_answer_as_a_fresh_shaping(
    clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    kept, afresh = _app(_store(), clock, keep=True), _app(_store(), clock, keep=False)
    shaped: list[Any] = []
    real = shaping.bounded

    def counted(data: Any, access: Any, budget: int) -> Any:
        shaped.append(access)
        return real(data, access, budget)

    monkeypatch.setattr(shaping, "bounded", counted)
    for app in (kept, afresh):  # a miss, a hit the instance checks usable, then warm hits
        for _ in range(3):
            for req in (FULL, PREVIEW_MODE):
                enrich.run(app, Caller(req["cvId"].removeprefix("cv-")), req)
    shaped.clear()
    answers = {}
    for name, app in (("kept", kept), ("afresh", afresh)):
        answers[name] = [
            enrich.run(app, Caller(req["cvId"].removeprefix("cv-")), req)
            for req in (FULL, PREVIEW_MODE, FULL, PREVIEW_MODE, FULL)
        ]
    # Five warm calls each: the kept side shaped nothing (both accesses were kept by the
    # calls before), the other shaped every call, early and not again after admission.
    assert len(shaped) == 5
    for a, b in zip(answers["kept"], answers["afresh"], strict=True):
        assert a["sources"][0]["cached"] is True
        assert _same(a, b) == {}
        assert a["enrichedData"] == b["enrichedData"]
    assert answers["kept"][0]["access"] == "full" and answers["kept"][1]["access"] == "preview"
    assert answers["kept"][1]["enrichedData"] != answers["kept"][0]["enrichedData"]


def test_what_is_kept_is_never_changed_by_the_calls_that_use_it(clock: FakeClock) -> None:
    app = _app(_store(), clock, keep=True)
    for _ in range(2):
        enrich.run(app, Caller("pat"), FULL)
        enrich.run(app, Caller("fay"), PREVIEW_MODE)
    engine = app.engine
    assert isinstance(engine, Engine)
    merged = list(engine._merged._items.values())
    shapes = list(app.shaped._items.values())
    assert len(merged) == 1 and len(shapes) == 2
    before = copy.deepcopy((merged, shapes))
    for _ in range(3):
        enrich.run(app, Caller("pat"), FULL)
        enrich.run(app, Caller("fay"), PREVIEW_MODE)
    assert (merged, shapes) == before
    assert list(engine._merged._items.values()) == merged


def test_entries_read_again_each_call_are_merged_afresh(clock: FakeClock) -> None:
    # With no hold, every call's entries are new objects: nothing kept is handed out.
    store = _store()
    settings = load_settings({**LIMITS, "EXTERNAL_DATA_CACHE_HOLD_SECONDS": "0"})
    engine = Engine(
        settings.enrichment,
        instance_cache(store, settings.enrichment),
        now=clock,
        sources={"linkedin": LinkedInSource()},
    )
    app = App(settings, store, engine, now=clock, rng=lambda n: 0)
    datas = []
    real = engine._result

    def noted(*a: Any, **kw: Any) -> Any:
        out = real(*a, **kw)
        datas.append(out.data)
        return out

    engine._result = noted  # type: ignore[method-assign]
    for _ in range(4):
        enrich.run(app, Caller("pat"), FULL)
    assert len(datas) == 4
    assert len({id(d) for d in datas[1:]}) == 3  # no two calls shared merged data
    assert datas[1] == datas[2] == datas[3]


class Box:
    """An object that is equal to any other ``Box``: identity, not equality, decides."""

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Box)

    def __hash__(self) -> int:
        return 0


def test_the_memo_goes_by_identity_tag_and_weight() -> None:
    memo: IdentityMemo[str] = IdentityMemo(100)
    a, b = Box(), Box()
    memo.put((a,), "full", "A", 10)
    assert memo.get((a,), "full") == "A"
    assert memo.get((b,), "full") is None  # equal, not the same object
    assert memo.get((a,), "preview") is None
    memo.put((b,), "full", "B", 26)  # over a quarter of the budget: not kept
    assert memo.get((b,), "full") is None and len(memo) == 1
    others = [Box() for _ in range(12)]
    for i, o in enumerate(others):
        memo.put((o,), None, str(i), 10)
    assert memo.weight <= 100 and len(memo) == 10
    assert memo.get((a,), "full") is None  # the least recently used went first
    assert memo.get((others[-1],), None) == "11"


def test_a_kept_value_keeps_its_objects_so_their_identities_are_not_reused() -> None:
    memo: IdentityMemo[str] = IdentityMemo(1000)
    memo.put((Box(),), None, "gone?", 1)
    gc.collect()
    found = [memo.get((Box(),), None) for _ in range(1000)]  # new objects, maybe at old addresses
    assert found == [None] * 1000
