"""Personal website: a small, polite, same-origin crawl.

robots.txt is obeyed (RFC 9309: 4xx = no rules, 401/403 = keep out, 5xx = unreachable; its first
``ROBOTS_MAX_RULES`` rule lines, within ``ROBOTS_MAX_BYTES``). At
most ``website_max_pages`` pages of at most ``website_max_page_bytes`` each, bodies streamed and
cut at the limit. Every request, and every redirect hop, goes through the SSRF guard.
Extracted: title, description, person, projects, blog posts, contact links, from JSON-LD,
OpenGraph and microformats (h-card, h-entry), with light URL heuristics as a fallback.

Hostile sites get a result or a source error, never an exception: links, ``Location`` headers
and robots.txt lines that do not parse are skipped, an unknown or non-text charset (``idna``,
``rot13``) falls back to UTF-8, and parsing and link filtering yield to the event loop and
check the deadline, so the deadline stops them.
"""

from __future__ import annotations

import asyncio
import codecs
import re
from collections import deque
from typing import Any
from urllib.parse import urldefrag, urljoin, urlsplit, urlunsplit
from urllib.robotparser import RobotFileParser

from ..bounds import bound_payload, trim_for_redaction
from ..cache import CacheEntry
from ..errors import ErrorCode, SourceFailure, SourceSkipped
from ..fetch import Deadline, FetchResponse, TooLarge, gather_all
from ..model import EnrichmentInput
from ..redact import redact_async
from .base import Fetched, SourceContext
from .html_extract import Mf2Item, Page, jsonld_nodes, node_types, parse_page_async

MAX_REDIRECTS = 5
ROBOTS_MAX_BYTES = 512 * 1024
ROBOTS_MAX_RULES = 2000
"""``User-agent``/``Allow``/``Disallow`` lines of robots.txt kept (the first ones; the rest of the
file is ignored, as past ``ROBOTS_MAX_BYTES``): the parser tries the rules one by one for every
link, and 32,773 rules with pages of 1,000 links held the event loop for seconds."""
LINKS_PER_CHECK = 64
"""Links filtered between two checks of the deadline."""
PAGE_CONCURRENCY = 4
_HTML_TYPES = ("text/html", "application/xhtml+xml")
_SKIP_EXT = re.compile(
    r"\.(png|jpe?g|gif|svg|webp|ico|pdf|zip|gz|tar|mp[34]|mov|avi|css|js|json|xml|rss|atom|txt|woff2?|ttf)$",
    re.IGNORECASE,
)
_PROJECT_PATH = re.compile(r"/(projects?|portfolio|work|case-studies)/[^/]+", re.IGNORECASE)
_POST_PATH = re.compile(r"/(blog|posts?|articles?|writing|notes)/[^/]+", re.IGNORECASE)
_PRIORITY_PATH = re.compile(
    r"/(projects?|portfolio|work|blog|posts?|articles?|writing|about|cv|resume)\b", re.IGNORECASE
)
_REPO_LINK = re.compile(
    r"^https?://(www\.)?(github\.com|gitlab\.com|codeberg\.org)/[^/]+/[^/#?]+/?$", re.IGNORECASE
)
_SOCIAL = {
    "github.com": "github",
    "gitlab.com": "gitlab",
    "linkedin.com": "linkedin",
    "twitter.com": "twitter",
    "x.com": "twitter",
    "mastodon.social": "mastodon",
    "bsky.app": "bluesky",
    "stackoverflow.com": "stackoverflow",
    "youtube.com": "youtube",
    "medium.com": "medium",
    "dev.to": "devto",
    "keybase.io": "keybase",
    "codeberg.org": "codeberg",
    "instagram.com": "instagram",
    "facebook.com": "facebook",
    "kaggle.com": "kaggle",
}
_PROJECT_TYPES = {
    "SoftwareSourceCode",
    "SoftwareApplication",
    "WebApplication",
    "MobileApplication",
    "CreativeWork",
    "Project",
    "Product",
}
_POST_TYPES = {"BlogPosting", "Article", "NewsArticle", "TechArticle", "ScholarlyArticle", "Blog"}
_CHARSET = re.compile(r"charset=[\"']?([A-Za-z0-9._:-]{1,40})", re.IGNORECASE)
# Codecs that are not a way of writing text (or cannot decode with errors="replace").
_NOT_TEXT = frozenset(
    {"idna", "punycode", "undefined", "unicode_escape", "raw_unicode_escape", "utf_7"}
)
MAX_ITEMS_WALKED = 2000
"""Microformats items looked at per page (nested ones included)."""
_ROBOTS_URL_KEYS = ("allow", "disallow")
_ROBOTS_RULE_KEYS = ("user-agent", *_ROBOTS_URL_KEYS)
_ROBOTS_DROPPED_KEYS = ("crawl-delay", "request-rate")  # unused, and crash the stdlib parser


