"""Failures of the service, recorded exactly as the functions record them (``internal``
answers through the real ``Recorder``), for showing and testing the automatic rollback without
breaking the running functions."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from common.settings import load_settings
from common.vocab import Fn, Outcome
from recording.recorder import CallRecord, Recorder, Switches
from stores.base import Write


def record_service_failures(
    store: Any, before: datetime, uids: Sequence[str], per_minute: int, minutes: int = 10
) -> None:
    """``per_minute`` internal answers in each of the ``minutes`` complete minutes before
    ``before``, spread over ``uids`` (only the aggregates: no usage, no audit)."""
    rec = Recorder(load_settings({}), rng=lambda n: 0)
    writes: list[Write] = []
    for k in range(minutes):
        minute = before - timedelta(minutes=k + 1) + timedelta(seconds=5)
        for i in range(per_minute):
            r = CallRecord(
                Fn.ENRICH,
                minute,
                Outcome.INTERNAL,
                50.0,
                uid=uids[i % len(uids)],
                service_error=True,
            )
            writes.extend(rec.writes(r, Switches(False, False)))
    for start in range(0, len(writes), 400):
        store.commit(writes[start : start + 400])
