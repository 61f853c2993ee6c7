"""The callable protocol as a load client sees it (apart from the Locust file, which patches the
process with gevent when imported)."""

from __future__ import annotations

import json
from typing import Any


def classify(status_code: int, text: str | None) -> tuple[str, dict[str, Any]]:
    """(kind, result) of one HTTP answer under the callable protocol."""
    if status_code == 0:
        return "TRANSPORT", {}
    try:
        body = json.loads(text or "")
    except ValueError:
        return f"HTTP {status_code}", {}
    if isinstance(body, dict) and isinstance(body.get("result"), dict):
        return "OK", body["result"]
    err = body.get("error") if isinstance(body, dict) else None
    if isinstance(err, dict) and err.get("status"):
        return str(err["status"]), {}
    return f"HTTP {status_code}", {}
