"""The copies of user and CV documents an instance keeps (``App.users``, ``App.owners``), and
their re-read beside the increment: a warm call is decided on the copies without a round trip
of its own, and never answered on them alone (contract sections 1 and 2.1)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from gating.entitlements import gate_view
from stores.schema import cv_path, user_path
from usecases.app import App

if TYPE_CHECKING:
    from usecases.admission import Loaded

Recheck = Callable[[], dict[str, dict[str, Any] | None]]
"""A read in flight: collecting it answers what ``get_many`` would."""


def owner_of(app: App, cv_id: str, cv: Mapping[str, Any] | None, now: datetime) -> Any:
    """The ``userId`` of a CV document just read, kept by the instance (dropped if none)."""
    found = cv.get("userId") if cv else None
    if isinstance(found, str):
        app.owners.put(cv_id, found, now)
    else:
        app.owners.drop(cv_id)
    return found


def start(app: App, loaded: Loaded, uid: str, cv_id: str) -> Recheck | None:
    """The user and CV documents whose instance copies decided this call, read again; sent
    before the increment, so the read costs no round trip of its own. None when this call
    read both. A copy is never the last word on who owns a CV or who is premium (contract
    sections 1 and 2.1): a CV deleted or a subscription canceled a second ago counts."""
    held = [
        path
        for path, fresh in (
            (user_path(uid), loaded.user_fresh),
            (cv_path(cv_id), loaded.owner_fresh),
        )
        if not fresh
    ]
    return app.store.start_get_many(held) if held else None


def hold(
    app: App, loaded: Loaded, uid: str, cv_id: str, recheck: Recheck | None, now: datetime
) -> bool:
    """Whether the documents ``start`` read (None: nothing to read) say what the copies the
    call was decided on said; the instance keeps what they say either way. When they do not,
    the call gives back any unit it took and is decided again on what was read: the CV's
    owner, the gate and the limit, in the contract's order. Raises ``StoreError``."""
    if recheck is None:
        return True
    got = recheck()
    same = True
    if user_path(uid) in got:
        user = gate_view(got[user_path(uid)])
        app.users.put(uid, user, now)
        same = user == loaded.user
    if cv_path(cv_id) in got:
        same = owner_of(app, cv_id, got[cv_path(cv_id)], now) == uid and same
    return same
