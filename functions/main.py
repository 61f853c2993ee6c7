"""Entrypoints only: each function turns the transport into a ``Caller``, calls its use case and
maps domain errors to callable errors through one table.

Every function here is its own deployable entrypoint (``firebase deploy --only functions:NAME``).
Settings are parsed at import: a bad ``EXTERNAL_DATA_*`` value fails the instance start (and the
deploy's function discovery) with the variable's name, never a request.
"""

from __future__ import annotations

from stores import transport  # first: gRPC's transport is chosen before grpcio is imported

# isort: split

import functools
import gc
import json
import os
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from typing import Any, NamedTuple, cast

import firebase_admin
import flask
from firebase_functions import firestore_fn, https_fn, options, params, scheduler_fn
from firebase_functions.core import Change
from google.cloud.firestore_v1 import DocumentReference, DocumentSnapshot

from common import logs, serving
from common.clock import utcnow
from common.errors import CallFacts, ErrorCode, GatingError
from common.settings import SECRET_NAMES, load_settings
from common.vocab import Fn, Outcome
from rollout_control.evaluator import evaluate
from usecases import analytics, conversions, data_rights, enrich, stats, track
from usecases.app import App
from usecases.context import CallContext, Caller, client_address
from usecases.encoded import AnswerJSON
from usecases.hooks import record, retried
from usecases.requests import too_deep_field

SETTINGS = load_settings()
logs.configure(SETTINGS.log_level, project_id=SETTINGS.project_id)
if transport.TOO_LATE:
    logs.log(
        "WARNING", "grpcio was imported before stores.transport: its default transport is used"
    )

# The callable SDK verifies ID tokens through firebase_admin's default app.
if not firebase_admin._apps:  # noqa: SLF001 - re-import in the emulator must not re-init
    firebase_admin.initialize_app()

# Calls one instance serves at once, two settings that must agree: Cloud Run's concurrency
# (firebase deploy reads it from the global options) and the request threads of the gunicorn
# that functions-framework starts, which it reads from THREADS after importing this module (its
# CLI builds the app, then the server: on Cloud Functions and in the functions emulator alike).
# More calls than threads would wait inside the instance, unseen by the platform's autoscaler.
# Concurrency above 1 takes a whole vCPU (firebase deploy refuses it with the SDK's default,
# gcf_gen1's fraction); costs in docs/deploy.md.
os.environ["THREADS"] = str(SETTINGS.request_threads)
if os.environ.get("FUNCTIONS_EMULATOR") == "true":  # its proxy reuses idle connections
    serving.keep_alive(serving.EMULATOR_KEEPALIVE_S)
options.set_global_options(
    max_instances=50,
    concurrency=SETTINGS.request_threads,
    cpu=1 if SETTINGS.request_threads > 1 else "gcf_gen1",
)

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
_APP_LOCK = threading.Lock()


def app() -> App:
    """The process-wide application, built on first use (keeps deploy discovery light)."""
    return _app or _build_app()


def _build_app() -> App:
    """Build the application once: the first calls of a cold instance arrive together on its
    request threads (one Firestore client, one cold start counted)."""
    global _app
    with _APP_LOCK:
        if _app is None:
            from enrichment.engine import Engine
            from enrichment.held import instance_cache
            from stores.firestore import FirestoreStore, make_client

            settings = SETTINGS
            store = FirestoreStore(make_client(settings.project_id))
            _app = App(
                settings,
                store,
                engine_factory=lambda: Engine(
                    settings.enrichment, instance_cache(store, settings.enrichment)
                ),
            )
            _mark_cold_start()
        return _app


_IMPORTED_AT = time.monotonic()


def _mark_cold_start() -> None:
    """The first call of an instance: marked in the log (counted by the log-based metric
    ``external_data_cold_starts``; ``min_instances`` trades these for idle cost, docs/deploy.md)."""
    target = os.environ.get("FUNCTION_TARGET") or os.environ.get("K_SERVICE") or "unknown"
    logs.log(
        "INFO",
        "instance cold start",
        labels={"function": target, "kind": "cold_start"},
        kind="cold_start",
        coldStart=True,
        instanceInitMs=round((time.monotonic() - _IMPORTED_AT) * 1000),
    )


def client_of(raw: flask.Request | None) -> tuple[str | None, str | None]:
    """(IP, user agent) as the platform saw them: the last ``X-Forwarded-For`` entry is the one
    Google's front end appended (earlier entries are whatever the client sent)."""
    if raw is None:
        return None, None
    ip = client_address(raw.headers.get("X-Forwarded-For"), raw.remote_addr)
    return ip, raw.headers.get("User-Agent")


