"""An erasure (contract 2.5): the user's records deleted, their audit entries kept with the uid
replaced by its keyed hash (``Recorder.hash``, HMAC-SHA256 under the salt). Run by
``deleteMyExternalData``, the ``users/{uid}`` trigger and ``scripts/support.py``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from stores.base import Write
from stores.schema import AUDIT, usage_path
from stores.userdata import audit_entries, audit_entries_by, erasable_paths
from usecases.app import App

_BATCH = 400  # audit rewrites per commit (Firestore takes at most 500 writes in one)


@dataclass(frozen=True)
class Erasure:
    """What an erasure did: documents deleted per collection, audit entries anonymised."""

    deleted: dict[str, int]
    anonymised: int

    def answer(self, uid: str) -> dict[str, Any]:
        """The callable's answer (contract 2.5), with the audit entries that were kept."""
        return {"userId": uid, "deleted": self.deleted, "anonymised": {AUDIT: self.anonymised}}


def erase_user(app: App, uid: str) -> Erasure:
    """Delete the user's records and anonymise their audit entries (idempotent)."""
    found = erasable_paths(app.store, uid)
    app.store.delete_many([p for paths in found.values() for p in paths])
    hashed = app.recorder.hash(uid)
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
    return Erasure({name: len(paths) for name, paths in found.items()}, len(about))


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
