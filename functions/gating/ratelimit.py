"""Sliding-window rate limits (weighted pair of fixed windows) over atomic counters (contract §4).

Admission is decided by the value an atomic increment returns, never by read-modify-write: of N
simultaneous calls with L units left, the increments return N distinct values and exactly the
calls that drew a value within L are admitted. A refused call gives its unit back; since
admitted calls never do, the counter cannot fall back under the admitted count, so a late call
cannot slip in.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from common.logs import log
from common.settings import Settings
from common.vocab import Tier
from stores.base import DocumentStore
from stores.errors import StoreError
from stores.schema import rate_limit_path


@dataclass(frozen=True)
class Window:
    """Where the counters for one user, scope and moment live."""

    current_path: str
    previous_path: str
    start: datetime
    length: timedelta
    elapsed_fraction: float
    at: datetime
    """The moment the window was taken for (the call's ``now``)."""

    @property
    def end(self) -> datetime:
        """When the current fixed window closes."""
        return self.start + self.length


@dataclass(frozen=True)
class RateDecision:
    """The limiter's answer."""

    allowed: bool
    limit: int
    remaining: int
    reset_at: datetime
    """When the next unit becomes available (remaining 0) or the current window ends."""

    def retry_after_seconds(self, now: datetime) -> int:
        """Whole seconds from ``now`` until ``reset_at``, at least 1."""
        return max(1, math.ceil((self.reset_at - now).total_seconds()))


def window_for(scope: str, uid: str, now: datetime, length: timedelta) -> Window:
    """The fixed window containing ``now`` and the one before it."""
    epoch = datetime(2000, 1, 1, tzinfo=UTC)
    n = int((now - epoch) // length)
    start = epoch + n * length
    return Window(
        current_path=rate_limit_path(uid, scope, start),
        previous_path=rate_limit_path(uid, scope, start - length),
        start=start,
        length=length,
        elapsed_fraction=(now - start) / length,
        at=now,
    )


def next_available(
    window: Window, limit: int, previous: int, current: int, now: datetime
) -> datetime:
    """The first moment at which one more call would be admitted, given the counts."""
    if limit <= 0:
        return window.end + window.length
    if current + 1 <= limit:
        if previous <= 0:
            return now
        # previous * (1 - f) + current + 1 <= limit
        f = 1.0 - (limit - current - 1) / previous
        at = window.start + window.length * max(f, window.elapsed_fraction)
    else:
        # In the next window the current count becomes the weighted previous one.
        f = 1.0 - (limit - 1) / current if current > 0 else 0.0
        at = window.end + window.length * max(f, 0.0)
    return max(at, now).replace(microsecond=0) + timedelta(seconds=1)


def weighted(window: Window, previous: int) -> float:
    """The previous window's count as it weighs now."""
    return previous * (1.0 - window.elapsed_fraction)


class SlidingWindowLimiter:
    """Per-user sliding-window limiter for one scope ("enrich" per hour, "track" per minute)."""

    def __init__(self, store: DocumentStore, scope: str, length: timedelta) -> None:
        self.store = store
        self.scope = scope
        self.length = length

    def window(self, uid: str, now: datetime) -> Window:
        """The window for ``uid`` at ``now``."""
        return window_for(self.scope, uid, now, self.length)

    def send(self, window: Window) -> Callable[[], int]:
        """The increment ``admit`` makes, sent now: pass it to ``admit``, which collects it
        (the caller may work meanwhile, taking nothing it would have to undo)."""
        return self.store.start_increment(window.current_path, "count", 1, self._expiry(window))

    def admit(
        self, window: Window, limit: int, previous: int, sent: Callable[[], int] | None = None
    ) -> RateDecision:
        """Take one unit if the sliding window allows; one round trip (two when refused).

        ``previous`` is the previous window's final count (read once, cacheable: it is closed).
        ``sent``: this window's increment, already sent by ``send``.
        """
        w, now = window, window.at
        if sent is not None:
            drawn = sent()
        else:
            drawn = self.store.increment(w.current_path, "count", 1, self._expiry(w))
        budget = limit - weighted(w, previous)
        if drawn <= budget:
            remaining = max(0, math.floor(budget - drawn))
            reset = w.end if remaining > 0 else next_available(w, limit, previous, drawn, now)
            return RateDecision(True, limit, remaining, reset)
        self.give_back(w, "refused")
        reset = next_available(w, limit, previous, drawn - 1, now)
        return RateDecision(False, limit, 0, reset)

    def _expiry(self, window: Window) -> dict[str, Any]:
        """A window counter's ``expireAt`` (Firestore TTL): once its window and the next, which
        weighs it, are over."""
        return {"expireAt": window.end + 2 * self.length}

    def count(self, window: Window) -> bool:
        """Count one unit without deciding (the limits are switched off); True if counted. A
        store that fails here refuses nobody: no limit applies."""
        try:
            self.store.increment(window.current_path, "count", 1, self._expiry(window))
        except StoreError as exc:
            log("ERROR", "rate-limit count failed", errorType=type(exc).__name__)
            return False
        return True

    def give_back(self, window: Window, why: str) -> bool:
        """Return one unit to ``window`` (a refused call, or fair quota); True if it was."""
        try:
            # With its expiry: a counter deleted meanwhile (an erasure) is recreated by the
            # increment, and must not stay forever at -1, an extra unit for every later window.
            self.store.increment(window.current_path, "count", -1, self._expiry(window))
        except StoreError as exc:
            # The unit stays taken (fails closed: one call fewer this hour).
            log("ERROR", "rate-limit give-back failed", why=why, errorType=type(exc).__name__)
            return False
        return True

    @staticmethod
    def usage(window: Window, limit: int, previous: int, current: int) -> RateDecision:
        """What a user has left, from counts read elsewhere (for stats; takes nothing)."""
        w, now = window, window.at
        used = weighted(w, previous) + current
        remaining = max(0, math.floor(limit - used))
        reset = w.end if remaining > 0 else next_available(w, limit, previous, current, now)
        return RateDecision(remaining > 0, limit, remaining, reset)


def hourly_limit(settings: Settings, tier: Tier) -> int:
    """The enrichment limit per sliding hour for ``tier`` (contract section 4)."""
    return settings.premium_hourly if tier is Tier.PREMIUM else settings.free_hourly
