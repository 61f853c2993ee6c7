"""A cold instance's first calls arrive together on its request threads: the engine (one cache
memo, one TLS context) is built once, whoever asks first."""

from __future__ import annotations

import threading
import time

from common.settings import load_settings
from stores.memory import MemoryStore
from tests.support.doubles import StaticEngine
from usecases.app import App


def test_simultaneous_first_calls_build_one_engine() -> None:
    built: list[StaticEngine] = []

    def factory() -> StaticEngine:
        time.sleep(0.05)  # building takes a while (the TLS context: ~20 ms)
        engine = StaticEngine()
        built.append(engine)
        return engine

    app = App(load_settings({}), MemoryStore(), engine_factory=factory)
    start = threading.Barrier(8)
    got: list[object] = []

    def first_call() -> None:
        start.wait(5)
        got.append(app.engine)

    threads = [threading.Thread(target=first_call) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(built) == 1 and len(got) == 8 and all(e is built[0] for e in got)
