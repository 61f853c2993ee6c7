"""Premium entitlement from ``users/{uid}.subscription`` (contract section 1).

Custom claims never make anyone premium: only the server-written subscription does.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from common.vocab import Tier
from stores.base import DocumentStore, read_one
from stores.schema import user_path

GATE_FIELDS = ("subscription", "rolloutGroups")
"""The fields of ``users/{uid}`` the gate reads, all server-written."""


def gate_view(user_doc: Mapping[str, Any] | None) -> dict[str, Any]:
    """What the gate keeps of a user's profile: its server-written fields, never the rest. A
    client may fill its own profile with a megabyte of other fields; an instance that cached
    whole profiles (10,000 of them) would hold gigabytes."""
    if not user_doc:
        return {}
    return {k: user_doc[k] for k in GATE_FIELDS if k in user_doc}


def read_gate_view(store: DocumentStore, uid: str) -> dict[str, Any]:
    """``gate_view`` of ``users/{uid}``, read for ``GATE_FIELDS`` only (one round trip)."""
    return gate_view(read_one(store, user_path(uid), GATE_FIELDS))


def _as_datetime(value: Any) -> datetime | None:
    """A timestamp or ISO string as an aware datetime (naive values are taken as UTC)."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
    if isinstance(value, datetime):
        return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    return None


def is_premium(user_doc: Mapping[str, Any] | None, now: datetime, grace_days: int) -> bool:
    """True when the subscription entitles the user to premium right now.

    A missing doc or field, or anything malformed, is free (paid access fails closed).
    """
    if not user_doc:
        return False
    sub = user_doc.get("subscription")
    if not isinstance(sub, Mapping) or sub.get("tier") != "premium":
        return False
    if sub.get("lifetime") is True:
        return True
    status = sub.get("status")
    end_raw = sub.get("currentPeriodEnd")
    end = _as_datetime(end_raw)
    if end_raw is not None and end is None:
        return False
    if status in ("active", "trialing"):
        return end is None or end > now
    if status == "past_due":
        return end is not None and now < end + timedelta(days=grace_days)
    return False


def tier_of(user_doc: Mapping[str, Any] | None, now: datetime, grace_days: int) -> Tier:
    """The user's tier now."""
    return Tier.PREMIUM if is_premium(user_doc, now, grace_days) else Tier.FREE


def rollout_groups(user_doc: Mapping[str, Any] | None) -> frozenset[str]:
    """The user's rollout groups (server-written), as a set of names."""
    if not user_doc:
        return frozenset()
    groups = user_doc.get("rolloutGroups")
    if not isinstance(groups, list):
        return frozenset()
    return frozenset(g for g in groups if isinstance(g, str))


def was_paying(user_doc: Mapping[str, Any] | None) -> bool:
    """Whether the doc shows a premium subscription that had not been canceled (active,
    trialing, past_due or lifetime), whatever its dates: moving from that to premium is a
    renewal or a recovery, not a conversion."""
    sub = (user_doc or {}).get("subscription")
    if not isinstance(sub, Mapping) or sub.get("tier") != "premium":
        return False
    return sub.get("lifetime") is True or sub.get("status") in ("active", "trialing", "past_due")


def paying_before(user_doc: Mapping[str, Any] | None, now: datetime, grace_days: int) -> bool:
    """Whether a subscription about to change showed a paying subscriber at ``now``, for
    conversions: premium now, or an uncanceled paid subscription whose period ended less than
    ``grace_days`` ago (its renewal, written late, is no conversion). One lapsed longer, a
    complimentary grant that ran out included, is a free user's: buying then converts."""
    if is_premium(user_doc, now, grace_days):
        return True
    if not was_paying(user_doc):
        return False
    sub = (user_doc or {}).get("subscription") or {}
    end = _as_datetime(sub.get("currentPeriodEnd"))
    return end is None or now < end + timedelta(days=grace_days)  # no dates: its status says
