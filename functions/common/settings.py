"""Every ``EXTERNAL_DATA_*`` variable, in one table, parsed once into frozen settings.

Why a stdlib table rather than pydantic-settings: the functions import this at cold start, the
whole configuration is some thirty scalars, and one table (``VARIABLES``) is what the README's
configuration table is checked against and what ``scripts/deploy.py`` checks a project's
``.env`` file with. Each default is declared once, on the dataclass field; the table names the
variable, its parser and its bounds. A bad value raises ``SettingsError`` naming the variable,
which ``main.py`` lets fail the import (the instance start, and the deploy's function
discovery), never a request.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from common.vocab import SOURCES, Fn

WEB_SEARCH_PROVIDERS: tuple[str, ...] = ("brave",)
DEFAULT_SEARCH_URLS = {"brave": "https://api.search.brave.com"}
DEFAULT_PROJECT = "demo-cv-enrichment"
DEFAULT_HASH_SALT = "external-data"
"""Public, so usable only where nothing real is hashed: outside the emulator a salt must be set."""

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


class SettingsError(ValueError):
    """A variable holds a value the functions cannot run with; the message names it."""


@dataclass(frozen=True)
class EnrichmentSettings:
    """What the enrichment engine needs (see ``VARIABLES`` for the variable of each field)."""

    github_api_url: str = "https://api.github.com"
    """GitHub REST base URL (operator-trusted, not SSRF-checked)."""
    github_token: str | None = None
    """Optional token, sent as ``Authorization: Bearer`` (a secret)."""
    github_max_pages: int = 10
    """Repository pages of 100 fetched at most (API calls bound)."""
    github_language_repos: int = 5
    """Top repositories whose ``languages_url`` is read (0 = only ``language``)."""
    web_search_provider: str = "brave"
    """One of ``WEB_SEARCH_PROVIDERS``."""
    web_search_api_key: str | None = None
    """Without it the web source is ``skipped`` / ``not_configured`` (a secret)."""
    web_search_url: str = DEFAULT_SEARCH_URLS["brave"]
    """The provider's base URL (tests point it at a fake)."""
    web_search_results: int = 10
    """Results asked of the provider."""
    cache_ttl_seconds: int = 3600
    """Default freshness of a cached source answer."""
    cache_ttl_by_source: Mapping[str, int] = field(default_factory=dict)
    """Per-source overrides (``EXTERNAL_DATA_CACHE_TTL_GITHUB`` ...)."""
    cache_hold_seconds: int = 60
    """How long an instance answers a fresh cache entry it read or wrote without reading it
    again (``enrichment.held``; 0: read on every call)."""
    allow_hosts: tuple[str, ...] = ()
    """``host`` or ``host:port`` entries that may resolve to non-public addresses (tests, local
    development). Empty in production. Cloud metadata endpoints stay refused even when listed."""
    website_max_pages: int = 10
    """Pages crawled per website at most."""
    website_max_page_bytes: int = 1_000_000
    """Bytes read per page at most."""
    linkedin_max_bytes: int = 1_000_000
    """UTF-8 bytes of all export files together (the request parser uses the same bound)."""
    retry_attempts: int = 3
    """Tries per GET on 5xx / 429 / connection errors."""
    retry_base_ms: int = 200
    """First backoff step; doubles each retry, full jitter."""
    user_agent: str = "cv-enrichment/1.0"
    """Sent on every request and matched against robots.txt."""

    def ttl_for(self, source: str) -> int:
        """Cache freshness in seconds for ``source``."""
        return self.cache_ttl_by_source.get(source, self.cache_ttl_seconds)

    @property
    def web_search_configured(self) -> bool:
        """True when the web source can run (a key is set)."""
        return bool(self.web_search_api_key)


