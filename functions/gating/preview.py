"""What a free user sees in the gated cohort: the same shape, trimmed (contract 2.1)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

PREVIEW_ITEMS = 3
"""Items kept per list in a preview."""


def trim_preview(data: Mapping[str, Any], *, propagate: bool = False) -> dict[str, Any]:
    """At most ``PREVIEW_ITEMS`` items per list; ``locked: true`` on every section trimmed.

    A source section (``github``, ...) is also locked when something nested in it was trimmed
    (``propagate``), in a map or in an item of one of its lists; ``enrichedData`` itself only
    when its own lists (skills, projects) were.
    """
    out: dict[str, Any] = {}
    locked = False
    for key, value in data.items():
        if isinstance(value, list):
            items = [
                trim_preview(item, propagate=True) if isinstance(item, Mapping) else item
                for item in value[:PREVIEW_ITEMS]
            ]
            locked = (
                locked
                or len(value) > PREVIEW_ITEMS
                or (propagate and any(isinstance(i, dict) and i.get("locked") for i in items))
            )
            out[key] = items
        elif isinstance(value, Mapping):
            inner = trim_preview(value, propagate=True)
            locked = locked or (propagate and bool(inner.get("locked")))
            out[key] = inner
        else:
            out[key] = value
    if locked:
        out["locked"] = True
    return out
