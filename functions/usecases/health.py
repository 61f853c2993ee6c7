"""``externalDataHealth``: what the uptime check asks, answered from one read of the rollout
config. Nothing secret: whether the store answered, the config's version and phase.

``GET`` (and ``HEAD``) answer ``200`` with ``{"ok": true, "store": "reachable",
"configVersion": N, "phase": P}`` when the store answered (a missing config is version 0, phase
``off``, as the gate reads it), and ``503`` with ``ok: false, store: "unreachable"`` when it did
not; any other method is ``405``. The answer is never cached. A config document that does not
parse still answers 200 (the store is reachable; the functions serve their last good config)
with ``phase: "invalid"``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from common.logs import error_ref, log
from gating.rollout import ConfigInvalid, parse
from stores.base import DocumentStore
from stores.errors import StoreError
from stores.schema import CONFIG_PATH

FN = "externalDataHealth"
HEADERS = {"Cache-Control": "no-store", "Content-Type": "application/json"}


@dataclass(frozen=True)
class HealthAnswer:
    """An HTTP status and a JSON body."""

    status: int
    body: dict[str, Any]


def check(store: DocumentStore) -> HealthAnswer:
    """Read the config once; the answer says whether that worked (see the module docstring)."""
    try:
        doc = store.get_many([CONFIG_PATH]).get(CONFIG_PATH)
    except StoreError as exc:
        log("ERROR", "health: store unreachable", labels={"function": FN}, **error_ref(exc))
        return HealthAnswer(
            503, {"ok": False, "store": "unreachable", "configVersion": None, "phase": None}
        )
    version = (doc or {}).get("version", 0)
    try:
        phase = parse(doc).phase.value
    except ConfigInvalid:
        phase = "invalid"
    return HealthAnswer(
        200,
        {
            "ok": True,
            "store": "reachable",
            "configVersion": version if isinstance(version, int) else 0,
            "phase": phase,
        },
    )


def respond(store: DocumentStore, method: str) -> HealthAnswer:
    """The answer to one HTTP request of ``method``."""
    if method.upper() not in ("GET", "HEAD"):
        return HealthAnswer(405, {"ok": False, "error": "method not allowed; use GET"})
    return check(store)
