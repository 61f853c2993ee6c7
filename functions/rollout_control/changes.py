"""Every change to ``config/externalDataRollout`` goes through ``apply_change``.

One change is: read the document and its ``version``; apply a mutation to a working copy;
validate it with ``gating.rollout.parse`` (so a percentage of 140 or an unknown phase is refused
with the parser's message and nothing is written); bump ``version``; set ``updatedAt`` and
``updatedBy``; and write it with ``store.compare_and_set(CONFIG_PATH, version_read, doc,
[history entry])``. The history entry ``{at, by, reason, action, before, after, version,
evidence?, forced?}`` lands in ``config/externalDataRollout/history/{id}`` in the same atomic
write, so there is never a change without its explanation, nor an explanation without a change.

Two operators editing at once: both read version N, the first write makes it N+1 and the second
compare-and-set fails (``ConfigConflict``) and is refused with ``Conflict`` — never silently
overwritten. ``expected_version`` lets a caller pin the version it looked at (``status`` shows
it): the change is refused unless the document is still at that version.

Fields this module keeps beside the contract's ones (the gating functions ignore them):

- ``phaseSince``: when the current phase was entered (start of its monitoring window);
- ``cohortSince``: when who-is-gated last changed (phase, percentage, target groups, fallback or
  the kill switch); the guarded-rollout comparison only uses minutes after it;
- ``autoRollback``: ``{immediate|gradual: {at, trigger}}``, the evaluator's last actions, so the
  same incident never triggers twice.
"""

from __future__ import annotations

import copy
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from typing import Any, Protocol

from gating.rollout import (
    COMPONENTS,
    CONFIG_PATH,
    FREE_USER_MESSAGES,
    HISTORY_COLLECTION,
    PHASE_ORDER,
    PREMIUM_USER_MESSAGES,
    ConfigInvalid,
    Phase,
    RolloutConfig,
    parse,
    parse_served,
)
from rollout_control import health, plan
from stores.base import DocumentStore, Write, doc_version
from stores.errors import ConfigConflict, Contended, StoreError

COHORT_FIELDS = ("phase", "rolloutPercentage", "targetGroups", "fallbackEnabled")
"""Fields that change who is gated (with ``components.premiumGating``)."""


class Refused(Exception):
    """A change that was not made; ``str()`` is a message for the operator."""


class InvalidChange(Refused):
    """The resulting config would be invalid (or the request itself is)."""


class Conflict(Refused):
    """Someone else changed the config first."""


class AdvanceBlocked(Refused):
    """The current phase's success metrics did not hold; ``checks`` says which."""

    def __init__(self, message: str, checks: Sequence[Any]) -> None:
        super().__init__(message)
        self.checks = list(checks)


class NoChange(Exception):
    """The change would leave the config as it is; nothing was written."""


@dataclass(frozen=True)
class ChangeResult:
    """A change that was written."""

    action: str
    version: int
    history_id: str
    before: dict[str, Any] | None
    after: dict[str, Any]
    summary: str
    """One line saying what changed."""
    evidence: Mapping[str, Any] | None = None


Mutation = Callable[[dict[str, Any], RolloutConfig], str]
"""Changes the working copy of the document in place; returns a one-line description."""


@dataclass
class Current:
    """The config as read: the raw doc, its version and (when valid) its typed form."""

    raw: dict[str, Any] | None
    version: int
    cfg: RolloutConfig | None
    problem: str | None = None
    extras: dict[str, Any] = field(default_factory=dict)


_DOC_KEYS = set(RolloutConfig().to_doc())


def read_current(store: DocumentStore, *, as_served: bool = False) -> Current:
    """Read the config document; an invalid one is returned with ``problem`` set. ``as_served``:
    read as the functions do (``ConfigSource.accept``): nulls and unknown names ignored, so the
    evaluator judges the config the functions serve, not refuse one they apply."""
    raw = store.get_many([CONFIG_PATH])[CONFIG_PATH]
    version = doc_version(raw)
    extras = {k: v for k, v in (raw or {}).items() if k not in _DOC_KEYS}
    try:
        cfg = parse_served(raw)[0] if as_served else parse(raw)
        return Current(raw, version, cfg, None, extras)
    except ConfigInvalid as exc:
        return Current(raw, version, None, str(exc), extras)


