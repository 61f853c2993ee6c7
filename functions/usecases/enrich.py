"""``enrichCVWithExternalData`` (contract 2.1), in the contract's order of checks:
token, request, idempotent replay, CV owner, access decision, rate limit, engine.

The hot path (docs/architecture.md): at most one batched read before the gate (none when the
instance is warm), one atomic increment with the engine's cache read and the re-read of the
held CV owner beside it (a call the cache answers whole is enriched while the
increment is in flight), then one commit: the call's records with its result document (an
idempotent call stores its result first, alone). Fair quota: ``usecases.fair_quota``.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, NamedTuple

from common.errors import CallFacts, Internal, NotFound, ResourceExhausted
from common.logs import error_ref, log
from common.vocab import Fn
from enrichment.model import EnrichmentInput, EnrichmentResult
from gating.decision import Decision
from gating.ratelimit import RateDecision, Window
from gating.rollout import RolloutConfig
from stores.errors import StoreError
from usecases import admission, answer, fair_quota, held_copies, idempotency, shaping
from usecases.app import App
from usecases.context import CallContext, Caller
from usecases.hooks import Served, handle
from usecases.requests import EnrichRequest, parse_enrich
from usecases.source_switches import plan_sources, record_probes, with_disabled


def run(app: App, caller: Caller, raw: Any) -> dict[str, Any]:
    """Answer one ``enrichCVWithExternalData`` call."""
    return handle(Fn.ENRICH, app, caller, raw, _enrich)


def _enrich(app: App, ctx: CallContext, raw: Any) -> Served:
    _ = ctx.uid
    req = parse_enrich(raw, app.settings.linkedin_max_bytes)
    if req.idempotency_key is None:
        return _admit_and_serve(app, ctx, req)
    first = idempotency.begin(app, ctx, req.idempotency_key, idempotency.request_hash(req))
    if not isinstance(first, idempotency.Claim):
        return Served(first, replay=True)
    try:
        served = _admit_and_serve(app, ctx, req)
    except Exception:
        # Refused or failed before it was served (a store that stopped answering included): a
        # retry runs again. Should this write fail too, the claim's lease ends it.
        _quietly(idempotency.release, app, first)
        raise
    # The answer kept for retries must be final: the result is stored now, not with the records.
    served = answer.store_alone(app, ctx, served)
    _quietly(idempotency.finish, app, first, served.answer)
    return served


def _quietly(step: Any, *args: Any) -> None:
    """Idempotency bookkeeping never changes the answer; a failure only loses the replay."""
    try:
        step(*args)
    except StoreError as exc:
        log("ERROR", "idempotency record not written", **error_ref(exc))


def _admit_and_serve(
    app: App, ctx: CallContext, req: EnrichRequest, *, reread_cv: bool = False
) -> Served:
    uid = ctx.uid
    facts = CallFacts(cv_id=req.cv_id)
    window = app.limiter.window(uid, ctx.now)
    loaded = admission.load(app, uid, req.cv_id, window, ctx.now, reread_cv=reread_cv)
    if admission.owner(app, loaded, req.cv_id, uid, ctx.now) != uid:
        raise NotFound("CV not found.", facts=facts.with_(reason="CV missing or not the caller's"))
    decision, facts = admission.gate(app, ctx, loaded, req, facts)
    read = _read_ahead(app, req)
    recheck = held_copies.start(app, loaded, req.cv_id)
    # While the increment is in flight: the enrichment, if the cache answers every source
    # (nothing fetched, nothing written; dropped if the call is refused), shaped for the answer.
    try:
        admitted = admission.admit(
            app, uid, loaded, req, decision, window, facts, lambda: _early(app, read, decision)
        )
    except ResourceExhausted:
        if not held_copies.stale(app, ctx, req.cv_id, recheck, None):  # a refusal keeps no unit
            raise
        return _admit_and_serve(app, ctx, req, reread_cv=True)
    if held_copies.stale(app, ctx, req.cv_id, recheck, window if admitted.counted else None):
        return _admit_and_serve(app, ctx, req, reread_cv=True)
    ahead: _Ahead = admitted.early
    if admitted.decision is not decision:
        decision = admitted.decision
        facts = facts.with_(tier=decision.tier, gated=decision.gated)
    counted = window if admitted.counted else None
    return _serve(app, ctx, req, (decision, admitted.rate, counted), loaded.cfg, facts, ahead)


def _serve(
    app: App,
    ctx: CallContext,
    req: EnrichRequest,
    admitted: tuple[Decision, RateDecision | None, Window | None],
    cfg: RolloutConfig,
    facts: CallFacts,
    ahead: _Ahead,
) -> Served:
    """Run the engine, give the unit back if the failure was not the user's, shape the answer."""
    decision, rate, window = admitted
    facts = facts.with_(access=decision.access, reason=decision.reason.value)
    try:
        result = _run_engine(app, ctx, req, cfg, facts, ahead)
    except (Internal, StoreError):  # a service failure after admission: not the user's
        fair_quota.give_back(app, window, rate)
        raise
    facts = facts.with_(upstream_failure=bool(result.service_failure))
    if facts.upstream_failure or fair_quota.none_could_run(result):
        rate = fair_quota.give_back(app, window, rate)
    return answer.served(ctx, req, decision, rate, cfg, facts, result, ahead.shaped)


