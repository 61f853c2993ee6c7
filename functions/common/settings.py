"""Environment variables read once into one typed, validated, frozen settings object.

Every knob has the contract's default, so an empty environment is a valid configuration.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValueError(f"{name} must be true or false, not {raw!r}")


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


@dataclass(frozen=True)
class Settings:
    """What the gating library reads from the environment (see README, "Configuration")."""

    project_id: str
    """Firebase project id (``GCLOUD_PROJECT``)."""
    grace_days: int = 3
    """``EXTERNAL_DATA_GRACE_DAYS``: days a ``past_due`` subscription stays premium."""
    free_hourly: int = 3
    """``EXTERNAL_DATA_RATE_LIMIT_FREE_HOURLY``."""
    premium_hourly: int = 100
    """``EXTERNAL_DATA_RATE_LIMIT_PREMIUM_HOURLY``."""
    track_per_minute: int = 60
    """``EXTERNAL_DATA_TRACK_LIMIT_PER_MINUTE``: client funnel events per user per minute."""
    audit_enabled: bool = True
    """``EXTERNAL_DATA_AUDIT_ENABLED``."""
    analytics_enabled: bool = True
    """``EXTERNAL_DATA_ANALYTICS_ENABLED``: per-user usage events and totals."""
    conversion_tracking: bool = True
    """``EXTERNAL_DATA_CONVERSION_TRACKING``."""
    upgrade_url: str = "/pricing"
    """``EXTERNAL_DATA_UPGRADE_URL``: where the gate sends a free user."""
    config_ttl_seconds: int = 10
    """``EXTERNAL_DATA_CONFIG_TTL_SECONDS``: how long an instance trusts its copy of the rollout
    config. Kept well under the contract's 30 s propagation bound."""
    entitlement_ttl_seconds: int = 60
    """``EXTERNAL_DATA_ENTITLEMENT_TTL_SECONDS``: how long a positive entitlement / CV owner is
    trusted from the in-process cache. Negative answers are always re-read before refusing."""
    metric_shards: int = 8
    """``EXTERNAL_DATA_METRIC_SHARDS``: shards per aggregate bucket document."""
    hash_salt: str = "external-data"
    """``EXTERNAL_DATA_HASH_SALT``: salt for hashing IPs and user agents in the audit."""
    event_ttl_days: int = 400
    """``EXTERNAL_DATA_EVENT_TTL_DAYS``: how long usage and audit events are kept."""

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Parse and validate; raises ``ValueError`` naming the bad variable."""
        e = os.environ if env is None else env
        project = e.get("GCLOUD_PROJECT") or e.get("GOOGLE_CLOUD_PROJECT") or "demo-cv-enrichment"
        settings = cls(
            project_id=project,
            grace_days=_int(e, "EXTERNAL_DATA_GRACE_DAYS", 3, 0, 365),
            free_hourly=_int(e, "EXTERNAL_DATA_RATE_LIMIT_FREE_HOURLY", 3, 0, 1_000_000),
            premium_hourly=_int(e, "EXTERNAL_DATA_RATE_LIMIT_PREMIUM_HOURLY", 100, 0, 1_000_000),
            track_per_minute=_int(e, "EXTERNAL_DATA_TRACK_LIMIT_PER_MINUTE", 60, 1, 1_000_000),
            audit_enabled=_bool(e, "EXTERNAL_DATA_AUDIT_ENABLED", True),
            analytics_enabled=_bool(e, "EXTERNAL_DATA_ANALYTICS_ENABLED", True),
            conversion_tracking=_bool(e, "EXTERNAL_DATA_CONVERSION_TRACKING", True),
            upgrade_url=e.get("EXTERNAL_DATA_UPGRADE_URL", "").strip() or "/pricing",
            config_ttl_seconds=_int(e, "EXTERNAL_DATA_CONFIG_TTL_SECONDS", 10, 0, 30),
            entitlement_ttl_seconds=_int(e, "EXTERNAL_DATA_ENTITLEMENT_TTL_SECONDS", 60, 0, 3600),
            metric_shards=_int(e, "EXTERNAL_DATA_METRIC_SHARDS", 8, 1, 64),
            hash_salt=e.get("EXTERNAL_DATA_HASH_SALT", "").strip() or "external-data",
            event_ttl_days=_int(e, "EXTERNAL_DATA_EVENT_TTL_DAYS", 400, 1, 3650),
        )
        return settings
