"""GitHub: profile, all public repositories (paginated), languages; conditional requests.

API calls are bounded: 1 profile + at most ``github_max_pages`` repository pages + at most
``github_language_repos`` language calls. The language calls are best effort: they end
``LANGUAGES_RESERVE_S`` before the deadline, and the answers gathered by then are used. Pages are followed by ``rel="next"`` only within the
API's origin and never to a page already read; each repository counts once (by full name, else
URL). Revalidating a stale entry sends the profile and page URLs with ``If-None-Match``; if
all answer 304 the cached payload is reused (304s do not count against GitHub's rate limit).

Upstream values are not trusted to have GitHub's types: text fields that are not strings become
null, counts that are not finite non-negative numbers (``"12"``, ``Infinity``, ``NaN``,
``1e400``, 10**30) become 0 or are clamped, and a repository name that could not be a path is
not used to build a URL.

Rate limits are ``quota``, never ``upstream`` (which would feed the source's breaker): a 429, or
a 403 with ``X-RateLimit-Remaining: 0``, a ``Retry-After``, or a message speaking of a rate
limit (the secondary rate limit, sent without headers). A 429 without ``Retry-After`` is not
retried.
"""

from __future__ import annotations

import json
import math
import re
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, parse_qsl, urlencode, urlsplit, urlunsplit

from ..bounds import bound_payload, trim_for_redaction
from ..cache import CacheEntry
from ..errors import ErrorCode, SourceFailure, SourceSkipped
from ..fetch import FetchResponse, gather_all, gather_within, retry_after_seconds
from ..model import EnrichmentInput
from ..redact import redact_async
from .base import Fetched, SourceContext

_USERNAME = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9]|-(?=[A-Za-z0-9])){0,38}$")
_PROFILE_URL = re.compile(r"^(?:https?://)?(?:www\.)?github\.com/([^/?#]+)/?$", re.IGNORECASE)
# [^<>] rather than [^>]: a header of many "<" was quadratic.
_LINK = re.compile(r'<([^<>]+)>\s*;\s*rel="([^"]+)"')
_FULL_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,100}/[A-Za-z0-9_.-]{1,100}$")
MAX_BODY = 2_000_000
"""Bytes of one repository page (100 real repositories are about 600 KB)."""
MAX_SMALL_BODY = 256 * 1024
"""Bytes of a profile or a languages answer."""
PER_PAGE = 100
LANGUAGES_RESERVE_S = 0.3
"""The language calls (best effort) end this long before the enrichment's deadline, leaving the
time to redact and answer with the profile and repositories already fetched."""
MAX_COUNT = 2**53


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _count(value: Any) -> int:
    """A count from upstream as a non-negative int (0 when it is not a number)."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return max(0, min(MAX_COUNT, value))
    if isinstance(value, float) and math.isfinite(value):
        return max(0, min(MAX_COUNT, int(value)))
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 15:
        return int(value)
    return 0


def _count_or_none(value: Any) -> int | None:
    return None if value is None else _count(value)


def parse_link_header(value: str | None) -> dict[str, str]:
    """``Link: <url>; rel="next", ...`` as ``{"next": url, ...}``."""
    return {rel: url for url, rel in _LINK.findall(value or "")}


def _with_page(url: str, page: int) -> str:
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    query["page"] = [str(page)]
    return urlunsplit(parts._replace(query=urlencode(query, doseq=True)))


def _page_of(url: str) -> int | None:
    try:
        values = parse_qs(urlsplit(url).query).get("page")
    except ValueError:
        return None
    if values and values[0].isascii() and values[0].isdigit() and len(values[0]) <= 6:
        return int(values[0])
    return None


def _same_origin(url: str, origin: tuple[str, str]) -> bool:
    try:
        return urlsplit(url)[:2] == origin
    except ValueError:
        return False


def quota_message(resp: FetchResponse, now: datetime) -> str:
    """ "GitHub rate limit reached; resets at <ISO time>" from the rate-limit headers."""
    reset_at: datetime | None = None
    raw = resp.headers.get("x-ratelimit-reset", "")
    if raw.isascii() and raw.isdigit() and len(raw) <= 11:
        reset_at = datetime.fromtimestamp(int(raw), tz=UTC)
    else:
        wait = retry_after_seconds(resp.headers)
        if wait is not None:
            reset_at = now + timedelta(seconds=wait)
    if reset_at is None:
        return "GitHub rate limit reached; try again later"
    return f"GitHub rate limit reached; resets at {reset_at.strftime('%Y-%m-%dT%H:%M:%SZ')}"


def _says_rate_limit(resp: FetchResponse) -> bool:
    """Whether the JSON body's ``message`` speaks of a rate limit (GitHub's secondary rate
    limit: a 403 or 429 with no rate-limit headers, "You have exceeded a secondary rate
    limit...")."""
    if len(resp.body) > MAX_SMALL_BODY:
        return False
    try:
        body = json.loads(resp.body)
    except (ValueError, RecursionError):
        return False
    message = body.get("message") if isinstance(body, dict) else None
    return isinstance(message, str) and "rate limit" in message.lower()