class _Ahead(NamedTuple):
    """The engine's cache read (``Engine.read_ahead``; None if it failed), and the enrichment of
    every requested source if the cache answered them all before the call was admitted, with
    its data shaped for the answer (``shaping.shape``)."""

    read: Any
    result: EnrichmentResult | None
    shaped: shaping.Shaped | None


def _early(app: App, read: Any, decision: Decision) -> _Ahead:
    """The cache read, the enrichment if the cache answers every source, and its data shaped
    for an answer of ``decision``'s access; done while the increment is in flight, so that its
    time is spent in a wait the call makes anyway. A shaping that fails is done again by the
    answer."""
    result = app.engine.from_cache(read)
    if result is None:
        return _Ahead(read, None, None)
    try:
        return _Ahead(read, result, shaping.shape(result.data, decision.access, app.shaped))
    except Exception:  # noqa: BLE001 - shaped again after admission, which answers for it
        return _Ahead(read, result, None)


def _read_ahead(app: App, req: EnrichRequest) -> Any:
    """The engine's cache read, started now so that it overlaps the increment (one round
    trip's wait instead of two). A failure here is left to the engine's own run to report."""
    try:
        return app.engine.read_ahead(_input(req, req.sources))
    except Exception:  # noqa: BLE001 - the engine, run again without it, answers for it
        return None


def _input(req: EnrichRequest, sources: tuple[str, ...]) -> EnrichmentInput:
    return EnrichmentInput(
        sources=sources,
        github=req.github,
        website=req.website,
        linkedin_export=req.linkedin_export,
        name=req.name,
        force_refresh=req.force_refresh,
        timeout_ms=req.timeout_ms,
    )


def _run_engine(
    app: App,
    ctx: CallContext,
    req: EnrichRequest,
    cfg: RolloutConfig,
    facts: CallFacts,
    ahead: _Ahead,
) -> EnrichmentResult:
    """The engine on the sources not switched off (``ahead.read``: its cache read, started for
    all the requested sources before the increment; the engine takes what it needs of it). A
    probe of a half-open breaker skips the cache, so that it reaches the source. The result
    the cache gave before admission stands when every requested source runs and none probes."""
    plan = plan_sources(app, cfg, req.sources, ctx.now)
    enabled = tuple(s for s in req.sources if s not in plan.disabled)
    inp = _input(req, enabled)
    if plan.probes:
        inp = replace(inp, force_refresh=True)
    known = ahead.result if enabled == req.sources and not plan.probes else None
    try:
        result = app.engine.enrich(inp, ahead.read) if enabled and known is None else known
    except Exception as exc:  # noqa: BLE001 - any engine crash is an internal error
        labels = {"function": Fn.ENRICH.value, "outcome": "internal", "phase": cfg.phase.value}
        log(
            "ERROR",
            "enrichment engine crashed",
            labels=labels,
            requestId=ctx.request_id,
            **error_ref(exc),
        )
        crashed = facts.with_(reason="engine error", service_error=True)
        raise Internal("Enrichment failed. Please retry later.", facts=crashed) from None
    record_probes(app, plan, result, ctx.now)
    return with_disabled(result, plan.disabled, req.sources)
