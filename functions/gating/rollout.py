"""The rollout config document, the stable per-user bucket and the gated cohort (contract §3)."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from typing import Any

from common.vocab import SOURCES
from stores.base import doc_version
from stores.schema import CONFIG_PATH, HISTORY_COLLECTION

__all__ = ["CONFIG_PATH", "HISTORY_COLLECTION"]  # re-exported: the config's own paths


class Phase(StrEnum):
    """Rollout phases, in order."""

    OFF = "off"
    BETA = "beta"
    PREMIUM = "premium"
    FULL = "full"


PHASE_ORDER = (Phase.OFF, Phase.BETA, Phase.PREMIUM, Phase.FULL)
COMPONENTS = ("premiumGating", "usageTracking", "rateLimiting", "securityAudit")
DEFAULT_TARGET_GROUPS = ("beta-testers", "internal-team", "trusted-advisors")

FREE_USER_MESSAGES = {
    "preview": (
        "This is a preview: the first three items of each section. Premium shows everything "
        "found in GitHub, your LinkedIn data export, your website and a web search."
    ),
    "gate": (
        "Full external data results are part of Premium: every skill and project found in "
        "GitHub, your LinkedIn data export, your website and a web search."
    ),
    "upgrade": "Upgrade to Premium for the full results and up to 100 enrichments an hour.",
}
"""The free-user texts: the plan's three messages, worded to promise only what the product
delivers (the four sources, previews, the hourly limit); overridable in config ``messages``."""

PREMIUM_USER_MESSAGES = {
    "welcome": (
        "Premium includes the full external data results from GitHub, your LinkedIn data "
        "export, your website and a web search."
    ),
    "guidance": (
        "Add your GitHub username, your LinkedIn data export or your website to fill in the "
        "skills and projects on your CV."
    ),
    "support": "Questions about external data? Contact support.",
}
"""The premium-user texts, worded the same way (overridable in config ``messages``)."""


class ConfigInvalid(ValueError):
    """A config document that must not be applied; the message says what is wrong."""


@dataclass(frozen=True)
class Components:
    """Per-component switches (partial rollback turns one off)."""

    premiumGating: bool = True  # noqa: N815 - the contract's field names
    usageTracking: bool = True  # noqa: N815
    rateLimiting: bool = True  # noqa: N815
    securityAudit: bool = True  # noqa: N815

    def to_dict(self) -> dict[str, bool]:
        """The document form."""
        return {name: getattr(self, name) for name in COMPONENTS}


class BreakerState(StrEnum):
    """A source's circuit breaker (contract section 6)."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass(frozen=True)
class Breaker:
    """One source's breaker as the evaluator last set it."""

    state: BreakerState = BreakerState.CLOSED
    since: datetime | None = None
    """When it entered this state."""
    until: datetime | None = None
    """For ``open``: when it turns half-open (probe calls) by itself."""

    @property
    def half_open_from(self) -> datetime | None:
        """When its half-open period began (or begins): ``until`` of an open breaker whose
        time runs out, else ``since``; it names the period's probe document."""
        return self.until or self.since

    def to_doc(self) -> dict[str, Any]:
        """The document form."""
        return {"state": self.state.value, "since": self.since, "until": self.until}


@dataclass(frozen=True)
class RolloutConfig:
    """The typed form of ``config/externalDataRollout``."""

    phase: Phase = Phase.OFF
    rolloutPercentage: int = 0  # noqa: N815
    targetGroups: tuple[str, ...] = DEFAULT_TARGET_GROUPS  # noqa: N815
    fallbackEnabled: bool = True  # noqa: N815
    components: Components = field(default_factory=Components)
    messages: Mapping[str, str] = field(default_factory=dict)
    sources: Mapping[str, bool] = field(default_factory=dict)
    """Operator switches per source (``sources.{name}.enabled``); absent means on."""
    maxCohortUsers: int | None = None  # noqa: N815
    """Cap on distinct users outside the target groups taken into the cohort this phase."""
    shadow: bool = False
    """Decisions computed and recorded, nobody refused or trimmed (would-be figures counted)."""
    phaseSince: datetime | None = None  # noqa: N815
    """When the current phase began (set by every phase change)."""
    breakers: Mapping[str, Breaker] = field(default_factory=dict)
    """Automatic circuit breakers per source (written by the evaluator); absent means closed."""
    version: int = 0
    updatedAt: datetime | None = None  # noqa: N815
    updatedBy: str | None = None  # noqa: N815

    @property
    def gating_active(self) -> bool:
        """False when nobody is gated: phase off, or the kill switch (premiumGating false)."""
        return self.phase is not Phase.OFF and self.components.premiumGating

    def source_enabled(self, source: str) -> bool:
        """Whether the operator left ``source`` on."""
        return self.sources.get(source, True)

    def breaker(self, source: str, now: datetime) -> BreakerState:
        """The breaker's effective state at ``now``: an open breaker whose time is up is
        half-open (probe calls) even before the evaluator records it."""
        b = self.breakers.get(source)
        if b is None:
            return BreakerState.CLOSED
        if b.state is BreakerState.OPEN and b.until is not None and now >= b.until:
            return BreakerState.HALF_OPEN
        return b.state

    def message_set(self, keys: tuple[str, ...]) -> dict[str, str]:
        """The texts for ``keys``, config overrides first, the plan's wording otherwise."""
        defaults = {**FREE_USER_MESSAGES, **PREMIUM_USER_MESSAGES}
        return {k: str(self.messages.get(k, defaults[k])) for k in keys}

    def to_doc(self) -> dict[str, Any]:
        """The document form (without ``updatedAt``, which the writer sets)."""
        return {
            "phase": self.phase.value,
            "rolloutPercentage": self.rolloutPercentage,
            "targetGroups": list(self.targetGroups),
            "fallbackEnabled": self.fallbackEnabled,
            "components": self.components.to_dict(),
            "messages": dict(self.messages),
            "sources": {name: {"enabled": on} for name, on in self.sources.items()},
            "maxCohortUsers": self.maxCohortUsers,
            "shadow": self.shadow,
            "phaseSince": self.phaseSince,
            "breakers": {name: b.to_doc() for name, b in self.breakers.items()},
            "version": self.version,
            "updatedAt": self.updatedAt,
            "updatedBy": self.updatedBy,
        }

    def with_changes(self, **changes: Any) -> RolloutConfig:
        """A copy with fields replaced, validated."""
        return validate(replace(self, **changes))


