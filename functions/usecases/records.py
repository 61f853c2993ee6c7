"""How a call is recorded (``usecases.hooks`` calls ``record`` for every call): its
``CallRecord`` becomes one batch of writes, committed once; a failure is logged with the
record's fields (the log is then its only copy) and never changes the answer.

- A document attached to the records (the enrichment's result) rides in the same batch. If the
  store refuses that batch (nothing applied), the records are committed again without it; if
  the batch may have landed (no answer), it is not written twice (its increments would count
  the call twice): the record is logged as lost.
- An ``unavailable`` refusal, and the records committed again without their result, are
  written with a brief deadline and no retries: the store has just failed, and a request
  thread must not wait for its full deadline a second time.
"""

from __future__ import annotations

from collections.abc import Sequence

from common.errors import CallFacts
from common.logs import error_ref, log
from common.vocab import Outcome
from recording.recorder import CallRecord, SourceOutcome, Switches
from stores.base import Write
from stores.errors import StoreError, StoreUnanswered
from usecases.app import App
from usecases.context import CallContext

BRIEF_DEADLINE_S = 1.0
"""The store deadline (no retries) for recording an ``unavailable`` refusal, and for the
records committed again without a result that failed: the store has just failed once."""


def record(
    app: App,
    ctx: CallContext,
    outcome: Outcome,
    facts: CallFacts,
    *,
    sources: Sequence[SourceOutcome] = (),
    event: str | None = None,
    extra_writes: Sequence[Write] = (),
    attached: Write | None = None,
) -> bool:
    """Commit the call's records (and ``attached``) in one batch; a failure is logged, the
    answer stands. Returns whether ``attached`` was stored (without one: the records).

    A batch with ``attached`` that fails with nothing applied (the store refused it) is
    committed again without it; one that may have been applied is not written twice."""
    rec = _call_record(ctx, outcome, facts, sources, event, extra_writes)
    cfg = app.config.for_recording()
    switches = Switches(cfg.components.usageTracking, cfg.components.securityAudit)
    writes = app.recorder.writes(rec, switches)
    if attached is not None:
        try:
            app.store.commit([*writes, attached])
            return True
        except StoreError as exc:
            log("ERROR", "result not stored", requestId=ctx.request_id, **error_ref(exc))
            if isinstance(exc, StoreUnanswered):
                # The batch may have landed: committing its increments again could count the
                # call twice. The record is logged as lost (it may not be).
                _lost(rec, exc)
                return False
    brief = attached is not None or outcome is Outcome.UNAVAILABLE
    try:
        (app.store.hurried(BRIEF_DEADLINE_S) if brief else app.store).commit(writes)
    except StoreError as exc:
        _lost(rec, exc)
        return False
    return attached is None


def _call_record(
    ctx: CallContext,
    outcome: Outcome,
    facts: CallFacts,
    sources: Sequence[SourceOutcome],
    event: str | None,
    extra_writes: Sequence[Write],
) -> CallRecord:
    return CallRecord(
        fn=ctx.fn,
        at=ctx.now,
        outcome=outcome,
        duration_ms=ctx.elapsed_ms(),
        uid=ctx.caller.uid,
        tier=facts.tier,
        access=facts.access,
        gated=facts.gated,
        gate_shown=facts.gate_shown,
        service_error=facts.service_error,
        upstream_failure=facts.upstream_failure,
        would=facts.would,
        reason=facts.reason,
        cv_id=facts.cv_id,
        request_id=ctx.request_id,
        sources=sources,
        ip=ctx.caller.ip,
        user_agent=ctx.caller.user_agent,
        event=event,
        extra_writes=extra_writes,
    )


def _lost(rec: CallRecord, exc: StoreError) -> None:
    """A record that could not be written, logged whole (the log is then its only copy)."""
    log(
        "ERROR",
        "recording failed; the record follows",
        fn=rec.fn.value,
        outcome=rec.outcome.value,
        uid=rec.uid,
        requestId=rec.request_id,
        durationMs=round(rec.duration_ms, 1),
        reason=rec.reason,
        **error_ref(exc),
    )
