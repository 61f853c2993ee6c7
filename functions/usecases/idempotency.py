"""``idempotencyKey`` (contract 2.1): a retry by the same user within one hour gets the first
answer again (same ``requestId``) and consumes no quota; a different request under a used key is
``invalid-argument``.

Exact under concurrent retries: the first call claims the key with a compare-and-set create
(version 0 → 1), so of N simultaneous calls exactly one runs the enrichment; the others wait for
its answer. A call refused or failed before it was served releases the key, so a retry runs
again; a claim whose call died without releasing it (the store down for the release too, the
instance gone) is abandoned after ``LEASE``, and a retry claims it then.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from common.errors import CallFacts, InvalidArgument, Unavailable
from stores.base import Write
from stores.errors import ConfigConflict
from stores.schema import idempotency_path
from usecases.app import App
from usecases.context import CallContext
from usecases.requests import EnrichRequest

TTL = timedelta(hours=1)
POLL_S = 0.05
"""The first wait between reads of the first call's record; each wait is 1.5x the last, up to
``POLL_MAX_S``: simultaneous retries must not starve the call they wait for (20 waiting calls
polling every 50 ms made a 1 s enrichment take 56 s in the functions emulator) nor pay a read
every 50 ms each."""
POLL_MAX_S = 1.0
WAIT_S = 55.0
"""How long a retry waits for the first call's answer (the function's timeout is 60 s)."""
LEASE = timedelta(seconds=75)
"""A running claim older than this is abandoned: the function's timeout (60 s) has passed, so
its call can no longer finish."""


@dataclass(frozen=True)
class Claim:
    """This call owns the key: it runs, then stores its answer (or releases the key)."""

    path: str
    version: int


def request_hash(req: EnrichRequest) -> str:
    """What "the same request" means: the validated request without its key, canonically, so a
    default spelled out (``mode: "full"``, ``timeoutMs: 10000.0``), a ``null`` for an absent
    field, a repeated or reordered source list are the request they mean, not another one."""
    body = {
        "cvId": req.cv_id,
        "mode": req.mode.value,
        "sources": sorted(req.sources),
        "github": req.github,
        "website": req.website,
        "linkedin": req.linkedin_export,
        "name": req.name,
        "forceRefresh": req.force_refresh,
        "timeoutMs": req.timeout_ms,
    }
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode("ascii")).hexdigest()


def begin(app: App, ctx: CallContext, key: str, digest: str) -> Claim | dict[str, Any]:
    """Claim ``key`` for this call, or return the first call's answer."""
    path = idempotency_path(ctx.uid, key)
    deadline = time.monotonic() + WAIT_S
    pause = POLL_S
    while True:
        doc = app.store.get_many([path])[path]
        now = app.now()
        live = doc if doc is not None and _live(doc, now) else None
        free = live is None or _free(live, now)
        if not free and live is not None and live.get("requestHash") != digest:
            # A key whose call was refused before it was served (released) gave no answer:
            # the request, corrected, may use it again.
            raise InvalidArgument("idempotencyKey", "was already used for a different request")
        if live is not None and live.get("state") == "done":
            answer = json.loads(str(live.get("answer")))
            if isinstance(answer, dict):
                return answer
        if free:
            claim = _try_claim(app, ctx, path, doc, digest, now)
            if claim is not None:
                return claim
        if time.monotonic() > deadline:
            raise Unavailable(
                "A call with this idempotencyKey is still running; retry shortly.",
                facts=CallFacts(reason="idempotent call still running"),
            )
        time.sleep(pause)
        pause = min(POLL_MAX_S, pause * 1.5)


def _free(doc: Mapping[str, Any], now: datetime) -> bool:
    """Released, or running past its lease (a call that died without releasing)."""
    if doc.get("state") == "released":
        return True
    at = doc.get("at")
    return doc.get("state") == "running" and (not isinstance(at, datetime) or at + LEASE <= now)


def _live(doc: Mapping[str, Any], now: datetime) -> bool:
    expire = doc.get("expireAt")
    return not isinstance(expire, datetime) or expire > now


def _try_claim(
    app: App,
    ctx: CallContext,
    path: str,
    doc: Mapping[str, Any] | None,
    digest: str,
    now: datetime,
) -> Claim | None:
    version = int(doc.get("version", 0)) if doc else 0
    data = {
        "version": version + 1,
        "state": "running",
        "requestHash": digest,
        "requestId": ctx.request_id,
        "uid": ctx.uid,
        "at": now,
        "expireAt": now + TTL,
    }
    try:
        app.store.compare_and_set(path, version, data, ())
    except ConfigConflict:
        return None  # another call claimed it first: wait for its answer
    return Claim(path, version + 1)


def finish(app: App, claim: Claim, answer: Mapping[str, Any]) -> None:
    """Store the answer for retries (a failure to store it only loses the replay)."""
    text = json.dumps(answer, separators=(",", ":"), default=str)
    app.store.commit([Write(claim.path, {"state": "done", "answer": text})])


def release(app: App, claim: Claim) -> None:
    """The call was refused before it was served: a retry may run again."""
    app.store.commit([Write(claim.path, {"state": "released"})])