def validate(cfg: RolloutConfig) -> RolloutConfig:
    """Refuse configs that must never be applied."""
    if not isinstance(cfg.rolloutPercentage, int) or isinstance(cfg.rolloutPercentage, bool):
        raise ConfigInvalid("rolloutPercentage must be an integer from 0 to 100")
    if not 0 <= cfg.rolloutPercentage <= 100:
        raise ConfigInvalid(f"rolloutPercentage must be from 0 to 100, not {cfg.rolloutPercentage}")
    known = {**FREE_USER_MESSAGES, **PREMIUM_USER_MESSAGES}
    for key, text in cfg.messages.items():
        if key not in known:
            raise ConfigInvalid(f"messages.{key} is not a known message (known: {sorted(known)})")
        if not isinstance(text, str) or not 0 < len(text) <= 1000:
            raise ConfigInvalid(f"messages.{key} must be a text of 1 to 1000 characters")
    return cfg


def parse(doc: Mapping[str, Any] | None, *, strict: bool = True) -> RolloutConfig:
    """Parse the document; a missing doc is phase off with every component on.

    Raises ``ConfigInvalid`` naming the field for a document that must not be applied. Not
    ``strict`` (the functions' second reading of a refused document): a ``null`` is the
    default and unknown names (component, message, source) are ignored, so a stray key does
    not throw away the phase and the kill switch; a wrong kind of value is refused either way."""
    if doc is None:
        return RolloutConfig()

    def get(key: str, default: Any) -> Any:
        value = doc.get(key, default)
        return default if value is None and not strict else value

    phase_raw = get("phase", "off")
    try:
        phase = Phase(phase_raw)
    except ValueError:
        raise ConfigInvalid(
            f"phase must be one of {', '.join(p.value for p in Phase)}, not {phase_raw!r}"
        ) from None
    pct = _whole(get("rolloutPercentage", 0))
    groups = get("targetGroups", list(DEFAULT_TARGET_GROUPS))
    if not isinstance(groups, list) or not all(isinstance(g, str) for g in groups):
        raise ConfigInvalid("targetGroups must be a list of group names")
    fallback = get("fallbackEnabled", True)
    if not isinstance(fallback, bool):
        raise ConfigInvalid("fallbackEnabled must be true or false")
    # Only a missing (or null) map means "the defaults": ``components: false`` written to turn
    # everything off must not read as everything on.
    comps = _components(_or_empty(doc.get("components")), strict)
    messages = _messages(doc.get("messages"), strict)
    updated_at = doc.get("updatedAt")
    sources = _sources(doc.get("sources"), strict)
    breakers = _breakers(doc.get("breakers"), strict)
    cap = _whole(doc.get("maxCohortUsers"))
    if cap is not None and (not isinstance(cap, int) or isinstance(cap, bool) or cap < 0):
        raise ConfigInvalid("maxCohortUsers must be a whole number of users (or absent)")
    shadow = get("shadow", False)
    if not isinstance(shadow, bool):
        raise ConfigInvalid("shadow must be true or false")
    return validate(
        RolloutConfig(
            phase=phase,
            rolloutPercentage=pct,
            targetGroups=tuple(groups),
            fallbackEnabled=fallback,
            components=comps,
            messages=dict(messages),
            sources=sources,
            maxCohortUsers=cap,
            shadow=shadow,
            breakers=breakers,
            phaseSince=_time(doc.get("phaseSince")),
            version=doc_version(doc),
            updatedAt=_time(updated_at),
            updatedBy=doc.get("updatedBy") if isinstance(doc.get("updatedBy"), str) else None,
        )
    )


