"""Time is injected everywhere so window and TTL logic is testable without sleeping."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

Clock = Callable[[], datetime]
"""A function returning the current time as an aware UTC datetime."""


def utcnow() -> datetime:
    """The real clock."""
    return datetime.now(UTC)


def iso(ts: datetime) -> str:
    """ISO-8601 in UTC with a ``Z`` suffix and second precision, as answers carry it."""
    return ts.astimezone(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")
