"""GET with a deadline, bounded bodies, retries and (for user URLs) SSRF-checked redirects.

Retries: 5xx, 429 and connection errors (a caller may narrow that with ``retry``: GitHub does not
retry a 429 without ``Retry-After``), exponential backoff with full jitter, never past the
request's deadline; a ``Retry-After`` is honoured when it fits, otherwise the last answer is
returned at once for the source to map (``quota``, ``upstream``).

Bodies are decoded here, not by httpx: the raw bytes are read and inflated with an output limit,
so ``max_bytes`` bounds the decoded body whatever the compression ratio. One content coding
(``gzip``, ``deflate``) is accepted; a stacked one (``gzip, gzip``: 1.8 KB that inflate to
2 GiB) or an unknown one is refused as ``upstream``. A URL or ``Location`` that does not parse
is ``upstream`` too, never an exception.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import re
import time
import zlib
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import TypeVar
from urllib.parse import SplitResult, urljoin, urlsplit

import httpx

from .errors import ErrorCode, SourceFailure
from .net import UrlGuard

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
MAX_BACKOFF_S = 5.0
MAX_RETRY_AFTER_S = 86_400.0
"""The longest ``Retry-After`` taken as given (a day): a larger one ("999999999999") is clamped
to it, so that no caller adding it to a time overflows."""
CPU_MARGIN_S = 0.05
"""CPU work of a source stops this long before the deadline (``Deadline.check``)."""
ACCEPT_ENCODING = "gzip, deflate"
"""What we can inflate with a bound (httpx would also offer br/zstd when installed)."""
T = TypeVar("T")


async def gather_all(*aws: Awaitable[T]) -> list[T]:
    """Like ``asyncio.gather``, but the first failure cancels the siblings (no orphan requests)
    and is raised as itself rather than inside an ``ExceptionGroup``."""
    try:
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(_as_coroutine(a)) for a in aws]
    except BaseExceptionGroup as eg:
        first = _first_leaf(eg)
        raise first from None
    return [t.result() for t in tasks]


async def gather_within(timeout: float, *aws: Awaitable[T]) -> list[T | None]:
    """Like ``gather_all``, but for at most ``timeout`` seconds: what has not finished by then
    is cancelled and gives ``None`` (best-effort work that must not cost its caller the deadline).
    A failure cancels the siblings and is raised as itself."""
    tasks = [asyncio.ensure_future(_as_coroutine(a)) for a in aws]
    if not tasks:
        return []
    try:
        done, pending = await asyncio.wait(
            tasks, timeout=max(0.0, timeout), return_when=asyncio.FIRST_EXCEPTION
        )
    finally:
        # Also when we are cancelled ourselves: no orphan requests.
        for task in tasks:
            if not task.done():
                task.cancel()
    if pending:
        await asyncio.wait(pending)
    for task in done:
        if (exc := task.exception()) is not None:
            raise exc
    return [t.result() if t in done else None for t in tasks]


async def _as_coroutine(aw: Awaitable[T]) -> T:
    return await aw


def _first_leaf(eg: BaseExceptionGroup[BaseException]) -> BaseException:
    # Prefer a SourceFailure: it carries the contract's error code.
    leaves: list[BaseException] = []
    stack: list[BaseException] = [eg]
    while stack:
        e = stack.pop(0)
        if isinstance(e, BaseExceptionGroup):
            stack.extend(e.exceptions)
        else:
            leaves.append(e)
    for e in leaves:
        if isinstance(e, SourceFailure):
            return e
    return leaves[0]


class Deadline:
    """A point in monotonic time that every wait and request of one enrichment respects."""

    def __init__(self, seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self.at = clock() + seconds

    def remaining(self) -> float:
        """Seconds left (never negative)."""
        return max(0.0, self.at - self._clock())

    def check(self) -> None:
        """``SourceFailure(timeout)`` once the deadline is ``CPU_MARGIN_S`` away: CPU work
        (parsing, redaction) calls it between steps, so it stops in time for the answer to be
        put together, rather than at the engine's timer, which it cannot interrupt."""
        if self.remaining() <= CPU_MARGIN_S:
            raise SourceFailure(ErrorCode.TIMEOUT, "the source did not finish in time")


