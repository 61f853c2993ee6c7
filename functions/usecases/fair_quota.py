"""Fair quota (contract 2.1): an admitted call that fails through no fault of the user (a
failure of the service, every tried source failing upstream, or no requested source able to
run for a reason of ours) gives its unit back."""

from __future__ import annotations

from common.vocab import SourceErrorCode, SourceStatus
from enrichment.model import EnrichmentResult
from gating.ratelimit import RateDecision, Window
from usecases.app import App

_NOT_THE_USERS = frozenset({SourceErrorCode.DISABLED.value, SourceErrorCode.NOT_CONFIGURED.value})
"""Why a requested source may not run through no fault of the user: switched off by the
operator or its breaker, or not configured (no API key)."""


def none_could_run(result: EnrichmentResult) -> bool:
    """Fair quota (contract 2.1): no requested source ran, each for a reason of ours. An outage
    that opened every requested source's breaker must not spend the users' quota."""
    return bool(result.sources) and all(
        r.status is SourceStatus.SKIPPED and r.error is not None and r.error.code in _NOT_THE_USERS
        for r in result.sources
    )


def give_back(app: App, window: Window | None, rate: RateDecision | None) -> RateDecision | None:
    """Fair quota: the unit this call took, returned; the answer's ``remaining`` shows it, and
    ``resetAt`` is then the window's end, as for any answer with units left. ``window`` is
    ``None`` when the call was not counted; ``rate`` is ``None`` when limits are off (counted,
    unlimited)."""
    if window is None or not app.limiter.give_back(window, "fair quota") or rate is None:
        return rate
    remaining = min(rate.limit, rate.remaining + 1)
    return RateDecision(rate.allowed, rate.limit, remaining, window.end)
