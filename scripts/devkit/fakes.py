"""Loopback fakes of the services the enrichment engine talks to (GitHub, websites, Brave).

Each is a real HTTP server on 127.0.0.1 (an ephemeral port) in a background thread, serving
fixture bodies from ``tests/fixtures``. Use them as context managers::

    with fake_github(delay_s=0.3) as url:          # url is the base URL (a str)
        settings = EnrichmentSettings(github_api_url=url)
        ...
        assert url.requests[0].path == "/users/octocat"

The yielded value is a ``FakeService``: a ``str`` (the base URL) that also carries
``requests`` (what was asked, in order), ``behaviour`` (mutable: change delay/failures while it
runs), ``host_port`` ("127.0.0.1:PORT", for ``EXTERNAL_DATA_ALLOW_HOSTS``) and ``hits(path)``.

Behaviour shared by all fakes (keyword arguments): ``delay_s`` (sleep before answering; woken
at shutdown), ``fail_first`` (answer the first N requests with ``fail_status``),
``fail_always``, ``fail_status`` (500), ``fail_headers``.
"""

from __future__ import annotations

import hashlib
import json
import mimetypes
import re
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

FIXTURES = Path(__file__).resolve().parents[2] / "tests" / "fixtures"


@dataclass
class Reply:
    """One answer. ``body`` may be bytes, str, or a JSON-able object."""

    status: int = 200
    body: Any = b""
    headers: dict[str, str] = field(default_factory=dict)
    send_length: bool = True
    """False: no Content-Length, the body ends when the connection closes (tests streaming limits)."""