def _working_copy(cur: Current) -> dict[str, Any]:
    if cur.cfg is not None:
        doc = cur.cfg.to_doc()
    else:  # an unreadable doc can still be repaired: start from it over the defaults
        doc = {**RolloutConfig().to_doc(), **copy.deepcopy(cur.raw or {})}
    doc.update(copy.deepcopy(cur.extras))
    return doc


def _comparable(doc: Mapping[str, Any] | None) -> dict[str, Any]:
    return {k: v for k, v in (doc or {}).items() if k not in ("version", "updatedAt", "updatedBy")}


def _cohort_changed(before: Mapping[str, Any], after: Mapping[str, Any]) -> bool:
    if any(before.get(k) != after.get(k) for k in COHORT_FIELDS):
        return True
    b = (before.get("components") or {}).get("premiumGating", True)
    a = (after.get("components") or {}).get("premiumGating", True)
    return bool(a != b)


def history_id(at: datetime, version: int) -> str:
    """Time-ordered history document id."""
    return f"{at.strftime('%Y%m%dT%H%M%S%f')}-v{version:05d}"


class Unreadable(Enum):
    """What a change does to a config document that does not parse (the functions keep
    serving their last good config meanwhile)."""

    REPAIR = "repair"
    """Applied to the raw document; validation decides (a `set` that fixes the field passes)."""
    REFUSE = "refuse"
    """Refused: the change is computed from the config's meaning (a step down the ladder),
    which a broken document does not have."""
    REPLACE = "replace"
    """Applied to the raw document if that makes it valid, else to a valid default one: the
    kill switch must work whatever the document holds."""


def _unreadable(
    cur: Current, work: dict[str, Any], mutate: Mutation, policy: Unreadable
) -> dict[str, Any]:
    """The working copy ``policy`` makes of a document that does not parse."""
    if policy is Unreadable.REFUSE:
        raise InvalidChange(
            f"refused: the config document does not parse ({cur.problem}); the functions keep "
            "serving their last good config. Repair the field with `set` (e.g. `set --percentage"
            " 25`), or turn gating off with `rollback immediate`."
        )
    if policy is Unreadable.REPLACE:
        trial = copy.deepcopy(work)
        mutate(trial, RolloutConfig())
        try:
            parse(trial)
        except ConfigInvalid:
            return RolloutConfig().to_doc()
    return work


def apply_change(
    store: DocumentStore,
    action: str,
    mutate: Mutation,
    *,
    by: str,
    reason: str,
    now: datetime,
    evidence: Mapping[str, Any] | None = None,
    forced: bool = False,
    expected_version: int | None = None,
    current: Current | None = None,
    unreadable: Unreadable = Unreadable.REPAIR,
) -> ChangeResult:
    """Apply one change (see the module docstring). Raises ``InvalidChange``, ``Conflict`` or
    ``NoChange``; ``gating.errors.StoreError`` when the store cannot be reached. ``unreadable``
    says what the change does to a document that does not parse."""
    _require_who_and_why(by, reason)
    cur = current or read_current(store)
    if expected_version is not None and expected_version != cur.version:
        raise Conflict(
            f"the config is at version {cur.version}, not {expected_version}: someone else changed "
            "it since you looked. Run `status`, then retry."
        )
    before = _working_copy(cur) if cur.raw is not None else None
    work = _working_copy(cur)
    if cur.raw is not None and cur.cfg is None:
        work = _unreadable(cur, work, mutate, unreadable)
    description = mutate(work, cur.cfg or RolloutConfig())
    if _comparable(work) == _comparable(before or RolloutConfig().to_doc()) and cur.raw is not None:
        raise NoChange(f"nothing to change: {description}")
    version = cur.version + 1
    _stamp(work, before or RolloutConfig().to_doc(), version, now, by)
    doc = _validated(work, now, by)
    hid = history_id(now, version)
    entry: dict[str, Any] = {
        "at": now,
        "by": by,
        "reason": reason.strip(),
        "action": action,
        "summary": description,
        "before": before,
        "after": doc,
        "version": version,
    }
    if evidence is not None:
        entry["evidence"] = dict(evidence)
    if forced:
        entry["forced"] = True
    _write(store, cur.version, doc, hid, entry)
    return ChangeResult(action, version, hid, before, doc, description, evidence)


