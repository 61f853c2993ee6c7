"""Storage errors: what a store raises when its backend fails. Storage knows no policy: the
use cases decide what a failure means for the caller (``unavailable``, never a free pass)."""

from __future__ import annotations


class StoreError(Exception):
    """The backend failed or did not answer in time."""


class StoreUnanswered(StoreError):
    """A ``StoreError`` after which a write may have been applied (no answer, or a failure of
    the backend): writing the same increments again could count them twice."""

    maybe_applied = True


class ConfigConflict(Exception):
    """A compare-and-set write lost a race with another writer (optimistic concurrency)."""


class Contended(ConfigConflict):
    """A compare-and-set lost a lock, not the version: its transaction was aborted while the
    document was still at the expected version (two racing transactions can both be aborted),
    so no other change had landed when the store looked. Made again, it may land."""
