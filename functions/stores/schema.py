"""Where everything lives: collection names, document paths and the aggregate layout.

Defined once; writers (recording, the limiter, the engine's cache, rollout control) and readers
(analytics, health, the evaluator, the CLIs) import these names instead of spelling paths.
"""

from __future__ import annotations

from datetime import datetime, timedelta

USERS = "users"
CVS = "cvs"
CONFIG = "config"
CONFIG_PATH = f"{CONFIG}/externalDataRollout"
"""The rollout config document (contract section 3)."""
HISTORY_COLLECTION = f"{CONFIG_PATH}/history"
"""Every change to the rollout config, appended."""
METRICS = "external_data_metrics"
"""Sharded aggregates (docs/architecture.md, "Aggregate documents")."""
AUDIT = "external_data_security_audit"
USAGE = "external_data_usage"
"""Per-user totals; events and conversions in sub-collections."""
RATE_LIMITS = "rate_limits"
CACHE = "external_data_cache"
EXTERNAL_DATA = "externalData"
"""Sub-collection of a CV holding its enrichment result (``latest``)."""


def user_path(uid: str) -> str:
    """A user's profile (``subscription``, ``rolloutGroups``, ``locale``, ...)."""
    return f"{USERS}/{uid}"


def cv_path(cv_id: str) -> str:
    """A CV (``userId`` is its owner)."""
    return f"{CVS}/{cv_id}"


CV_FIELDS = ("userId",)
"""What the service reads of a CV: its owner (``DocumentStore.get_many``'s ``fields``). A CV's
content, up to a megabyte its owner may write, is never sent to the function nor decoded: a
warm call re-reads its CV's owner, and reading a whole 800 KB CV cost it about 65 ms of CPU."""


def result_path(cv_id: str) -> str:
    """The stored enrichment result of a CV."""
    return f"{CVS}/{cv_id}/{EXTERNAL_DATA}/latest"


def usage_path(uid: str) -> str:
    """A user's usage totals."""
    return f"{USAGE}/{uid}"


EVENTS = "events"
CONVERSIONS = "conversions"


def usage_event_path(uid: str, event_id: str) -> str:
    """One usage event of a user."""
    return f"{USAGE}/{uid}/{EVENTS}/{event_id}"


def conversion_path(uid: str, conversion_id: str) -> str:
    """One recorded conversion of a user."""
    return f"{USAGE}/{uid}/{CONVERSIONS}/{conversion_id}"


def audit_path(entry_id: str) -> str:
    """One audit entry."""
    return f"{AUDIT}/{entry_id}"


def created_once(path: str) -> bool:
    """Whether ``path`` is a document written once under a new id (a usage event, a conversion,
    an audit entry), never written again."""
    parts = path.split("/")
    if parts[0] == AUDIT:
        return len(parts) == 2
    return parts[0] == USAGE and len(parts) == 4 and parts[2] in (EVENTS, CONVERSIONS)


def rate_limit_path(uid: str, scope: str, window_start: datetime) -> str:
    """The counter of one user's fixed rate window (``scope``: ``enrich`` or ``track``)."""
    return f"{RATE_LIMITS}/{uid}_{scope}_{window_start.strftime('%Y-%m-%dT%H:%M')}"


def cache_path(key: str) -> str:
    """A cached source answer (``key`` = ``{source}_{sha256}``)."""
    return f"{CACHE}/{key}"


GRANULARITIES: dict[str, tuple[str, timedelta]] = {
    # prefix: (strftime format of the bucket key, how long the bucket documents live)
    "m": ("%Y-%m-%dT%H:%M", timedelta(days=3)),
    "h": ("%Y-%m-%dT%H", timedelta(days=120)),
    "d": ("%Y-%m-%d", timedelta(days=800)),
}
"""Aggregate buckets as readers see them: minute, hour and day."""
BUCKET_SIZE: dict[str, timedelta] = {
    "m": timedelta(minutes=1),
    "h": timedelta(hours=1),
    "d": timedelta(days=1),
}
"""How much time one bucket of each granularity covers."""
RAW = "raw"
"""The ``granularity`` of the shards calls write: one random shard of the call's minute
(docs/architecture.md, "Aggregate documents"). Only the roll-up and the readers' tail read them."""
RAW_TTL = timedelta(days=3)
"""How long raw minute shards live (the roll-up folds them within minutes)."""
MINUTE_ONLY = frozenset({"failedUsers", "srcFailedUsers"})
"""Counters kept in minute buckets alone (keyed per user: they would grow hour and day docs)."""
AGGREGATE_HEADER = frozenset({"granularity", "bucketStart", "shard", "expireAt", "rolledAt"})
"""Fields of an aggregate document that are not counters."""
ROLLUP_PATH = f"{CONFIG}/externalDataRollup"
"""The roll-up's cursor: every raw minute before ``through`` is folded into the rolled docs."""


def floor_to(at: datetime, g: str) -> datetime:
    """The start of the bucket of granularity ``g`` containing ``at``."""
    if g == "m":
        return at.replace(second=0, microsecond=0)
    if g == "h":
        return at.replace(minute=0, second=0, microsecond=0)
    return at.replace(hour=0, minute=0, second=0, microsecond=0)


def bucket_key(at: datetime, g: str) -> str:
    """The bucket key of ``at`` at granularity ``g`` (as used in document ids)."""
    return floor_to(at, g).strftime(GRANULARITIES[g][0])


def raw_shard_path(minute: datetime, shard: int) -> str:
    """One shard of a minute's raw aggregate (written by calls)."""
    return f"{METRICS}/{RAW}_{minute.strftime(GRANULARITIES['m'][0])}_{shard}"


def rolled_path(g: str, start: datetime) -> str:
    """The rolled-up aggregate of one bucket (written by the roll-up only)."""
    return f"{METRICS}/{g}_{start.strftime(GRANULARITIES[g][0])}"


IDEMPOTENCY = "external_data_idempotency"
"""First answers of calls made with an ``idempotencyKey`` (contract 2.1), kept one hour."""
BREAKER_PROBES = "external_data_breaker_probes"
"""Probe-call counters of half-open source breakers (contract section 6)."""
COHORT_MEMBERS = "external_data_cohort"
"""Who was taken into the cohort under ``maxCohortUsers`` in a phase (contract section 3)."""
EVALUATOR_PATH = f"{CONFIG}/externalDataEvaluator"
"""The evaluator's heartbeat: ``lastRunAt`` and the last assessment's summary."""


def idempotency_path(uid: str, key: str) -> str:
    """The first answer to ``uid``'s calls with ``key``."""
    return f"{IDEMPOTENCY}/{uid}_{key}"


def breaker_probe_path(source: str, since: datetime) -> str:
    """The probe counter of ``source``'s half-open period that began at ``since``."""
    return f"{BREAKER_PROBES}/{source}_{since.strftime('%Y%m%dT%H%M%S')}"


def cohort_seats_path(phase_key: str) -> str:
    """The seat counter of one phase's capped cohort."""
    return f"{COHORT_MEMBERS}/{phase_key}"


def cohort_member_path(phase_key: str, uid: str) -> str:
    """Whether ``uid`` got a seat in one phase's capped cohort."""
    return f"{COHORT_MEMBERS}/{phase_key}/members/{uid}"