def caller_of(req: https_fn.CallableRequest[Any]) -> Caller:
    """The caller: the verified ID token's uid and claims, and where the call came from."""
    ip, ua = client_of(req.raw_request)
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
    except Exception as exc:  # noqa: BLE001 - outside the use case (the app's start): logged here
        # The SDK's own "Unhandled error" line is dropped (it would quote the exception's text):
        # this line names the exception by type and a reference the client is given.
        ref = uuid.uuid4().hex[:12]
        logs.log("ERROR", "call failed before its use case", ref=ref, **logs.error_ref(exc))
        raise https_fn.HttpsError(
            https_fn.FunctionsErrorCode.INTERNAL, f"Something went wrong (ref {ref})."
        ) from None


# -- the callables' transport policy: App Check, and refusals the use cases never see ----------

ENFORCE_APP_CHECK = SETTINGS.enforce_app_check
"""``EXTERNAL_DATA_ENFORCE_APP_CHECK``, read once at import like every setting."""

_BODY_RAN: ContextVar[bool] = ContextVar("body_ran", default=False)
"""Set when a callable's body starts: an answer given without it is the SDK's own."""

Handler = Callable[[https_fn.CallableRequest[Any]], Any]
Entry = Callable[[flask.Request], flask.Response]


def _answer_json() -> None:
    """The serving app's JSON provider made ``AnswerJSON`` (once per app)."""
    # The app itself, not the context's proxy (the provider keeps a weak reference to it;
    # Flask documents _get_current_object for this).
    served_by = flask.current_app._get_current_object()  # type: ignore[attr-defined]  # noqa: SLF001
    if type(served_by.json) is not AnswerJSON:
        served_by.json = AnswerJSON(served_by)


class AppCheckPolicy(NamedTuple):
    """What a callable asks of App Check (``entry.__app_check__``). A NamedTuple, not a
    dataclass: firebase-tools imports this file without registering it in ``sys.modules``,
    where ``@dataclass`` fails (function discovery would break)."""

    enforce: bool
    """The SDK refuses a missing or invalid App Check token (``enforce_app_check``)."""
    consume: bool
    """The token is consumed once verified: a replayed limited-use token is refused. The SDK
    (0.6) has no such option, so ``_consume_app_check`` does it with firebase_admin."""


SMALL_BODY_BYTES = 64 * 1024
"""The largest body the callables other than the enrichment take: their requests are a few
short fields (a funnel event's metadata is 2 KB at most, 12 KB written with JSON escapes)."""
ENRICH_BODY_BYTES = 6 * SETTINGS.linkedin_max_bytes + 1024 * 1024
"""The largest body the enrichment takes: a whole LinkedIn export (its bound is
``EXTERNAL_DATA_LINKEDIN_MAX_BYTES``) written with JSON escapes of 6 bytes for each of its
bytes, and room for the rest. Without a limit the SDK parsed any body the platform passes
(32 MB), twice, before any token was checked: seconds of CPU for a caller with no token."""


def _callable(
    fn: Fn, *, consume_app_check: bool = False, max_body: int = SMALL_BODY_BYTES, **kwargs: Any
) -> Callable[[Handler], Entry]:
    """``https_fn.on_call(**kwargs)`` with this project's transport policy: App Check enforced
    when ``EXTERNAL_DATA_ENFORCE_APP_CHECK`` is on (and the token consumed where asked), and a
    call the SDK answers before the body runs recorded like any refusal: a 401 (an invalid or
    expired ID token, a missing App Check token) as ``unauthenticated``; a body that is not the
    protocol's ``{"data": ...}`` (the SDK's 400, or its 500 for JSON that does not parse) as
    ``unauthenticated`` without a valid token, else ``invalid-argument`` naming ``data``
    (``_answered_by_sdk``). A body over ``max_body`` bytes (``SMALL_BODY_BYTES`` without a
    valid ID token) is not read (werkzeug refuses it for the SDK, which answers 500) and is
    answered the same way. The SDK's verification is untouched; the entry keeps the SDK's
    ``__firebase_endpoint__`` (function discovery)."""
    policy = AppCheckPolicy(ENFORCE_APP_CHECK, ENFORCE_APP_CHECK and consume_app_check)

    def decorate(handler: Handler) -> Entry:
        @functools.wraps(handler)
        def body(req: https_fn.CallableRequest[Any]) -> Any:
            _BODY_RAN.set(True)
            if policy.consume:
                _consume_app_check(fn, req)
            return handler(req)

        # Instances kept warm (EXTERNAL_DATA_MIN_INSTANCES, read when firebase deploy imports
        # this module with the project's .env): only set when configured, so the platform's
        # default stays otherwise.
        warm = SETTINGS.min_instances_of(handler.__name__)
        options_ = {**kwargs, **({"min_instances": warm} if warm else {})}
        sdk_entry = cast(
            Entry, https_fn.on_call(enforce_app_check=policy.enforce, **options_)(body)
        )

        @functools.wraps(sdk_entry)
        def entry(request: flask.Request) -> flask.Response:
            _answer_json()
            request.max_content_length = _body_limit(request, max_body)  # past it, not read
            started = _BODY_RAN.set(False)
            try:
                response = sdk_entry(request)
                ran = _BODY_RAN.get()
            finally:
                _BODY_RAN.reset(started)
            return response if ran else _answered_by_sdk(fn, policy, request, response)

        entry.__app_check__ = policy  # type: ignore[attr-defined]
        return entry

    return decorate


