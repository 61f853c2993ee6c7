"""The copies of CV owners an instance keeps (``App.owners``), and their re-read beside the
increment: a warm call is decided on the copy without a round trip of its own, and never
answered on it alone (contract 2.1)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from stores.errors import StoreError
from stores.schema import CV_FIELDS, cv_path
from usecases.app import App

if TYPE_CHECKING:
    from gating.ratelimit import Window
    from usecases.admission import Loaded
    from usecases.context import CallContext

Recheck = Callable[[], dict[str, dict[str, Any] | None]]
"""A read in flight: collecting it answers what ``get_many`` would."""


def owner_of(app: App, cv_id: str, cv: Mapping[str, Any] | None, now: datetime) -> str | None:
    """The ``userId`` of a CV document just read (None: no CV, or no string owner), kept by
    the instance (dropped if none)."""
    found = cv.get("userId") if cv else None
    if isinstance(found, str):
        app.owners.put(cv_id, found, now)
        return found
    app.owners.drop(cv_id)
    return None


def start(app: App, loaded: Loaded, cv_id: str) -> Recheck | None:
    """The CV document, read again when the instance's copy of its owner decided this call;
    sent before the increment, so the read costs no round trip of its own (None when this
    call read the CV); only its owner is read (``CV_FIELDS``). Who owns a CV is never taken
    from a copy alone (contract 2.1: only the owner may enrich it, a missing CV is
    ``not-found``): a CV deleted, or deleted and created
    again by another user, a moment ago counts, and no result is written under it. The user's
    entitlement copy is trusted for ``EXTERNAL_DATA_ENTITLEMENT_TTL_SECONDS`` (a cached
    "free" is re-read before any refusal); reading it again on every call too cost about
    0.5 ms of the machine's CPU a call in the load runs and was not taken (docs/architecture.md)."""
    if loaded.owner_fresh:
        return None
    path = cv_path(cv_id)
    return app.store.start_get_many([path], fields={path: CV_FIELDS})


def stale(
    app: App, ctx: CallContext, cv_id: str, recheck: Recheck | None, unit: Window | None
) -> bool:
    """Whether the CV ``start`` read (``recheck``; None: nothing to read) is no longer the
    caller's; the instance keeps what it says either way. When it is not, the call is decided
    again on what was read, and the unit in ``unit`` (None: none taken) is given
    back; also when the re-read fails, which raises ``StoreError`` (``unavailable``)."""
    if recheck is None:
        return False
    try:
        owned = owner_of(app, cv_id, recheck()[cv_path(cv_id)], ctx.now) == ctx.uid
    except StoreError:
        if unit is not None:
            app.limiter.give_back(unit, "store failed")
        raise
    if not owned and unit is not None:
        app.limiter.give_back(unit, "decided on a stale copy")
    return not owned
