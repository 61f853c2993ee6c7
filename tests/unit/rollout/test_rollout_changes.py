"""Config changes are safe: versioned compare-and-set with an atomic history entry (issue 4, §2)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest

from gating.rollout import CONFIG_PATH, HISTORY_COLLECTION, Phase, RolloutConfig, parse
from rollout_control import changes
from rollout_control.changes import Conflict, InvalidChange, NoChange
from stores.base import Write
from stores.errors import ConfigConflict, Contended
from stores.memory import MemoryStore


def _history(store: MemoryStore) -> list[dict[str, Any]]:
    return [d for p, d in sorted(store.docs.items()) if p.startswith(HISTORY_COLLECTION + "/")]


def _cfg(store: MemoryStore) -> RolloutConfig:
    return parse(store.docs.get(CONFIG_PATH))


def test_first_change_creates_version_1_with_history(store: MemoryStore, now: datetime) -> None:
    res = changes.advance(store, by="alice", reason="start beta", now=now)
    doc = store.docs[CONFIG_PATH]
    assert res.version == 1 and doc["version"] == 1
    assert doc["updatedAt"] == now and doc["updatedBy"] == "alice"
    assert doc["phase"] == "beta" and doc["rolloutPercentage"] == 1
    assert doc["targetGroups"] == ["beta-testers", "internal-team", "trusted-advisors"]
    assert doc["fallbackEnabled"] is True
    (entry,) = _history(store)
    assert entry["by"] == "alice" and entry["reason"] == "start beta" and entry["at"] == now
    assert entry["action"] == "advance" and entry["version"] == 1
    assert entry["before"] is None and entry["after"]["phase"] == "beta"


def test_every_change_bumps_version_and_appends_history(store: MemoryStore, now: datetime) -> None:
    changes.advance(store, by="a", reason="r1", now=now)
    changes.rollback_partial(
        store, "usageTracking", by="b", reason="r2", now=now + timedelta(seconds=1)
    )
    changes.restore(store, by="c", reason="r3", now=now + timedelta(seconds=2))
    assert store.docs[CONFIG_PATH]["version"] == 3
    hist = _history(store)
    assert [h["version"] for h in hist] == [1, 2, 3]
    assert hist[1]["before"]["components"]["usageTracking"] is True
    assert hist[1]["after"]["components"]["usageTracking"] is False
    assert [h["reason"] for _, h in changes.read_history(store, limit=2)] == ["r3", "r2"]


def test_percentage_140_is_refused_and_nothing_is_written(
    store: MemoryStore, now: datetime
) -> None:
    changes.advance(store, by="a", reason="beta", now=now)
    before = dict(store.docs[CONFIG_PATH])
    with pytest.raises(InvalidChange, match="rolloutPercentage must be from 0 to 100, not 140"):
        changes.set_fields(store, percentage=140, by="a", reason="oops", now=now)
    assert store.docs[CONFIG_PATH] == before
    assert len(_history(store)) == 1


def test_unknown_phase_is_refused(store: MemoryStore, now: datetime) -> None:
    with pytest.raises(
        InvalidChange, match="phase must be one of off, beta, premium, full, not 'gamma'"
    ):
        changes.set_fields(store, phase="gamma", by="a", reason="x", now=now)
    assert CONFIG_PATH not in store.docs


def test_reason_is_required(store: MemoryStore, now: datetime) -> None:
    with pytest.raises(InvalidChange, match="reason is required"):
        changes.rollback_immediate(store, by="a", reason="  ", now=now)
    assert store.docs == {}


def test_second_of_two_racing_operators_is_refused(store: MemoryStore, now: datetime) -> None:
    changes.advance(store, by="a", reason="beta", now=now)
    # Both operators read version 1 ...
    seen_by_bob = changes.read_current(store)
    changes.rollback_partial(store, "rateLimiting", by="alice", reason="limits misbehave", now=now)
    # ... alice's change landed first, so bob's compare-and-set must fail, not overwrite hers.
    with pytest.raises(Conflict, match="someone else changed the config"):
        changes.apply_change(
            store,
            "rollback immediate",
            changes.kill_switch_mutation,
            by="bob",
            reason="kill",
            now=now,
            current=seen_by_bob,
        )
    doc = store.docs[CONFIG_PATH]
    assert doc["version"] == 2 and doc["updatedBy"] == "alice"
    assert doc["components"]["premiumGating"] is True
    assert len(_history(store)) == 2


def test_expected_version_pins_what_the_operator_looked_at(
    store: MemoryStore, now: datetime
) -> None:
    changes.advance(store, by="a", reason="beta", now=now)
    with pytest.raises(Conflict, match="at version 1, not 0"):
        changes.rollback_immediate(store, by="b", reason="r", now=now, expected_version=0)
    changes.rollback_immediate(store, by="b", reason="r", now=now, expected_version=1)
    assert store.docs[CONFIG_PATH]["version"] == 2


def test_immediate_rollback_is_the_kill_switch(store: MemoryStore, now: datetime) -> None:
    changes.advance(store, by="a", reason="beta", now=now)
    res = changes.rollback_immediate(store, by="a", reason="errors", now=now)
    cfg = _cfg(store)
    assert cfg.components.premiumGating is False and not cfg.gating_active
    assert cfg.phase is Phase.BETA  # the phase is kept; restore brings gating back
    assert res.action == "rollback immediate"
    with pytest.raises(NoChange):
        changes.rollback_immediate(store, by="a", reason="again", now=now)


def test_gradual_rollback_ladder(store: MemoryStore, now: datetime) -> None:
    changes.set_fields(
        store,
        phase="full",
        percentage=100,
        fallback=False,
        force=True,
        by="a",
        reason="full",
        now=now,
    )
    seen = []
    for _ in range(5):
        changes.rollback_gradual(store, by="a", reason="slow", now=now)
        cfg = _cfg(store)
        seen.append((cfg.phase.value, cfg.rolloutPercentage, cfg.fallbackEnabled))
    assert seen == [
        ("premium", 50, True),
        ("premium", 25, True),
        ("premium", 12, True),
        ("beta", 10, True),
        ("off", 0, True),
    ]
    with pytest.raises(NoChange, match="already off"):
        changes.rollback_gradual(store, by="a", reason="slow", now=now)


def test_the_first_step_down_from_full_halves_everyone_whatever_percentage_was_kept(
    store: MemoryStore, now: datetime
) -> None:
    """`set --phase full --force` keeps the document's percentage (25): the first gradual step
    went from full (100% gated) to premium 12% in one move, not the plan's 50%."""
    changes.set_fields(
        store, phase="premium", percentage=25, force=True, by="a", reason="p", now=now
    )
    changes.set_fields(store, phase="full", force=True, by="a", reason="full", now=now)
    assert _cfg(store).rolloutPercentage == 25  # kept, and meaningless in full
    changes.rollback_gradual(store, by="a", reason="slow", now=now)
    cfg = _cfg(store)
    assert (cfg.phase.value, cfg.rolloutPercentage) == ("premium", 50)