def normalise_url(raw: str) -> str:
    """Lower-case scheme and host, no default port, no fragment, ``/`` for an empty path."""
    try:
        parts = urlsplit(raw.strip())
    except ValueError:  # "http://[", characters that change under NFKC
        raise SourceFailure(ErrorCode.INVALID_INPUT, "the website URL does not parse") from None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise SourceFailure(ErrorCode.INVALID_INPUT, "the website must be an http or https URL")
    if parts.username or parts.password:
        raise SourceFailure(ErrorCode.INVALID_INPUT, "the website URL must not contain credentials")
    scheme = parts.scheme.lower()
    host = parts.hostname.lower()
    try:
        port = parts.port
    except ValueError:
        raise SourceFailure(
            ErrorCode.INVALID_INPUT, "the website URL has an invalid port"
        ) from None
    if ":" in host:
        host = f"[{host}]"
    netloc = (
        host if port is None or port == (443 if scheme == "https" else 80) else f"{host}:{port}"
    )
    return urlunsplit((scheme, netloc, parts.path or "/", parts.query, ""))


def _origin(url: str) -> tuple[str, str]:
    try:
        p = urlsplit(url)
    except ValueError:
        return "", ""
    return p.scheme, p.netloc.lower()


def _join(base: str, href: Any) -> str | None:
    """``href`` resolved against ``base``; None when it is not a string or does not parse."""
    if not isinstance(href, str) or not href.strip():
        return None
    try:
        joined = urljoin(base, href.strip())
        urlsplit(joined).port  # noqa: B018 - raises on a bad port
    except ValueError:
        return None
    return joined


def _text(value: Any) -> str | None:
    # A loop, not recursion: JSON-LD can nest {"name": {"name": ...}} as deep as it likes.
    for _ in range(16):
        if isinstance(value, str):
            return value.strip() or None
        if isinstance(value, dict):
            value = value.get("name") or value.get("@value") or value.get("url")
        elif isinstance(value, list) and value:
            value = value[0]
        elif isinstance(value, Mf2Item):
            value = value.first("name")
        else:
            return None
    return None


def _all_items(items: list[Mf2Item]) -> list[Mf2Item]:
    out: list[Mf2Item] = []
    queue = deque(items)
    while queue and len(out) < MAX_ITEMS_WALKED:
        item = queue.popleft()
        out.append(item)
        for values in item.properties.values():
            queue.extend(v for v in values if isinstance(v, Mf2Item))
    return out


def decode_page(body: bytes, content_type: str) -> str:
    """The page's text in the charset its ``Content-Type`` names, else UTF-8 (invalid bytes
    replaced). A charset that is unknown or not a text encoding counts as not named."""
    charset = "utf-8"
    if m := _CHARSET.search(content_type):
        try:
            name = codecs.lookup(m.group(1)).name
        except (LookupError, ValueError):
            name = "utf-8"
        if name.replace("-", "_") not in _NOT_TEXT:
            charset = name
    try:
        return body.decode(charset, "replace")
    except (LookupError, UnicodeError, ValueError, TypeError):
        return body.decode("utf-8", "replace")


def robots_lines(text: str) -> list[str]:
    """robots.txt lines the stdlib parser can take: ``Allow``/``Disallow`` paths that do not
    parse as URLs, and the unused ``Crawl-delay``/``Request-rate`` lines, are left out; the file
    ends after ``ROBOTS_MAX_RULES`` rule lines."""
    out = []
    rules = 0
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        key = key.strip().lower()
        if sep and key in _ROBOTS_DROPPED_KEYS:
            continue
        if sep and key in _ROBOTS_URL_KEYS:
            try:
                urlsplit(value.split("#", 1)[0].strip())
            except ValueError:
                continue
        if sep and key in _ROBOTS_RULE_KEYS:
            rules += 1
            if rules > ROBOTS_MAX_RULES:
                break
        out.append(line)
    return out


