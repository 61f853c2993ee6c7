"""``scripts/support.py``'s command line over the in-memory store: bad values are usage errors
(exit 2) before anything is written, and its changes of ``users/{uid}`` are conditional writes,
so a change racing billing or another operator never loses the other's write."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import pytest

from common.settings import load_settings
from scripts import support
from stores.base import Fields, Write
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

    def get_many(
        self, paths: Sequence[str], fields: Fields | None = None
    ) -> dict[str, dict[str, Any] | None]:
        got = super().get_many(paths, fields)
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


def test_two_operators_adding_groups_at_once_keep_both(racy: Racy) -> None:
    seed_user(racy, "u1", groups=["internal-team"])
    racy.path = "users/u1"
    other = ["groups", "add", "u1", "beta-testers", "--reason", "op B", "--as", "B", *AT]
    racy.hook = lambda: support.main(other)
    argv = ["groups", "add", "u1", "trusted-advisors", "--reason", "op A", "--as", "A", *AT]
    assert support.main(argv) == support.OK
    assert racy.docs["users/u1"]["rolloutGroups"] == [
        "beta-testers",
        "internal-team",
        "trusted-advisors",
    ]
    assert sorted(f"{e['by']}:{e['group']}" for e in changes(racy)) == [
        "A:trusted-advisors",
        "B:beta-testers",
    ]


def test_a_grant_racing_billing_never_replaces_the_paid_subscription(
    racy: Racy, capsys: pytest.CaptureFixture[str]
) -> None:
    racy.docs["users/u2"] = {"name": "y", "subscription": {"tier": "free", "status": "canceled"}}
    racy.path = "users/u2"
    racy.hook = lambda: racy.commit([Write("users/u2", {"subscription": PAID})])
    argv = ["grant", "u2", "--until", "2027-01-01", "--reason", "ticket 9", *AT]
    assert support.main(argv) == support.REFUSED
    assert "paid subscription" in capsys.readouterr().err
    assert racy.docs["users/u2"]["subscription"] == PAID
    assert changes(racy) == []


def test_a_revoke_racing_billing_keeps_what_billing_wrote(racy: Racy) -> None:
    seed_user(racy, "u3")
    grant = ["grant", "u3", "--until", "2027-01-01", "--reason", "ticket 1", *AT]
    assert support.main(grant) == support.OK
    racy.path = "users/u3"
    paid = {"displayName": "u3", "subscription": PAID}
    racy.hook = lambda: racy.commit([Write("users/u3", paid, merge=False)])
    assert support.main(["revoke", "u3", "--reason", "ticket 2", *AT]) == support.REFUSED
    assert racy.docs["users/u3"] == paid
    assert [e["action"] for e in changes(racy)] == ["grant"]


def test_a_grant_racing_another_write_is_made_on_the_new_document(racy: Racy) -> None:
    seed_user(racy, "u4")
    racy.path = "users/u4"
    racy.hook = lambda: racy.commit([Write("users/u4", {"locale": "de-DE"})])
    argv = ["grant", "u4", "--until", "2027-01-01", "--reason", "ticket 3", *AT]
    assert support.main(argv) == support.OK
    user = racy.docs["users/u4"]
    assert user["locale"] == "de-DE" and user["subscription"]["complimentary"] is True
    assert len(changes(racy)) == 1


def test_a_document_that_keeps_changing_is_refused_after_a_few_reads(
    racy: Racy, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    seed_user(racy, "u5")
    reads = iter(range(100))

    def every_read(paths: Sequence[str]) -> dict[str, dict[str, Any] | None]:
        got = MemoryStore.get_many(racy, paths)
        if "users/u5" in paths:
            racy.commit([Write("users/u5", {"n": next(reads)})])
        return got

    monkeypatch.setattr(racy, "get_many", every_read)
    argv = ["groups", "add", "u5", "g", "--reason", "r", *AT]
    assert support.main(argv) == support.REFUSED
    assert "nothing was changed" in capsys.readouterr().err
    assert "rolloutGroups" not in racy.docs["users/u5"] and changes(racy) == []
