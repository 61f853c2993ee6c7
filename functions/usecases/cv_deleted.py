"""``onCvDeleted``: a deleted CV takes its enrichment results with it (contract 5; issue 8).

Firestore does not delete sub-collections with their parent, so without this the results under
``cvs/{cvId}/externalData`` outlived the CV. The rules already refuse them to anyone but the
user they were made for (the stored result's own ``userId``); this removes the data itself.

A CV id can be re-created before the trigger runs (by its owner, or by someone else once it was
free). Results made for whoever owns the CV now are kept: only results whose ``userId`` is not
the current owner's are deleted.
"""

from __future__ import annotations

from common.logs import log
from stores.schema import EXTERNAL_DATA, cv_path
from usecases.app import App


def run(app: App, cv_id: str) -> int:
    """Delete the results of the deleted CV ``cv_id``; returns how many documents went."""
    owner = (app.store.get_many([cv_path(cv_id)])[cv_path(cv_id)] or {}).get("userId")
    results = app.store.query(f"{cv_path(cv_id)}/{EXTERNAL_DATA}")
    stale = [path for path, doc in results if owner is None or doc.get("userId") != owner]
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
