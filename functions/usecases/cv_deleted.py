"""``onCvDeleted``: a deleted CV takes its enrichment results with it (contract 5; issue 8).

Firestore does not delete sub-collections with their parent, so without this the results under
``cvs/{cvId}/externalData`` outlived the CV. The rules already refuse them to anyone but the
user they were made for (the stored result's own ``userId``); this removes the data itself.

A CV id can be re-created before the trigger runs (by its owner, or by someone else once it was
free). What goes is every result made before the deletion (its ``at`` is before the event's
time), the owner's own included, and any result made for someone other than the current owner;
a result made for the re-created CV's owner after the deletion stays. Running it twice deletes
nothing more.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from common.logs import log
from stores.base import read_one
from stores.schema import CV_FIELDS, EXTERNAL_DATA, cv_path
from usecases.app import App


def run(app: App, cv_id: str, deleted_at: datetime | None = None) -> int:
    """Delete the results of the CV ``cv_id`` deleted at ``deleted_at`` (the event's time);
    returns how many documents went."""
    owner = (read_one(app.store, cv_path(cv_id), CV_FIELDS) or {}).get("userId")
    results = app.store.query(f"{cv_path(cv_id)}/{EXTERNAL_DATA}")
    stale = [
        path
        for path, doc in results
        if owner is None or doc.get("userId") != owner or _made_before(doc, deleted_at)
    ]
    if stale:
        app.store.delete_many(stale)
    log(
        "INFO",
        "results of a deleted CV removed",
        labels={"function": "onCvDeleted"},
        deleted=len(stale),
        kept=len(results) - len(stale),
    )
    return len(stale)


def _made_before(doc: dict[str, Any], deleted_at: datetime | None) -> bool:
    """Whether a result was made before the CV's deletion (one without a time was)."""
    if deleted_at is None:
        return False
    at = doc.get("at")
    return not isinstance(at, datetime) or at < deleted_at