@dataclass(frozen=True)
class Settings:
    """Everything the functions read from the environment (README, "Configuration")."""

    project_id: str = DEFAULT_PROJECT
    """Firebase project id (``GCLOUD_PROJECT`` / ``GOOGLE_CLOUD_PROJECT``)."""
    emulator: bool = True
    """Running under the Emulator Suite (or a test), where defaults for secrets are allowed."""
    grace_days: int = 3
    """Days a ``past_due`` subscription stays premium."""
    free_hourly: int = 3
    """Enrichments per free user per sliding hour."""
    premium_hourly: int = 100
    """Enrichments per premium user (and for everyone while ungated)."""
    track_per_minute: int = 60
    """Client funnel events per user per minute."""
    audit_enabled: bool = True
    """Write the security audit."""
    analytics_enabled: bool = True
    """Write per-user usage events and totals."""
    conversion_tracking: bool = True
    """Record conversions from the subscription trigger."""
    upgrade_url: str = "/pricing"
    """Where the gate sends a free user."""
    config_ttl_seconds: int = 10
    """How long an instance trusts its copy of the rollout config (under the 30 s bound)."""
    entitlement_ttl_seconds: int = 60
    """How long an instance trusts a user's entitlement copy, and keeps a CV's owner to decide
    warm calls on (never answered on alone: ``usecases.held_copies``)."""
    min_instances: tuple[tuple[str, int], ...] = ()
    """Instances kept warm per callable (``(name, count)``; unnamed functions keep none)."""
    request_threads: int = 16
    """Calls one instance serves at once: every function's ``concurrency`` and the request
    threads of functions-framework's gunicorn (``THREADS``), set together by ``main``. A warm
    enrichment waits on Firestore for most of its time, and the more calls an instance has in
    flight, the more of their writes ``stores.group_commit`` sends in one commit."""
    peak_rps: int = 20
    """Calls per second the deployment is sized for (the plan's peak is 20): sets the number of
    raw aggregate shards so that no shard takes more than one write every two seconds."""
    hash_salt: str = DEFAULT_HASH_SALT
    """HMAC key for IPs and user agents in the audit (a secret; required outside the emulator)."""
    event_ttl_days: int = 400
    """How long usage and audit events are kept."""
    log_level: str = "INFO"
    """Lowest severity written to the log."""
    enforce_app_check: bool = False
    """App Check on the six callables (a missing or invalid token is refused as
    ``unauthenticated``), and limited-use tokens consumed by the enrichment (replay protection).
    Off by default so the emulator and the demo work without an App Check provider."""
    enrichment: EnrichmentSettings = field(default_factory=EnrichmentSettings)
    """The engine's part."""

    def min_instances_of(self, function: str) -> int:
        """How many instances of ``function`` are kept warm (0 unless configured)."""
        return dict(self.min_instances).get(function, 0)

    @property
    def metric_shards(self) -> int:
        """Raw aggregate shards per minute: two per call per second at the configured peak, so
        each shard takes about one write every two seconds (Firestore sustains about one a
        second on a document)."""
        return 2 * self.peak_rps

    @property
    def linkedin_max_bytes(self) -> int:
        """The request parser's bound on a LinkedIn export (the engine's, read once)."""
        return self.enrichment.linkedin_max_bytes


# -- parsers: raw text → value, or SettingsError naming the variable --------------------------


def _bool(name: str, raw: str) -> bool:
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise SettingsError(f"{name} must be true or false, not {raw!r}")


def _int(lo: int, hi: int) -> Callable[[str, str], int]:
    def parse(name: str, raw: str) -> int:
        try:
            value = int(raw.strip())
        except ValueError:
            raise SettingsError(f"{name} must be an integer, not {raw!r}") from None
        if not lo <= value <= hi:
            raise SettingsError(f"{name} must be between {lo} and {hi}, not {value}")
        return value

    return parse


def _text(name: str, raw: str) -> str:
    return raw.strip()


