"""``scripts/support.py``'s command line over the in-memory store: bad values are usage errors
(exit 2) before anything is written."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import pytest

from common.settings import load_settings
from scripts import support
from stores.memory import MemoryStore
from tests.support.clock import FakeClock
from tests.support.doubles import StaticEngine, seed_user, set_config
from usecases.app import App

AT = ["--at", "2026-11-26T10:00:00Z"]
PAID = {"tier": "premium", "status": "active", "stripeId": "sub_paid"}


class Racy(MemoryStore):
    """Runs ``hook`` once, just after the next read of ``path``: another writer lands between
    a command's read and its write."""

    def __init__(self) -> None:
        super().__init__()
        self.path = ""
        self.hook: Callable[[], object] | None = None

    def get_many(self, paths: Sequence[str]) -> dict[str, dict[str, Any] | None]:
        got = super().get_many(paths)
        if self.path in paths and self.hook is not None:
            hook, self.hook = self.hook, None
            hook()
        return got


@pytest.fixture
def racy(engine: StaticEngine, clock: FakeClock, monkeypatch: pytest.MonkeyPatch) -> Racy:
    store = Racy()
    app = App(load_settings({}), store, engine, now=clock, rng=lambda n: 0)
    monkeypatch.setattr(support, "make_app", lambda args: app)
    set_config(store)
    return store


def changes(store: MemoryStore) -> list[dict[str, Any]]:
    return [
        d
        for p, d in store.docs.items()
        if p.startswith("external_data_security_audit/") and d.get("type") == support.CHANGE
    ]


@pytest.mark.parametrize(
    "argv",
    [
        ["grant", "u1", "--until", "9999-12-31", "--reason", "x"],
        ["grant", "u1", "--until", "2027-01-01", "--reason", "   "],
        ["revoke", "u1", "--reason", ""],
        ["reset-quota", "u1", "--reason", ""],
        ["groups", "add", "u1", "beta-testers", "--reason", "   "],
        ["groups", "remove", "u1", "beta-testers", "--reason", "\t"],
        ["export", "u1", "--reason", " "],
        ["delete", "u1", "--reason", ""],
    ],
)
def test_a_bad_value_or_a_blank_reason_is_a_usage_error(
    racy: Racy, argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    seed_user(racy, "u1", groups=["beta-testers"])
    before = dict(racy.docs)
    with pytest.raises(SystemExit) as done:
        support.main([*argv, *AT])
    assert done.value.code == 2 and "error:" in capsys.readouterr().err
    assert racy.docs == before
