"""Which requested sources run (contract sections 2.1 and 6): a source the operator switched off
(``sources.{name}.enabled``) or whose circuit breaker is open is ``skipped`` with code
``disabled`` and costs no time; a half-open breaker lets a few probe calls through, which skip
the cache for that call and record their outcome on the half-open period's probe document (what
the evaluator judges the breaker by)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from common.logs import error_ref, log
from common.vocab import ResultStatus, SourceErrorCode, SourceStatus
from enrichment.model import EnrichmentResult, SourceError, SourceReport
from gating.rollout import BreakerState, RolloutConfig
from rollout_control.breakers import (
    PROBE_ANSWERED,
    PROBE_DRAWN,
    PROBE_FAILED,
    PROBES_PER_HALF_OPEN,
    probe_path,
)
from stores.errors import StoreError
from usecases.app import App

PROBE_KEEP = timedelta(days=1)
"""How long a probe document is kept (``expireAt``)."""

OPERATOR_OFF = "This source is switched off for now."
BREAKER_OPEN = "This source is paused after repeated failures upstream; it will be retried."


@dataclass(frozen=True)
class SourcePlan:
    """Which requested sources run this call."""

    disabled: Mapping[str, str]
    """Sources that must not run, with the message their report carries."""
    probes: Mapping[str, str]
    """Sources let through a half-open breaker, with the probe document they drew a ticket on."""


def plan_sources(
    app: App, cfg: RolloutConfig, requested: Sequence[str], now: datetime
) -> SourcePlan:
    """Switched-off and paused sources out; one probe ticket drawn per half-open source."""
    disabled: dict[str, str] = {}
    probes: dict[str, str] = {}
    for name in requested:
        if not cfg.source_enabled(name):
            disabled[name] = OPERATOR_OFF
            continue
        state = cfg.breaker(name, now)
        if state is BreakerState.OPEN:
            disabled[name] = BREAKER_OPEN
        elif path := probe_path(cfg, name, now):  # half-open, with a period to probe
            if _drew_ticket(app, path, now):
                probes[name] = path
            else:
                disabled[name] = BREAKER_OPEN
    return SourcePlan(disabled, probes)


def _drew_ticket(app: App, path: str, now: datetime) -> bool:
    drawn = app.store.increment(path, PROBE_DRAWN, 1, {"expireAt": now + PROBE_KEEP})
    return drawn <= PROBES_PER_HALF_OPEN


def record_probes(
    app: App, plan: SourcePlan, result: EnrichmentResult | None, now: datetime
) -> None:
    """Each probe's outcome on its probe document. A failed write is logged: the evaluator
    then sees fewer outcomes and, with none at all, starts a new half-open period."""
    reports = {r.source: r for r in (result.sources if result else ())}
    for name, path in plan.probes.items():
        report = reports.get(name)
        if report is None or report.status is SourceStatus.SKIPPED:
            continue
        outcome = PROBE_FAILED if report.failed_upstream else PROBE_ANSWERED
        try:
            app.store.increment(path, outcome, 1, {"expireAt": now + PROBE_KEEP})
        except StoreError as exc:
            log(
                "WARNING",
                "probe outcome not recorded",
                source=name,
                outcome=outcome,
                **error_ref(exc),
            )


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
        # Contract 2.1's answer always carries the merged lists, empty when nothing ran.
        return EnrichmentResult(
            {"skills": [], "projects": []}, ordered, ResultStatus.FAILED, False, 0
        )
    status = result.status
    if disabled and status is ResultStatus.SUCCESS:
        status = ResultStatus.PARTIAL
    return replace(result, sources=ordered, status=status)
