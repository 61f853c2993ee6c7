"""The access decision as a value, branch by branch (contract section 3; mutation testing,
issue 13): every field of ``Decision`` for each outcome, users on both sides of the bucket, and
shadow mode's "would" for each kind of decision."""

from __future__ import annotations

import pytest

from common.vocab import Access, Mode, Tier
from gating.decision import Decision, Reason, decide, shadowed
from gating.rollout import Components, Phase, RolloutConfig

IN_25 = "user-90"  # bucket 24: inside 25%
OUT_25 = "user-264"  # bucket 25: outside 25%
NONE: frozenset[str] = frozenset()
BETA = frozenset({"beta-testers"})
PREMIUM_25 = RolloutConfig(phase=Phase.PREMIUM, rolloutPercentage=25)


def D(access: Access, reason: Reason, tier: Tier, limit: Tier, gated: bool) -> Decision:  # noqa: N802
    return Decision(access, reason, tier, limit, gated=gated)


F, P = Tier.FREE, Tier.PREMIUM


@pytest.mark.parametrize(
    ("cfg", "uid", "premium", "groups", "mode", "expected"),
    [
        # gating off or killed: the pre-gating experience, premium-sized limits, not gated
        (RolloutConfig(), IN_25, False, NONE, Mode.PREVIEW, D(Access.FULL, Reason.GATING_OFF, F, P, False)),
        (
            RolloutConfig(phase=Phase.FULL, components=Components(premiumGating=False)),
            IN_25, True, NONE, Mode.FULL, D(Access.FULL, Reason.GATING_OFF, P, P, False),
        ),
        # outside the cohort with the fallback
        (PREMIUM_25, OUT_25, False, NONE, Mode.FULL, D(Access.FULL, Reason.OUTSIDE_COHORT, F, P, False)),
        # inside by bucket: free users preview or are refused full
        (PREMIUM_25, IN_25, False, NONE, Mode.PREVIEW, D(Access.PREVIEW, Reason.FREE_PREVIEW, F, F, True)),
        (PREMIUM_25, IN_25, False, NONE, Mode.FULL, D(Access.DENIED, Reason.PREMIUM_REQUIRED, F, F, True)),
        # inside by group, outside the bucket
        (PREMIUM_25, OUT_25, False, BETA, Mode.FULL, D(Access.DENIED, Reason.PREMIUM_REQUIRED, F, F, True)),
        # premium users are in the premium phase's cohort whatever their bucket; get what they ask
        (PREMIUM_25, OUT_25, True, NONE, Mode.FULL, D(Access.FULL, Reason.PREMIUM, P, P, True)),
        (PREMIUM_25, OUT_25, True, NONE, Mode.PREVIEW, D(Access.PREVIEW, Reason.PREMIUM, P, P, True)),
        # no fallback: everyone outside the cohort is gated too
        (
            RolloutConfig(phase=Phase.BETA, rolloutPercentage=0, fallbackEnabled=False),
            OUT_25, False, NONE, Mode.FULL, D(Access.DENIED, Reason.PREMIUM_REQUIRED, F, F, True),
        ),
    ],
)  # fmt: skip
def test_each_branch_decides_every_field(
    cfg: RolloutConfig,
    uid: str,
    premium: bool,
    groups: frozenset[str],
    mode: Mode,
    expected: Decision,
) -> None:
    got = decide(cfg, uid, premium, groups, mode)
    assert got == expected
    assert got.denied is (expected.access is Access.DENIED)


def test_users_on_either_side_of_the_bucket_are_decided_apart() -> None:
    inside = decide(PREMIUM_25, IN_25, False, NONE, Mode.FULL)
    outside = decide(PREMIUM_25, OUT_25, False, NONE, Mode.FULL)
    assert (inside.reason, outside.reason) == (Reason.PREMIUM_REQUIRED, Reason.OUTSIDE_COHORT)


def test_shadow_serves_in_full_and_says_what_the_gate_would_have_done() -> None:
    served_as = D(Access.FULL, Reason.SHADOW, F, P, False)
    refused = decide(PREMIUM_25, IN_25, False, NONE, Mode.FULL)
    preview = decide(PREMIUM_25, IN_25, False, NONE, Mode.PREVIEW)
    assert shadowed(refused) == (served_as, "refuse")
    assert shadowed(preview) == (served_as, "preview")
    for full in (
        decide(PREMIUM_25, OUT_25, True, NONE, Mode.FULL),
        decide(PREMIUM_25, OUT_25, False, NONE, Mode.FULL),
        decide(PREMIUM_25, OUT_25, True, NONE, Mode.PREVIEW),  # a premium preview: nothing cut
    ):
        served, would = shadowed(full)
        assert would is None
        assert served == Decision(Access.FULL, Reason.SHADOW, full.tier, P, gated=False)
