"""The enrichment answer (contract 2.1): bounded (lists and strings capped, the whole answer as
the callable protocol sends it and the stored document each under 900 KB, ``truncated: true``
when cut), trimmed for a preview, and its result document
(``cvs/{cvId}/externalData/latest``), which rides in the call's record batch (one commit for
both). A result too big is not attached at all, and a batch that fails is committed again
without it (``usecases.hooks.record``): a result never takes the call's audit, usage and metrics
records with it, and the answer then carries ``messages.notSaved``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from common.clock import iso
from common.errors import CallFacts
from common.logs import error_ref, log
from common.vocab import Access, Fn, Outcome, ResultStatus, Tier
from enrichment.bounds import MAX_RESULT_BYTES, json_size
from enrichment.model import EnrichmentResult, SourceReport
from gating.decision import Decision
from gating.ratelimit import RateDecision
from gating.rollout import RolloutConfig
from recording.recorder import SourceOutcome
from stores.base import Write, document_size
from stores.errors import StoreError
from stores.schema import result_path
from usecases import shaping
from usecases.app import App
from usecases.context import CallContext
from usecases.encoded import Encoded
from usecases.hooks import Served
from usecases.requests import EnrichRequest

STORED_MAX_BYTES = MAX_RESULT_BYTES
"""The stored result stays under this (contract 2.1), as Firestore counts a document's bytes."""
NOT_SAVED = "The result could not be saved; it is shown here only. Please retry later to keep it."
_OUTCOMES = {ResultStatus.SUCCESS: Outcome.SUCCESS, ResultStatus.PARTIAL: Outcome.PARTIAL}


def served(
    ctx: CallContext,
    req: EnrichRequest,
    decision: Decision,
    rate: RateDecision | None,
    cfg: RolloutConfig,
    facts: CallFacts,
    result: EnrichmentResult,
    shaped: shaping.Shaped | None = None,
) -> Served:
    """The answer, what is recorded about it, and the result document that rides with the
    records (``unsaved``: the answer if it was not stored; ``shaped``: see ``shaping.at``)."""
    body: dict[str, Any] = {
        "requestId": ctx.request_id,
        "status": result.status.value,
        "access": decision.access.value,
        "enrichedData": None,  # bounded below, in what the rest leaves of the 900 KB
        "sources": [s.to_dict() for s in result.sources],
        "usage": _usage(decision, rate),
        "messages": _messages(decision, cfg),
        "durationMs": round(ctx.elapsed_ms()),
    }
    doc = {
        "requestId": ctx.request_id,
        "userId": ctx.caller.uid,
        "at": ctx.now,
        "access": decision.access.value,
        "status": result.status.value,
        "enrichedDataJson": "",
        "sources": body["sources"],
    }
    budget, doc_size = _data_budget(body, result_path(req.cv_id), doc)
    shaped = shaping.at(shaped, result.data, decision.access, budget)
    body["enrichedData"] = Encoded(shaped.data, shaped.text)
    if shaped.truncated:
        body["truncated"] = True
    unsaved = {**body, "messages": {**body["messages"], "notSaved": NOT_SAVED}}
    stored = _result_write(ctx, req, {**doc, "enrichedDataJson": shaped.text}, doc_size)
    log(
        "INFO",
        "enrichment served",
        labels=_labels(result, cfg),
        event="access_granted",
        requestId=ctx.request_id,
        uid=ctx.caller.uid,
        access=decision.access.value,
        status=result.status.value,
        durationMs=round(ctx.elapsed_ms(), 1),
    )
    return Served(
        body if stored is not None else unsaved,
        facts,
        _OUTCOMES.get(result.status, Outcome.FAILED),
        sources=[source_outcome(s) for s in result.sources],
        result=stored,
        unsaved=unsaved if stored is not None else None,
    )


def _labels(result: EnrichmentResult, cfg: RolloutConfig) -> dict[str, str]:
    """The served line's labels, for the log-based metrics."""
    return {"function": Fn.ENRICH.value, "outcome": result.status.value, "phase": cfg.phase.value}


def _data_budget(body: Mapping[str, Any], path: str, doc: Mapping[str, Any]) -> tuple[int, int]:
    """Bytes the data's JSON may take so that the answer and its document stay under
    ``MAX_RESULT_BYTES``: what is left once the rest of the longer answer (with ``notSaved`` and
    ``truncated``), as the callable protocol sends it (``{"result": ...}`` and a newline), and
    the rest of the document are counted. The data's JSON is ASCII: its length is its size, in
    the answer and in the document alike. Also the document's size without the data's JSON."""
    rest = {
        **body,
        "enrichedData": None,
        "messages": {**body["messages"], "notSaved": NOT_SAVED},
        "truncated": True,
    }
    answer = json_size({"result": rest}) - len("null") + len("\n")
    size = document_size(path, doc)
    return MAX_RESULT_BYTES - 1 - max(answer, size), size


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


def _result_write(
    ctx: CallContext, req: EnrichRequest, doc: Mapping[str, Any], without_data: int
) -> Write | None:
    """The write of ``cvs/{cvId}/externalData/latest``; None (logged) when it is too large.
    The data is one JSON string, not a map: a map is encoded and indexed value by value (most of
    a cache hit's time, and a user with hundreds of repositories would pass Firestore's 40,000
    index entries per document). ``without_data``: its size with an empty ``enrichedDataJson``;
    the data's JSON is ASCII, so each of its characters adds one byte."""
    path = result_path(req.cv_id)
    size = without_data + len(doc["enrichedDataJson"])
    if size >= STORED_MAX_BYTES:
        log("ERROR", "result too large to store", requestId=ctx.request_id, bytes=size)
        return None
    return Write(path, doc, merge=False)


def store_alone(app: App, ctx: CallContext, served: Served) -> Served:
    """Commit the result document on its own, now: for an idempotent call, whose answer must
    be final before it is kept for retries. A failure (logged) answers ``unsaved``."""
    if served.result is None:
        return served
    try:
        app.store.commit([served.result])
    except StoreError as exc:
        log("ERROR", "result not stored", requestId=ctx.request_id, **error_ref(exc))
        return replace(served, answer=served.unsaved or served.answer, result=None, unsaved=None)
    return replace(served, result=None, unsaved=None)


def source_outcome(s: SourceReport) -> SourceOutcome:
    """What the records keep of one source's report: a revalidation asked the source, so it
    is a try, not a cache hit (the breakers judge tries)."""
    code = s.error.code if s.error else None
    if s.error is not None and s.error.crashed:
        code = "internal"  # ours: a failure of the service, never counted as upstream
    hit = bool(s.cached) and not s.revalidated
    return SourceOutcome(s.source, s.status, float(s.duration_ms), hit, code)