def test_gradual_from_beta_is_complete_rollback(store: MemoryStore, now: datetime) -> None:
    changes.advance(store, by="a", reason="beta", now=now)
    changes.rollback_gradual(store, by="a", reason="r", now=now)
    assert _cfg(store).phase is Phase.OFF


@pytest.mark.parametrize(
    "component", ["premiumGating", "usageTracking", "rateLimiting", "securityAudit"]
)
def test_partial_rollback_turns_one_component_off(
    store: MemoryStore, now: datetime, component: str
) -> None:
    changes.advance(store, by="a", reason="beta", now=now)
    changes.rollback_partial(store, component, by="a", reason="r", now=now)
    comps = store.docs[CONFIG_PATH]["components"]
    assert comps[component] is False
    assert all(v for k, v in comps.items() if k != component)
    changes.restore(store, component, by="a", reason="fixed", now=now)
    assert all(store.docs[CONFIG_PATH]["components"].values())


def test_unknown_component_is_refused(store: MemoryStore, now: datetime) -> None:
    with pytest.raises(InvalidChange, match="unknown component 'cache'"):
        changes.rollback_partial(store, "cache", by="a", reason="r", now=now)


def test_messages_override_and_reset(store: MemoryStore, now: datetime) -> None:
    changes.set_messages(store, {"gate": "Go premium!"}, by="a", reason="copy test", now=now)
    cfg = _cfg(store)
    assert cfg.message_set(("gate", "preview"))["gate"] == "Go premium!"
    assert cfg.message_set(("preview",))["preview"].startswith("This is a preview")
    changes.set_messages(store, {"gate": ""}, by="a", reason="back", now=now)
    assert _cfg(store).message_set(("gate",))["gate"].startswith("Full external data results")
    with pytest.raises(InvalidChange, match="'banner' is not a message"):
        changes.set_messages(store, {"banner": "x"}, by="a", reason="r", now=now)


