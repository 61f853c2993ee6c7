"""Structured logs: one JSON object per line, which Cloud Logging reads as ``jsonPayload``."""

from __future__ import annotations

import json
import sys
from typing import Any

from gating.clock import iso, utcnow


def log(severity: str, message: str, **fields: Any) -> None:
    """Write a structured log line (severity DEBUG/INFO/WARNING/ERROR/CRITICAL)."""
    entry = {
        "severity": severity,
        "message": message,
        "component": "external-data",
        "time": iso(utcnow()),
        **fields,
    }
    print(json.dumps(entry, default=str, separators=(",", ":")), file=sys.stderr, flush=True)
