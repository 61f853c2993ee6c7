"""Everything the functions store about one user, found by uid (contract 2.5, data rights): the
documents an export shows and the paths an erasure deletes.

Audit entries are not the user's to erase (security records): they are found here so that the
caller can replace their uid by its keyed hash. Paths come from ``stores.schema`` only.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from stores.base import DocumentStore
from stores.schema import (
    AUDIT,
    COHORT_MEMBERS,
    EXTERNAL_DATA,
    IDEMPOTENCY,
    RATE_LIMITS,
    USAGE,
    usage_path,
)

_WINDOW_ID = r"_[a-z]+_\d{4}-\d\d-\d\dT\d\d:\d\d"
"""What follows the uid in a rate-limit counter's id (``{uid}_{scope}_{window start}``): the
scope is letters only, so ``alice_x``'s counters never pass for ``alice``'s."""


def _at(doc: Mapping[str, Any]) -> float:
    """A document's ``at`` for ordering (undated ones first)."""
    at = doc.get("at")
    return at.timestamp() if isinstance(at, datetime) else 0.0


def rate_limit_paths(store: DocumentStore, uid: str) -> list[str]:
    """The user's rate-limit counters, of every scope."""
    exact = re.compile(re.escape(uid) + _WINDOW_ID)
    return [
        path
        for path in store.list_paths(RATE_LIMITS, f"{uid}_")
        if exact.fullmatch(path.rpartition("/")[2])
    ]


def idempotency_paths(store: DocumentStore, uid: str) -> list[str]:
    """The stored first answers of the user's calls with an ``idempotencyKey``. Ids are
    ``{uid}_{key}`` and keys may hold ``_``, so a document that names its ``uid`` is kept only
    when it names this one."""
    paths = store.list_paths(IDEMPOTENCY, f"{uid}_")
    if not paths:
        return []
    docs = store.get_many(paths)
    return [p for p in paths if (docs[p] or {}).get("uid", uid) == uid]


def cohort_member_docs(store: DocumentStore, member_id: str) -> dict[str, dict[str, Any]]:
    """The seats in capped cohorts (one per phase that had a cap) under ``member_id``: the uid,
    or the keyed hash an erasure keeps a seat under (``usecases.cohort``), by path."""
    candidates = [f"{phase}/members/{member_id}" for phase in store.list_paths(COHORT_MEMBERS)]
    if not candidates:
        return {}
    docs = store.get_many(candidates)
    return {p: d for p, d in docs.items() if d is not None}


def results(store: DocumentStore, uid: str) -> list[tuple[str, dict[str, Any]]]:
    """The stored enrichment results made for the user (their ``userId``, whoever owns the CV
    now: contract 5 lets a CV's owner read a result only while its ``userId`` is theirs), in
    path order. A CV moved to another user keeps the earlier owner's result, which is theirs to
    export and erase, never the new owner's. One collection-group query (its single-field index
    is in ``firestore.indexes.json``)."""
    return sorted(store.query(EXTERNAL_DATA, [("userId", "==", uid)], group=True))


def result_paths(store: DocumentStore, uid: str) -> list[str]:
    """The paths of ``results``."""
    return [path for path, _ in results(store, uid)]


def erasable_paths(store: DocumentStore, uid: str) -> dict[str, list[str]]:
    """Every document of the user's that an erasure deletes, by collection name. Not their
    seats under ``maxCohortUsers`` (``cohort_member_docs``): the cap counts distinct users for
    the whole phase, so an erasure keeps the seat under the uid's keyed hash instead."""
    usage = usage_path(uid)
    return {
        USAGE: [usage] if store.get_many([usage])[usage] is not None else [],
        "events": store.list_paths(f"{usage}/events"),
        "conversions": store.list_paths(f"{usage}/conversions"),
        RATE_LIMITS: rate_limit_paths(store, uid),
        EXTERNAL_DATA: result_paths(store, uid),
        IDEMPOTENCY: idempotency_paths(store, uid),
    }


def audit_entries(store: DocumentStore, uid: str) -> list[tuple[str, dict[str, Any]]]:
    """The audit entries about the user, oldest first."""
    rows = store.query(AUDIT, [("uid", "==", uid)])
    return sorted(rows, key=lambda row: _at(row[1]))


def audit_entries_by(store: DocumentStore, uid: str) -> list[tuple[str, dict[str, Any]]]:
    """The audit entries of requests the user made (``by``: a data-rights request of their
    own, an admin's for another user), oldest first."""
    rows = store.query(AUDIT, [("by", "==", uid)])
    return sorted(rows, key=lambda row: _at(row[1]))


def user_documents(store: DocumentStore, uid: str, kept_id: str | None = None) -> dict[str, Any]:
    """The user's records as stored, for an export: the usage document, events, conversions,
    enrichment results (with their ``cvId``) and audit entries, each list oldest first, and
    beside them whatever else an erasure finds: stored idempotent answers, rate-limit counters
    and cohort seats (those under ``kept_id`` too, the keyed hash an erasure keeps them under)."""
    usage = usage_path(uid)

    def docs(collection: str) -> list[dict[str, Any]]:
        rows = [{"id": p.rpartition("/")[2], **d} for p, d in store.query(collection)]
        return sorted(rows, key=_at)

    made = [
        {"cvId": p.split("/")[1], "id": p.rpartition("/")[2], **d} for p, d in results(store, uid)
    ]
    return {
        "stats": store.get_many([usage])[usage] or {},
        "events": docs(f"{usage}/events"),
        "conversions": docs(f"{usage}/conversions"),
        "results": made,
        "audit": [{"id": p.rpartition("/")[2], **d} for p, d in audit_entries(store, uid)],
        "idempotency": _named(store, idempotency_paths(store, uid)),
        "rateLimits": _named(store, rate_limit_paths(store, uid)),
        "cohort": _seats(store, uid, kept_id),
    }


def _named(store: DocumentStore, paths: list[str]) -> list[dict[str, Any]]:
    """The documents at ``paths`` with their ids, in path order (ids hold the time if any)."""
    docs = store.get_many(paths) if paths else {}
    return [{"id": p.rpartition("/")[2], **d} for p, d in docs.items() if d is not None]


def _seats(store: DocumentStore, uid: str, kept_id: str | None) -> list[dict[str, Any]]:
    """The user's cohort seats, one per capped phase, with the phase they belong to."""
    held = cohort_member_docs(store, uid)
    if kept_id:
        held.update(cohort_member_docs(store, kept_id))
    return [
        {"phase": p.split("/")[1], "id": p.rpartition("/")[2], **d} for p, d in sorted(held.items())
    ]
