"""``exportMyExternalData`` and ``deleteMyExternalData`` (contract 2.5, data rights).

Both act on the caller, or on ``userId`` for an admin (support: recorded in the audit), and
share one limit of 5 calls per user per hour (scope ``rights``). That counter is keyed by the
caller's keyed hash: it names nobody and outlives the erasure it admitted.

An erasure (``usecases.erasure``) deletes what ``stores.userdata`` finds and replaces the uid of
the user's audit entries by its keyed hash (``Recorder.hash``, HMAC-SHA256 under the salt). The
``users/{uid}`` trigger and ``scripts/support.py`` run the same code.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from common.clock import iso
from common.errors import CallFacts, PermissionDenied, ResourceExhausted
from common.logs import error_ref, log
from common.vocab import Fn
from gating.ratelimit import SlidingWindowLimiter
from stores.base import Write
from stores.errors import StoreError
from stores.schema import audit_path
from stores.userdata import user_documents
from usecases.app import App
from usecases.context import CallContext, Caller
from usecases.erasure import Erasure, erase_usage, erase_user
from usecases.hooks import Served, handle
from usecases.limits import limit_details, own_tier, take_unit
from usecases.requests import parse_stats

RIGHTS_PER_HOUR = 5
RIGHTS_WINDOW = timedelta(hours=1)
EXPORTED, ERASED = "data_export", "data_erasure"  # audit entry types of the two requests


def run_export(app: App, caller: Caller, raw: Any) -> dict[str, Any]:
    """Answer one ``exportMyExternalData`` call."""
    return handle(Fn.EXPORT, app, caller, raw, _export)


def run_delete(app: App, caller: Caller, raw: Any) -> dict[str, Any]:
    """Answer one ``deleteMyExternalData`` call."""
    answer = handle(Fn.DELETE, app, caller, raw, _delete)
    if caller.uid and answer.get("userId") == caller.uid:
        # The hook recorded this very call under the caller's uid after the erasure ran.
        try:
            erase_usage(app, caller.uid)
        except StoreError as exc:
            log("ERROR", "record of a self-erasure left behind", **error_ref(exc))
    return answer


def _export(app: App, ctx: CallContext, raw: Any) -> Served:
    target = _authorized_target(app, ctx, raw)
    answer = export_user(app, target, ctx.now)
    by = ctx.caller.uid or ""
    audit = rights_audit(app, EXPORTED, target, ctx.now, by=by, reason=_why(ctx, target))
    return Served(answer, CallFacts(reason=_why(ctx, target)), extra_writes=_if_audited(app, audit))


def _delete(app: App, ctx: CallContext, raw: Any) -> Served:
    target = _authorized_target(app, ctx, raw)
    erasure = erase_user(app, target)
    by = ctx.caller.uid or ""
    if by == target:
        by = app.recorder.hash(by) or ""
    audit = rights_audit(
        app, ERASED, target, ctx.now, by=by, reason=_why(ctx, target), counts=erasure.deleted
    )
    facts = CallFacts(reason=_why(ctx, target))
    return Served(erasure.answer(target), facts, extra_writes=_if_audited(app, audit))


def _if_audited(app: App, audit: Write) -> list[Write]:
    """The audit entry, unless the security audit is switched off (contract 5's switches:
    ``EXTERNAL_DATA_AUDIT_ENABLED``, ``components.securityAudit``)."""
    on = app.settings.audit_enabled and app.config.for_recording().components.securityAudit
    return [audit] if on else []


def _why(ctx: CallContext, target: str) -> str:
    return "own data" if target == ctx.caller.uid else "admin for another user"


def _authorized_target(app: App, ctx: CallContext, raw: Any) -> str:
    """The user the request is about, once the caller may ask and is within the limit."""
    uid = ctx.uid
    target = parse_stats(raw).user_id or uid
    if target != uid and not ctx.caller.admin:
        denied = CallFacts(reason="foreign data rights")
        raise PermissionDenied("You can only ask for your own data.", facts=denied)
    limiter = SlidingWindowLimiter(app.store, "rights", RIGHTS_WINDOW)
    window = limiter.window(app.recorder.hash(uid) or uid, ctx.now)
    rate = take_unit(app, limiter, window, RIGHTS_PER_HOUR)
    if not rate.allowed:
        details = limit_details(own_tier(app, uid, ctx.now), rate, ctx.now, "rights")
        refused = CallFacts(reason=f"limit {rate.limit}/h")
        raise ResourceExhausted("Too many data requests; try again later.", details, facts=refused)
    return target


def export_user(app: App, uid: str, now: datetime) -> dict[str, Any]:
    """Everything these functions store about ``uid``, as JSON values (contract 2.5)."""
    docs = user_documents(app.store, uid, app.recorder.hash(uid))
    return {"userId": uid, "generatedAt": iso(now), **{k: plain(v) for k, v in docs.items()}}


def user_deleted(app: App, uid: str) -> Erasure:
    """The ``users/{uid}`` trigger: the account is gone, so is everything of theirs."""
    erasure = erase_user(app, uid)
    by = "onUserSubscriptionWritten (users document deleted)"
    now = app.now()
    audit = rights_audit(
        app, ERASED, uid, now, by=by, reason="account deleted", counts=erasure.deleted
    )
    if writes := _if_audited(app, audit):
        app.store.commit(writes)
    log("INFO", "user data erased", uidHash=app.recorder.hash(uid), deleted=erasure.deleted)
    return erasure


def rights_audit(
    app: App,
    kind: str,
    uid: str,
    now: datetime,
    *,
    by: str,
    reason: str,
    counts: Mapping[str, int] | None = None,
) -> Write:
    """The audit entry of a data-rights request (or a support change): who, why, about whom.
    After an erasure the entry names the user by the keyed hash only."""
    erased = kind == ERASED
    doc: dict[str, Any] = {
        "type": kind,
        "at": now,
        "uid": app.recorder.hash(uid) if erased else uid,
        "by": by,
        "reason": reason,
        "expireAt": now + timedelta(days=app.settings.event_ttl_days),
    }
    if erased:
        doc["uidHashed"] = True
    if counts is not None:
        doc["deleted"] = dict(counts)
    return Write(audit_path(uuid.uuid4().hex), doc, merge=False)


def plain(value: Any) -> Any:
    """A stored value as JSON: times as ISO-8601, maps and lists recursively."""
    if isinstance(value, datetime):
        return iso(value)
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)
