"""The one wrapper around every callable use case (OpenFeature's before/after/error/finally
hooks): it builds the call's context, runs the body, and records, audits and logs whatever the
body returned or raised. No use case calls a recorder itself.

- after:  the body's ``Served`` (answer + facts + outcome) is recorded and returned.
- error:  a ``GatingError`` is recorded with its own outcome and facts and re-raised; a
          ``StoreError`` becomes a recorded ``Unavailable`` (never a free pass); anything else
          is logged by type and a reference (never its message: it may echo input), recorded as
          an ``internal`` answer (a failure of the service) and raised as ``Internal``.
- always: a recording failure is logged with the record's fields and never changes the answer.

A body may attach one document to its records (``Served.result``: the enrichment's result), so
that a call makes one commit, not two; ``usecases.records.record`` says what happens when that
batch fails (the body's ``unsaved`` answer is then given).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from common.errors import CallFacts, GatingError, Internal, Unavailable
from common.logs import error_ref, log
from common.vocab import Fn, Outcome
from gating.config_source import UNAVAILABLE_MESSAGE
from recording.recorder import AUDIT_EVENT, SourceOutcome
from stores.base import Write
from stores.errors import StoreError
from usecases.app import App
from usecases.context import CallContext, Caller
from usecases.records import record

T = TypeVar("T")

__all__ = ["Body", "Served", "crash_ref", "handle", "record"]


@dataclass(frozen=True)
class Served:
    """What a use case body returns: the answer and what is recorded about it."""

    answer: dict[str, Any]
    facts: CallFacts = field(default_factory=CallFacts)
    outcome: Outcome = Outcome.SUCCESS
    sources: Sequence[SourceOutcome] = ()
    event: str | None = None
    extra_writes: Sequence[Write] = ()
    replay: bool = False
    """An idempotent retry answered with the first call's answer: not a new call, so nothing
    is recorded (it consumed no quota and ran nothing)."""
    result: Write | None = None
    """A document committed in the same batch as the call's records (the enrichment result)."""
    unsaved: dict[str, Any] | None = None
    """The answer to give instead of ``answer`` when ``result`` (or, without one, the call's
    records) could not be stored."""


Body = Callable[[App, CallContext, Any], Served]

_SEVERITY = {
    Outcome.DENIED: "WARNING",
    Outcome.NOT_FOUND: "WARNING",
    Outcome.UNAVAILABLE: "ERROR",
    Outcome.INTERNAL: "ERROR",
}


def handle(fn: Fn, app: App, caller: Caller, raw: Any, body: Body) -> dict[str, Any]:
    """Run ``body`` for one call of ``fn``; see the module docstring."""
    ctx = CallContext(fn, caller, app.now())
    try:
        served = body(app, ctx, raw)
    except GatingError as err:
        facts = err.facts
        if err.outcome is Outcome.INTERNAL:
            facts = facts.with_(service_error=True)
        record(app, ctx, err.outcome, facts)
        _log_refusal(app, ctx, err.outcome, facts)
        raise
    except StoreError as exc:
        labels = {"function": fn.value, "outcome": Outcome.UNAVAILABLE.value}
        log("ERROR", "store unavailable", labels=labels, fn=fn.value, **error_ref(exc))
        facts = CallFacts(reason="store unavailable")
        record(app, ctx, Outcome.UNAVAILABLE, facts)
        _log_refusal(app, ctx, Outcome.UNAVAILABLE, facts)
        raise Unavailable(UNAVAILABLE_MESSAGE) from None
    except Exception as exc:  # noqa: BLE001 - nothing unexpected leaks to the client
        ref = crash_ref(exc, ctx)
        labels = {"function": fn.value, "outcome": Outcome.INTERNAL.value}
        log("ERROR", "unhandled error", labels=labels, fn=fn.value, ref=ref, **error_ref(exc))
        record(app, ctx, Outcome.INTERNAL, CallFacts(reason="unexpected error", service_error=True))
        raise Internal(f"Something went wrong (ref {ref}).") from None
    if served.replay:
        log("INFO", "idempotent replay", fn=fn.value, uid=caller.uid)
        return served.answer
    stored = record(
        app,
        ctx,
        served.outcome,
        served.facts,
        sources=served.sources,
        event=served.event,
        extra_writes=served.extra_writes,
        attached=served.result,
    )
    if not stored and served.unsaved is not None:
        return served.unsaved
    return served.answer


def crash_ref(exc: BaseException, ctx: CallContext) -> str:
    """A short reference that ties the client's message to the log line (no content in it)."""
    return hashlib.sha256(f"{ctx.request_id}:{type(exc).__name__}".encode()).hexdigest()[:12]


def _log_refusal(app: App, ctx: CallContext, outcome: Outcome, facts: CallFacts) -> None:
    """The refusal's line: labels for the log-based metrics, the audit event type as ``event``
    (the plan's log queries filter on it)."""
    phase = app.config.for_recording().phase.value
    log(
        _SEVERITY.get(outcome, "INFO"),
        f"{ctx.fn.value} refused",
        labels={"function": ctx.fn.value, "outcome": outcome.value, "phase": phase},
        event=AUDIT_EVENT.get(outcome),
        outcome=outcome.value,
        uid=ctx.caller.uid,
        reason=facts.reason,
        requestId=ctx.request_id,
    )


TRIGGER_WAITS_S = (1.0, 3.0, 9.0)
"""Waits between a Firestore trigger's tries of a step the store refused (13 s in all, inside
the function's 60 s): firebase-functions 0.6.0 deploys Firestore triggers with ``retry``
off and offers no option, so a deletion that fails once would never run again."""


def retried(step: Callable[..., T], *args: Any, waits: Sequence[float] = TRIGGER_WAITS_S) -> T:
    """``step(*args)``, tried again after each of ``waits`` while the store fails; the last
    failure is raised (logged by the platform). Only for idempotent steps."""
    for wait in waits:
        try:
            return step(*args)
        except StoreError as exc:
            log("WARNING", "trigger step failed; trying again", waitS=wait, **error_ref(exc))
            time.sleep(wait)
    return step(*args)
