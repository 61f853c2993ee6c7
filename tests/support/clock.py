"""The one fake clock of the test suites: the core and the enrichment engine both take
``now: Callable[[], datetime]``, so a callable that only moves when a test moves it makes every
window, TTL and deadline test exact, with no sleeps."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

START = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)
"""Where a ``FakeClock()`` starts unless told otherwise."""


@dataclass
class FakeClock:
    """A clock tests move by hand; pass it wherever the code takes ``now``."""

    now: datetime = field(default=START)
    """The time the clock reads until ``advance`` moves it."""

    def __call__(self) -> datetime:
        """The current fake time."""
        return self.now

    def advance(self, **kw: float) -> None:
        """Move forward by ``timedelta(**kw)`` (``seconds=61``, ``hours=1``, ...)."""
        self.now += timedelta(**kw)
