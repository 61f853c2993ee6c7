"""Entrypoints only: each function turns the transport into a ``Caller``, calls its use case and
maps domain errors to callable errors through one table.

Every function here is its own deployable entrypoint (``firebase deploy --only functions:NAME``).
Settings are parsed at import: a bad ``EXTERNAL_DATA_*`` value fails the instance start (and the
deploy's function discovery) with the variable's name, never a request.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import firebase_admin
from firebase_functions import firestore_fn, https_fn, options, params, scheduler_fn
from firebase_functions.core import Change
from google.cloud.firestore_v1 import DocumentReference, DocumentSnapshot

from common import logs
from common.clock import utcnow
from common.errors import ErrorCode, GatingError
from common.settings import SECRET_NAMES, load_settings
from rollout_control.evaluator import evaluate
from usecases import analytics, conversions, enrich, stats, track
from usecases.app import App
from usecases.context import Caller

SETTINGS = load_settings()
logs.configure(SETTINGS.log_level, project_id=SETTINGS.project_id)

# The callable SDK verifies ID tokens through firebase_admin's default app.
if not firebase_admin._apps:  # noqa: SLF001 - re-import in the emulator must not re-init
    firebase_admin.initialize_app()

options.set_global_options(max_instances=50)

SECRETS = {name: params.SecretParam(name) for name in SECRET_NAMES}
"""Tokens and keys, declared as secret params on the functions that read them."""
_SALT = [SECRETS["EXTERNAL_DATA_HASH_SALT"]]
_ENGINE_SECRETS = [
    SECRETS["EXTERNAL_DATA_GITHUB_TOKEN"],
    SECRETS["EXTERNAL_DATA_WEB_SEARCH_API_KEY"],
    *_SALT,
]

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

_app: App | None = None


def app() -> App:
    """The process-wide application, built on first use (keeps deploy discovery light)."""
    global _app
    if _app is None:
        from enrichment.cache import StoreCacheStore
        from enrichment.engine import Engine
        from stores.firestore import FirestoreStore, make_client

        settings = SETTINGS
        store = FirestoreStore(make_client(settings.project_id))
        _app = App(
            settings,
            store,
            engine_factory=lambda: Engine(settings.enrichment, StoreCacheStore(store)),
        )
    return _app


def caller_of(req: https_fn.CallableRequest[Any]) -> Caller:
    """The caller as the platform saw it: the last ``X-Forwarded-For`` entry is the one Google's
    front end appended (earlier entries are whatever the client sent)."""
    raw = req.raw_request
    ip = None
    ua = None
    if raw is not None:
        forwarded = [p.strip() for p in raw.headers.get("X-Forwarded-For", "").split(",")]
        ip = next((p for p in reversed(forwarded) if p), None) or raw.remote_addr
        ua = raw.headers.get("User-Agent")
    if req.auth is None:
        return Caller(uid=None, ip=ip, user_agent=ua)
    token = req.auth.token or {}
    return Caller(uid=req.auth.uid, admin=token.get("admin") is True, ip=ip, user_agent=ua)


UseCase = Callable[[App, Caller, Any], dict[str, Any]]


def _call(use_case: UseCase, req: https_fn.CallableRequest[Any]) -> dict[str, Any]:
    try:
        return use_case(app(), caller_of(req), req.data)
    except GatingError as exc:
        raise https_fn.HttpsError(ERROR_TABLE[exc.code], exc.message, exc.details) from None


@https_fn.on_call(timeout_sec=60, memory=options.MemoryOption.MB_512, secrets=_ENGINE_SECRETS)
def enrichCVWithExternalData(req: https_fn.CallableRequest[Any]) -> Any:  # noqa: N802
    """Enrich a CV with external data, behind the premium gate (contract 2.1)."""
    return _call(enrich.run, req)


@https_fn.on_call(secrets=_SALT)
def trackExternalDataUsage(req: https_fn.CallableRequest[Any]) -> Any:  # noqa: N802
    """Record a client funnel event (contract 2.2)."""
    return _call(track.run, req)


@https_fn.on_call(secrets=_SALT)
def getUserExternalDataUsageStats(req: https_fn.CallableRequest[Any]) -> Any:  # noqa: N802
    """A user's own usage, or anyone's for an admin (contract 2.3)."""
    return _call(stats.run, req)


@https_fn.on_call(timeout_sec=120, secrets=_SALT)
def getExternalDataAnalytics(req: https_fn.CallableRequest[Any]) -> Any:  # noqa: N802
    """Admin analytics over a period (contract 2.4)."""
    return _call(analytics.run, req)


@firestore_fn.on_document_written(document="users/{uid}", secrets=_SALT)
def onUserSubscriptionWritten(  # noqa: N802
    event: firestore_fn.Event[Change[DocumentSnapshot[DocumentReference] | None]],
) -> None:
    """Record a conversion when a user's subscription turns premium (contract section 5)."""
    change = event.data
    before = change.before.to_dict() if change.before is not None and change.before.exists else None
    after = change.after.to_dict() if change.after is not None and change.after.exists else None
    conversions.subscription_changed(app(), event.params["uid"], before, after, event.id)