@dataclass(frozen=True)
class Recorded:
    """A request the fake received."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]


@dataclass
class Behaviour:
    """Fault injection; mutable while the server runs."""

    delay_s: float = 0.0
    fail_first: int = 0
    fail_always: bool = False
    fail_status: int = 500
    fail_headers: dict[str, str] = field(default_factory=dict)


class FakeService(str):
    """The base URL of a running fake, plus what it saw."""

    requests: list[Recorded]
    behaviour: Behaviour
    host_port: str

    def hits(self, path: str) -> int:
        """How many requests asked for ``path`` (query ignored)."""
        return sum(1 for r in self.requests if r.path == path)


Handler = Callable[[Recorded], Reply]


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # don't wait for handlers still sleeping in a delay at shutdown


@contextmanager
def serve(handler: Handler, *, port: int = 0, **behaviour: Any) -> Iterator[FakeService]:
    """Run ``handler`` behind a loopback HTTP server for the duration of the block."""
    state = Behaviour(**behaviour)
    stop = threading.Event()
    lock = threading.Lock()
    seen: list[Recorded] = []
    counter = {"n": 0}

    class _RequestHandler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.0"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            rec = Recorded(
                "GET",
                parts.path,
                parse_qs(parts.query),
                {k.lower(): v for k, v in self.headers.items()},
            )
            with lock:
                seen.append(rec)
                counter["n"] += 1
                n = counter["n"]
            if state.delay_s and stop.wait(state.delay_s):
                return
            if state.fail_always or n <= state.fail_first:
                reply = Reply(
                    state.fail_status, {"message": "injected failure"}, dict(state.fail_headers)
                )
            else:
                try:
                    reply = handler(rec)
                except Exception as exc:  # noqa: BLE001 - a broken fixture should be visible
                    reply = Reply(599, f"fake server error: {exc!r}")
            self._send(reply)

        def _send(self, reply: Reply) -> None:
            body = reply.body
            headers = dict(reply.headers)
            if isinstance(body, str):
                body = body.encode("utf-8")
            elif not isinstance(body, bytes | bytearray):
                body = json.dumps(body).encode("utf-8")
                headers.setdefault("Content-Type", "application/json; charset=utf-8")
            try:
                self.send_response(reply.status)
                for k, v in headers.items():
                    self.send_header(k, v)
                if reply.send_length:
                    self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if reply.status != 304:
                    self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (timeout / size limit): expected in fault tests

    server = _Server(("127.0.0.1", port), _RequestHandler)
    port = server.server_address[1]
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
    )
    thread.start()
    url = FakeService(f"http://127.0.0.1:{port}")
    url.requests = seen
    url.behaviour = state
    url.host_port = f"127.0.0.1:{port}"
    try:
        yield url
    finally:
        stop.set()
        server.shutdown()
        server.server_close()


def _etag(body: bytes) -> str:
    return 'W/"' + hashlib.sha1(body).hexdigest() + '"'  # noqa: S324 - not security


def _json_reply(
    rec: Recorded, obj: Any, headers: dict[str, str] | None = None, malformed: bool = False
) -> Reply:
    body = json.dumps(obj).encode()
    if malformed:
        body = body[: max(1, len(body) // 2)]  # cut in half: not JSON any more
    tag = _etag(body)
    h = {"ETag": tag, "Content-Type": "application/json; charset=utf-8", **(headers or {})}
    if rec.headers.get("if-none-match") == tag:
        return Reply(304, b"", h)
    return Reply(200, body, h)


# ---------------------------------------------------------------------------------- GitHub


@contextmanager
def fake_github(
    fixtures_dir: Path | str = FIXTURES / "github",
    *,
    quota_reset: int | None = None,
    malformed: bool = False,
    **behaviour: Any,
) -> Iterator[FakeService]:
    """GitHub REST API: ``/users/{u}``, ``/users/{u}/repos`` (per_page/page + Link header),
    ``/repos/{o}/{r}/languages``. ETags on everything (If-None-Match → 304).

    Fixtures: ``users/{login}.json`` (profile), ``repos/{login}.json`` (the full list; paged here),
    ``languages/{owner}/{repo}.json`` (else derived from the repo's ``language`` and ``size``).
    ``quota_reset`` (epoch seconds): answer 403 with ``X-RateLimit-Remaining: 0``.
    """
    root = Path(fixtures_dir)

    def load(*parts: str) -> Any | None:
        path = root.joinpath(*parts)
        return json.loads(path.read_text("utf-8")) if path.is_file() else None

    def handle(rec: Recorded) -> Reply:
        rate = {
            "X-RateLimit-Limit": "5000",
            "X-RateLimit-Remaining": "4999",
            "X-RateLimit-Reset": "1900000000",
        }
        if quota_reset is not None:
            return Reply(
                403,
                {"message": "API rate limit exceeded"},
                {
                    "X-RateLimit-Limit": "60",
                    "X-RateLimit-Remaining": "0",
                    "X-RateLimit-Reset": str(quota_reset),
                },
            )
        if m := re.fullmatch(r"/users/([^/]+)", rec.path):
            profile = load("users", f"{m.group(1).lower()}.json")
            if profile is None:
                return Reply(404, {"message": "Not Found"})
            return _json_reply(rec, profile, rate, malformed)
        if m := re.fullmatch(r"/users/([^/]+)/repos", rec.path):
            user = m.group(1).lower()
            if load("users", f"{user}.json") is None:
                return Reply(404, {"message": "Not Found"})
            repos = load("repos", f"{user}.json") or []
            per_page = min(100, int(rec.query.get("per_page", ["30"])[0]))
            page = max(1, int(rec.query.get("page", ["1"])[0]))
            last = max(1, -(-len(repos) // per_page))
            chunk = repos[(page - 1) * per_page : page * per_page]
            links = []
            base_q = {k: v[0] for k, v in rec.query.items()}
            for rel, p in (("prev", page - 1), ("next", page + 1), ("last", last), ("first", 1)):
                if (rel in ("prev", "first") and page > 1) or (
                    rel in ("next", "last") and page < last
                ):
                    q = urlencode({**base_q, "page": p})
                    links.append(f'<{handle.base}{rec.path}?{q}>; rel="{rel}"')  # type: ignore[attr-defined]
            headers = dict(rate)
            if links:
                headers["Link"] = ", ".join(links)
            return _json_reply(rec, chunk, headers, malformed)
        if m := re.fullmatch(r"/repos/([^/]+)/([^/]+)/languages", rec.path):
            owner, repo = m.group(1).lower(), m.group(2)
            langs = load("languages", owner, f"{repo}.json")
            if langs is None:
                match = [r for r in load("repos", f"{owner}.json") or [] if r.get("name") == repo]
                if not match:
                    return Reply(404, {"message": "Not Found"})
                lang = match[0].get("language")
                langs = {lang: int(match[0].get("size") or 1) * 1024} if lang else {}
            return _json_reply(rec, langs, rate, malformed)
        return Reply(404, {"message": "Not Found"})

    with serve(handle, **behaviour) as url:
        handle.base = str(url)  # type: ignore[attr-defined]
        yield url


# --------------------------------------------------------------------------------- website


@contextmanager
def fake_website(
    root_dir: Path | str = FIXTURES / "website" / "portfolio",
    *,
    routes: Mapping[str, Reply | Handler] | None = None,
    **behaviour: Any,
) -> Iterator[FakeService]:
    """A static site from ``root_dir`` (``/`` → ``index.html``, ``/a/`` → ``a/index.html``,
    ``/a`` → ``a`` or ``a.html``); ``routes`` override paths with a ``Reply`` or a function of
    the request (redirects, oversized or malformed bodies)."""
    root = Path(root_dir)
    table = dict(routes or {})

    def handle(rec: Recorded) -> Reply:
        if rec.path in table:
            r = table[rec.path]
            return r(rec) if callable(r) else r
        rel = rec.path.lstrip("/")
        candidates = (
            [root / rel / "index.html"]
            if rec.path.endswith("/")
            else [root / rel, root / f"{rel}.html"]
        )
        for path in candidates:
            try:
                path.resolve().relative_to(root.resolve())
            except ValueError:
                return Reply(404, "not found", {"Content-Type": "text/plain"})
            if path.is_file():
                ctype = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
                if ctype.startswith("text/"):
                    ctype += "; charset=utf-8"
                return Reply(200, path.read_bytes(), {"Content-Type": ctype})
        return Reply(404, "<h1>Not found</h1>", {"Content-Type": "text/html"})

    with serve(handle, **behaviour) as url:
        yield url


# ----------------------------------------------------------------------------------- Brave


@contextmanager
def fake_brave(
    fixtures_dir: Path | str = FIXTURES / "brave",
    *,
    api_key: str = "test-brave-key",
    malformed: bool = False,
    quota: bool = False,
    **behaviour: Any,
) -> Iterator[FakeService]:
    """Brave Search API: ``GET /res/v1/web/search?q=...`` with ``X-Subscription-Token``.

    Serves ``{slug of q}.json`` if present, else ``search.json``. A wrong key gets 401;
    ``quota`` gets 429 with rate-limit headers."""
    root = Path(fixtures_dir)

    def handle(rec: Recorded) -> Reply:
        if rec.path != "/res/v1/web/search":
            return Reply(404, {"error": "not found"})
        if rec.headers.get("x-subscription-token") != api_key:
            return Reply(
                401, {"type": "ErrorResponse", "error": {"code": "SUBSCRIPTION_TOKEN_INVALID"}}
            )
        if quota:
            return Reply(
                429,
                {"type": "ErrorResponse", "error": {"code": "RATE_LIMITED"}},
                {
                    "X-RateLimit-Limit": "1, 2000",
                    "X-RateLimit-Remaining": "0, 0",
                    "X-RateLimit-Reset": "1, 86400",
                    "Retry-After": "3600",
                },
            )
        q = rec.query.get("q", [""])[0]
        slug = re.sub(r"[^a-z0-9]+", "-", q.lower()).strip("-")
        path = root / f"{slug}.json"
        if not path.is_file():
            path = root / "search.json"
        body = path.read_bytes()
        if malformed:
            body = body[: len(body) // 2]
        return Reply(200, body, {"Content-Type": "application/json"})

    with serve(handle, **behaviour) as url:
        yield url