def _require_who_and_why(by: str, reason: str) -> None:
    """Every change names its author and its reason: the history is the audit trail."""
    if not reason or not reason.strip():
        raise InvalidChange("a reason is required for every change (--reason TEXT)")
    if not by or not by.strip():
        raise InvalidChange("who is changing the config must be known (--as NAME)")


def _stamp(
    work: dict[str, Any], prior: Mapping[str, Any], version: int, now: datetime, by: str
) -> None:
    """Version and author of the new document, and the ``phaseSince``/``cohortSince`` marks
    that the health checks and the evaluator's fresh windows start from."""
    work["version"] = version
    work["updatedAt"] = now
    work["updatedBy"] = by
    if work.get("phase") != prior.get("phase") or "phaseSince" not in work:
        work["phaseSince"] = now
    if _cohort_changed(prior, work) or "cohortSince" not in work:
        work["cohortSince"] = now


def _validated(work: dict[str, Any], now: datetime, by: str) -> dict[str, Any]:
    """The document to write: the parsed config (so nothing invalid is ever written) plus the
    control fields the config type does not hold."""
    try:
        parsed = parse(work)
    except ConfigInvalid as exc:
        raise InvalidChange(f"refused, the config would be invalid: {exc}") from None
    doc = {**parsed.to_doc(), **{k: v for k, v in work.items() if k not in _DOC_KEYS}}
    doc["updatedAt"] = now
    doc["updatedBy"] = by
    return doc


WRITE_ATTEMPTS = 5
"""Compare-and-sets a change makes while they are only ``Contended`` (see ``_write``)."""


def _write(
    store: DocumentStore, version: int, doc: dict[str, Any], hid: str, entry: dict[str, Any]
) -> None:
    """Config and history entry in one compare-and-set against the version read: a change
    made meanwhile by someone else is refused, never overwritten. A compare-and-set that lost
    only a lock (``Contended``: no change had landed) is made again, up to ``WRITE_ATTEMPTS``
    in all, so that one of two racing operators wins."""
    history = f"{HISTORY_COLLECTION}/{hid}"
    for attempt in range(WRITE_ATTEMPTS):
        if attempt:
            time.sleep(random.uniform(0.02, 0.1) * attempt)
        try:
            store.compare_and_set(CONFIG_PATH, version, doc, [Write(history, entry, merge=False)])
            return
        except Contended as exc:
            refused: ConfigConflict = exc
        except ConfigConflict as exc:
            refused = exc
            break
    raise Conflict(
        f"refused: someone else changed the config while this change was being made ({refused}). "
        "Nothing was written; run `status` and retry."
    ) from None


def read_history(store: DocumentStore, limit: int = 20) -> list[tuple[str, dict[str, Any]]]:
    """The newest ``limit`` history entries, newest first, as (id, entry)."""
    rows = store.query(HISTORY_COLLECTION, order_by="at", descending=True, limit=limit)
    return [(path.rpartition("/")[2], doc) for path, doc in rows]


# -- operations -----------------------------------------------------------------------------


