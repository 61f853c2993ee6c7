"""``getExternalDataAnalytics`` (contract 2.4): admins only."""

from __future__ import annotations

from typing import Any

from analytics.admin import build_analytics
from common.errors import CallFacts, PermissionDenied
from common.vocab import Fn
from usecases.app import App
from usecases.context import CallContext, Caller
from usecases.hooks import Served, handle
from usecases.requests import parse_analytics


def run(app: App, caller: Caller, raw: Any) -> dict[str, Any]:
    """Answer one ``getExternalDataAnalytics`` call."""
    return handle(Fn.ANALYTICS, app, caller, raw, _analytics)


def _analytics(app: App, ctx: CallContext, raw: Any) -> Served:
    _ = ctx.uid
    if not ctx.caller.admin:
        denied = CallFacts(reason="not an admin")
        raise PermissionDenied("Analytics are for admins only.", facts=denied)
    query = parse_analytics(raw)
    return Served(build_analytics(app.store, query))
