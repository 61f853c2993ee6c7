"""Issue 10: a log line of each kind as Cloud Logging parses it (``severity``, the labels under
``logging.googleapis.com/labels``, the trace under ``logging.googleapis.com/trace``), and the
health function on the functions emulator.

Granted, refused and crash lines come from ``main.py``'s callable served by functions-framework
(the production host) beside the emulators, called with a W3C ``traceparent`` header; its stderr
is the file ``.tools/ff-<target>.log``. The crash is injected with a ``sitecustomize`` that makes
the enrichment engine raise (fault injection; everything else is the real code path). The
rollback and breaker lines come from the real evaluator over an in-memory store whose last
minutes failed upstream, written through the same ``StructuredLogHandler``.

The served and refused lines carry the ``phase`` label and the audit event type as ``event``;
the crash line its ``function`` and ``outcome`` labels; the rollback line ``kind`` and a text
``trigger`` (the log-based metrics extract them). The rollback and breaker lines come from one
evaluator run (no request, so no trace).
"""

from __future__ import annotations

import io
import json
import os
import secrets
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from common import logs
from scripts.devkit.emulator import GATED, project, seed
from stores.base import Inc, Write
from stores.memory import MemoryStore
from tests.support.ffserver import ROOT, free_port, functions_framework

ENRICH = "enrichCVWithExternalData"
TRACE = "logging.googleapis.com/trace"
LABELS = "logging.googleapis.com/labels"
LINKEDIN = ROOT / "tests" / "fixtures" / "linkedin" / "complete"
CRASH = """
import enrichment.engine as _engine

def _crash(self, inp):
    raise RuntimeError("injected engine fault")

_engine.Engine.enrich = _crash
"""


def traceparent() -> tuple[str, str]:
    trace_id, span = secrets.token_hex(16), secrets.token_hex(8)
    return trace_id, f"00-{trace_id}-{span}-01"


def enrich_with_trace(url: str, user: Any, data: dict[str, Any]) -> tuple[str, int]:
    trace_id, header = traceparent()
    r = httpx.post(
        url,
        json={"data": data},
        headers={"Authorization": f"Bearer {user.token}", "traceparent": header},
        timeout=60,
    )
    return trace_id, r.status_code


def json_lines(path: Path) -> list[dict[str, Any]]:
    out = []
    for line in path.read_text().splitlines():
        if line.startswith("{"):
            try:
                out.append(json.loads(line))
            except ValueError:
                continue
    return out


def line_of(lines: list[dict[str, Any]], trace_id: str, message: str) -> dict[str, Any]:
    want = f"projects/{project()}/traces/{trace_id}"
    found = [x for x in lines if x.get(TRACE) == want and x.get("message") == message]
    assert len(found) == 1, [x.get("message") for x in lines if x.get(TRACE) == want]
    return found[0]


def linkedin() -> dict[str, str]:
    return {p.name: p.read_text(encoding="utf-8") for p in sorted(LINKEDIN.glob("*.csv"))}


