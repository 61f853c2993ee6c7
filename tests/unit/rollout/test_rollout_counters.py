"""The counter the access-control metrics read: ``c.unauthorizedFull`` counts a full answer to a
non-premium user inside the gate, and nothing else."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest

from common.settings import Settings
from common.vocab import Access, Fn, Outcome, Tier
from recording.recorder import CallRecord, Recorder, Switches


def _c(now: datetime, tier: Tier, access: Access, gated: bool) -> dict[str, Any]:
    rec = CallRecord(
        fn=Fn.ENRICH,
        at=now,
        duration_ms=10,
        outcome=Outcome.SUCCESS,
        tier=tier,
        access=access,
        gated=gated,
    )
    writes = Recorder(Settings(project_id="t"), rng=lambda n: 0).writes(rec, Switches())
    minute = next(w for w in writes if "/raw_" in w.path)
    return dict(minute.data.get("c", {}))


@pytest.mark.parametrize(
    ("tier", "access", "gated", "counted"),
    [
        ("free", "full", True, True),
        ("free", "full", False, False),  # outside the cohort: the pre-gating experience
        ("premium", "full", True, False),
        ("free", "preview", True, False),
    ],
)
def test_unauthorized_full_counter(
    now: datetime, tier: str, access: str, gated: bool, counted: bool
) -> None:
    c = _c(now, Tier(tier), Access(access), gated)
    assert ("unauthorizedFull" in c) is counted
