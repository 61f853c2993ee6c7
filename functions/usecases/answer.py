"""The enrichment answer (contract 2.1): bounded (lists and strings capped, under 900 KB,
``truncated: true`` when cut), trimmed for a preview, and stored on its own, so that a result
too big or a store failure never takes the call's audit, usage and metrics records with it."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from common.clock import iso
from common.errors import CallFacts
from common.logs import error_ref, log
from common.vocab import Access, Fn, Outcome, ResultStatus, Tier
from enrichment.bounds import bound_result, json_size
from enrichment.model import EnrichmentResult, SourceReport
from gating.decision import Decision
from gating.preview import trim_preview
from gating.ratelimit import RateDecision
from gating.rollout import RolloutConfig
from recording.recorder import SourceOutcome
from stores.base import Write
from stores.errors import StoreError
from stores.schema import result_path
from usecases.app import App
from usecases.context import CallContext
from usecases.hooks import Served
from usecases.requests import EnrichRequest

STORED_MAX_BYTES = 1_000_000
"""Firestore's document limit (1 MiB) with room for the field names."""
NOT_SAVED = "The result could not be saved; it is shown here only. Please retry later to keep it."
_OUTCOMES = {ResultStatus.SUCCESS: Outcome.SUCCESS, ResultStatus.PARTIAL: Outcome.PARTIAL}


def served(
    app: App,
    ctx: CallContext,
    req: EnrichRequest,
    decision: Decision,
    rate: RateDecision | None,
    cfg: RolloutConfig,
    facts: CallFacts,
    result: EnrichmentResult,
) -> Served:
    """The answer and what is recorded about it; the result document is written first."""
    data, truncated = bound_result(dict(result.data))
    if decision.access is Access.PREVIEW:
        data = trim_preview(data)
    body: dict[str, Any] = {
        "requestId": ctx.request_id,
        "status": result.status.value,
        "access": decision.access.value,
        "enrichedData": data,
        "sources": [s.to_dict() for s in result.sources],
        "usage": _usage(decision, rate),
        "messages": _messages(decision, cfg),
        "durationMs": round(ctx.elapsed_ms()),
    }
    if truncated:
        body["truncated"] = True
    if not _store_result(app, ctx, req, decision, result, data, body):
        body["messages"] = {**body["messages"], "notSaved": NOT_SAVED}
    log(
        "INFO",
        "enrichment served",
        labels={
            "function": Fn.ENRICH.value,
            "outcome": result.status.value,
            "phase": cfg.phase.value,
        },
        event="access_granted",
        requestId=ctx.request_id,
        uid=ctx.caller.uid,
        access=decision.access.value,
        status=result.status.value,
        durationMs=round(ctx.elapsed_ms(), 1),
    )
    return Served(
        body,
        facts,
        _OUTCOMES.get(result.status, Outcome.FAILED),
        sources=[source_outcome(s) for s in result.sources],
    )


def _messages(decision: Decision, cfg: RolloutConfig) -> dict[str, str]:
    if decision.access is Access.PREVIEW:
        return cfg.message_set(("preview", "gate", "upgrade"))
    if decision.tier is Tier.PREMIUM:
        return cfg.message_set(("welcome", "guidance", "support"))
    return {}


def _usage(decision: Decision, rate: RateDecision | None) -> dict[str, Any]:
    return {
        "tier": decision.tier.value,
        "limit": rate.limit if rate else None,
        "remaining": rate.remaining if rate else None,
        "resetAt": iso(rate.reset_at) if rate else None,
    }


def _store_result(
    app: App,
    ctx: CallContext,
    req: EnrichRequest,
    decision: Decision,
    result: EnrichmentResult,
    data: Mapping[str, Any],
    body: Mapping[str, Any],
) -> bool:
    """Write ``cvs/{cvId}/externalData/latest`` on its own; False (logged) when it failed."""
    doc = {
        "requestId": ctx.request_id,
        "userId": ctx.caller.uid,
        "at": ctx.now,
        "access": decision.access.value,
        "status": result.status.value,
        # One JSON string, not a map: a map is encoded and indexed value by value (most of a
        # cache hit's time, and a user with hundreds of repositories would pass Firestore's
        # 40,000 index entries per document).
        "enrichedDataJson": json.dumps(data, separators=(",", ":"), default=str),
        "sources": body["sources"],
    }
    size = len(doc["enrichedDataJson"].encode("utf-8")) + json_size(body["sources"])
    if size > STORED_MAX_BYTES:
        log("ERROR", "result too large to store", requestId=ctx.request_id, bytes=size)
        return False
    try:
        app.store.commit([Write(result_path(req.cv_id), doc, merge=False)])
    except StoreError as exc:
        log("ERROR", "result not stored", requestId=ctx.request_id, **error_ref(exc))
        return False
    return True


def source_outcome(s: SourceReport) -> SourceOutcome:
    """What the records keep of one source's report."""
    return SourceOutcome(
        s.source, s.status, float(s.duration_ms), bool(s.cached), s.error.code if s.error else None
    )
