"""One error hierarchy for the core; ``main.py`` maps it to callable errors through one table."""

from __future__ import annotations

from enum import StrEnum
from typing import Any


class ErrorCode(StrEnum):
    """The callable protocol's status names this product uses (contract section 2)."""

    UNAUTHENTICATED = "unauthenticated"
    INVALID_ARGUMENT = "invalid-argument"
    NOT_FOUND = "not-found"
    PERMISSION_DENIED = "permission-denied"
    RESOURCE_EXHAUSTED = "resource-exhausted"
    UNAVAILABLE = "unavailable"
    DEADLINE_EXCEEDED = "deadline-exceeded"
    INTERNAL = "internal"


class GatingError(Exception):
    """A failure the caller is told about. ``message`` is short, human and safe to show."""

    code: ErrorCode = ErrorCode.INTERNAL

    def __init__(self, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class Unauthenticated(GatingError):
    """No valid ID token."""

    code = ErrorCode.UNAUTHENTICATED


class InvalidArgument(GatingError):
    """The request is malformed; ``field`` names the offending field."""

    code = ErrorCode.INVALID_ARGUMENT

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}", {"field": field})
        self.field = field


class NotFound(GatingError):
    """The thing does not exist or is not the caller's (the same answer, so ids can't be probed)."""

    code = ErrorCode.NOT_FOUND


class PermissionDenied(GatingError):
    """The caller may not do this (premium required, or not an admin)."""

    code = ErrorCode.PERMISSION_DENIED


class ResourceExhausted(GatingError):
    """A rate limit refused the call; details say when to come back."""

    code = ErrorCode.RESOURCE_EXHAUSTED


class Unavailable(GatingError):
    """The backing store could not be reached; never turned into a free pass."""

    code = ErrorCode.UNAVAILABLE


class StoreError(Exception):
    """Raised by stores when the backend fails; the service turns it into ``Unavailable``."""


class ConfigConflict(Exception):
    """Raised when a config write lost a race with another writer (optimistic concurrency)."""