def set_fields(
    store: DocumentStore,
    *,
    by: str,
    reason: str,
    now: datetime,
    phase: str | None = None,
    percentage: int | None = None,
    fallback: bool | None = None,
    target_groups: Sequence[str] | None = None,
    force: bool = False,
    expected_version: int | None = None,
    other: Mapping[str, Any] | None = None,
) -> ChangeResult:
    """Set fields directly (``other``: more contract fields, e.g. ``shadow``,
    ``maxCohortUsers``; ``None`` removes one). Moving the phase forward this way skips the success metrics, so it
    needs ``force`` (``advance`` is the checked way)."""
    cur = read_current(store)
    if phase is not None:
        _check_phase_move(cur, phase, force)
    return apply_change(
        store,
        "set",
        _set_mutation(phase, percentage, fallback, target_groups, other or {}),
        by=by,
        reason=reason,
        now=now,
        forced=force,
        expected_version=expected_version,
        current=cur,
    )


def _check_phase_move(cur: Current, phase: str, force: bool) -> None:
    """Refuse an unknown phase, and a move forward without ``force`` (it would skip the
    success metrics that ``advance`` checks)."""
    try:
        target = Phase(phase)
    except ValueError:
        raise InvalidChange(
            f"refused: phase must be one of {', '.join(p.value for p in Phase)}, not {phase!r}"
        ) from None
    if cur.raw is not None and cur.cfg is None and not force:
        raise InvalidChange(
            f"refused: the config document does not parse ({cur.problem}), so the phase it is "
            "in is unknown; to repair the phase, set it with --force and a reason"
        )
    current_phase = cur.cfg.phase if cur.cfg else Phase.OFF
    order = list(PHASE_ORDER)
    if order.index(target) > order.index(current_phase) and not force:
        raise InvalidChange(
            f"refused: moving from {current_phase.value} to {target.value} skips the success "
            "metrics; use `advance`, or --force with a reason"
        )


def _set_mutation(
    phase: str | None,
    percentage: int | None,
    fallback: bool | None,
    target_groups: Sequence[str] | None,
    other: Mapping[str, Any],
) -> Mutation:
    """The mutation of ``set_fields``: the given fields, described as ``set k=v ...``."""

    def mutate(doc: dict[str, Any], _cfg: RolloutConfig) -> str:
        parts = []
        for key, value in other.items():
            doc[key] = value
            parts.append(f"{key}={'none' if value is None else str(value).lower()}")
        if phase is not None:
            doc["phase"] = phase
            parts.append(f"phase={phase}")
        if percentage is not None:
            doc["rolloutPercentage"] = percentage
            parts.append(f"rolloutPercentage={percentage}")
        if fallback is not None:
            doc["fallbackEnabled"] = fallback
            parts.append(f"fallbackEnabled={str(fallback).lower()}")
        if target_groups is not None:
            doc["targetGroups"] = list(target_groups)
            parts.append(f"targetGroups={','.join(target_groups) or '(none)'}")
        if not parts:
            raise InvalidChange(
                "nothing to set: give --phase, --percentage, --fallback, --groups, --shadow or"
                " --max-cohort-users"
            )
        return "set " + " ".join(parts)

    return mutate


def advance(
    store: DocumentStore,
    *,
    by: str,
    reason: str,
    now: datetime,
    force: bool = False,
    expected_version: int | None = None,
) -> ChangeResult:
    """Move to the next phase with the plan's settings, if the current phase's success metrics
    held over its monitoring window (``health.phase_health``); ``force`` overrides and the failing
    checks are recorded as the entry's evidence."""
    cur = read_current(store)
    cfg, target = _advance_target(cur, force)
    evidence, failing = _phase_checks(store, cur, cfg, target, now, force)
    return apply_change(
        store,
        "advance (forced)" if failing else "advance",
        _advance_mutation(target, bool(failing)),
        by=by,
        reason=reason,
        now=now,
        evidence=evidence,
        forced=bool(failing),
        expected_version=expected_version,
        current=cur,
    )


