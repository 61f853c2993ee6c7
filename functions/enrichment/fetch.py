"""GET with a deadline, bounded bodies, retries and (for user URLs) SSRF-checked redirects.

Retries: 5xx, 429 and connection errors, exponential backoff with full jitter, never past the
request's deadline; a ``Retry-After`` is honoured when it fits, otherwise the last answer is
returned at once for the source to map (``quota``, ``upstream``).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import TypeVar
from urllib.parse import urljoin, urlsplit

import httpx

from .errors import ErrorCode, SourceFailure
from .net import UrlGuard

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
MAX_BACKOFF_S = 5.0
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
        """The body as JSON; ``SourceFailure(upstream)`` when it is not."""
        import json

        try:
            return json.loads(self.body)
        except ValueError:
            raise SourceFailure(ErrorCode.UPSTREAM, "the service sent malformed JSON") from None


def retry_after_seconds(
    headers: httpx.Headers, now: Callable[[], float] = time.time
) -> float | None:
    """``Retry-After`` (seconds or HTTP date) as seconds from now, if present and valid."""
    raw = headers.get("retry-after")
    if not raw:
        return None
    raw = raw.strip()
    if raw.isdigit():
        return float(raw)
    try:
        return max(0.0, parsedate_to_datetime(raw).timestamp() - now())
    except (TypeError, ValueError, IndexError):
        return None


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
    ) -> FetchResponse:
        """GET ``url``. With ``guard``, each hop's host is checked and the connection pinned to
        the checked address; redirects are followed by hand up to ``max_redirects``."""
        current = url
        for _hop in range(max_redirects + 1):
            parts = urlsplit(current)
            if parts.scheme not in ("http", "https"):
                raise SourceFailure(ErrorCode.REFUSED, "only http and https URLs are fetched")
            request_url = current
            extra: dict[str, str] = {}
            extensions: dict[str, str] = {}
            if guard is not None:
                port = parts.port or (443 if parts.scheme == "https" else 80)
                target = await guard.check(parts.hostname, port)
                request_url = str(httpx.URL(current).copy_with(host=target.address))
                extra["Host"] = parts.netloc.rsplit("@", 1)[-1]
                if parts.scheme == "https":
                    extensions["sni_hostname"] = target.host
            merged = {"User-Agent": self._ua, **(headers or {}), **extra}
            resp = await self._get_with_retry(request_url, merged, extensions, max_bytes, current)
            if resp.status in REDIRECT_STATUSES and max_redirects > 0:
                location = resp.headers.get("location")
                if not location:
                    return resp
                current = urljoin(current, location)
                continue
            return resp
        raise SourceFailure(ErrorCode.UPSTREAM, "too many redirects")

    async def _get_with_retry(
        self,
        request_url: str,
        headers: Mapping[str, str],
        extensions: Mapping[str, str],
        max_bytes: int,
        logical_url: str,
    ) -> FetchResponse:
        last: FetchResponse | None = None
        host = urlsplit(logical_url).hostname or "the service"
        for attempt in range(self._attempts):
            last = None
            try:
                last = await self._once(request_url, headers, extensions, max_bytes, logical_url)
            except httpx.TimeoutException:
                raise SourceFailure(ErrorCode.TIMEOUT, f"{host} did not answer in time") from None
            except httpx.TransportError:
                pass  # connection refused / reset: retried like a 5xx
            if last is not None and last.status not in RETRY_STATUSES:
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
        request = self.client.build_request(
            "GET",
            request_url,
            headers=dict(headers),
            timeout=httpx.Timeout(remaining),
            extensions=dict(extensions),
        )
        response = await self.client.send(request, stream=True, follow_redirects=False)
        try:
            declared = response.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > max_bytes:
                raise TooLarge(max_bytes)
            chunks: list[bytes] = []
            size = 0
            async for chunk in response.aiter_bytes():  # decoded: also bounds gzip bombs
                size += len(chunk)
                if size > max_bytes:
                    raise TooLarge(max_bytes)
                chunks.append(chunk)
        finally:
            await response.aclose()
        return FetchResponse(response.status_code, response.headers, b"".join(chunks), logical_url)