def _url(name: str, raw: str) -> str:
    parts = urlsplit(raw.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise SettingsError(f"{name} must be an http(s) URL, not {raw!r}")
    return raw.strip().rstrip("/")


def _hosts(name: str, raw: str) -> tuple[str, ...]:
    out: list[str] = []
    for item in raw.split(","):
        item = item.strip().lower()
        if not item:
            continue
        if "/" in item or " " in item or "://" in item:
            raise SettingsError(f"{name} takes hosts or host:port entries, not {item!r}")
        out.append(item)
    return tuple(out)


def _instances(name: str, raw: str) -> tuple[tuple[str, int], ...]:
    out: dict[str, int] = {}
    for item in raw.split(","):
        if not item.strip():
            continue
        fn, sep, count = (part.strip() for part in item.partition("="))
        if not sep or fn not in {f.value for f in Fn}:
            known = ", ".join(f.value for f in Fn)
            raise SettingsError(
                f"{name} takes NAME=COUNT pairs with NAME one of {known}, not {item!r}"
            )
        out[fn] = _int(0, 100)(name, count)
    return tuple(sorted(out.items()))


def _provider(name: str, raw: str) -> str:
    value = raw.strip().lower()
    if value not in WEB_SEARCH_PROVIDERS:
        raise SettingsError(f"{name} must be one of {', '.join(WEB_SEARCH_PROVIDERS)}, not {raw!r}")
    return value


def _level(name: str, raw: str) -> str:
    value = raw.strip().upper()
    if value not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
        raise SettingsError(f"{name} must be DEBUG, INFO, WARNING, ERROR or CRITICAL, not {raw!r}")
    return value


@dataclass(frozen=True)
class Var:
    """One environment variable: where its value goes and how it is read."""

    name: str
    attr: str
    """The field it sets: on ``Settings``, or ``enrichment.<field>``."""
    parse: Callable[[str, str], Any]
    doc: str
    secret: bool = False
    """Declared as a secret param on the functions that use it (never in ``.env`` files)."""


_DAY = 86400
VARIABLES: tuple[Var, ...] = (
    Var("EXTERNAL_DATA_GRACE_DAYS", "grace_days", _int(0, 365), "days a `past_due` subscription stays premium"),
    Var("EXTERNAL_DATA_RATE_LIMIT_FREE_HOURLY", "free_hourly", _int(0, 1_000_000), "enrichments per free user per sliding hour"),
    Var("EXTERNAL_DATA_RATE_LIMIT_PREMIUM_HOURLY", "premium_hourly", _int(0, 1_000_000), "... per premium user (and for everyone while ungated)"),
    Var("EXTERNAL_DATA_TRACK_LIMIT_PER_MINUTE", "track_per_minute", _int(1, 1_000_000), "funnel events per user per minute"),
    Var("EXTERNAL_DATA_AUDIT_ENABLED", "audit_enabled", _bool, "write `external_data_security_audit`"),
    Var("EXTERNAL_DATA_ANALYTICS_ENABLED", "analytics_enabled", _bool, "write per-user usage events and totals"),
    Var("EXTERNAL_DATA_CONVERSION_TRACKING", "conversion_tracking", _bool, "record conversions from the subscription trigger (with usage records off, a preview or gate still writes `lastFunnelAt` alone, which a conversion reads)"),
    Var("EXTERNAL_DATA_UPGRADE_URL", "upgrade_url", _text, "`details.upgradeUrl` of the premium gate"),
    Var("EXTERNAL_DATA_CONFIG_TTL_SECONDS", "config_ttl_seconds", _int(0, 30), "how long an instance trusts its copy of the rollout config (max 30)"),
    Var("EXTERNAL_DATA_ENTITLEMENT_TTL_SECONDS", "entitlement_ttl_seconds", _int(0, 3600), "how long an instance trusts a user's entitlement copy (a cached free is re-read before any refusal) and keeps a CV's owner to decide warm calls on (the CV is read again beside each such call's increment)"),
    Var("EXTERNAL_DATA_MIN_INSTANCES", "min_instances", _instances, "instances kept warm, per callable: `NAME=COUNT` pairs separated by commas (e.g. `enrichCVWithExternalData=1`); each is billed all month, idle (docs/deploy.md); read by `firebase deploy`"),
    Var("EXTERNAL_DATA_REQUEST_THREADS", "request_threads", _int(1, 1000), "calls one instance serves at once: every function's `concurrency` and functions-framework's request threads (`THREADS`, set from it); read by `firebase deploy` and at an instance's start (docs/deploy.md)"),
    Var("EXTERNAL_DATA_PEAK_RPS", "peak_rps", _int(1, 5000), "calls per second the aggregates are sized for: 2 shards per call per second, so a shard takes at most 1 write every 2 s at this rate"),
    Var("EXTERNAL_DATA_HASH_SALT", "hash_salt", _text, "HMAC key for IP and user-agent hashes in the audit (secret; required outside the emulator)", secret=True),
    Var("EXTERNAL_DATA_EVENT_TTL_DAYS", "event_ttl_days", _int(1, 3650), "lifetime of usage and audit events"),
    Var("EXTERNAL_DATA_LOG_LEVEL", "log_level", _level, "lowest severity written to the log"),
    Var("EXTERNAL_DATA_ENFORCE_APP_CHECK", "enforce_app_check", _bool, "enforce App Check on the six callables; the enrichment also consumes limited-use tokens (replay protection)"),
    Var("EXTERNAL_DATA_GITHUB_API_URL", "enrichment.github_api_url", _url, "GitHub REST base URL"),
    Var("EXTERNAL_DATA_GITHUB_TOKEN", "enrichment.github_token", _text, "optional token (higher API quota; secret)", secret=True),
    Var("EXTERNAL_DATA_GITHUB_MAX_PAGES", "enrichment.github_max_pages", _int(1, 100), "repository pages of 100 read at most"),
    Var("EXTERNAL_DATA_GITHUB_LANGUAGE_REPOS", "enrichment.github_language_repos", _int(0, 30), "top repositories whose languages are read"),
    Var("EXTERNAL_DATA_WEB_SEARCH_PROVIDER", "enrichment.web_search_provider", _provider, "web-search provider"),
    Var("EXTERNAL_DATA_WEB_SEARCH_API_KEY", "enrichment.web_search_api_key", _text, "without it the `web` source is `skipped` / `not_configured` (secret)", secret=True),
    Var("EXTERNAL_DATA_WEB_SEARCH_URL", "enrichment.web_search_url", _url, "provider base URL"),
    Var("EXTERNAL_DATA_WEB_SEARCH_RESULTS", "enrichment.web_search_results", _int(1, 20), "results asked for"),
    Var("EXTERNAL_DATA_CACHE_TTL_SECONDS", "enrichment.cache_ttl_seconds", _int(0, 30 * _DAY), "freshness of cached source answers"),
    *(
        Var(f"EXTERNAL_DATA_CACHE_TTL_{s.upper()}", f"enrichment.cache_ttl_by_source.{s}", _int(0, 30 * _DAY), f"freshness of cached `{s}` answers (default: `EXTERNAL_DATA_CACHE_TTL_SECONDS`)")
        for s in SOURCES
    ),
    Var("EXTERNAL_DATA_CACHE_HOLD_SECONDS", "enrichment.cache_hold_seconds", _int(0, 3600), "how long an instance answers a fresh cached source answer it read or wrote without reading it again (0: read on every call)"),
    Var("EXTERNAL_DATA_ALLOW_HOSTS", "enrichment.allow_hosts", _hosts, "exact `host[:port]` entries exempt from the SSRF guard (tests only)"),
    Var("EXTERNAL_DATA_WEBSITE_MAX_PAGES", "enrichment.website_max_pages", _int(1, 50), "pages crawled per website"),
    Var("EXTERNAL_DATA_WEBSITE_MAX_PAGE_BYTES", "enrichment.website_max_page_bytes", _int(1024, 10_000_000), "bytes read per page"),
    Var("EXTERNAL_DATA_LINKEDIN_MAX_BYTES", "enrichment.linkedin_max_bytes", _int(1024, 10_000_000), "all export files together (the request limit too)"),
    Var("EXTERNAL_DATA_RETRY_ATTEMPTS", "enrichment.retry_attempts", _int(1, 10), "tries per GET on 5xx/429/connection errors"),
    Var("EXTERNAL_DATA_RETRY_BASE_MS", "enrichment.retry_base_ms", _int(0, 10_000), "first backoff step (doubles, full jitter)"),
    Var("EXTERNAL_DATA_USER_AGENT", "enrichment.user_agent", _text, "sent to websites and matched against robots.txt"),
)  # fmt: skip
"""The configuration table. The README's table lists exactly these names (checked by a test)."""

SECRET_NAMES: tuple[str, ...] = tuple(v.name for v in VARIABLES if v.secret)
"""Declared as the functions SDK's secret params on the functions that use them."""


def default_of(var: Var) -> Any:
    """The default of ``var``, read off its dataclass field (declared nowhere else)."""
    target: Any = Settings()
    for part in var.attr.split("."):
        if isinstance(target, Mapping):
            return target.get(part)
        target = getattr(target, part)
    return target


def is_emulator(env: Mapping[str, str]) -> bool:
    """Under the Emulator Suite or a local test store (where a public salt harms nobody)."""
    return env.get("FUNCTIONS_EMULATOR") == "true" or bool(env.get("FIRESTORE_EMULATOR_HOST"))


def is_discovery(env: Mapping[str, str]) -> bool:
    """firebase-tools importing ``main.py`` to list the functions (``ADMIN_PORT`` set): secrets
    are not there yet, every other variable is checked."""
    return bool(env.get("ADMIN_PORT"))


def load_settings(
    env: Mapping[str, str] | None = None, *, emulator: bool | None = None
) -> Settings:
    """Parse and validate every variable; raises ``SettingsError`` naming the first bad one.

    ``emulator`` defaults to what the environment says (``is_emulator``); an explicit mapping
    with no emulator markers (tests) counts as the emulator unless said otherwise.
    """
    e: Mapping[str, str] = os.environ if env is None else env
    if emulator is None:
        emulator = is_emulator(e) or env is not None
    top: dict[str, Any] = {}
    engine: dict[str, Any] = {}
    ttl_by_source: dict[str, int] = {}
    for var in VARIABLES:
        raw = e.get(var.name)
        if raw is None or raw.strip() == "":
            continue
        value = var.parse(var.name, raw)
        if var.attr.startswith("enrichment.cache_ttl_by_source."):
            ttl_by_source[var.attr.rsplit(".", 1)[1]] = value
        elif var.attr.startswith("enrichment."):
            engine[var.attr.split(".", 1)[1]] = value
        else:
            top[var.attr] = value
    provider = engine.get("web_search_provider", EnrichmentSettings.web_search_provider)
    engine.setdefault("web_search_url", DEFAULT_SEARCH_URLS[provider])
    if ttl_by_source:
        engine["cache_ttl_by_source"] = ttl_by_source
    secrets_due = not emulator and not is_discovery(e)
    if secrets_due and top.get("hash_salt", DEFAULT_HASH_SALT) == DEFAULT_HASH_SALT:
        raise SettingsError(
            "EXTERNAL_DATA_HASH_SALT must be set (a secret of at least 16 characters) outside the"
            " emulator: audit hashes under the public default could be reversed"
        )
    if secrets_due and len(top["hash_salt"]) < 16:
        raise SettingsError("EXTERNAL_DATA_HASH_SALT must be at least 16 characters")
    project = e.get("GCLOUD_PROJECT") or e.get("GOOGLE_CLOUD_PROJECT") or DEFAULT_PROJECT
    return Settings(
        project_id=project,
        emulator=emulator,
        enrichment=EnrichmentSettings(**engine),
        **top,
    )


def _shown_default(var: Var) -> str:
    value = default_of(var)
    if var.attr.startswith("enrichment.cache_ttl_by_source."):
        return "`EXTERNAL_DATA_CACHE_TTL_SECONDS`"
    if var.name == "EXTERNAL_DATA_WEB_SEARCH_URL":
        return "provider's"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if value is None:
        return "none"
    if value in ((), ""):
        return "empty"
    return f"`{value}`"


def markdown_table() -> str:
    """The README's configuration table, from ``VARIABLES`` (a test keeps the README equal)."""
    rows = ["| variable | default | meaning |", "|---|---|---|"]
    for var in VARIABLES:
        secret = " **secret param**" if var.secret else ""
        rows.append(f"| `{var.name}` | {_shown_default(var)} | {var.doc}{secret} |")
    return "\n".join(rows)