def _body_limit(request: flask.Request, largest: int) -> int:
    """How much of the body may be read: ``largest`` for a caller whose ID token checks out,
    ``SMALL_BODY_BYTES`` for anyone else. The token is checked here (before the SDK checks it
    again) only for a body larger than that."""
    length = request.content_length
    if largest <= SMALL_BODY_BYTES or (length is not None and length <= SMALL_BODY_BYTES):
        return largest
    from firebase_functions.private import util as sdk_util

    signed_in = sdk_util.on_call_check_tokens(request).auth is sdk_util.OnCallTokenState.VALID
    return largest if signed_in else SMALL_BODY_BYTES


_NOT_THE_PROTOCOLS = 'data: the request body must be the JSON object {"data": ...} and nothing else'


def _answered_by_sdk(
    fn: Fn, policy: AppCheckPolicy, request: flask.Request, response: flask.Response
) -> flask.Response:
    """A call the SDK answered before the body ran, recorded and answered as the contract
    orders its checks: a missing or refused token first (``unauthenticated``), then a body that
    is not the callable protocol's ``{"data": ...}`` (``invalid-argument`` naming ``data``)."""
    ip, ua = client_of(request)
    caller = Caller(uid=None, ip=ip, user_agent=ua)
    if response.status_code == 401:
        caller, reason = _refused_by_app_check(policy, request, caller)
        _record_refusal(fn, caller, Outcome.UNAUTHENTICATED, reason)
        return response
    if request.method != "POST" or (response.status_code != 400 and response.status_code < 500):
        # Not a callable request at all (a GET from a probe or a crawler): the SDK's answer,
        # unrecorded, as before.
        return response
    # 400: the SDK refused the envelope (not JSON, no `data`, other fields); 500: the body did
    # not parse, or was too large to read. Either way it answered before checking any token.
    from firebase_functions.private import util as sdk_util

    tokens = sdk_util.on_call_check_tokens(request)
    valid = sdk_util.OnCallTokenState.VALID
    app_refused = policy.enforce and tokens.app is not valid
    if tokens.auth is not valid or app_refused:
        if tokens.auth is sdk_util.OnCallTokenState.MISSING and not app_refused:
            reason = "no ID token"
        else:  # a valid ID token refused for its App Check token names its uid, as on a 401
            caller, reason = _refused_by_app_check(policy, request, caller)
        _record_refusal(fn, caller, Outcome.UNAUTHENTICATED, reason)
        unauthenticated = {"status": "UNAUTHENTICATED", "message": "Unauthenticated"}
        return _error_answer(response, 401, unauthenticated)
    uid = (tokens.auth_token or {}).get("uid")
    reason, message, field = "invalid data", _NOT_THE_PROTOCOLS, "data"
    limit = request.max_content_length  # set by the entry: a body past it was not read
    if limit is not None and (request.content_length or 0) > limit:
        reason, message = "request too large", "data: the request is too large"
    elif response.status_code >= 500 and (deep := too_deep_field(request.get_data())) is not None:
        reason, message, field = "nested too deeply", f"{deep}: is nested too deeply", deep
    _record_refusal(fn, Caller(uid=uid, ip=ip, user_agent=ua), Outcome.INVALID, reason)
    invalid = {"status": "INVALID_ARGUMENT", "message": message, "details": {"field": field}}
    return _error_answer(response, 400, invalid)


