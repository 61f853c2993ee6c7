"""Who is calling and the per-call context every use case receives."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime

from common.errors import CallFacts, Unauthenticated
from common.vocab import Fn


@dataclass(frozen=True)
class Caller:
    """Who is calling, from the transport."""

    uid: str | None
    admin: bool = False
    ip: str | None = None
    """The address the platform's front end saw (the last ``X-Forwarded-For`` entry)."""
    user_agent: str | None = None


def client_address(forwarded: str | None, peer: str | None) -> str | None:
    """The address the platform's front end saw: the last ``X-Forwarded-For`` entry, the one
    Google's front end appends (earlier entries are whatever the client sent). A blank last
    entry is no address: the peer's, never an earlier, client-written entry."""
    if forwarded is None:
        return peer
    last = forwarded.split(",")[-1].strip()
    return last or peer


@dataclass(frozen=True)
class CallContext:
    """One call: which function, who, when. Built once by ``hooks.handle``."""

    fn: Fn
    caller: Caller
    now: datetime
    """The call's time on the injected clock (windows, buckets, TTLs)."""
    started: float = field(default_factory=time.perf_counter)
    """``perf_counter`` at the start (durations)."""
    request_id: str = field(default_factory=lambda: uuid.uuid4().hex)

    @property
    def uid(self) -> str:
        """The authenticated caller's uid; ``Unauthenticated`` without a token."""
        if not self.caller.uid:
            raise Unauthenticated("Please sign in first.", facts=CallFacts(reason="no ID token"))
        return self.caller.uid

    def elapsed_ms(self) -> float:
        """Milliseconds since the call started."""
        return (time.perf_counter() - self.started) * 1000
