"""``enrichCVWithExternalData`` (contract 2.1), in the contract's order of checks.

The hot path (docs/architecture.md): at most one batched read before the gate (none when the
instance is warm), one atomic increment, the engine, one batched write.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from common.clock import iso
from common.errors import CallFacts, Internal, NotFound
from common.logs import error_ref, log
from common.vocab import Access, Fn, Outcome, ResultStatus, Tier
from enrichment.model import EnrichmentInput, EnrichmentResult, SourceReport
from gating.decision import Decision
from gating.preview import trim_preview
from gating.ratelimit import RateDecision
from gating.rollout import RolloutConfig
from recording.recorder import SourceOutcome
from stores.base import Write
from stores.schema import result_path
from usecases import admission
from usecases.app import App
from usecases.context import CallContext, Caller
from usecases.hooks import Served, handle
from usecases.requests import EnrichRequest, parse_enrich


def run(app: App, caller: Caller, raw: Any) -> dict[str, Any]:
    """Answer one ``enrichCVWithExternalData`` call."""
    return handle(Fn.ENRICH, app, caller, raw, _enrich)


def _enrich(app: App, ctx: CallContext, raw: Any) -> Served:
    uid = ctx.uid
    req = parse_enrich(raw, app.settings.linkedin_max_bytes)
    facts = CallFacts(cv_id=req.cv_id)
    window = app.limiter.window(uid, ctx.now)
    loaded = admission.load(app, uid, req.cv_id, window, ctx.now)
    if admission.owner(app, loaded, req.cv_id, uid) != uid:
        raise NotFound("CV not found.", facts=facts.with_(reason="CV missing or not the caller's"))
    decision = admission.gate(app, ctx, loaded, req, facts)
    facts = facts.with_(tier=decision.tier, gated=decision.gated)
    rate = admission.admit(app, uid, loaded, req, decision, window, facts)
    if rate is not None and rate.decision is not decision:
        decision = rate.decision
        facts = facts.with_(tier=decision.tier, gated=decision.gated)
    return _serve(app, ctx, req, decision, rate.rate if rate else None, loaded.cfg, facts)


def _serve(
    app: App,
    ctx: CallContext,
    req: EnrichRequest,
    decision: Decision,
    rate: RateDecision | None,
    cfg: RolloutConfig,
    facts: CallFacts,
) -> Served:
    """Run the engine and shape the answer; the result document is written with the records."""
    facts = facts.with_(access=decision.access, reason=decision.reason.value)
    result = _run_engine(app, ctx, req, facts)
    data = dict(result.data)
    if decision.access is Access.PREVIEW:
        data = trim_preview(data)
        messages = cfg.message_set(("preview", "gate", "upgrade"))
    elif decision.tier is Tier.PREMIUM:
        messages = cfg.message_set(("welcome", "guidance", "support"))
    else:
        messages = {}
    answer = {
        "requestId": ctx.request_id,
        "status": result.status.value,
        "access": decision.access.value,
        "enrichedData": data,
        "sources": [s.to_dict() for s in result.sources],
        "usage": _usage(decision, rate),
        "messages": messages,
        "durationMs": round(ctx.elapsed_ms()),
    }
    stored = Write(
        result_path(req.cv_id), _stored(ctx, decision, result, data, answer), merge=False
    )
    log(
        "INFO",
        "enrichment served",
        labels={"function": Fn.ENRICH.value, "outcome": result.status.value},
        requestId=ctx.request_id,
        uid=ctx.caller.uid,
        access=decision.access.value,
        status=result.status.value,
        durationMs=round(ctx.elapsed_ms(), 1),
    )
    return Served(
        answer,
        facts.with_(service_error=bool(result.service_failure)),
        _OUTCOMES.get(result.status, Outcome.FAILED),
        sources=[_source_outcome(s) for s in result.sources],
        extra_writes=(stored,),
    )


_OUTCOMES = {ResultStatus.SUCCESS: Outcome.SUCCESS, ResultStatus.PARTIAL: Outcome.PARTIAL}


def _run_engine(
    app: App, ctx: CallContext, req: EnrichRequest, facts: CallFacts
) -> EnrichmentResult:
    inp = EnrichmentInput(
        sources=req.sources,
        github=req.github,
        website=req.website,
        linkedin_export=req.linkedin_export,
        name=req.name,
        force_refresh=req.force_refresh,
        timeout_ms=req.timeout_ms,
    )
    try:
        return app.engine.enrich(inp)
    except Exception as exc:  # noqa: BLE001 - any engine crash is an internal error
        log("ERROR", "enrichment engine crashed", requestId=ctx.request_id, **error_ref(exc))
        crashed = facts.with_(reason="engine error", service_error=True)
        raise Internal("Enrichment failed. Please retry later.", facts=crashed) from None


def _usage(decision: Decision, rate: RateDecision | None) -> dict[str, Any]:
    return {
        "tier": decision.limit_tier.value,
        "limit": rate.limit if rate else None,
        "remaining": rate.remaining if rate else None,
        "resetAt": iso(rate.reset_at) if rate else None,
    }


def _stored(
    ctx: CallContext,
    decision: Decision,
    result: EnrichmentResult,
    data: Mapping[str, Any],
    answer: Mapping[str, Any],
) -> dict[str, Any]:
    return {
        "requestId": ctx.request_id,
        "userId": ctx.caller.uid,
        "at": ctx.now,
        "access": decision.access.value,
        "status": result.status.value,
        # One JSON string, not a map: a map is encoded and indexed value by value (most of a
        # cache hit's time, and a user with hundreds of repositories would pass Firestore's
        # 40,000 index entries per document).
        "enrichedDataJson": json.dumps(data, separators=(",", ":"), default=str),
        "sources": answer["sources"],
    }


def _source_outcome(s: SourceReport) -> SourceOutcome:
    return SourceOutcome(
        s.source,
        s.status,
        float(s.duration_ms),
        bool(s.cached),
        s.error.code if s.error else None,
    )