def test_target_groups_can_be_set(store: MemoryStore, now: datetime) -> None:
    changes.set_fields(store, target_groups=["internal-team"], by="a", reason="narrow", now=now)
    assert _cfg(store).targetGroups == ("internal-team",)


def test_moving_phase_forward_with_set_needs_force(store: MemoryStore, now: datetime) -> None:
    with pytest.raises(InvalidChange, match="use `advance`, or --force"):
        changes.set_fields(store, phase="premium", by="a", reason="r", now=now)
    res = changes.set_fields(
        store, phase="premium", percentage=25, force=True, by="a", reason="r", now=now
    )
    assert _history(store)[-1]["forced"] is True and res.version == 1


def test_an_unreadable_doc_can_be_repaired(store: MemoryStore, now: datetime) -> None:
    store.commit(
        [Write(CONFIG_PATH, {"phase": "beta", "rolloutPercentage": 140, "version": 4}, merge=False)]
    )
    changes.set_fields(store, percentage=1, by="a", reason="repair", now=now)
    doc = store.docs[CONFIG_PATH]
    assert doc["version"] == 5 and doc["rolloutPercentage"] == 1
    assert _history(store)[-1]["before"]["rolloutPercentage"] == 140


def test_phase_and_cohort_timestamps(store: MemoryStore, now: datetime) -> None:
    changes.advance(store, by="a", reason="beta", now=now)
    later = now + timedelta(hours=1)
    changes.set_messages(store, {"gate": "x"}, by="a", reason="copy", now=later)
    doc = store.docs[CONFIG_PATH]
    assert doc["phaseSince"] == now and doc["cohortSince"] == now
    changes.set_fields(store, percentage=5, by="a", reason="more", now=later)
    doc = store.docs[CONFIG_PATH]
    assert doc["phaseSince"] == now and doc["cohortSince"] == later


# -- a compare-and-set refused with no change landing ---------------------------------------


def _refusing(store: MemoryStore, refusals: int, *, land: Any = None) -> list[int]:
    """Make the store's next ``refusals`` compare-and-sets fail as a lost lock does (nothing
    written: ``Contended``; ``land``, if given, first writes another operator's change, and the
    refusal is then a plain ``ConfigConflict``, as the store reports a moved version); returns
    the calls."""
    real = store.compare_and_set
    calls: list[int] = []

    def cas(path: str, expected: int, data: Any, extra: Any) -> None:
        calls.append(expected)
        if len(calls) <= refusals:
            if land is not None:
                land()
                raise ConfigConflict("another change landed first")
            raise Contended("the transaction lost a lock; no change had landed")
        real(path, expected, data, extra)

    store.compare_and_set = cas  # type: ignore[method-assign,assignment]
    return calls


def test_a_refusal_with_no_change_landed_is_tried_again(store: MemoryStore, now: datetime) -> None:
    """Two racing transactions can both be aborted (the emulator does it): then neither change
    landed, and the one that tries again wins."""
    changes.advance(store, by="a", reason="beta", now=now)
    calls = _refusing(store, 2)
    res = changes.rollback_immediate(store, by="alice", reason="errors", now=now)
    assert calls == [1, 1, 1] and res.version == 2
    assert store.docs[CONFIG_PATH]["version"] == 2
    assert store.docs[CONFIG_PATH]["updatedBy"] == "alice"
    assert [e["by"] for e in _history(store)] == ["a", "alice"]