class TooLarge(SourceFailure):
    """A body passed its byte limit; reading stopped there."""

    def __init__(self, limit: int) -> None:
        super().__init__(ErrorCode.UPSTREAM, f"the response is larger than {limit} bytes")
        self.limit = limit


@dataclass(frozen=True)
class FetchResponse:
    """A complete, size-bounded answer."""

    status: int
    headers: httpx.Headers
    body: bytes
    url: str
    """The logical URL that answered (after redirects), never the pinned address."""

    def json(self) -> object:
        """The body as JSON; ``SourceFailure(upstream)`` when it is not (or nests too deep for
        the decoder)."""
        try:
            return json.loads(self.body)
        except (ValueError, RecursionError):
            raise SourceFailure(ErrorCode.UPSTREAM, "the service sent malformed JSON") from None


def retry_after_seconds(
    headers: httpx.Headers, now: Callable[[], float] = time.time
) -> float | None:
    """``Retry-After`` (seconds or HTTP date) as seconds from now, if present and valid, at most
    ``MAX_RETRY_AFTER_S``."""
    raw = headers.get("retry-after")
    if not raw:
        return None
    raw = raw.strip()
    if raw.isascii() and raw.isdigit():
        return min(MAX_RETRY_AFTER_S, float(raw[:12]))  # more digits than that is "never" anyway
    try:
        wait = parsedate_to_datetime(raw).timestamp() - now()
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    return max(0.0, min(MAX_RETRY_AFTER_S, wait))


class _Decoder:
    """Inflates one content coding with a limit on the output (``TooLarge`` past it)."""

    def __init__(self, coding: str, limit: int) -> None:
        self._limit = limit
        self._size = 0
        self._coding = coding
        self._first = True
        self._z: zlib._Decompress | None = None
        if coding in ("gzip", "x-gzip"):
            self._z = zlib.decompressobj(16 + zlib.MAX_WBITS)

    def feed(self, data: bytes) -> bytes:
        if self._coding == "identity":
            return self._count(data)
        if self._z is None:  # deflate: zlib-wrapped as the RFC says, or raw as some servers send
            self._z = zlib.decompressobj(zlib.MAX_WBITS if _zlib_header(data) else -zlib.MAX_WBITS)
        out: list[bytes] = []
        try:
            while data:
                room = self._limit - self._size + 1
                piece = self._z.decompress(data, room)
                out.append(self._count(piece))
                data = self._z.unconsumed_tail
                if self._z.eof:
                    break
        except zlib.error:
            raise SourceFailure(ErrorCode.UPSTREAM, "the service sent a corrupt body") from None
        return b"".join(out)

    def _count(self, piece: bytes) -> bytes:
        self._size += len(piece)
        if self._size > self._limit:
            raise TooLarge(self._limit)
        return piece


def _zlib_header(data: bytes) -> bool:
    return len(data) >= 2 and data[0] & 0x0F == 8 and (data[0] << 8 | data[1]) % 31 == 0


def _content_coding(headers: httpx.Headers) -> str:
    """The one content coding of a response (``identity`` when none); ``SourceFailure`` for
    stacked or unknown codings."""
    codings = [
        c.strip().lower()
        for value in headers.get_list("content-encoding")
        for c in value.split(",")
        if c.strip() and c.strip().lower() != "identity"
    ]
    if len(codings) > 1:
        raise SourceFailure(ErrorCode.UPSTREAM, "the service sent a body with stacked encodings")
    if not codings:
        return "identity"
    if codings[0] not in ("gzip", "x-gzip", "deflate"):
        raise SourceFailure(ErrorCode.UPSTREAM, "the service sent a body in an unknown encoding")
    return codings[0]


