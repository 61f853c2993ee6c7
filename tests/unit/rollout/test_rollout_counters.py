"""The counter the access-control metrics read: ``c.unauthorizedFull`` counts a full answer to a
non-premium user inside the gate, and nothing else."""

from __future__ import annotations

from datetime import datetime

import pytest

from gating.recording import CallRecord, Outcome, Recorder
from gating.rollout import RolloutConfig
from gating.settings import Settings


def _c(now: datetime, **kw: object) -> dict:
    rec = CallRecord(
        fn="enrichCVWithExternalData", at=now, duration_ms=10, outcome=Outcome.SUCCESS, **kw
    )
    writes = Recorder(Settings(project_id="t"), rng=lambda n: 0).writes(rec, RolloutConfig())
    minute = next(w for w in writes if "/m_" in w.path)
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
    c = _c(now, tier=tier, access=access, gated=gated)
    assert ("unauthorizedFull" in c) is counted
