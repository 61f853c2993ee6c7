"""One logger for every package: stdlib ``logging`` configured once, written as Cloud Logging
structured JSON by google-cloud-logging's ``StructuredLogHandler``.

Why that handler (and not the functions SDK's ``firebase_functions.logger``): it works through
the stdlib, so the engine's ``logging.getLogger(__name__)`` lines and the gate's lines share one
configuration; it writes each record with one ``write`` of one line under the handler's lock
(no merged or empty lines under gunicorn threads, unlike ``print``); and it reads the request's
``X-Cloud-Trace-Context`` / ``traceparent`` from the Flask request that functions-framework
serves, so every line of a call carries its trace. The SDK's logger has none of the last two.

Call ``configure`` once per process (``main.py`` does, at import); ``log`` is the gate's
shorthand for a line with fields. Fields are ``jsonPayload`` fields; ``labels`` become
``logging.googleapis.com/labels``. Never pass request content or an exception's message.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import date, datetime
from typing import IO, Any

import flask
from google.cloud.logging_v2.handlers import StructuredLogHandler

ROOT = "external_data"
"""The gate's logger name; the engine logs under its module names (``enrichment.*``)."""
COMPONENT_LABELS = {"component": "external-data"}

_LEVELS = {
    "DEBUG": logging.DEBUG,
    "INFO": logging.INFO,
    "WARNING": logging.WARNING,
    "ERROR": logging.ERROR,
    "CRITICAL": logging.CRITICAL,
}
_logger = logging.getLogger(ROOT)
_handler: logging.Handler | None = None


SDK_PASSED = "Callable request verification passed"
"""The start of the INFO line the functions SDK writes (through the root logger) for every
callable request whose token checked out: a second line per call beside the gate's own, which
carries the outcome. Dropped."""


SDK_ENVELOPE = (
    "Error validating token",
    "Callable request verification failed",
    "Request body has extra fields",
    "Request body is missing data",
    "Request is missing body",
    "Request has incorrect Content-Type",
    "Request is missing Content-Type",
    "Request has invalid method",
    "Invalid request, unable to process",
    "Unhandled error: ",
)
"""The starts of the lines the SDK writes (root logger) when it refuses a token or a request
body before the function runs. Some carry what the client sent: the token's verification error
quotes the token (``Wrong number of segments in token: b'...'``: a pasted token, an e-mail), the
body's the extra fields and their values, or the whole JSON as a stray argument that makes
logging print it to stderr; the last, the parse error's message. Dropped: ``main`` writes its
own refusal line for each such call (``_answered_by_sdk``), with the reason and no content."""


def _not_sdk_pass(record: logging.LogRecord) -> bool:
    """Root-logger filter: False for the SDK's per-call "verification passed" line and for its
    lines about a refused request body."""
    if not isinstance(record.msg, str) or record.name != "root":
        return True
    if record.levelno == logging.INFO:
        return not record.msg.startswith(SDK_PASSED)
    return not record.msg.startswith(SDK_ENVELOPE)


def _request_fields(record: logging.LogRecord) -> bool:
    """Handler filter, run before the library's own: a line's ``httpRequest`` is the request's
    method and protocol only. The library copies the Flask request's ``User-Agent`` and whole
    URL (path and query string) into every line written during a call, and both are what the
    client wrote (contract 5: no request content in logs; the audit keeps the user agent only
    as a hash). The trace, which ties the line to its request, is read as before."""
    if not hasattr(record, "http_request"):  # a line's own ``http_request`` wins, as before
        record.http_request = _request_line()
    return True


def _request_line() -> dict[str, str] | None:
    """The current Flask request's method and protocol (None outside a request)."""
    if not flask.has_request_context():
        return None
    line = {
        "requestMethod": flask.request.method,
        "protocol": flask.request.environ.get("SERVER_PROTOCOL"),
    }
    return {k: v for k, v in line.items() if isinstance(v, str)}


class _Encoder(json.JSONEncoder):
    """Datetimes as ISO text; anything else unknown by its type name (never its repr)."""

    def default(self, o: Any) -> Any:
        if isinstance(o, datetime | date):
            return o.isoformat()
        if isinstance(o, set | frozenset | tuple):
            return list(o)
        return f"<{type(o).__name__}>"


def configure(
    level: str = "INFO", *, stream: IO[str] | None = None, project_id: str | None = None
) -> logging.Handler:
    """Install the structured handler on the root logger (once; later calls only adjust the
    level, or replace the stream when one is given). Returns the handler."""
    global _handler
    root = logging.getLogger()
    if _handler is not None and stream is not None:
        root.removeHandler(_handler)
        _handler = None
    if _handler is None:
        _handler = StructuredLogHandler(
            stream=stream or sys.stderr,
            labels=dict(COMPONENT_LABELS),
            project_id=project_id,
            json_encoder_cls=_Encoder,
        )
        _handler.filters.insert(0, _request_fields)  # before the library's CloudLoggingFilter
        root.addHandler(_handler)
        root.addFilter(_not_sdk_pass)
    root.setLevel(_LEVELS.get(level.upper(), logging.INFO))
    # The HTTP client logs every request URL at INFO ("HTTP Request: GET <url>"): a website
    # URL, a GitHub user name, a search query are request content (contract 5).
    for noisy in ("httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    return _handler


def log(
    severity: str, message: str, *, labels: dict[str, str] | None = None, **fields: Any
) -> None:
    """One structured line (severity DEBUG/INFO/WARNING/ERROR/CRITICAL)."""
    extra: dict[str, Any] = {"json_fields": fields}
    if labels:
        extra["labels"] = {k: str(v) for k, v in labels.items() if v is not None}
    _logger.log(_LEVELS.get(severity, logging.INFO), message, extra=extra, stacklevel=2)


def error_ref(exc: BaseException) -> dict[str, Any]:
    """How an exception is logged: its type and where it was raised, never its message (which
    may echo input: an encoding error holds the whole string)."""
    tb = exc.__traceback__
    where = "?"
    while tb is not None:
        frame = tb.tb_frame
        where = f"{frame.f_code.co_filename.rsplit('/', 1)[-1]}:{tb.tb_lineno}"
        tb = tb.tb_next
    return {"errorType": type(exc).__name__, "errorAt": where}