_HOST_LABEL = r"[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?"
_HOSTNAME = re.compile(rf"(?=[^/]{{1,253}}$){_HOST_LABEL}(?:\.{_HOST_LABEL})*\.?")
"""A name DNS can hold, in its ASCII form: labels of letters, digits, ``-`` and ``_``."""


def requestable(url: str) -> bool:
    """Whether ``url`` is one the fetcher can request: it parses as httpx parses it (IDNA 2008
    for internationalised names) and names an IP address or a host DNS can hold (no spaces,
    ``%``, ``<``, quotes or other characters that only fail at the resolver)."""
    try:
        host = httpx.URL(url).raw_host.decode("ascii")
    except (httpx.InvalidURL, ValueError, TypeError, UnicodeError):
        return False
    return ":" in host or _HOSTNAME.fullmatch(host) is not None


def _ascii_host(parts: SplitResult) -> tuple[str, str]:
    """The host and the ``Host`` header's value (host and any explicit port, never userinfo)
    in ASCII: an internationalised name in the IDNA form the resolver uses for the same name
    (Python's ``idna`` codec, which the request parser checks). HTTP headers are ASCII; the raw
    name made every such fetch fail before connecting."""
    netloc = parts.netloc.rsplit("@", 1)[-1]
    host = parts.hostname or ""
    if netloc.isascii():
        return host, netloc
    encoded = host.encode("idna").decode("ascii")
    return encoded, encoded if parts.port is None else f"{encoded}:{parts.port}"


class _BadUrl(SourceFailure):
    """A URL that cannot be requested. ``Fetcher.get`` tells whose it is: the first hop's is the
    caller's (``invalid_input``), a redirect's the service's (``upstream``)."""


def _bad_url() -> SourceFailure:
    return _BadUrl(ErrorCode.UPSTREAM, "the service pointed to a URL that does not parse")