@pytest.fixture(scope="module")
def served(store: Any, tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    """One line of each kind from served callables, by kind."""
    store.commit([Write("config/externalDataRollout", GATED, merge=False)])
    premium, pcv = seed(store, "log-premium", premium=True)
    free, fcv = seed(store, "log-free")
    body = {"sources": ["linkedin"], "linkedin": {"export": linkedin()}}
    base = {"GCLOUD_PROJECT": project(), "EXTERNAL_DATA_LOG_LEVEL": "INFO"}
    out: dict[str, dict[str, Any]] = {}
    with functions_framework(ENRICH, base) as url:
        granted, s1 = enrich_with_trace(url, premium, {"cvId": pcv, "mode": "full", **body})
        refused, s2 = enrich_with_trace(url, free, {"cvId": fcv, "mode": "full", **body})
    assert (s1, s2) == (200, 403)
    lines = json_lines(ROOT / ".tools" / f"ff-{ENRICH}.log")
    out["granted"] = line_of(lines, granted, "enrichment served")
    out["refused"] = line_of(lines, refused, f"{ENRICH} refused")
    inject = tmp_path_factory.mktemp("crash")
    (inject / "sitecustomize.py").write_text(CRASH)
    path = os.pathsep.join([str(inject), str(ROOT / "functions")])
    with functions_framework(ENRICH, {**base, "PYTHONPATH": path}) as url:
        crashed, s3 = enrich_with_trace(url, premium, {"cvId": pcv, "mode": "full", **body})
    assert s3 == 500
    lines = json_lines(ROOT / ".tools" / f"ff-{ENRICH}.log")
    out["crash"] = line_of(lines, crashed, "enrichment engine crashed")
    out["crash-answer"] = line_of(lines, crashed, f"{ENRICH} refused")
    out.update(evaluator_lines())
    return out


def evaluator_lines() -> dict[str, dict[str, Any]]:
    """The evaluator's automatic-rollback and breaker lines, from one real run over minutes
    where every call failed upstream, through the configured structured handler."""
    from rollout_control.evaluator import evaluate

    mem = MemoryStore()
    now = datetime.now(UTC).replace(second=30, microsecond=0)
    cfg = {**GATED, "phase": "beta", "rolloutPercentage": 1, "fallbackEnabled": True}
    writes = [Write("config/externalDataRollout", cfg, merge=False)]
    for k in range(1, 6):
        start = (now - timedelta(minutes=k)).replace(second=0)
        doc: dict[str, Any] = {"granularity": "m", "bucketStart": start, "shard": 0}
        doc["c"] = {"requests": Inc(5), "errors": Inc(5), "failed": Inc(5)}
        doc["failedUsers"] = {f"user{i}": Inc(1) for i in range(5)}
        doc["src"] = {"github": {"requests": Inc(5), "upstreamFailures": Inc(5), "failed": Inc(5)}}
        doc["srcFailedUsers"] = {"github": {f"user{i}": Inc(1) for i in range(5)}}
        writes.append(Write(f"external_data_metrics/m_{start:%Y-%m-%dT%H:%M}_0", doc))
    mem.commit(writes)
    buf = io.StringIO()
    logs.configure("INFO", stream=buf, project_id=project())
    try:
        result = evaluate(mem, now, by="test")
    finally:
        logs.configure("INFO", stream=sys.stderr)
    assert result.applied, result.summary
    rows = [json.loads(x) for x in buf.getvalue().splitlines() if x.startswith("{")]
    return {
        "rollback": next(x for x in rows if "automatic" in x.get("message", "")),
        "breaker": next(x for x in rows if x.get("kind") == "source_breaker"),
    }


# -- what every line has today ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "severity", "labels"),
    [
        ("granted", "INFO", {"function": ENRICH, "outcome": "success"}),
        ("refused", "WARNING", {"function": ENRICH, "outcome": "denied"}),
        ("crash-answer", "ERROR", {"function": ENRICH, "outcome": "internal"}),
        ("crash", "ERROR", {}),
    ],
)
def test_served_lines_carry_severity_labels_and_the_requests_trace(
    served: dict[str, dict[str, Any]], kind: str, severity: str, labels: dict[str, str]
) -> None:
    line = served[kind]
    assert line["severity"] == severity
    assert {"component": "external-data", **labels}.items() <= line[LABELS].items()
    assert line[TRACE].startswith(f"projects/{project()}/traces/")
    assert line.get("logging.googleapis.com/spanId")
    assert line.get("logging.googleapis.com/trace_sampled") is True
    assert "injected engine fault" not in json.dumps(line)  # never the exception's message


def test_the_rollback_line_is_critical_and_labelled(served: dict[str, dict[str, Any]]) -> None:
    line = served["rollback"]
    assert line["severity"] == "CRITICAL"
    assert line[LABELS]["component"] == "external-data"
    assert line["alert"] is True and "no-success" in line["trigger"]


def test_the_breaker_line_matches_its_log_metric(served: dict[str, dict[str, Any]]) -> None:
    """monitoring/log_metrics/source_breaker.json: kind, source and state fields."""
    line = served["breaker"]
    assert line["severity"] == "WARNING"
    assert line[LABELS]["component"] == "external-data"
    assert (line["kind"], line["source"], line["state"]) == ("source_breaker", "github", "open")
    assert line["alert"] is True


# -- what the lines still lack (the lead's log calls; see the module docstring) ---------------


@pytest.mark.parametrize(
    ("kind", "event"), [("granted", "access_granted"), ("refused", "unauthorized_access")]
)
def test_served_lines_name_the_phase_and_the_audit_event(
    served: dict[str, dict[str, Any]], kind: str, event: str
) -> None:
    line = served[kind]
    assert line[LABELS].get("phase") == "full"
    assert line.get("event") == event


def test_the_crash_line_is_labelled(served: dict[str, dict[str, Any]]) -> None:
    assert served["crash"][LABELS].get("function") == ENRICH
    assert served["crash"][LABELS].get("outcome") == "internal"


def test_the_rollback_line_matches_its_log_metric(served: dict[str, dict[str, Any]]) -> None:
    line = served["rollback"]
    assert line.get("kind") == "automatic_rollback"  # monitoring/log_metrics/automatic_rollbacks
    assert isinstance(line.get("trigger"), str)
    assert line[LABELS].get("phase") == "beta"


# -- the health function ------------------------------------------------------------------------


def test_health_on_the_functions_emulator_answers_version_and_phase(store: Any) -> None:
    store.commit([Write("config/externalDataRollout", GATED, merge=False)])
    r = httpx.get(f"{os.environ['FUNCTIONS_BASE_URL']}/externalDataHealth", timeout=30)
    assert r.status_code == 200, r.text
    assert r.json() == {"ok": True, "store": "reachable", "configVersion": 1, "phase": "full"}
    assert r.headers["Cache-Control"] == "no-store"
    assert (
        httpx.post(f"{os.environ['FUNCTIONS_BASE_URL']}/externalDataHealth", timeout=30).status_code
        == 405
    )


def test_health_with_the_store_down_answers_503() -> None:
    dead = {"FIRESTORE_EMULATOR_HOST": f"127.0.0.1:{free_port()}"}
    with functions_framework("externalDataHealth", dead) as url:
        r = httpx.get(url, timeout=30)
    assert r.status_code == 503
    assert r.json() == {"ok": False, "store": "unreachable", "configVersion": None, "phase": None}
