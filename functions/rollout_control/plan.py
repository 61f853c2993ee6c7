"""The rollout plan as data: phases in order, their settings, and the gradual-rollback ladder.

Phases (the rollout plan's production phases):

| phase   | rolloutPercentage | fallbackEnabled | monitoring window before ``advance`` |
|---------|-------------------|-----------------|--------------------------------------|
| off     | 0                 | true            | none (off -> beta needs nothing)     |
| beta    | 1                 | true            | 48 h                                 |
| premium | 25                | true            | 72 h                                 |
| full    | 100               | false           | 7 days (shown by ``status`` only)    |

Gradual rollback, one step at a time (``gradual_step``), from whatever the config is now:

1. phase ``full`` or ``premium`` and half the percentage (rounded down) is still above 10:
   phase ``premium``, percentage halved, ``fallbackEnabled`` true (so the users who leave the
   cohort get the pre-gating experience). full 100 -> premium 50 -> 25 -> 12.
2. phase ``full`` or ``premium`` otherwise: phase ``beta`` ("beta only": target groups plus the
   bucket) at ``min(percentage, 10)``, fallback true. premium 12 -> beta 10.
3. phase ``beta``: complete rollback, phase ``off`` (nobody gated).
4. phase ``off``: nothing left to roll back.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from gating.rollout import DEFAULT_TARGET_GROUPS, PHASE_ORDER, Phase


@dataclass(frozen=True)
class PhasePlan:
    """What a phase looks like when ``advance`` enters it, and how long it is watched."""

    phase: Phase
    percentage: int
    """The plan's default ``rolloutPercentage``."""
    fallback: bool
    """``fallbackEnabled``: off only in full, where the fallback is removed."""
    window: timedelta | None
    """The monitoring window whose success metrics must hold before advancing past it."""
    label: str
    """How the plan names it."""


PLAN: dict[Phase, PhasePlan] = {
    Phase.OFF: PhasePlan(Phase.OFF, 0, True, None, "gating off"),
    Phase.BETA: PhasePlan(Phase.BETA, 1, True, timedelta(hours=48), "Phase A, beta"),
    Phase.PREMIUM: PhasePlan(Phase.PREMIUM, 25, True, timedelta(hours=72), "Phase B, premium"),
    Phase.FULL: PhasePlan(Phase.FULL, 100, False, timedelta(days=7), "Phase C, full"),
}


def next_phase(phase: Phase) -> Phase | None:
    """The phase after ``phase``, or ``None`` at full."""
    i = PHASE_ORDER.index(phase)
    return PHASE_ORDER[i + 1] if i + 1 < len(PHASE_ORDER) else None


def advance_fields(target: Phase, current_groups: list[str] | None) -> dict[str, Any]:
    """The config fields ``advance`` sets when entering ``target`` (the plan's defaults)."""
    p = PLAN[target]
    fields: dict[str, Any] = {
        "phase": target.value,
        "rolloutPercentage": p.percentage,
        "fallbackEnabled": p.fallback,
    }
    if not current_groups:
        fields["targetGroups"] = list(DEFAULT_TARGET_GROUPS)
    return fields


GRADUAL_FLOOR = 10
"""The "beta only" percentage of the gradual ladder."""


def gradual_step(phase: Phase, percentage: int) -> tuple[dict[str, Any], str] | None:
    """The next gradual-rollback step from (phase, percentage): the fields to set and a
    one-line description, or ``None`` when the rollout is already off (see module docstring)."""
    if phase in (Phase.FULL, Phase.PREMIUM):
        if phase is Phase.FULL:
            # Everyone is gated in full, whatever percentage the document kept from before
            # (`set --phase full` leaves it): the plan's first step halves 100%.
            percentage = 100
        half = percentage // 2
        if half > GRADUAL_FLOOR:
            return (
                {"phase": Phase.PREMIUM.value, "rolloutPercentage": half, "fallbackEnabled": True},
                f"percentage halved: {phase.value} {percentage}% -> premium {half}%",
            )
        pct = min(percentage, GRADUAL_FLOOR)
        return (
            {"phase": Phase.BETA.value, "rolloutPercentage": pct, "fallbackEnabled": True},
            f"down to beta only: {phase.value} {percentage}% -> beta {pct}%",
        )
    if phase is Phase.BETA:
        return (
            {"phase": Phase.OFF.value, "rolloutPercentage": 0, "fallbackEnabled": True},
            f"complete rollback: beta {percentage}% -> off",
        )
    return None