@scheduler_fn.on_schedule(schedule="every 1 minutes", secrets=_SALT)
def evaluateExternalDataRollout(event: scheduler_fn.ScheduledEvent) -> None:  # noqa: N802
    """Automatic rollback: the same evaluator as `scripts/rollout.py evaluate`."""
    evaluate(app().store, utcnow(), by="evaluator (evaluateExternalDataRollout)")


# -- observability (issue 10) ---------------------------------------------------------------

import flask  # noqa: E402 - the health function's request/response types (flask, as https_fn)


@scheduler_fn.on_schedule(schedule="every 1 minutes", secrets=_SALT)
def exportExternalDataMetrics(event: scheduler_fn.ScheduledEvent) -> None:  # noqa: N802
    """Custom metrics to Cloud Monitoring: each complete minute's aggregate, once, in order."""
    from google.cloud import monitoring_v3

    from analytics.metrics import read_buckets
    from observability.export_job import export_pending

    client = monitoring_v3.MetricServiceClient()
    export_pending(app().store, client, SETTINGS.project_id, utcnow(), read_buckets)


@https_fn.on_request(secrets=_SALT)
def externalDataHealth(req: flask.Request) -> flask.Response:  # noqa: N802
    """Store reachability, config version and phase for the uptime check (nothing secret)."""
    import json

    from usecases.health import HEADERS, respond

    answer = respond(app().store, req.method)
    return flask.Response(json.dumps(answer.body), status=answer.status, headers=HEADERS)


@scheduler_fn.on_schedule(schedule="every 5 minutes", secrets=_SALT)
def detectSuspiciousActivity(event: scheduler_fn.ScheduledEvent) -> None:  # noqa: N802
    """Security detection over the audit: each finding recorded once, logged, counted."""
    from datetime import timedelta

    from observability.detector import detect

    a = app()
    ttl = timedelta(days=SETTINGS.event_ttl_days)
    detect(a.store, utcnow(), a.recorder.aggregate_writes, ttl=ttl)


@https_fn.on_call(timeout_sec=120, secrets=_SALT)
def exportMyExternalData(req: https_fn.CallableRequest[Any]) -> Any:  # noqa: N802
    """Everything stored about the caller (an admin: ``userId``), as JSON (contract 2.5)."""
    return _call(data_rights.run_export, req)


@https_fn.on_call(timeout_sec=120, secrets=_SALT)
def deleteMyExternalData(req: https_fn.CallableRequest[Any]) -> Any:  # noqa: N802
    """Erase the caller's (an admin: ``userId``'s) records; the audit keeps a hash (2.5)."""
    return _call(data_rights.run_delete, req)