def _advance_target(cur: Current, force: bool) -> tuple[RolloutConfig, Phase]:
    """The current config and the phase after it; refused when the config is unreadable, the
    last phase is reached, or the kill switch is on (without ``force``)."""
    if cur.cfg is None:
        raise InvalidChange(
            f"refused: the current config is unreadable ({cur.problem}); fix it with `set`"
        )
    cfg = cur.cfg
    target = plan.next_phase(cfg.phase)
    if target is None:
        raise InvalidChange("refused: already at full, the last phase")
    if not cfg.components.premiumGating and not force:
        raise InvalidChange(
            "refused: premium gating is switched off (kill switch, components.premiumGating=false); "
            "run `restore` first, or --force"
        )
    return cfg, target


def _phase_checks(
    store: DocumentStore,
    cur: Current,
    cfg: RolloutConfig,
    target: Phase,
    now: datetime,
    force: bool,
) -> tuple[dict[str, Any] | None, list[health.Check]]:
    """The current phase's success metrics as (evidence, failing checks); failing checks
    block the advance unless forced. Phase off has no metrics to hold."""
    if cfg.phase is Phase.OFF:
        return None, []
    report = health.phase_health(store, cfg, cfg.phaseSince, now)
    failing = [c for c in report.checks if not c.ok]
    if failing and not force:
        names = ", ".join(c.name for c in failing)
        raise AdvanceBlocked(
            f"refused: {cfg.phase.value} -> {target.value} needs every success metric of "
            f"{cfg.phase.value} to hold over its monitoring window; failing: {names}",
            failing,
        )
    return report.to_evidence(), failing


def _advance_mutation(target: Phase, forced: bool) -> Mutation:
    """The mutation of ``advance``: the target phase's plan settings."""

    def mutate(doc: dict[str, Any], c: RolloutConfig) -> str:
        doc.update(plan.advance_fields(target, list(c.targetGroups)))
        p = plan.PLAN[target]
        extra = " (forced past failing metrics)" if forced else ""
        return (
            f"advance {c.phase.value} -> {target.value}: {p.percentage}%, "
            f"fallback {'on' if p.fallback else 'off'}{extra}"
        )

    return mutate


def kill_switch_mutation(doc: dict[str, Any], _cfg: RolloutConfig) -> str:
    """Immediate rollback: ``components.premiumGating`` false, nobody gated."""
    doc.setdefault("components", {})["premiumGating"] = False
    return "immediate rollback: premium gating off for everyone (components.premiumGating=false)"


class SimpleChange(Protocol):
    """A change with nothing to choose but who, why and when (the rollbacks)."""

    def __call__(
        self,
        store: DocumentStore,
        *,
        by: str,
        reason: str,
        now: datetime,
        expected_version: int | None = None,
    ) -> ChangeResult: ...


def _simple_change(
    action: str, mutation: Mutation, doc: str, unreadable: Unreadable
) -> SimpleChange:
    """``action`` applied with ``mutation``: one definition for the rollbacks' entry points."""

    def change(
        store: DocumentStore,
        *,
        by: str,
        reason: str,
        now: datetime,
        expected_version: int | None = None,
    ) -> ChangeResult:
        return apply_change(
            store,
            action,
            mutation,
            by=by,
            reason=reason,
            now=now,
            expected_version=expected_version,
            unreadable=unreadable,
        )

    change.__doc__ = doc
    return change


rollback_immediate = _simple_change(
    "rollback immediate", kill_switch_mutation, "The kill switch.", Unreadable.REPLACE
)


def gradual_mutation(doc: dict[str, Any], cfg: RolloutConfig) -> str:
    """One step down the gradual ladder (``plan.gradual_step``)."""
    step = plan.gradual_step(cfg.phase, cfg.rolloutPercentage)
    if step is None:
        return "gradual rollback: already off, nothing left to roll back"
    fields, description = step
    doc.update(fields)
    return "gradual rollback, " + description


rollback_gradual = _simple_change(
    "rollback gradual", gradual_mutation, "One gradual step.", Unreadable.REFUSE
)


