"""The access decision as a value (contract section 3): a pure function of what was read."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from common.vocab import Access, Mode, Tier
from gating.rollout import RolloutConfig, in_cohort


class Reason(StrEnum):
    """Why; recorded with the decision."""

    GATING_OFF = "gating_off"
    """Phase off or the kill switch: the pre-gating experience for everyone."""
    OUTSIDE_COHORT = "outside_cohort"
    """Not in the gated cohort and the fallback is on: the pre-gating experience."""
    PREMIUM = "premium"
    FREE_PREVIEW = "free_preview"
    PREMIUM_REQUIRED = "premium_required"
    SHADOW = "shadow"
    """Shadow mode: decided and recorded, served as the pre-gating experience."""
    COHORT_FULL = "cohort_full"
    """In the percentage bucket, but the phase's ``maxCohortUsers`` seats were taken."""


@dataclass(frozen=True)
class Decision:
    """The outcome of the gate for one call."""

    access: Access
    reason: Reason
    tier: Tier
    """The user's own tier."""
    limit_tier: Tier
    """The tier whose rate limit applies (premium-sized in the pre-gating experience)."""
    gated: bool
    """True when the premium gate applied to this user (in the cohort, or no fallback)."""

    @property
    def denied(self) -> bool:
        """True when the call is refused with ``premium_required``."""
        return self.access is Access.DENIED


def decide(
    cfg: RolloutConfig, uid: str, premium: bool, groups: frozenset[str], mode: Mode
) -> Decision:
    """Decide access for ``mode``."""
    tier = Tier.PREMIUM if premium else Tier.FREE
    asked = Access(mode)
    # The pre-gating experience is full enrichment whatever was asked: it had no previews.
    if not cfg.gating_active:
        return Decision(Access.FULL, Reason.GATING_OFF, tier, Tier.PREMIUM, gated=False)
    cohort = in_cohort(cfg, uid, premium, groups)
    if not cohort and cfg.fallbackEnabled:
        return Decision(Access.FULL, Reason.OUTSIDE_COHORT, tier, Tier.PREMIUM, gated=False)
    if premium:
        return Decision(asked, Reason.PREMIUM, tier, tier, gated=True)
    if asked is Access.PREVIEW:
        return Decision(Access.PREVIEW, Reason.FREE_PREVIEW, tier, tier, gated=True)
    return Decision(Access.DENIED, Reason.PREMIUM_REQUIRED, tier, tier, gated=True)


def shadowed(decision: Decision) -> tuple[Decision, str | None]:
    """Shadow mode (contract section 3): the decision as served (the pre-gating experience) and
    what the gate would have done (``refuse``, ``preview``, or ``None`` when it would serve in
    full anyway)."""
    would = None
    if decision.denied:
        would = "refuse"
    elif decision.access is Access.PREVIEW and decision.tier is Tier.FREE:
        would = "preview"
    served = Decision(Access.FULL, Reason.SHADOW, decision.tier, Tier.PREMIUM, gated=False)
    return served, would
