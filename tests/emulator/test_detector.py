"""Issue 10, security detection on the emulator: a user probing CV ids through the real
callable is found by the detector over the Firestore audit, recorded once (a second run adds
nothing), and counted in the aggregates.

Runs under ``scripts/with-emulators.sh``; fails (never skips) without the emulators.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

from analytics.metrics import num, read_buckets, total
from common.settings import load_settings
from observability.detector import DEFAULT, SUSPICIOUS, detect
from recording.recorder import Recorder
from scripts.devkit.emulator import call, seed
from stores.schema import AUDIT

ENRICH = "enrichCVWithExternalData"


def findings_of(store: Any, uid: str) -> list[dict[str, Any]]:
    rows = store.query(AUDIT, [("type", "==", SUSPICIOUS), ("uid", "==", uid)])
    return [d for _, d in rows]


def suspicious_today(store: Any, now: datetime) -> int:
    day = now.replace(hour=0, minute=0, second=0, microsecond=0)
    return num(
        total(read_buckets(store, "d", day, day + timedelta(days=1))), "sec.suspiciousActivity"
    )


def test_cv_probing_through_the_callable_is_found_once_and_counted(store: Any) -> None:
    start = datetime.now(UTC)
    if start.minute == 59 and start.second > 45:  # keep the probes inside one hour window
        time.sleep(61 - start.second)
    prober, _ = seed(store, "prober")
    victim, victim_cv = seed(store, "victim")
    for i in range(DEFAULT.cv_probing):
        cv = victim_cv if i == 0 else f"cv-guess-{i}"
        answer = call(
            ENRICH, {"cvId": cv, "mode": "preview", "sources": ["github"], "github": "x"}, prober
        )
        assert answer.status == "NOT_FOUND", answer.body
    recorder = Recorder(load_settings({}))
    now = datetime.now(UTC)
    counted_before = suspicious_today(store, now)
    first = detect(store, now, recorder.aggregate_writes, recorder.hash)
    mine = [f for f in first.recorded if f.subject == prober.uid]
    assert [f.rule for f in mine] == ["cv_probing"] and mine[0].count == DEFAULT.cv_probing
    assert not any(f.subject == victim.uid for f in first.findings)
    second = detect(store, datetime.now(UTC), recorder.aggregate_writes, recorder.hash)
    assert not any(f.subject == prober.uid for f in second.recorded)
    assert any(f.subject == prober.uid for f in second.findings)  # seen again, not recorded
    entries = findings_of(store, prober.uid)
    assert len(entries) == 1
    e = entries[0]
    assert e["rule"] == "cv_probing" and e["count"] == DEFAULT.cv_probing and e["version"] == 1
    assert e["window"]["end"] - e["window"]["start"] == DEFAULT.cv_probing_window
    assert suspicious_today(store, now) == counted_before + len(first.recorded)