def retryable(resp: FetchResponse) -> bool:
    """Whether a 5xx or 429 answer is worth retrying: not a 429 without ``Retry-After``
    (GitHub asks to wait at least a minute then, which no enrichment's deadline holds)."""
    return not (resp.status == 429 and retry_after_seconds(resp.headers) is None)


def check(resp: FetchResponse, now: datetime, what: str = "GitHub user") -> None:
    """Raise the contract error for a non-success answer."""
    if resp.status in (200, 304):
        return
    if resp.status == 404:
        raise SourceFailure(ErrorCode.NOT_FOUND, f"{what} not found")
    if resp.status == 429 or (
        resp.status == 403
        and (
            resp.headers.get("x-ratelimit-remaining") == "0"
            or "retry-after" in resp.headers
            or _says_rate_limit(resp)
        )
    ):
        raise SourceFailure(ErrorCode.QUOTA, quota_message(resp, now))
    if resp.status == 401:
        raise SourceFailure(ErrorCode.UPSTREAM, "GitHub rejected the configured token")
    raise SourceFailure(ErrorCode.UPSTREAM, f"GitHub answered {resp.status}")


def _profile(raw: Any) -> dict[str, Any]:
    if not isinstance(raw, dict) or not isinstance(raw.get("login"), str):
        raise SourceFailure(ErrorCode.UPSTREAM, "GitHub sent an unexpected profile")
    # No "email": the public e-mail is personal data we do not need.
    return {
        "login": raw["login"],
        "name": _str(raw.get("name")),
        "bio": _str(raw.get("bio")),
        "company": _str(raw.get("company")),
        "location": _str(raw.get("location")),
        "blog": _str(raw.get("blog")) or None,
        "twitterUsername": _str(raw.get("twitter_username")),
        "htmlUrl": _str(raw.get("html_url")),
        "avatarUrl": _str(raw.get("avatar_url")),
        "publicRepos": _count_or_none(raw.get("public_repos")),
        "followers": _count_or_none(raw.get("followers")),
        "following": _count_or_none(raw.get("following")),
        "createdAt": _str(raw.get("created_at")),
        "updatedAt": _str(raw.get("updated_at")),
    }


def _repo(raw: dict[str, Any]) -> dict[str, Any]:
    topics = raw.get("topics")
    return {
        "name": _str(raw.get("name")),
        "fullName": _str(raw.get("full_name")),
        "url": _str(raw.get("html_url")),
        "description": _str(raw.get("description")),
        "homepageUrl": _str(raw.get("homepage")) or None,
        "language": _str(raw.get("language")),
        "topics": [t for t in topics[:50] if isinstance(t, str)]
        if isinstance(topics, list)
        else [],
        "stars": _count(raw.get("stargazers_count")),
        "forks": _count(raw.get("forks_count")),
        "fork": raw.get("fork") is True,
        "archived": raw.get("archived") is True,
        "createdAt": _str(raw.get("created_at")),
        "updatedAt": _str(raw.get("updated_at")),
        "pushedAt": _str(raw.get("pushed_at")),
    }