def _component(name: str) -> str:
    if name not in COMPONENTS:
        raise InvalidChange(f"refused: unknown component {name!r} (one of {', '.join(COMPONENTS)})")
    return name


def rollback_partial(
    store: DocumentStore,
    component: str,
    *,
    by: str,
    reason: str,
    now: datetime,
    expected_version: int | None = None,
) -> ChangeResult:
    """One component off, the rest kept."""
    name = _component(component)

    def mutate(doc: dict[str, Any], _cfg: RolloutConfig) -> str:
        doc.setdefault("components", {})[name] = False
        return f"partial rollback: {name} off"

    return apply_change(
        store,
        f"rollback partial {name}",
        mutate,
        by=by,
        reason=reason,
        now=now,
        expected_version=expected_version,
    )


def restore(
    store: DocumentStore,
    component: str | None = None,
    *,
    by: str,
    reason: str,
    now: datetime,
    expected_version: int | None = None,
) -> ChangeResult:
    """Turn one component (or every component) back on. Without ``component`` it also undoes
    the automatic gradual steps taken since the last operator change (``auto_gradual_steps``):
    phase, percentage and fallback go back to what they were before the first of them, and the
    history entry names the steps undone. Refused (``Refused``) when the history cannot tell
    those steps: the operator then puts the rollout back with ``set``."""
    names = [_component(component)] if component else list(COMPONENTS)
    cur = read_current(store)
    undo = None if component else auto_gradual_steps(store, cur)

    def mutate(doc: dict[str, Any], _cfg: RolloutConfig) -> str:
        comps = doc.setdefault("components", {})
        for n in names:
            comps[n] = True
        text = f"{', '.join(names)} on"
        if undo is not None:
            text = f"{_undo_text(doc, undo)}; {text}"
            doc.update(undo.fields)
            return text
        return f"restore: {text}"

    return apply_change(
        store,
        f"restore {component}" if component else "restore",
        mutate,
        by=by,
        reason=reason,
        now=now,
        evidence=undo.evidence() if undo is not None else None,
        expected_version=expected_version,
        current=cur,
    )


AUTO_GRADUAL = "auto-rollback gradual"
"""The history action of the evaluator's gradual step (``evaluator._apply_rollback``)."""
AUTOMATIC_ACTIONS = ("auto-rollback ", "breaker ")
"""History actions the evaluator writes (rollbacks, source breakers); anything else is an
operator's change."""
UNDONE_FIELDS = ("phase", "rolloutPercentage", "fallbackEnabled")
"""What a gradual step changes (``plan.gradual_step``), so what ``restore`` puts back."""
HISTORY_SCAN = 200
"""History entries ``restore`` reads looking for the last operator change."""


@dataclass(frozen=True)
class AutoSteps:
    """Automatic gradual steps since the last operator change, and what they replaced."""

    fields: dict[str, Any]
    """Phase, percentage and fallback before the first of the steps."""
    steps: list[tuple[str, dict[str, Any]]]
    """The steps' history entries, oldest first, as (id, entry)."""

    def evidence(self) -> dict[str, Any]:
        """The restore's history evidence: the entries it undid and what it put back."""
        return {
            "restored": dict(self.fields),
            "undid": [
                {"historyId": hid, "version": e.get("version"), "summary": e.get("summary")}
                for hid, e in self.steps
            ],
        }


def _undo_text(doc: Mapping[str, Any], undo: AutoSteps) -> str:
    def shown(d: Mapping[str, Any]) -> str:
        fallback = "on" if d.get("fallbackEnabled") else "off"
        return f"{d.get('phase')} {d.get('rolloutPercentage')}% (fallback {fallback})"

    versions = ", ".join(f"v{e.get('version')}" for _, e in undo.steps)
    n = len(undo.steps)
    return (
        f"restore: {shown(doc)} -> {shown(undo.fields)}, undoing {n} automatic gradual "
        f"step{'s' if n > 1 else ''} ({versions})"
    )


