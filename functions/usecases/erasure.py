"""An erasure (contract 2.5): the user's records deleted, their audit entries kept with the uid
replaced by its keyed hash (``Recorder.hash``, HMAC-SHA256 under the salt). Run by
``deleteMyExternalData``, the ``users/{uid}`` trigger and ``scripts/support.py``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from stores.base import Write
from stores.schema import AUDIT, COHORT_MEMBERS, usage_path
from stores.userdata import audit_entries, audit_entries_by, cohort_member_docs, erasable_paths
from usecases.app import App

_BATCH = 400  # audit rewrites per commit (Firestore takes at most 500 writes in one)
_SEAT = ("seat", "expireAt")
"""What a kept seat carries: the decision and its expiry (not the uid's call count)."""


@dataclass(frozen=True)
class Erasure:
    """What an erasure did: documents deleted per collection, audit entries anonymised."""

    deleted: dict[str, int]
    anonymised: int
    seats_kept: int = 0
    """Cohort seats moved under the keyed hash (``usecases.cohort``), never given back."""

    def answer(self, uid: str) -> dict[str, Any]:
        """The callable's answer (contract 2.5), with the records that were kept, hashed."""
        kept = {AUDIT: self.anonymised, COHORT_MEMBERS: self.seats_kept}
        return {"userId": uid, "deleted": self.deleted, "anonymised": kept}


def erase_user(app: App, uid: str) -> Erasure:
    """Delete the user's records and anonymise their audit entries (idempotent)."""
    found = erasable_paths(app.store, uid)
    app.store.delete_many([p for paths in found.values() for p in paths])
    hashed = app.recorder.hash(uid)
    seats = keep_seats(app, uid, hashed)
    # Every uid an entry keeps becomes the keyed hash: the user it is about (and the subject of
    # a detector finding about them), and the user who made the request (their own export, or
    # an admin's request for someone else).
    about = audit_entries(app.store, uid)
    changes = {p: _about_hashed(d, uid, hashed) for p, d in about}
    for path, _ in audit_entries_by(app.store, uid):
        changes.setdefault(path, {}).update(by=hashed, byHashed=True)
    anonymised = list(changes)
    for start in range(0, len(anonymised), _BATCH):
        chunk = anonymised[start : start + _BATCH]
        app.store.commit([Write(p, changes[p]) for p in chunk])
    return Erasure({name: len(paths) for name, paths in found.items()}, len(about), seats)


def keep_seats(app: App, uid: str, hashed: str | None) -> int:
    """Move the user's ``maxCohortUsers`` seats from ``members/{uid}`` to ``members/{hashed}``:
    the seat stays taken, and the user's next call finds it there (``cohort.has_seat``)."""
    held = cohort_member_docs(app.store, uid)
    if not held or not hashed:
        return 0
    moves = [
        Write(f"{path.rpartition('/')[0]}/{hashed}", {k: doc[k] for k in _SEAT if k in doc})
        for path, doc in held.items()
    ]
    app.store.commit(moves)  # kept before the uid's documents go: a crash re-runs the move
    app.store.delete_many(list(held))
    return len(held)


def _about_hashed(doc: Mapping[str, Any], uid: str, hashed: str | None) -> dict[str, Any]:
    """The fields of an audit entry about ``uid`` that name them, as the keyed hash."""
    change: dict[str, Any] = {"uid": hashed, "uidHashed": True}
    if doc.get("subjectKind") == "uid" and doc.get("subject") == uid:
        change["subject"] = hashed  # a ``suspicious_activity`` finding (observability.detector)
    return change


def erase_usage(app: App, uid: str) -> None:
    """Delete the user's usage document and events only (what recording one call writes)."""
    usage = usage_path(uid)
    app.store.delete_many([*app.store.list_paths(f"{usage}/events"), usage])