def _refused_by_app_check(
    policy: AppCheckPolicy, request: flask.Request, caller: Caller
) -> tuple[Caller, str]:
    """Who a token refusal (the SDK's 401, or a bad body without good tokens) refused and why:
    with App Check enforced, a valid ID token refused for its App Check token is that user's
    refusal (contract 5: the audit names the uid, if any)."""
    reason = _unauthenticated_reason(policy, request)
    if not policy.enforce or "Authorization" not in request.headers:
        return caller, reason
    from firebase_functions.private import util as sdk_util

    tokens = sdk_util.on_call_check_tokens(request)
    uid = (tokens.auth_token or {}).get("uid")
    if tokens.auth is not sdk_util.OnCallTokenState.VALID or not isinstance(uid, str):
        return caller, reason
    missing = "X-Firebase-AppCheck" not in request.headers
    why = "missing App Check token" if missing else "invalid App Check token"
    return Caller(uid=uid, ip=caller.ip, user_agent=caller.user_agent), why


def _unauthenticated_reason(policy: AppCheckPolicy, request: flask.Request) -> str:
    if not policy.enforce:
        return "invalid ID token"
    if "X-Firebase-AppCheck" not in request.headers:
        return "missing App Check token"
    if "Authorization" in request.headers:
        return "invalid ID token or App Check token"
    return "invalid App Check token"


def _error_answer(sdk: flask.Response, status: int, error: Mapping[str, object]) -> flask.Response:
    """The callable protocol's error answer, with the SDK's CORS headers kept."""
    fixed = flask.Response(json.dumps({"error": error}), status=status, mimetype="application/json")
    for name, value in sdk.headers.items():
        if name.lower().startswith("access-control-") or name.lower() == "vary":
            fixed.headers[name] = value
    return fixed


def _record_refusal(fn: Fn, caller: Caller, outcome: Outcome, reason: str) -> None:
    """Record, audit and log a refusal no use case saw; a failure here never changes the answer."""
    try:
        a = app()
        ctx = CallContext(fn, caller, a.now())
        record(a, ctx, outcome, CallFacts(reason=reason))
        logs.log(
            "WARNING",
            f"{fn.value} refused",
            labels={"function": fn.value, "outcome": outcome.value},
            outcome=outcome.value,
            uid=caller.uid,
            reason=reason,
            requestId=ctx.request_id,
        )
    except Exception as exc:  # noqa: BLE001 - the refusal stands whatever happens here
        logs.log("ERROR", "refusal not recorded", fn=fn.value, reason=reason, **logs.error_ref(exc))


def _consume_app_check(fn: Fn, req: https_fn.CallableRequest[Any]) -> None:
    """Consume the (already verified) App Check token: a limited-use token is good once."""
    from firebase_admin import app_check

    raw = req.raw_request
    token = raw.headers.get("X-Firebase-AppCheck", "") if raw is not None else ""
    try:
        claims = app_check.verify_token(token, consume=True)
    except Exception as exc:  # noqa: BLE001 - fail closed: no consumption, no service
        logs.log("ERROR", "App Check token not consumed", fn=fn.value, **logs.error_ref(exc))
        _record_refusal(fn, caller_of(req), Outcome.UNAVAILABLE, "App Check unavailable")
        raise https_fn.HttpsError(
            https_fn.FunctionsErrorCode.UNAVAILABLE, "Please retry in a moment."
        ) from None
    if claims.get("already_consumed") is True:
        _record_refusal(fn, caller_of(req), Outcome.UNAUTHENTICATED, "replayed App Check token")
        raise https_fn.HttpsError(https_fn.FunctionsErrorCode.UNAUTHENTICATED, "Unauthenticated")


@_callable(
    Fn.ENRICH,
    consume_app_check=True,
    max_body=ENRICH_BODY_BYTES,
    timeout_sec=60,
    memory=options.MemoryOption.MB_512,
    secrets=_ENGINE_SECRETS,
)
def enrichCVWithExternalData(req: https_fn.CallableRequest[Any]) -> Any:  # noqa: N802
    """Enrich a CV with external data, behind the premium gate (contract 2.1)."""
    return _call(enrich.run, req)


@_callable(Fn.TRACK, secrets=_SALT)
def trackExternalDataUsage(req: https_fn.CallableRequest[Any]) -> Any:  # noqa: N802
    """Record a client funnel event (contract 2.2)."""
    return _call(track.run, req)


@_callable(Fn.STATS, secrets=_SALT)
def getUserExternalDataUsageStats(req: https_fn.CallableRequest[Any]) -> Any:  # noqa: N802
    """A user's own usage, or anyone's for an admin (contract 2.3)."""
    return _call(stats.run, req)


