"""Web search about the person, behind a small provider interface.

One real provider: Brave Search API (``GET {base}/res/v1/web/search?q=...`` with
``X-Subscription-Token``). Without an API key the source is ``skipped`` / ``not_configured``:
it never makes results up.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Protocol
from urllib.parse import urlencode

from common.settings import EnrichmentSettings

from ..bounds import bound_payload, trim_for_redaction
from ..cache import CacheEntry
from ..errors import ErrorCode, SourceFailure, SourceSkipped
from ..fetch import retry_after_seconds
from ..model import EnrichmentInput
from ..redact import redact_async
from .base import Fetched, SourceContext

MAX_BODY = 2_000_000
MAX_RESULTS = 50
MAX_NAME_CHARS = 200
"""The longest name searched for, in characters as given (the request parser's limit): casefold
may lengthen a name ("ß" folds to "ss"), so it is not measured after folding."""
# [^<>] rather than [^>]: a title of many "<" without ">" was quadratic.
_TAGS = re.compile(r"<[^<>]+>")


@dataclass(frozen=True)
class WebResult:
    """One search hit."""

    title: str
    url: str
    snippet: str | None


class SearchProvider(Protocol):
    """A web search API."""

    name: str

    async def search(self, query: str, ctx: SourceContext) -> list[WebResult]:
        """Results for ``query``; raises ``SourceFailure`` (quota, upstream, timeout)."""
        ...


class BraveProvider:
    """Brave Search API, ``web.results[]`` → ``WebResult``."""

    name = "brave"

    def __init__(self, base_url: str, api_key: str, count: int = 10) -> None:
        self._base = base_url.rstrip("/")
        self._key = api_key
        self._count = count

    async def search(self, query: str, ctx: SourceContext) -> list[WebResult]:
        """See ``SearchProvider.search``."""
        url = f"{self._base}/res/v1/web/search?" + urlencode(
            {"q": query, "count": self._count, "safesearch": "strict", "text_decorations": "false"}
        )
        resp = await ctx.fetcher.get(
            url,
            headers={"Accept": "application/json", "X-Subscription-Token": self._key},
            max_bytes=MAX_BODY,
        )
        if resp.status == 429:
            wait = retry_after_seconds(resp.headers)
            when = (
                f"; try again after {(ctx.now() + timedelta(seconds=wait)).strftime('%Y-%m-%dT%H:%M:%SZ')}"
                if wait is not None
                else ""
            )
            raise SourceFailure(ErrorCode.QUOTA, f"web search quota reached{when}")
        if resp.status in (401, 403):
            raise SourceFailure(ErrorCode.UPSTREAM, "the web search provider rejected the API key")
        if resp.status != 200:
            raise SourceFailure(
                ErrorCode.UPSTREAM, f"the web search provider answered {resp.status}"
            )
        body = resp.json()
        web = body.get("web") if isinstance(body, dict) else None
        if web is None and isinstance(body, dict) and body.get("type") == "search":
            return []  # a valid answer with no web section: no results
        results = web.get("results") if isinstance(web, dict) else None
        if not isinstance(results, list):
            raise SourceFailure(
                ErrorCode.UPSTREAM, "the web search provider sent an unexpected answer"
            )
        out = []
        for r in results[:MAX_RESULTS]:
            if not isinstance(r, dict) or not isinstance(r.get("url"), str):
                continue
            title = _TAGS.sub("", _text(r.get("title"))).strip()
            snippet = _TAGS.sub("", _text(r.get("description"))).strip() or None
            out.append(WebResult(title=title or r["url"], url=r["url"], snippet=snippet))
        return out


def _text(value: object) -> str:
    """A text field of a result: strings and numbers as text, anything else empty."""
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return ""


def normalise_name(name: str) -> str:
    """Case- and space-folded name (the cache key input)."""
    return " ".join(name.split()).casefold()


class WebSearchSource:
    """``web``: search results about the person's name."""

    name = "web"

    def __init__(self, provider: SearchProvider | None) -> None:
        self.provider = provider

    @classmethod
    def from_settings(cls, settings: EnrichmentSettings) -> WebSearchSource:
        """The configured provider, or none when no API key is set."""
        if not settings.web_search_api_key:
            return cls(None)
        return cls(
            BraveProvider(
                settings.web_search_url, settings.web_search_api_key, settings.web_search_results
            )
        )

    def normalise(self, inp: EnrichmentInput) -> str:
        """Provider + folded name."""
        if self.provider is None:
            raise SourceSkipped(ErrorCode.NOT_CONFIGURED, "web search is not configured")
        name = normalise_name(inp.name or "")
        if not name:
            raise SourceSkipped(ErrorCode.INVALID_INPUT, "no name given for web search")
        if len(inp.name or "") > MAX_NAME_CHARS:
            raise SourceFailure(ErrorCode.INVALID_INPUT, "the name is too long to search for")
        return f"{self.provider.name}:{name}"

    def count(self, payload: dict[str, Any]) -> int:
        """Results."""
        return len(payload.get("results") or [])

    async def fetch(
        self, key: str, inp: EnrichmentInput, ctx: SourceContext, stale: CacheEntry | None
    ) -> Fetched:
        """Search for the quoted name."""
        if self.provider is None:  # normalise() has skipped already; kept for the type checker
            raise SourceSkipped(ErrorCode.NOT_CONFIGURED, "web search is not configured")
        query = f'"{" ".join((inp.name or "").split())}"'
        results = await self.provider.search(query, ctx)
        payload = {
            "provider": self.provider.name,
            "query": query,
            "results": [{"title": r.title, "url": r.url, "snippet": r.snippet} for r in results],
        }
        return Fetched(
            bound_payload(
                await redact_async(trim_for_redaction(payload), deadline=ctx.fetcher.deadline)
            )
        )
