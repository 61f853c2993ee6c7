"""GitHub: profile, all public repositories (paginated), languages; conditional requests.

API calls are bounded: 1 profile + at most ``github_max_pages`` repository pages + at most
``github_language_repos`` language calls. Revalidating a stale entry sends the profile and page
URLs with ``If-None-Match``; if all answer 304 the cached payload is reused (304s do not count
against GitHub's rate limit).
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

from ..cache import CacheEntry
from ..errors import ErrorCode, SourceFailure, SourceSkipped
from ..fetch import FetchResponse, gather_all, retry_after_seconds
from ..model import EnrichmentInput
from ..redact import redact
from .base import Fetched, SourceContext

_USERNAME = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9]|-(?=[A-Za-z0-9])){0,38}$")
_PROFILE_URL = re.compile(r"^(?:https?://)?(?:www\.)?github\.com/([^/?#]+)/?$", re.IGNORECASE)
_LINK = re.compile(r'<([^>]+)>\s*;\s*rel="([^"]+)"')
MAX_BODY = 5_000_000


def parse_link_header(value: str | None) -> dict[str, str]:
    """``Link: <url>; rel="next", ...`` as ``{"next": url, ...}``."""
    return {rel: url for url, rel in _LINK.findall(value or "")}


def _with_page(url: str, page: int) -> str:
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    query["page"] = [str(page)]
    return urlunsplit(parts._replace(query=urlencode(query, doseq=True)))


def _page_of(url: str) -> int | None:
    values = parse_qs(urlsplit(url).query).get("page")
    return int(values[0]) if values and values[0].isdigit() else None


def quota_message(resp: FetchResponse, now: datetime) -> str:
    """ "GitHub rate limit reached; resets at <ISO time>" from the rate-limit headers."""
    reset_at: datetime | None = None
    raw = resp.headers.get("x-ratelimit-reset", "")
    if raw.isdigit():
        reset_at = datetime.fromtimestamp(int(raw), tz=UTC)
    else:
        wait = retry_after_seconds(resp.headers)
        if wait is not None:
            reset_at = now + timedelta(seconds=wait)
    if reset_at is None:
        return "GitHub rate limit reached; try again later"
    return f"GitHub rate limit reached; resets at {reset_at.strftime('%Y-%m-%dT%H:%M:%SZ')}"


def check(resp: FetchResponse, now: datetime, what: str = "GitHub user") -> None:
    """Raise the contract error for a non-success answer."""
    if resp.status in (200, 304):
        return
    if resp.status == 404:
        raise SourceFailure(ErrorCode.NOT_FOUND, f"{what} not found")
    if resp.status == 429 or (
        resp.status == 403
        and (resp.headers.get("x-ratelimit-remaining") == "0" or "retry-after" in resp.headers)
    ):
        raise SourceFailure(ErrorCode.QUOTA, quota_message(resp, now))
    if resp.status == 401:
        raise SourceFailure(ErrorCode.UPSTREAM, "GitHub rejected the configured token")
    raise SourceFailure(ErrorCode.UPSTREAM, f"GitHub answered {resp.status}")


def _profile(raw: Any) -> dict[str, Any]:
    if not isinstance(raw, dict) or "login" not in raw:
        raise SourceFailure(ErrorCode.UPSTREAM, "GitHub sent an unexpected profile")
    # No "email": the public e-mail is personal data we do not need.
    return {
        "login": raw.get("login"),
        "name": raw.get("name"),
        "bio": raw.get("bio"),
        "company": raw.get("company"),
        "location": raw.get("location"),
        "blog": raw.get("blog") or None,
        "twitterUsername": raw.get("twitter_username"),
        "htmlUrl": raw.get("html_url"),
        "avatarUrl": raw.get("avatar_url"),
        "publicRepos": raw.get("public_repos"),
        "followers": raw.get("followers"),
        "following": raw.get("following"),
        "createdAt": raw.get("created_at"),
        "updatedAt": raw.get("updated_at"),
    }


def _repo(raw: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": raw.get("name"),
        "fullName": raw.get("full_name"),
        "url": raw.get("html_url"),
        "description": raw.get("description"),
        "homepageUrl": raw.get("homepage") or None,
        "language": raw.get("language"),
        "topics": [t for t in raw.get("topics") or [] if isinstance(t, str)],
        "stars": int(raw.get("stargazers_count") or 0),
        "forks": int(raw.get("forks_count") or 0),
        "fork": bool(raw.get("fork")),
        "archived": bool(raw.get("archived")),
        "createdAt": raw.get("created_at"),
        "updatedAt": raw.get("updated_at"),
        "pushedAt": raw.get("pushed_at"),
    }


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
        self, ctx: SourceContext, url: str, etag: str | None = None, what: str = "GitHub user"
    ) -> FetchResponse:
        headers = self._headers(ctx)
        if etag:
            headers["If-None-Match"] = etag
        resp = await ctx.fetcher.get(url, headers=headers, max_bytes=MAX_BODY)
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
            self._get(ctx, profile_url), self._get(ctx, first_url)
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
        last_page = _page_of(last) if last and urlsplit(last)[:2] == origin else None
        if last_page:
            # All page numbers are known: fetch them at once instead of one after another.
            urls = [_with_page(first_url, p) for p in range(2, min(last_page, max_pages) + 1)]
            pages += await gather_all(*(self._get(ctx, u) for u in urls))
        else:
            nxt = links.get("next")
            while nxt and len(pages) < max_pages and urlsplit(nxt)[:2] == origin:
                resp = await self._get(ctx, nxt)
                pages.append(resp)
                nxt = parse_link_header(resp.headers.get("link")).get("next")
        repos: list[dict[str, Any]] = []
        for resp in pages[1:]:
            if resp.headers.get("etag"):
                validators[resp.url] = resp.headers["etag"]
        for resp in pages:
            body = resp.json()
            if not isinstance(body, list):
                raise SourceFailure(ErrorCode.UPSTREAM, "GitHub sent an unexpected repository list")
            repos += [_repo(r) for r in body if isinstance(r, dict)]
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
        return Fetched(redact(payload), json.dumps(validators, sort_keys=True) or None)

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
                    ctx, f"{base}/repos/{repo['fullName']}/languages", what="repository"
                )
                body = resp.json()
            except SourceFailure:
                return {}  # best effort: the main-language counts stand on their own
            return body if isinstance(body, dict) else {}

        for counts in await gather_all(*(one(r) for r in top if r.get("fullName"))):
            for lang, n in counts.items():
                if isinstance(lang, str) and isinstance(n, int):
                    s = stats.setdefault(lang, {"name": lang, "repos": 0, "bytes": 0})
                    s["bytes"] += n
        return sorted(stats.values(), key=lambda s: (s["repos"], s["bytes"]), reverse=True)