@_callable(Fn.ANALYTICS, timeout_sec=120, secrets=_SALT)
def getExternalDataAnalytics(req: https_fn.CallableRequest[Any]) -> Any:  # noqa: N802
    """Admin analytics over a period (contract 2.4)."""
    return _call(analytics.run, req)


@firestore_fn.on_document_written(document="users/{uid}", secrets=_SALT)
def onUserSubscriptionWritten(  # noqa: N802
    event: firestore_fn.Event[Change[DocumentSnapshot[DocumentReference] | None]],
) -> None:
    """Record a conversion when a user's subscription turns premium (contract section 5); when
    the document is deleted, erase the user's records as ``deleteMyExternalData`` does (2.5)."""
    change = event.data
    before = change.before.to_dict() if change.before is not None and change.before.exists else None
    after = change.after.to_dict() if change.after is not None and change.after.exists else None
    uid = event.params["uid"]
    retried(conversions.subscription_changed, app(), uid, before, after, event.id)
    if after is None:
        # The account's profile is gone: erase the user's external-data records (contract 2.5).
        retried(data_rights.user_deleted, app(), uid)


@firestore_fn.on_document_deleted(document="cvs/{cvId}", secrets=_SALT)
def onCvDeleted(event: firestore_fn.Event[DocumentSnapshot[DocumentReference] | None]) -> None:  # noqa: N802
    """A deleted CV's enrichment results go with it (``cvs/{cvId}/externalData``; contract 5)."""
    from usecases import cv_deleted

    retried(cv_deleted.run, app(), event.params["cvId"], event.time)


@scheduler_fn.on_schedule(schedule="every 1 minutes", secrets=_SALT)
def evaluateExternalDataRollout(event: scheduler_fn.ScheduledEvent) -> None:  # noqa: N802
    """Automatic rollback: the same evaluator as `scripts/rollout.py evaluate`."""
    evaluate(app().store, utcnow(), by="evaluator (evaluateExternalDataRollout)")


@scheduler_fn.on_schedule(schedule="every 1 minutes", secrets=_SALT)
def rollUpExternalDataMetrics(event: scheduler_fn.ScheduledEvent) -> None:  # noqa: N802
    """Fold settled minutes of raw aggregate shards into minute, hour and day documents."""
    from analytics.rollup import roll_up

    roll_up(app().store, utcnow())


# -- observability (issue 10) ---------------------------------------------------------------


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

    answer = respond(_health_store(), req.method)
    return flask.Response(json.dumps(answer.body), status=answer.status, headers=HEADERS)


@functools.cache
def _health_store() -> Any:
    """One try per check, no retries: the answer must come well within the uptime check's
    10 s, and an unreachable store is what it reports."""
    from stores.firestore import FirestoreStore, make_client

    return FirestoreStore(make_client(SETTINGS.project_id), deadline_s=3.0, retry_s=0.0)


@scheduler_fn.on_schedule(schedule="every 5 minutes", secrets=_SALT)
def detectSuspiciousActivity(event: scheduler_fn.ScheduledEvent) -> None:  # noqa: N802
    """Security detection over the audit: each finding recorded once, logged, counted."""
    from datetime import timedelta

    from observability.detector import detect

    a = app()
    ttl = timedelta(days=SETTINGS.event_ttl_days)
    detect(a.store, utcnow(), a.recorder.aggregate_writes, a.recorder.hash, ttl=ttl)


@_callable(Fn.EXPORT, timeout_sec=120, secrets=_SALT)
def exportMyExternalData(req: https_fn.CallableRequest[Any]) -> Any:  # noqa: N802
    """Everything stored about the caller (an admin: ``userId``), as JSON (contract 2.5)."""
    return _call(data_rights.run_export, req)


@_callable(Fn.DELETE, timeout_sec=120, secrets=_SALT)
def deleteMyExternalData(req: https_fn.CallableRequest[Any]) -> Any:  # noqa: N802
    """Erase the caller's (an admin: ``userId``'s) records; the audit keeps a hash (2.5)."""
    return _call(data_rights.run_delete, req)


# Last: every object made so far (modules, classes, functions, settings: about 93,000) lives as
# long as the instance. Frozen, the cyclic garbage collector's full passes no longer scan them;
# each pass took about 45 ms holding the GIL, a pause for every request thread of the instance
# (docs/architecture.md, "Garbage").
gc.freeze()
