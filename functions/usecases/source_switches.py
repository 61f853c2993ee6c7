"""Which requested sources run (contract sections 2.1 and 6): a source the operator switched off
(``sources.{name}.enabled``) or whose circuit breaker is open is ``skipped`` with code
``disabled`` and costs no time; a half-open breaker lets a few probe calls through."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timedelta

from common.vocab import ResultStatus, SourceErrorCode, SourceStatus
from enrichment.model import EnrichmentResult, SourceError, SourceReport
from gating.rollout import BreakerState, RolloutConfig
from stores.schema import breaker_probe_path
from usecases.app import App

PROBES_PER_HALF_OPEN = 3
"""Calls let through to a half-open source before the evaluator judges them."""

OPERATOR_OFF = "This source is switched off for now."
BREAKER_OPEN = "This source is paused after repeated failures upstream; it will be retried."


def disabled_sources(
    app: App, cfg: RolloutConfig, requested: Sequence[str], now: datetime
) -> dict[str, str]:
    """The requested sources that must not run now, with the message their report carries."""
    out: dict[str, str] = {}
    for name in requested:
        if not cfg.source_enabled(name):
            out[name] = OPERATOR_OFF
            continue
        state = cfg.breaker(name, now)
        if state is BreakerState.OPEN or (
            state is BreakerState.HALF_OPEN and not _probe_allowed(app, cfg, name, now)
        ):
            out[name] = BREAKER_OPEN
    return out


def _probe_allowed(app: App, cfg: RolloutConfig, name: str, now: datetime) -> bool:
    b = cfg.breakers.get(name)
    since = (b.until or b.since) if b else None
    if since is None:
        return True
    path = breaker_probe_path(name, since)
    drawn = app.store.increment(path, "calls", 1, {"expireAt": now + timedelta(days=1)})
    return drawn <= PROBES_PER_HALF_OPEN


def with_disabled(
    result: EnrichmentResult | None, disabled: Mapping[str, str], order: Sequence[str]
) -> EnrichmentResult:
    """The engine's result (over the enabled sources; ``None`` when none was) with a
    ``skipped``/``disabled`` report for each disabled source, in request order. A result that
    lost a source is at best ``partial``."""
    reports = {r.source: r for r in (result.sources if result else ())}
    for name, message in disabled.items():
        error = SourceError(SourceErrorCode.DISABLED.value, message)
        reports[name] = SourceReport(name, SourceStatus.SKIPPED, 0, 0, False, error)
    ordered = tuple(reports[name] for name in order if name in reports)
    if result is None:
        return EnrichmentResult({}, ordered, ResultStatus.FAILED, False, 0)
    status = result.status
    if disabled and status is ResultStatus.SUCCESS:
        status = ResultStatus.PARTIAL
    return replace(result, sources=ordered, status=status)