def _page_key(url: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    """A page URL as compared for loops: path and query parameters in any order."""
    try:
        parts = urlsplit(url)
        return parts.path.rstrip("/"), tuple(sorted(parse_qsl(parts.query)))
    except ValueError:
        return url, ()


def _repos_of(pages: list[FetchResponse]) -> list[dict[str, Any]]:
    """The repositories of the pages, each once (by ``fullName``, else ``url``): a page served
    twice, or a repository moving between pages while they were read, counts it once."""
    repos: list[dict[str, Any]] = []
    seen: set[str] = set()
    for resp in pages:
        body = resp.json()
        if not isinstance(body, list):
            raise SourceFailure(ErrorCode.UPSTREAM, "GitHub sent an unexpected repository list")
        for raw in body[:PER_PAGE]:
            if not isinstance(raw, dict):
                continue
            repo = _repo(raw)
            ident = repo["fullName"] or repo["url"]
            if ident is not None:
                if ident.lower() in seen:
                    continue
                seen.add(ident.lower())
            repos.append(repo)
    return repos


def _recency(repo: dict[str, Any]) -> str:
    return str(repo.get("pushedAt") or repo.get("updatedAt") or "")


class GitHubSource:
    """``github``: reads the REST API at ``EXTERNAL_DATA_GITHUB_API_URL``."""

    name = "github"

    def normalise(self, inp: EnrichmentInput) -> str:
        """Lower-cased username; a github.com profile URL or a leading ``@`` is accepted."""
        raw = (inp.github or "").strip()
        if not raw:
            raise SourceSkipped(ErrorCode.INVALID_INPUT, "no GitHub username given")
        match = _PROFILE_URL.match(raw)
        user = match.group(1) if match else raw.lstrip("@")
        if not _USERNAME.match(user):
            raise SourceFailure(ErrorCode.INVALID_INPUT, "that is not a valid GitHub username")
        return user.lower()

    def count(self, payload: dict[str, Any]) -> int:
        """Repositories."""
        return len(payload.get("repos") or [])

    def _headers(self, ctx: SourceContext) -> dict[str, str]:
        headers = {"Accept": "application/vnd.github+json", "X-GitHub-Api-Version": "2022-11-28"}
        if ctx.settings.github_token:
            headers["Authorization"] = f"Bearer {ctx.settings.github_token}"
        return headers

    async def _get(
        self,
        ctx: SourceContext,
        url: str,
        etag: str | None = None,
        what: str = "GitHub user",
        max_bytes: int = MAX_BODY,
    ) -> FetchResponse:
        headers = self._headers(ctx)
        if etag:
            headers["If-None-Match"] = etag
        resp = await ctx.fetcher.get(url, headers=headers, max_bytes=max_bytes, retry=retryable)
        check(resp, ctx.now(), what)
        return resp

    async def fetch(
        self, key: str, inp: EnrichmentInput, ctx: SourceContext, stale: CacheEntry | None
    ) -> Fetched:
        """See ``Source.fetch``."""
        if stale is not None and stale.etag:
            try:
                validators = json.loads(stale.etag)
            except ValueError:
                validators = {}
            if isinstance(validators, dict) and validators:
                answers = await gather_all(
                    *(self._get(ctx, url, str(tag)) for url, tag in validators.items())
                )
                if all(a.status == 304 for a in answers):
                    return Fetched(stale.payload, stale.etag, revalidated=True)
        return await self._fetch_all(key, ctx)

    async def _fetch_all(self, user: str, ctx: SourceContext) -> Fetched:
        base = ctx.settings.github_api_url
        origin = urlsplit(base)[:2]
        profile_url = f"{base}/users/{user}"
        first_url = f"{base}/users/{user}/repos?" + urlencode(
            {"per_page": 100, "type": "owner", "sort": "pushed", "page": 1}
        )
        profile_resp, first = await gather_all(
            self._get(ctx, profile_url, max_bytes=MAX_SMALL_BODY), self._get(ctx, first_url)
        )
        validators: dict[str, str] = {}
        for resp in (profile_resp, first):
            if resp.headers.get("etag"):
                validators[resp.url] = resp.headers["etag"]
        profile = _profile(profile_resp.json())
        pages = [first]
        links = parse_link_header(first.headers.get("link"))
        max_pages = ctx.settings.github_max_pages
        last = links.get("last")
        last_page = _page_of(last) if last and _same_origin(last, origin) else None
        if last_page:
            # All page numbers are known: fetch them at once instead of one after another.
            urls = [_with_page(first_url, p) for p in range(2, min(last_page, max_pages) + 1)]
            pages += await gather_all(*(self._get(ctx, u) for u in urls))
        else:
            pages += await self._follow_next(ctx, first_url, links.get("next"), origin)
        for resp in pages[1:]:
            if resp.headers.get("etag"):
                validators[resp.url] = resp.headers["etag"]
        repos = _repos_of(pages)
        repos.sort(key=lambda r: (r["stars"], _recency(r)), reverse=True)
        languages = await self._languages(ctx, repos)
        own = [r for r in repos if not r["fork"]]
        payload = {
            "profile": profile,
            "repos": repos,
            "languages": languages,
            "totals": {
                "repos": len(repos),
                "ownRepos": len(own),
                "stars": sum(r["stars"] for r in own),
                "forks": sum(r["forks"] for r in own),
            },
            "truncated": bool(links.get("next")) and len(pages) >= max_pages,
        }
        return Fetched(
            bound_payload(
                await redact_async(trim_for_redaction(payload), deadline=ctx.fetcher.deadline)
            ),
            json.dumps(validators, sort_keys=True) or None,
        )

    async def _follow_next(
        self, ctx: SourceContext, first_url: str, nxt: str | None, origin: tuple[str, str]
    ) -> list[FetchResponse]:
        """The pages after the first, one ``rel="next"`` after another, up to the page limit:
        never to another origin, and never to a page already read (a ``next`` that loops back
        ends the list)."""
        pages: list[FetchResponse] = []
        seen = {_page_key(first_url)}
        while nxt and len(pages) + 1 < ctx.settings.github_max_pages:
            if not _same_origin(nxt, origin) or _page_key(nxt) in seen:
                break
            seen.add(_page_key(nxt))
            resp = await self._get(ctx, nxt)
            pages.append(resp)
            nxt = parse_link_header(resp.headers.get("link")).get("next")
        return pages

    async def _languages(
        self, ctx: SourceContext, repos: list[dict[str, Any]]
    ) -> list[dict[str, Any]]:
        """Per language: repositories using it as main language, and bytes in the top repos."""
        own = [r for r in repos if not r["fork"]]
        stats: dict[str, dict[str, Any]] = {}
        for r in own:
            if r["language"]:
                s = stats.setdefault(r["language"], {"name": r["language"], "repos": 0, "bytes": 0})
                s["repos"] += 1
        top = own[: ctx.settings.github_language_repos]
        base = ctx.settings.github_api_url

        async def one(repo: dict[str, Any]) -> dict[str, Any]:
            try:
                resp = await self._get(
                    ctx,
                    f"{base}/repos/{repo['fullName']}/languages",
                    what="repository",
                    max_bytes=MAX_SMALL_BODY,
                )
                body = resp.json()
            except SourceFailure:
                return {}  # best effort: the main-language counts stand on their own
            return body if isinstance(body, dict) else {}

        usable = [r for r in top if _FULL_NAME.match(r.get("fullName") or "")]
        budget = ctx.fetcher.deadline.remaining() - LANGUAGES_RESERVE_S
        if budget <= 0:
            usable = []  # no time left for best effort: the main-language counts stand
        for counts in await gather_within(budget, *(one(r) for r in usable)):
            for lang, n in list((counts or {}).items())[:200]:
                if isinstance(lang, str) and len(lang) <= 100 and isinstance(n, int | float):
                    s = stats.setdefault(lang, {"name": lang, "repos": 0, "bytes": 0})
                    s["bytes"] = min(MAX_COUNT, s["bytes"] + _count(n))
        return sorted(stats.values(), key=lambda s: (s["repos"], s["bytes"]), reverse=True)