class Robots(RobotFileParser):
    """robots.txt rules, or a blanket answer (``rule``) when the file says nothing usable."""

    def __init__(self) -> None:
        super().__init__()
        self.rule: bool | None = None

    def can_fetch(self, useragent: str, url: str) -> bool:
        """True when ``useragent`` may read ``url`` (False when ``url`` does not parse)."""
        if self.rule is not None:
            return self.rule
        try:
            return super().can_fetch(useragent, url)
        except ValueError:
            return False


MAX_FOUND = 500
"""Projects, posts, contact links and skills kept per site (the result keeps fewer)."""


class _Collected:
    """Findings across pages, deduplicated by URL, at most ``MAX_FOUND`` of each kind."""

    def __init__(self) -> None:
        self.projects: dict[str, dict[str, Any]] = {}
        self.posts: dict[str, dict[str, Any]] = {}
        self.contacts: dict[str, dict[str, Any]] = {}
        self.person: dict[str, Any] = {}
        self.skills: list[str] = []

    def project(
        self,
        name: str | None,
        url: str | None,
        description: str | None = None,
        updated: str | None = None,
    ) -> None:
        if not (name or url):
            return
        key = (url or f"name:{name}").rstrip("/").lower()
        if key not in self.projects and len(self.projects) >= MAX_FOUND:
            return
        entry = self.projects.setdefault(
            key, {"name": name, "url": url, "description": None, "updatedAt": None}
        )
        entry["name"] = entry["name"] or name
        entry["description"] = entry["description"] or description
        entry["updatedAt"] = entry["updatedAt"] or updated

    def post(
        self, title: str | None, url: str | None, published: str | None, summary: str | None
    ) -> None:
        if not (title and url):
            return
        key = url.rstrip("/").lower()
        if key not in self.posts and len(self.posts) >= MAX_FOUND:
            return
        entry = self.posts.setdefault(
            key, {"title": title, "url": url, "publishedAt": None, "summary": None}
        )
        entry["publishedAt"] = entry["publishedAt"] or published
        entry["summary"] = entry["summary"] or summary

    def contact(self, url: str, label: str | None = None, rel_me: bool = False) -> None:
        try:
            parts = urlsplit(url)
        except ValueError:
            return
        if parts.scheme not in ("http", "https") or not parts.hostname:
            return  # mailto:/tel: are never kept (personal data)
        host = parts.hostname.lower().removeprefix("www.")
        kind = _SOCIAL.get(host)
        if kind is None and not rel_me:
            return
        if kind == "github" and _REPO_LINK.match(url):
            return  # a repository, not a profile
        if len(self.contacts) >= MAX_FOUND:
            return
        self.contacts.setdefault(
            url.rstrip("/").lower(), {"kind": kind or "website", "url": url, "label": label or None}
        )