class Fetcher:
    """One enrichment's HTTP client: shares its connection pool and deadline across sources."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        deadline: Deadline,
        *,
        attempts: int = 3,
        base_delay_s: float = 0.2,
        user_agent: str = "cv-enrichment/1.0",
        rng: random.Random | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.client = client
        self.deadline = deadline
        self._attempts = max(1, attempts)
        self._base = base_delay_s
        self._ua = user_agent
        self._rng = rng or random.Random()
        self._sleep = sleep

    async def get(
        self,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        max_bytes: int = 5_000_000,
        guard: UrlGuard | None = None,
        max_redirects: int = 0,
        retry: Callable[[FetchResponse], bool] | None = None,
    ) -> FetchResponse:
        """GET ``url``. With ``guard``, each hop's host is checked and the connection pinned to
        the checked address; redirects are followed by hand up to ``max_redirects``. ``retry``
        says whether an answer of a ``RETRY_STATUSES`` status is tried again (default: yes)."""
        current = url
        for hop in range(max_redirects + 1):
            try:
                resp = await self._hop(current, headers, max_bytes, guard, retry)
            except _BadUrl:
                if hop == 0:  # the URL a source was given: its input, not an upstream failure
                    raise SourceFailure(
                        ErrorCode.INVALID_INPUT, "the URL cannot be requested"
                    ) from None
                raise
            if resp.status in REDIRECT_STATUSES and max_redirects > 0:
                location = resp.headers.get("location")
                if not location:
                    return resp
                try:
                    current = urljoin(current, location.strip())
                except ValueError:
                    raise _bad_url() from None
                continue
            return resp
        raise SourceFailure(ErrorCode.UPSTREAM, "too many redirects")

    async def _hop(
        self,
        current: str,
        headers: Mapping[str, str] | None,
        max_bytes: int,
        guard: UrlGuard | None,
        retry: Callable[[FetchResponse], bool] | None = None,
    ) -> FetchResponse:
        """One request of ``get``: ``current`` checked and pinned with ``guard``, if any."""
        try:
            parts = urlsplit(current)
            port = parts.port
        except ValueError:
            raise _bad_url() from None
        if parts.scheme not in ("http", "https"):
            raise SourceFailure(ErrorCode.REFUSED, "only http and https URLs are fetched")
        request_url = current
        extra: dict[str, str] = {}
        extensions: dict[str, str] = {}
        if guard is not None:
            target = await guard.check(
                parts.hostname, port or (443 if parts.scheme == "https" else 80)
            )
            try:
                request_url = str(httpx.URL(current).copy_with(host=target.address))
            except (httpx.InvalidURL, ValueError, TypeError):
                raise _bad_url() from None
            try:
                host, netloc = _ascii_host(parts)
            except UnicodeError:
                raise _bad_url() from None
            extra["Host"] = netloc
            if parts.scheme == "https":
                extensions["sni_hostname"] = host
        merged = {
            "User-Agent": self._ua,
            "Accept-Encoding": ACCEPT_ENCODING,
            **(headers or {}),
            **extra,
        }
        return await self._get_with_retry(
            request_url, merged, extensions, max_bytes, current, retry
        )

    async def _get_with_retry(
        self,
        request_url: str,
        headers: Mapping[str, str],
        extensions: Mapping[str, str],
        max_bytes: int,
        logical_url: str,
        retry: Callable[[FetchResponse], bool] | None = None,
    ) -> FetchResponse:
        last: FetchResponse | None = None
        host = "the service"
        with contextlib.suppress(ValueError):
            host = urlsplit(logical_url).hostname or host
        for attempt in range(self._attempts):
            last = None
            try:
                last = await self._once(request_url, headers, extensions, max_bytes, logical_url)
            except httpx.TimeoutException:
                raise SourceFailure(ErrorCode.TIMEOUT, f"{host} did not answer in time") from None
            except httpx.TransportError:
                pass  # connection refused / reset: retried like a 5xx
            if last is not None and (
                last.status not in RETRY_STATUSES or (retry is not None and not retry(last))
            ):
                return last
            if attempt == self._attempts - 1:
                break
            wait = retry_after_seconds(last.headers) if last is not None else None
            if wait is None:
                wait = self._rng.uniform(0, min(MAX_BACKOFF_S, self._base * (2**attempt)))
            if wait >= self.deadline.remaining():
                break  # would not fit: answer now rather than time out
            await self._sleep(wait)
        if last is not None:
            return last
        raise SourceFailure(ErrorCode.UPSTREAM, f"could not connect to {host}")

    async def _once(
        self,
        request_url: str,
        headers: Mapping[str, str],
        extensions: Mapping[str, str],
        max_bytes: int,
        logical_url: str,
    ) -> FetchResponse:
        remaining = self.deadline.remaining()
        if remaining <= 0:
            raise httpx.TimeoutException("deadline passed")
        try:
            request = self.client.build_request(
                "GET",
                request_url,
                headers=dict(headers),
                timeout=httpx.Timeout(remaining),
                extensions=dict(extensions),
            )
        except (httpx.InvalidURL, ValueError, TypeError, UnicodeError):
            raise _bad_url() from None
        try:
            response = await self.client.send(request, stream=True, follow_redirects=False)
        except (httpx.InvalidURL, httpx.UnsupportedProtocol, UnicodeError):
            raise _bad_url() from None
        try:
            declared = response.headers.get("content-length", "")
            if declared.isascii() and declared.isdigit() and int(declared) > max_bytes:
                raise TooLarge(max_bytes)
            decoder = _Decoder(_content_coding(response.headers), max_bytes)
            chunks: list[bytes] = []
            raw_size = 0
            async for raw in response.aiter_raw():
                raw_size += len(raw)
                if raw_size > max_bytes:
                    raise TooLarge(max_bytes)
                chunks.append(decoder.feed(raw))
        finally:
            await response.aclose()
        return FetchResponse(response.status_code, response.headers, b"".join(chunks), logical_url)