def test_a_refusal_after_another_change_landed_is_a_conflict(
    store: MemoryStore, now: datetime
) -> None:
    changes.advance(store, by="a", reason="beta", now=now)

    def bob() -> None:
        store.compare_and_set = real  # type: ignore[method-assign]
        changes.set_messages(store, {"gate": "Hi"}, by="bob", reason="copy", now=now)

    real = store.compare_and_set
    calls = _refusing(store, 1, land=bob)
    with pytest.raises(Conflict, match="someone else changed the config"):
        changes.rollback_immediate(store, by="alice", reason="errors", now=now)
    assert calls == [1]  # not tried again: the version moved
    assert store.docs[CONFIG_PATH]["version"] == 2
    assert store.docs[CONFIG_PATH]["updatedBy"] == "bob"


def test_refusals_that_never_end_are_a_conflict_after_the_attempts(
    store: MemoryStore, now: datetime
) -> None:
    changes.advance(store, by="a", reason="beta", now=now)
    calls = _refusing(store, 100)
    with pytest.raises(Conflict):
        changes.rollback_immediate(store, by="alice", reason="errors", now=now)
    assert len(calls) == changes.WRITE_ATTEMPTS
    assert store.docs[CONFIG_PATH]["version"] == 1 and len(_history(store)) == 1


def test_the_kill_switch_works_on_a_config_whose_version_was_corrupted(
    store: MemoryStore, now: datetime
) -> None:
    """A hand edit left ``version: "7"``: ``status`` reads version 0, so the writers expect 0,
    and the store compared against 7: every change, the kill switch included, was refused as
    "someone else changed the config", forever."""
    store.docs[CONFIG_PATH] = {"phase": "beta", "rolloutPercentage": 1, "version": "7"}
    changes.rollback_immediate(store, by="oncall", reason="incident", now=now)
    doc = store.docs[CONFIG_PATH]
    assert doc["components"]["premiumGating"] is False and doc["version"] == 1


@pytest.mark.parametrize("field", ["components", "messages"])
def test_a_map_written_as_false_is_refused_not_read_as_the_defaults(field: str) -> None:
    """``components: false`` (meaning "everything off") read as "all on"."""
    from gating.rollout import ConfigInvalid, parse

    with pytest.raises(ConfigInvalid):
        parse({"phase": "beta", field: False})
    assert parse({"phase": "beta", field: None}).phase.value == "beta"


def test_a_config_that_does_not_parse_is_said_so_and_only_the_kill_switch_writes(
    store: MemoryStore, now: datetime
) -> None:
    """An unreadable document read as phase off: `rollback gradual` said "already off" and exit
    0, `set --phase beta` was refused as "moving from off to beta", while the functions serve
    their last good config. Now every change names the problem; the kill switch, which must
    work in an incident, writes a valid document with gating off (the old one in the history)."""
    bad = {"phase": "beta", "rolloutPercentage": "abc", "version": 4}
    store.docs[CONFIG_PATH] = dict(bad)
    with pytest.raises(InvalidChange, match=r"does not parse \(rolloutPercentage"):
        changes.rollback_gradual(store, by="a", reason="r", now=now)
    with pytest.raises(InvalidChange, match=r"does not parse \(rolloutPercentage"):
        changes.set_fields(store, phase="beta", by="a", reason="r", now=now)
    assert store.docs[CONFIG_PATH] == bad
    changes.rollback_immediate(store, by="oncall", reason="incident", now=now)
    cfg = parse(store.docs[CONFIG_PATH])
    assert not cfg.gating_active and cfg.version == 5
    (entry,) = [d for p, d in store.docs.items() if p.startswith(HISTORY_COLLECTION)]
    assert entry["before"]["rolloutPercentage"] == "abc"
