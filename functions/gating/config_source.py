"""The rollout config as an instance reads it: cached for ``EXTERNAL_DATA_CONFIG_TTL_SECONDS``,
the last good copy kept for when the document is unreadable, failing closed when there never
was one (contract section 3: a change takes effect everywhere within 30 seconds).

When the store stops answering, a read waits for the store's deadline. With a good copy at
hand, one call reads at a time (the others are served the copy meanwhile) and a failed read is
not tried again for ``RETRY_AFTER``: without that, every call of an outage waited for a config
read in its admission and another in its recording, 16 s for a call the limiter's deadline
refuses in 6 (measured through the served entrypoint with the Firestore emulator frozen).

The copy served beside a read in flight is never one read 30 s ago or more while the store
answers: with a TTL near 30 s, the calls then wait for that read, so no call that starts 30 s
after a change is served the config from before it. Only a store that fails its reads keeps an
older copy in service (no read could bring the change then)."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from common.clock import Clock
from common.errors import CallFacts, Unavailable
from common.logs import log
from gating.rollout import (
    CONFIG_PATH,
    ConfigInvalid,
    Phase,
    RolloutConfig,
    parse_served,
    turns_gating_off,
)
from stores.base import DocumentStore
from stores.errors import StoreError

FAIL_CLOSED = RolloutConfig(phase=Phase.FULL, fallbackEnabled=False)
"""Used only when the config document is unreadable and no good copy was ever seen: paid
access fails closed (everyone gated), rather than handing premium features to everybody."""

UNAVAILABLE_MESSAGE = "The service is temporarily unavailable. Please retry."
RETRY_AFTER = timedelta(seconds=5)
"""After a failed read, how long the last good copy is served without reading again. With the
default TTL (10 s) a change still takes effect within 30 s once the store answers."""
TAKES_EFFECT_WITHIN = timedelta(seconds=30)
"""Contract section 3. A copy read this long ago is never served while the store answers: a
call then waits for the read in flight instead (only reachable with a TTL near 30 s)."""
WAIT_FOR_READ_S = 10.0
"""How long such a call waits for another call's read (each read has the store's own deadline,
shorter than this) before it is served the copy after all."""


class ConfigSource:
    """One instance's view of ``config/externalDataRollout``."""

    def __init__(self, store: DocumentStore, ttl: timedelta, now: Clock) -> None:
        self.store = store
        self.ttl = ttl
        self.now = now
        self._cfg: RolloutConfig | None = None
        self._expires: datetime | None = None
        self._read_at: datetime | None = None
        self._last_good: RolloutConfig | None = None
        self._warned: int | None = None
        self._no_read_until: datetime | None = None
        self._retry_at: datetime | None = None
        self._reading = threading.Lock()

    def fresh(self, now: datetime) -> RolloutConfig | None:
        """The cached copy while it is fresh, else ``None`` (the caller reads the document)."""
        if self._cfg is not None and self._expires is not None and now < self._expires:
            return self._cfg
        return None

    def accept(self, doc: Mapping[str, Any] | None, now: datetime) -> RolloutConfig:
        """Take a freshly read document. Nulls and names this version does not know are
        ignored (logged); a document that still does not parse keeps the last good config,
        except that its phase ``off`` or kill switch is obeyed: nobody is gated."""
        try:
            cfg, ignored = parse_served(doc)
            self._last_good = cfg
            if ignored is not None and self._warned != cfg.version:  # once per version
                self._warned = cfg.version
                log(
                    "WARNING",
                    "rollout config has nulls or names this version does not know; ignored",
                    problem=ignored,
                    servingVersion=cfg.version,
                )
        except ConfigInvalid as exc:
            cfg = self._last_good or FAIL_CLOSED
            if turns_gating_off(doc):
                cfg = replace(cfg, components=replace(cfg.components, premiumGating=False))
            log(
                "ERROR",
                "rollout config unreadable; serving the last good config",
                problem=str(exc),
                servingVersion=cfg.version,
                gating=cfg.gating_active,
            )
        self._cfg = cfg
        self._read_at = now
        self._expires = now + self.ttl
        return cfg

    def current(self) -> RolloutConfig:
        """The config, from the cache or one read; ``Unavailable`` only with no good copy. With
        a good copy, a stale cache is read by one call at a time, and not again for
        ``RETRY_AFTER`` after a failed read: the others are served the good copy meanwhile,
        unless it was read ``TAKES_EFFECT_WITHIN`` ago; they then wait for that read."""
        now = self.now()
        cached = self.fresh(now)
        if cached is not None:
            return cached
        last = self._last_good
        if last is None:
            return self._read(now)  # nothing to serve instead: every caller reads
        if self._retry_at is not None and now < self._retry_at:
            return last  # the store failed: no read could bring a change
        if self._reading.acquire(blocking=False):
            return self._read_holding(now)
        if self._read_at is None or now - self._read_at < TAKES_EFFECT_WITHIN:
            return last
        if not self._reading.acquire(timeout=WAIT_FOR_READ_S):
            return last
        return self._after_wait()

    def _read_holding(self, now: datetime) -> RolloutConfig:
        """``_read`` by the call holding the reading lock, which it releases."""
        try:
            return self._read(now)
        finally:
            self._reading.release()

    def _after_wait(self) -> RolloutConfig:
        """A call that waited for another's read, now holding the lock: that read's copy, or
        the last good one if it failed, or a read of its own if the copy is still stale."""
        now = self.now()
        served = self.fresh(now)
        if served is None and self._retry_at is not None and now < self._retry_at:
            served = self._last_good
        if served is None:
            return self._read_holding(now)
        self._reading.release()
        return served

    def _read(self, now: datetime) -> RolloutConfig:
        try:
            doc = self.store.get_many([CONFIG_PATH])[CONFIG_PATH]
        except StoreError as exc:
            self._retry_at = self.now() + RETRY_AFTER
            if self._last_good is not None:
                return self._last_good
            raise Unavailable(
                UNAVAILABLE_MESSAGE, facts=CallFacts(reason="store unavailable")
            ) from exc
        self._retry_at = None
        return self.accept(doc, now)

    def for_recording(self) -> RolloutConfig:
        """The config a call's records follow (component switches): the current one, read when
        the cached copy is stale, so a switch turned on or off reaches the records of refusals
        made before any config read (an instance answering only refusals) within the TTL too.
        A failed read is not tried again for a TTL: the latest seen config then (or the
        defaults, every record on)."""
        now = self.now()
        fresh = self.fresh(now)
        if fresh is not None:
            return fresh
        if self._no_read_until is None or now >= self._no_read_until:
            try:
                return self.current()
            except Exception:  # noqa: BLE001 - recording never fails a call; its read may
                self._no_read_until = now + self.ttl
        return self._cfg or self._last_good or RolloutConfig()