def parse_served(doc: Mapping[str, Any] | None) -> tuple[RolloutConfig, str | None]:
    """The config the functions serve from ``doc``, and the strict parse's problem when nulls
    or unknown names had to be ignored (``None`` when the document is clean). Raises
    ``ConfigInvalid`` for a document that does not parse even so. The functions
    (``ConfigSource.accept``) and the evaluator (``changes.read_current``) read it alike."""
    try:
        return parse(doc), None
    except ConfigInvalid as exc:
        return parse(doc, strict=False), str(exc)


def turns_gating_off(doc: Mapping[str, Any] | None) -> bool:
    """Whether a document says nobody is gated (phase ``off`` or the kill switch), read from
    the raw fields: honoured even when the rest of the document does not parse."""
    if not doc:
        return False
    comps = doc.get("components")
    kill = isinstance(comps, Mapping) and comps.get("premiumGating") is False
    return kill or doc.get("phase") == Phase.OFF.value


def _messages(raw: Any, strict: bool) -> Mapping[str, Any]:
    messages = _or_empty(raw)
    if not isinstance(messages, Mapping):
        raise ConfigInvalid("messages must be a map of texts")
    if strict:
        return messages
    known = {**FREE_USER_MESSAGES, **PREMIUM_USER_MESSAGES}
    return {k: v for k, v in messages.items() if k in known}


def _whole(value: Any) -> Any:
    """A float that is a whole number as an int (a console or script may write ``50.0``)."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


def _time(value: Any) -> datetime | None:
    return value if isinstance(value, datetime) else None


def _or_empty(raw: Any) -> Any:
    return {} if raw is None else raw


def _components(raw: Any, strict: bool = True) -> Components:
    if not isinstance(raw, Mapping):
        raise ConfigInvalid("components must be a map of switches")
    unknown = set(raw) - set(COMPONENTS)
    if unknown and strict:
        raise ConfigInvalid(f"unknown component(s): {', '.join(sorted(unknown))}")
    comps: dict[str, bool] = {}
    for name in COMPONENTS:
        value = raw.get(name, True)
        if value is None and not strict:
            value = True
        if not isinstance(value, bool):
            raise ConfigInvalid(f"components.{name} must be true or false")
        comps[name] = value
    return Components(**comps)


def _sources(raw: Any, strict: bool = True) -> dict[str, bool]:
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise ConfigInvalid("sources must map source names to {enabled: bool}")
    out: dict[str, bool] = {}
    for name, value in raw.items():
        if name not in SOURCES and not strict:
            continue
        if name not in SOURCES:
            raise ConfigInvalid(f"sources: unknown source (known: {', '.join(SOURCES)})")
        enabled = value.get("enabled", True) if isinstance(value, Mapping) else None
        if not isinstance(enabled, bool):
            raise ConfigInvalid(f"sources.{name}.enabled must be true or false")
        out[name] = enabled
    return out


def _breakers(raw: Any, strict: bool = True) -> dict[str, Breaker]:
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise ConfigInvalid("breakers must map source names to breaker states")
    out: dict[str, Breaker] = {}
    for name, value in raw.items():
        if name not in SOURCES and not strict:
            continue
        if name not in SOURCES or not isinstance(value, Mapping):
            raise ConfigInvalid("breakers: unknown source or malformed breaker")
        try:
            state = BreakerState(value.get("state", "closed"))
        except ValueError:
            raise ConfigInvalid(f"breakers.{name}.state is not a breaker state") from None
        since, until = value.get("since"), value.get("until")
        out[name] = Breaker(
            state,
            since if isinstance(since, datetime) else None,
            until if isinstance(until, datetime) else None,
        )
    return out


def bucket(uid: str) -> int:
    """The user's stable bucket 0..99: the same on every call and every instance."""
    digest = hashlib.sha256(f"external-data-rollout:{uid}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % 100


def in_cohort(cfg: RolloutConfig, uid: str, premium: bool, groups: frozenset[str]) -> bool:
    """Whether the user is in the gated cohort (only meaningful when gating is active)."""
    if cfg.phase is Phase.FULL:
        return True
    beta_user = bool(groups & set(cfg.targetGroups))
    in_bucket = bucket(uid) < cfg.rolloutPercentage
    if cfg.phase is Phase.PREMIUM:
        return premium or beta_user or in_bucket
    if cfg.phase is Phase.BETA:
        return beta_user or in_bucket
    return False


def in_cohort_by_bucket_only(
    cfg: RolloutConfig, uid: str, premium: bool, groups: frozenset[str]
) -> bool:
    """In the cohort only through the percentage bucket: the users ``maxCohortUsers`` caps
    (not the target groups, not premium users of the premium phase, not phase full)."""
    if cfg.phase not in (Phase.BETA, Phase.PREMIUM) or groups & set(cfg.targetGroups):
        return False
    if cfg.phase is Phase.PREMIUM and premium:
        return False
    return bucket(uid) < cfg.rolloutPercentage