class WebsiteSource:
    """``website``: crawls the user's site within the SSRF guard and robots.txt."""

    name = "website"

    def normalise(self, inp: EnrichmentInput) -> str:
        """The normalised start URL."""
        if not (inp.website or "").strip():
            raise SourceSkipped(ErrorCode.INVALID_INPUT, "no website given")
        return normalise_url(inp.website or "")

    def count(self, payload: dict[str, Any]) -> int:
        """Projects, posts and contact links found."""
        return sum(len(payload.get(k) or []) for k in ("projects", "posts", "contactLinks"))

    async def _get(
        self, ctx: SourceContext, url: str, max_bytes: int, accept: str
    ) -> FetchResponse:
        return await ctx.fetcher.get(
            url,
            headers={"Accept": accept},
            max_bytes=max_bytes,
            guard=ctx.guard,
            max_redirects=MAX_REDIRECTS,
        )

    async def _robots(self, ctx: SourceContext, origin: tuple[str, str]) -> Robots:
        rp = Robots()
        url = f"{origin[0]}://{origin[1]}/robots.txt"
        try:
            resp = await self._get(ctx, url, ROBOTS_MAX_BYTES, "text/plain")
        except TooLarge:
            rp.rule = True  # RFC 9309 lets us stop at 500 KiB; we ignore the file then
            return rp
        if resp.status in (401, 403):
            rp.rule = False
        elif resp.status == 429:
            raise SourceFailure(ErrorCode.QUOTA, "the website is limiting our requests (429)")
        elif resp.status >= 500:
            raise SourceFailure(ErrorCode.UPSTREAM, f"the website answered {resp.status}")
        elif resp.status >= 400 or resp.status in (301, 302, 303, 307, 308):
            rp.rule = True
        else:
            try:
                rp.parse(robots_lines(resp.body.decode("utf-8", "replace")))
            except (ValueError, UnicodeError):
                raise SourceFailure(
                    ErrorCode.UPSTREAM, "the website's robots.txt could not be read"
                ) from None
        return rp

    async def _page(self, ctx: SourceContext, url: str) -> tuple[FetchResponse, str]:
        resp = await self._get(
            ctx, url, ctx.settings.website_max_page_bytes, "text/html,application/xhtml+xml"
        )
        ctype = resp.headers.get("content-type", "").split(";")[0].strip().lower()
        if resp.status != 200:
            return resp, ""
        if ctype and ctype not in _HTML_TYPES:
            raise SourceFailure(ErrorCode.UPSTREAM, "the website did not send an HTML page")
        text = decode_page(resp.body, resp.headers.get("content-type", ""))
        if "\x00" in text or "<" not in text or text.count("\ufffd") > max(16, len(text) // 20):
            raise SourceFailure(ErrorCode.UPSTREAM, "the website sent malformed HTML")
        return resp, text

    async def fetch(
        self, key: str, inp: EnrichmentInput, ctx: SourceContext, stale: CacheEntry | None
    ) -> Fetched:
        """Crawl from ``key`` (the normalised start URL)."""
        ua = ctx.settings.user_agent
        origin = _origin(key)
        robots = await self._robots(ctx, origin)
        if not robots.can_fetch(ua, key):
            raise SourceFailure(
                ErrorCode.REFUSED, "the website's robots.txt does not allow reading it"
            )
        first, html = await self._page(ctx, key)
        _check_start_status(first.status)
        start_url = first.url
        if (
            _origin(start_url) != origin
        ):  # redirected to another origin (e.g. www.): its rules apply
            origin = _origin(start_url)
            robots = await self._robots(ctx, origin)
            if not robots.can_fetch(ua, start_url):
                raise SourceFailure(
                    ErrorCode.REFUSED, "the website's robots.txt does not allow reading it"
                )
        crawl = _Crawl(ctx, origin, robots, ua, seen={urldefrag(start_url)[0], key})
        async with crawl.parsing:
            first_page = await parse_page_async(html, deadline=ctx.fetcher.deadline)
        self._extract(first_page, start_url, crawl.found, is_start=True)
        crawl.pages.append({"url": start_url, "title": first_page.title})
        links = await self._links(
            first_page, start_url, origin, robots, ua, crawl.seen, deadline=ctx.fetcher.deadline
        )
        await self._crawl(crawl, links)
        payload = _payload(start_url, first_page, crawl)
        return Fetched(
            bound_payload(
                await redact_async(trim_for_redaction(payload), deadline=ctx.fetcher.deadline)
            )
        )

    async def _crawl(self, crawl: _Crawl, frontier: list[str]) -> None:
        """Visit the frontier breadth first, a batch at a time, up to the page limit; each
        page's links join the frontier. A page that fails is counted and skipped."""
        max_pages = crawl.ctx.settings.website_max_pages
        while frontier and len(crawl.pages) < max_pages:
            batch = frontier[: max_pages - len(crawl.pages)]
            frontier = frontier[len(batch) :]
            for url, page in await gather_all(*(self._visit(crawl, u) for u in batch)):
                if page is None:
                    crawl.skipped += 1
                    continue
                self._extract(page, url, crawl.found, is_start=False)
                crawl.pages.append({"url": url, "title": page.title})
                frontier += await self._links(
                    page,
                    url,
                    crawl.origin,
                    crawl.robots,
                    crawl.ua,
                    crawl.seen,
                    deadline=crawl.ctx.fetcher.deadline,
                )

    async def _visit(self, crawl: _Crawl, url: str) -> tuple[str, Page | None]:
        """One page of the crawl, parsed; ``None`` for a page that failed, redirected off the
        site or did not answer 200 (one bad page does not spoil the site). Only the deadline
        stops the crawl."""
        async with crawl.sem:
            try:
                resp, text = await self._page(crawl.ctx, url)
            except SourceFailure as exc:
                if exc.code is ErrorCode.TIMEOUT:
                    raise
                return url, None
            if resp.status != 200 or _origin(resp.url) != crawl.origin:
                return url, None
            async with crawl.parsing:
                return resp.url, await parse_page_async(text, deadline=crawl.ctx.fetcher.deadline)

    @staticmethod
    async def _links(
        page: Page,
        base: str,
        origin: tuple[str, str],
        robots: Robots,
        ua: str,
        seen: set[str],
        *,
        deadline: Deadline | None = None,
    ) -> list[str]:
        """The page's links the crawl may follow, priority pages first. robots.txt is tried
        for each (its rules one by one): every ``LINKS_PER_CHECK`` links the loop gets a turn
        and ``deadline`` is checked, so a page of many links cannot hold it past the deadline."""
        out: list[str] = []
        for i, link in enumerate(page.links):
            if i and i % LINKS_PER_CHECK == 0:
                if deadline is not None:
                    deadline.check()
                await asyncio.sleep(0)
            joined = _join(base, link.href)
            if joined is None:
                continue
            url = urldefrag(joined)[0]
            if _origin(url) != origin or url in seen:
                continue
            if _SKIP_EXT.search(urlsplit(url).path) or not robots.can_fetch(ua, url):
                continue
            seen.add(url)
            out.append(url)
        # Pages likely to list projects and posts first.
        return sorted(out, key=lambda u: 0 if _PRIORITY_PATH.search(urlsplit(u).path) else 1)

    @staticmethod
    def _extract(page: Page, url: str, found: _Collected, *, is_start: bool) -> None:
        _extract_jsonld(page, url, found)
        _extract_microformats(page, url, found)
        if not is_start:
            _extract_page_kind(page, url, found)
        _extract_links(page, url, found)
        if found.person.get("name") is None:
            found.person.pop("name", None)
        for k in [k for k, v in found.person.items() if v is None]:
            found.person.pop(k)


class _Crawl:
    """The state one crawl shares between its pages: the site's origin and robots rules, the
    URLs already queued, what was found, and the limits on concurrent fetching and parsing."""

    def __init__(
        self,
        ctx: SourceContext,
        origin: tuple[str, str],
        robots: Robots,
        ua: str,
        *,
        seen: set[str],
    ) -> None:
        self.ctx = ctx
        self.origin = origin
        self.robots = robots
        self.ua = ua
        self.seen = seen
        self.found = _Collected()
        self.pages: list[dict[str, Any]] = []
        self.skipped = 0
        # One page is parsed at a time: asyncio runs every ready task's step before it looks at
        # its timers, so four pages parsing side by side would delay the deadline four steps.
        self.parsing = asyncio.Lock()
        self.sem = asyncio.Semaphore(PAGE_CONCURRENCY)


def _check_start_status(status: int) -> None:
    """Refuse a start page that did not answer 200, with the error code its status means
    (gone, redirect loop, upstream trouble, or not found)."""
    if status in (404, 410):
        raise SourceFailure(ErrorCode.NOT_FOUND, f"the website answered {status}")
    if status in (301, 302, 303, 307, 308):
        raise SourceFailure(ErrorCode.UPSTREAM, "the website redirects too often")
    if status == 429:  # rate-limited, as GitHub's and the search provider's 429 are
        raise SourceFailure(ErrorCode.QUOTA, "the website is limiting our requests (429)")
    if status != 200:
        code = ErrorCode.UPSTREAM if status >= 500 else ErrorCode.NOT_FOUND
        raise SourceFailure(code, f"the website answered {status}")


def _payload(start_url: str, first_page: Page, crawl: _Crawl) -> dict[str, Any]:
    """The source's payload (before redaction and bounds): the start page's metadata and
    what the crawl found, posts newest first."""
    meta = first_page.meta
    found = crawl.found
    return {
        "url": start_url,
        "title": meta.get("og:title") or first_page.title,
        "description": meta.get("og:description") or meta.get("description"),
        "siteName": meta.get("og:site_name"),
        "person": found.person or None,
        "projects": list(found.projects.values()),
        "posts": sorted(
            found.posts.values(), key=lambda p: str(p["publishedAt"] or ""), reverse=True
        ),
        "contactLinks": list(found.contacts.values()),
        "skills": list(dict.fromkeys(found.skills)),
        "pages": crawl.pages,
        "skippedPages": crawl.skipped,
    }


def _extract_jsonld(page: Page, url: str, found: _Collected) -> None:
    """Person, posts and projects from the page's JSON-LD (the most explicit markup)."""
    for node in jsonld_nodes(page.jsonld):
        types = node_types(node)
        if "Person" in types:
            _extract_jsonld_person(node, found)
        if types & _POST_TYPES and not (types & {"Blog"}):
            found.post(
                _text(node.get("headline") or node.get("name")),
                _join(url, node.get("url")) or url,
                _text(node.get("datePublished")),
                _text(node.get("description")),
            )
        elif types & _PROJECT_TYPES:
            found.project(
                _text(node.get("name")),
                _join(url, node.get("url") or node.get("codeRepository")),
                _text(node.get("description")),
                _text(node.get("dateModified")),
            )


def _extract_jsonld_person(node: dict[str, Any], found: _Collected) -> None:
    """A JSON-LD ``Person``: name and job title (first seen wins), ``sameAs`` profiles as
    rel=me contacts, ``knowsAbout`` as skills, each capped."""
    found.person.setdefault("name", _text(node.get("name")))
    found.person.setdefault("jobTitle", _text(node.get("jobTitle")))
    same = node.get("sameAs")
    for s in (same if isinstance(same, list) else [same])[:MAX_FOUND]:
        if isinstance(s, str):
            found.contact(s, rel_me=True)
    knows = node.get("knowsAbout")
    for k in (knows if isinstance(knows, list) else [knows])[:MAX_FOUND]:
        if _text(k) and len(found.skills) < MAX_FOUND:
            found.skills.append(_text(k) or "")


def _extract_microformats(page: Page, url: str, found: _Collected) -> None:
    """Person and contacts from ``h-card``, posts from ``h-entry`` microformats."""
    for item in _all_items(page.items):
        if "h-card" in item.types:
            found.person.setdefault("name", _text(item.first("name")))
            if item.first("job-title"):
                found.person.setdefault("jobTitle", _text(item.first("job-title")))
            if item.first("note"):
                found.person.setdefault("note", _text(item.first("note")))
            for u in item.properties.get("url", []):
                if isinstance(u, str) and _join(url, u):
                    target = _join(url, u) or ""
                    found.contact(target, rel_me=_origin(target) != _origin(url))
        if "h-entry" in item.types:
            found.post(
                _text(item.first("name")),
                _join(url, item.first("url")) or url,
                _text(item.first("published")),
                _text(item.first("summary")),
            )


def _extract_page_kind(page: Page, url: str, found: _Collected) -> None:
    """A page other than the start page that is itself a post or a project (OpenGraph type,
    or its path and markup), recorded from its OpenGraph metadata."""
    meta = page.meta
    path = urlsplit(url).path
    if meta.get("og:type") == "article" or (_POST_PATH.search(path) and page.has_article):
        found.post(
            meta.get("og:title") or page.title,
            url,
            meta.get("article:published_time"),
            meta.get("og:description") or meta.get("description"),
        )
    elif _PROJECT_PATH.search(path):
        found.project(
            meta.get("og:title") or page.title,
            url,
            meta.get("og:description") or meta.get("description"),
        )


def _extract_links(page: Page, url: str, found: _Collected) -> None:
    """Links: rel=me and social profiles are contacts; repository links are projects."""
    for link in page.links:
        target = _join(url, link.href)
        if target is None:
            continue
        if _REPO_LINK.match(target):
            name = link.text or target.rstrip("/").rsplit("/", 1)[-1]
            found.project(name, target)
        found.contact(target, link.text, rel_me="me" in link.rel)
