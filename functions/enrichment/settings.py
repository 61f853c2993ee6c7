"""``EXTERNAL_DATA_*`` variables of the enrichment engine, read once into a frozen object.

Every knob has a default, so an empty environment is valid (the web source is then simply not
configured). A bad value raises ``ValueError`` naming the variable, at start, not mid-request.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

SOURCES: tuple[str, ...] = ("github", "linkedin", "website", "web")
WEB_SEARCH_PROVIDERS: tuple[str, ...] = ("brave",)
_DEFAULT_SEARCH_URLS = {"brave": "https://api.search.brave.com"}


def _int(env: Mapping[str, str], name: str, default: int, lo: int, hi: int) -> int:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw.strip())
    except ValueError:
        raise ValueError(f"{name} must be an integer, not {raw!r}") from None
    if not lo <= value <= hi:
        raise ValueError(f"{name} must be between {lo} and {hi}, not {value}")
    return value


def _base_url(env: Mapping[str, str], name: str, default: str) -> str:
    raw = (env.get(name) or "").strip() or default
    parts = urlsplit(raw)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{name} must be an http(s) URL, not {raw!r}")
    return raw.rstrip("/")


def _hosts(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    raw = env.get(name) or ""
    out: list[str] = []
    for item in raw.split(","):
        item = item.strip().lower()
        if not item:
            continue
        if "/" in item or " " in item or "://" in item:
            raise ValueError(f"{name} takes hosts or host:port entries, not {item!r}")
        out.append(item)
    return tuple(out)


@dataclass(frozen=True)
class EnrichmentSettings:
    """What the enrichment engine reads from the environment."""

    github_api_url: str = "https://api.github.com"
    """``EXTERNAL_DATA_GITHUB_API_URL``: GitHub REST base URL (operator-trusted, not SSRF-checked)."""
    github_token: str | None = None
    """``EXTERNAL_DATA_GITHUB_TOKEN``: optional token, sent as ``Authorization: Bearer``."""
    github_max_pages: int = 10
    """``EXTERNAL_DATA_GITHUB_MAX_PAGES``: repository pages of 100 fetched at most (API calls bound)."""
    github_language_repos: int = 5
    """``EXTERNAL_DATA_GITHUB_LANGUAGE_REPOS``: top repositories whose ``languages_url`` is read
    for byte counts (0 = only the repositories' ``language`` field)."""
    web_search_provider: str = "brave"
    """``EXTERNAL_DATA_WEB_SEARCH_PROVIDER``: one of ``WEB_SEARCH_PROVIDERS``."""
    web_search_api_key: str | None = None
    """``EXTERNAL_DATA_WEB_SEARCH_API_KEY``: without it the web source is ``skipped`` / ``not_configured``."""
    web_search_url: str = "https://api.search.brave.com"
    """``EXTERNAL_DATA_WEB_SEARCH_URL``: the provider's base URL (tests point it at a fake)."""
    web_search_results: int = 10
    """``EXTERNAL_DATA_WEB_SEARCH_RESULTS``: results asked of the provider."""
    cache_ttl_seconds: int = 3600
    """``EXTERNAL_DATA_CACHE_TTL_SECONDS``: default freshness of a cached source answer."""
    cache_ttl_by_source: Mapping[str, int] = field(default_factory=dict)
    """``EXTERNAL_DATA_CACHE_TTL_GITHUB`` / ``_LINKEDIN`` / ``_WEBSITE`` / ``_WEB`` overrides."""
    allow_hosts: tuple[str, ...] = ()
    """``EXTERNAL_DATA_ALLOW_HOSTS``: comma-separated ``host`` or ``host:port`` entries that may
    resolve to non-public addresses (tests, local development). Empty in production. Cloud
    metadata endpoints stay refused even when listed."""
    website_max_pages: int = 10
    """``EXTERNAL_DATA_WEBSITE_MAX_PAGES``: pages crawled per website at most."""
    website_max_page_bytes: int = 1_000_000
    """``EXTERNAL_DATA_WEBSITE_MAX_PAGE_BYTES``: bytes read per page at most (1 MB)."""
    linkedin_max_bytes: int = 1_000_000
    """``EXTERNAL_DATA_LINKEDIN_MAX_BYTES``: UTF-8 bytes of all export files together (1 MB, as the request validator counts)."""
    retry_attempts: int = 3
    """``EXTERNAL_DATA_RETRY_ATTEMPTS``: tries per GET on 5xx / 429 / connection errors."""
    retry_base_ms: int = 200
    """``EXTERNAL_DATA_RETRY_BASE_MS``: first backoff step; doubles each retry, full jitter."""
    user_agent: str = "cv-enrichment/1.0"
    """``EXTERNAL_DATA_USER_AGENT``: sent on every request and matched against robots.txt."""

    def ttl_for(self, source: str) -> int:
        """Cache freshness in seconds for ``source``."""
        return self.cache_ttl_by_source.get(source, self.cache_ttl_seconds)

    @property
    def web_search_configured(self) -> bool:
        """True when the web source can run (a key is set)."""
        return bool(self.web_search_api_key)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> EnrichmentSettings:
        """Parse and validate; raises ``ValueError`` naming the bad variable."""
        e = os.environ if env is None else env
        provider = (e.get("EXTERNAL_DATA_WEB_SEARCH_PROVIDER") or "brave").strip().lower()
        if provider not in WEB_SEARCH_PROVIDERS:
            raise ValueError(
                f"EXTERNAL_DATA_WEB_SEARCH_PROVIDER must be one of {', '.join(WEB_SEARCH_PROVIDERS)},"
                f" not {provider!r}"
            )
        default_ttl = _int(e, "EXTERNAL_DATA_CACHE_TTL_SECONDS", 3600, 0, 30 * 86400)
        ttl_by_source = {
            s: _int(e, f"EXTERNAL_DATA_CACHE_TTL_{s.upper()}", default_ttl, 0, 30 * 86400)
            for s in SOURCES
            if (e.get(f"EXTERNAL_DATA_CACHE_TTL_{s.upper()}") or "").strip()
        }
        return cls(
            github_api_url=_base_url(e, "EXTERNAL_DATA_GITHUB_API_URL", "https://api.github.com"),
            github_token=(e.get("EXTERNAL_DATA_GITHUB_TOKEN") or "").strip() or None,
            github_max_pages=_int(e, "EXTERNAL_DATA_GITHUB_MAX_PAGES", 10, 1, 100),
            github_language_repos=_int(e, "EXTERNAL_DATA_GITHUB_LANGUAGE_REPOS", 5, 0, 30),
            web_search_provider=provider,
            web_search_api_key=(e.get("EXTERNAL_DATA_WEB_SEARCH_API_KEY") or "").strip() or None,
            web_search_url=_base_url(
                e, "EXTERNAL_DATA_WEB_SEARCH_URL", _DEFAULT_SEARCH_URLS[provider]
            ),
            web_search_results=_int(e, "EXTERNAL_DATA_WEB_SEARCH_RESULTS", 10, 1, 20),
            cache_ttl_seconds=default_ttl,
            cache_ttl_by_source=ttl_by_source,
            allow_hosts=_hosts(e, "EXTERNAL_DATA_ALLOW_HOSTS"),
            website_max_pages=_int(e, "EXTERNAL_DATA_WEBSITE_MAX_PAGES", 10, 1, 50),
            website_max_page_bytes=_int(
                e, "EXTERNAL_DATA_WEBSITE_MAX_PAGE_BYTES", 1_000_000, 1024, 10 * 1_000_000
            ),
            linkedin_max_bytes=_int(
                e, "EXTERNAL_DATA_LINKEDIN_MAX_BYTES", 1_000_000, 1024, 10 * 1_000_000
            ),
            retry_attempts=_int(e, "EXTERNAL_DATA_RETRY_ATTEMPTS", 3, 1, 10),
            retry_base_ms=_int(e, "EXTERNAL_DATA_RETRY_BASE_MS", 200, 0, 10_000),
            user_agent=(e.get("EXTERNAL_DATA_USER_AGENT") or "").strip() or cls.user_agent,
        )