def auto_gradual_steps(store: DocumentStore, cur: Current) -> AutoSteps | None:
    """The evaluator's gradual steps (``auto-rollback gradual``) since the last operator change,
    read from the history; ``None`` when there are none. Other automatic entries (breakers, the
    kill switch) in between change none of ``UNDONE_FIELDS`` and are passed over. Raises
    ``Refused`` when the history cannot be read or does not add up: the steps do not chain
    from one to the next and to the current config, a step's ``before`` is missing, or no
    operator change is found within ``HISTORY_SCAN`` entries."""
    try:
        rows = store.query(HISTORY_COLLECTION, order_by="at", descending=True, limit=HISTORY_SCAN)
    except StoreError:
        raise Refused(_unknown_steps("the config history cannot be read")) from None
    entries = sorted(
        ((path.rpartition("/")[2], doc) for path, doc in rows),
        key=lambda row: _int(row[1].get("version")),
        reverse=True,
    )
    steps: list[tuple[str, dict[str, Any]]] = []
    for hid, entry in entries:
        action = str(entry.get("action") or "")
        if action == AUTO_GRADUAL:
            steps.append((hid, entry))
        elif not action.startswith(AUTOMATIC_ACTIONS):
            break
    else:
        if len(rows) >= HISTORY_SCAN and steps:
            raise Refused(_unknown_steps(f"no operator change in the last {HISTORY_SCAN} entries"))
    if not steps:
        return None
    steps.reverse()
    return AutoSteps(_chained(steps, cur), steps)


def _chained(steps: list[tuple[str, dict[str, Any]]], cur: Current) -> dict[str, Any]:
    """The fields before the first step, once each step is seen to start where the one before
    it ended and the last to end at the current config (else ``Refused``)."""
    now_fields = _fields(_working_copy(cur)) if cur.raw is not None else None
    ends = [_fields(e.get("before")) for _, e in steps[1:]] + [now_fields]
    for (hid, entry), end in zip(steps, ends, strict=True):
        after = _fields(entry.get("after"))
        if after is None or after != end:
            raise Refused(_unknown_steps(f"history entry {hid} does not lead to what followed it"))
    first = _fields(steps[0][1].get("before"))
    if first is None:
        raise Refused(_unknown_steps(f"history entry {steps[0][0]} has no usable `before`"))
    return first


def _fields(doc: Any) -> dict[str, Any] | None:
    if not isinstance(doc, Mapping) or any(k not in doc for k in UNDONE_FIELDS):
        return None
    return {k: doc[k] for k in UNDONE_FIELDS}


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else -1


def _unknown_steps(why: str) -> str:
    return (
        f"refused: restore undoes the automatic gradual steps since the last operator change, "
        f"but {why}; nothing was changed. Read `history --details`, put the rollout back with "
        "`set --phase PHASE --percentage N --fallback on|off --reason TEXT` (--force to move "
        "the phase forward), then `restore --reason TEXT` for the components."
    )


def set_messages(
    store: DocumentStore,
    texts: Mapping[str, str],
    *,
    by: str,
    reason: str,
    now: datetime,
    expected_version: int | None = None,
) -> ChangeResult:
    """Override message texts; an empty text removes the override (back to the plan's wording)."""
    known = {**FREE_USER_MESSAGES, **PREMIUM_USER_MESSAGES}
    for key in texts:
        if key not in known:
            raise InvalidChange(f"refused: {key!r} is not a message (known: {', '.join(known)})")

    def mutate(doc: dict[str, Any], _cfg: RolloutConfig) -> str:
        msgs = dict(doc.get("messages") or {})
        parts = []
        for key, text in texts.items():
            if text:
                msgs[key] = text
                parts.append(f"{key} overridden")
            else:
                msgs.pop(key, None)
                parts.append(f"{key} back to the plan's wording")
        doc["messages"] = msgs
        return "messages: " + ", ".join(parts)

    return apply_change(
        store,
        "set messages",
        mutate,
        by=by,
        reason=reason,
        now=now,
        expected_version=expected_version,
    )
