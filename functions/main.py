"""Entrypoints only: each callable parses the transport, calls the core and maps errors.

Every function here is its own deployable entrypoint (``firebase deploy --only functions:NAME``).
The core (``gating``, ``enrichment``, ``analytics``) never imports ``firebase_functions``.
"""

from __future__ import annotations

import hashlib
import time
from typing import Any

import firebase_admin
from firebase_functions import firestore_fn, https_fn, options, scheduler_fn
from firebase_functions.core import Change
from google.cloud.firestore_v1 import DocumentReference, DocumentSnapshot

from gating.errors import ErrorCode, GatingError
from gating.logs import log
from gating.service import Caller, ExternalDataService
from gating.settings import Settings

# The callable SDK verifies ID tokens through firebase_admin's default app.
if not firebase_admin._apps:  # noqa: SLF001 - re-import in the emulator must not re-init
    firebase_admin.initialize_app()

options.set_global_options(max_instances=50)

ERROR_TABLE: dict[ErrorCode, https_fn.FunctionsErrorCode] = {
    ErrorCode.UNAUTHENTICATED: https_fn.FunctionsErrorCode.UNAUTHENTICATED,
    ErrorCode.INVALID_ARGUMENT: https_fn.FunctionsErrorCode.INVALID_ARGUMENT,
    ErrorCode.NOT_FOUND: https_fn.FunctionsErrorCode.NOT_FOUND,
    ErrorCode.PERMISSION_DENIED: https_fn.FunctionsErrorCode.PERMISSION_DENIED,
    ErrorCode.RESOURCE_EXHAUSTED: https_fn.FunctionsErrorCode.RESOURCE_EXHAUSTED,
    ErrorCode.UNAVAILABLE: https_fn.FunctionsErrorCode.UNAVAILABLE,
    ErrorCode.DEADLINE_EXCEEDED: https_fn.FunctionsErrorCode.DEADLINE_EXCEEDED,
    ErrorCode.INTERNAL: https_fn.FunctionsErrorCode.INTERNAL,
}
"""The one mapping from core errors to the callable protocol's statuses."""

_service: ExternalDataService | None = None


def service() -> ExternalDataService:
    """The process-wide service, built on first use (keeps cold start and deploy analysis light)."""
    global _service
    if _service is None:
        from enrichment.cache import FirestoreCacheStore
        from enrichment.engine import Engine
        from enrichment.settings import EnrichmentSettings
        from stores.firestore import FirestoreStore, make_client

        settings = Settings.from_env()
        client = make_client(settings.project_id)
        store = FirestoreStore(client)
        _service = ExternalDataService(
            settings,
            store,
            engine_factory=lambda: Engine(
                EnrichmentSettings.from_env(), FirestoreCacheStore(client)
            ),
        )
    return _service


def _caller(req: https_fn.CallableRequest[Any]) -> Caller:
    raw = req.raw_request
    ip = None
    ua = None
    if raw is not None:
        forwarded = raw.headers.get("X-Forwarded-For", "")
        ip = forwarded.split(",")[0].strip() or raw.remote_addr
        ua = raw.headers.get("User-Agent")
    if req.auth is None:
        return Caller(uid=None, ip=ip, user_agent=ua)
    token = req.auth.token or {}
    return Caller(uid=req.auth.uid, admin=token.get("admin") is True, ip=ip, user_agent=ua)


def _call(name: str, fn: str, req: https_fn.CallableRequest[Any]) -> Any:
    svc = service()
    caller = _caller(req)
    started = time.perf_counter()
    try:
        return getattr(svc, name)(caller, req.data)
    except GatingError as exc:
        raise https_fn.HttpsError(ERROR_TABLE[exc.code], exc.message, exc.details) from None
    except Exception as exc:  # noqa: BLE001 - nothing unexpected leaks to the client
        ref = hashlib.sha256(repr(exc).encode()).hexdigest()[:12]
        log("ERROR", "unhandled error", fn=fn, error=repr(exc), ref=ref)
        try:
            svc.record_crash(fn, caller, started)
        except Exception as rec_exc:  # noqa: BLE001 - the answer is already decided
            log("ERROR", "could not record the unhandled error", fn=fn, error=repr(rec_exc))
        raise https_fn.HttpsError(
            https_fn.FunctionsErrorCode.INTERNAL, f"Something went wrong (ref {ref})."
        ) from None


@https_fn.on_call(timeout_sec=60, memory=options.MemoryOption.MB_512)
def enrichCVWithExternalData(req: https_fn.CallableRequest[Any]) -> Any:  # noqa: N802
    """Enrich a CV with external data, behind the premium gate (contract 2.1)."""
    return _call("enrich", "enrichCVWithExternalData", req)


@https_fn.on_call()
def trackExternalDataUsage(req: https_fn.CallableRequest[Any]) -> Any:  # noqa: N802
    """Record a client funnel event (contract 2.2)."""
    return _call("track", "trackExternalDataUsage", req)


@https_fn.on_call()
def getUserExternalDataUsageStats(req: https_fn.CallableRequest[Any]) -> Any:  # noqa: N802
    """A user's own usage, or anyone's for an admin (contract 2.3)."""
    return _call("user_stats", "getUserExternalDataUsageStats", req)


@https_fn.on_call(timeout_sec=120)
def getExternalDataAnalytics(req: https_fn.CallableRequest[Any]) -> Any:  # noqa: N802
    """Admin analytics over a period (contract 2.4)."""
    return _call("analytics", "getExternalDataAnalytics", req)


@firestore_fn.on_document_written(document="users/{uid}")
def onUserSubscriptionWritten(  # noqa: N802
    event: firestore_fn.Event[Change[DocumentSnapshot[DocumentReference] | None]],
) -> None:
    """Record a conversion when a user's subscription turns premium (contract section 5)."""
    change = event.data
    before = change.before.to_dict() if change.before is not None and change.before.exists else None
    after = change.after.to_dict() if change.after is not None and change.after.exists else None
    service().subscription_changed(event.params["uid"], before, after, event.id)


@scheduler_fn.on_schedule(schedule="every 1 minutes")
def evaluateExternalDataRollout(event: scheduler_fn.ScheduledEvent) -> None:  # noqa: N802
    """Automatic rollback (issue 4): the same evaluator as `scripts/rollout.py evaluate`."""
    from gating.clock import utcnow
    from rollout_control.evaluator import evaluate

    evaluate(service().store, utcnow(), by="evaluator (evaluateExternalDataRollout)")
