"""One error hierarchy for the core; ``main.py`` maps it to callable errors through one table.

A refusal is a value that carries everything recorded about it: its callable status (``code``),
how the call is recorded (``outcome``) and what the use case had learned by then (``facts``).
The use-case wrapper (``usecases.hooks``) records, audits and logs it; no use case calls a
recorder itself.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any, ClassVar

from common.vocab import Access, Outcome, Tier


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


@dataclass(frozen=True)
class CallFacts:
    """What a use case learned about a call, recorded whatever its outcome."""

    reason: str = ""
    """Short machine-readable reason (``premium_required``, ``limit 3/h``, ...)."""
    tier: Tier | None = None
    """The caller's own tier, once known."""
    access: Access | None = None
    """``full`` or ``preview`` once decided and the engine ran."""
    gated: bool | None = None
    """Whether the premium gate applied (the rollout cohort); ``None`` when not decided."""
    gate_shown: bool = False
    """A free user asked for full inside the gate and was shown the upgrade gate."""
    cv_id: str | None = None
    """The CV the call was about."""
    service_error: bool = False
    """A failure of the service (contract 2.4), as opposed to a denial or the user's input."""
    upstream_failure: bool = False
    """Every source tried failed with ``upstream`` or ``timeout`` (contract 2.4): counted apart,
    never as a failure of the service."""
    would: str | None = None
    """In shadow mode: what the gate would have done (``refuse`` or ``preview``)."""

    def with_(self, **changes: Any) -> CallFacts:
        """A copy with ``changes`` applied."""
        return replace(self, **changes)


class GatingError(Exception):
    """A failure the caller is told about. ``message`` is short, human and safe to show."""

    code: ClassVar[ErrorCode] = ErrorCode.INTERNAL
    outcome: ClassVar[Outcome] = Outcome.INTERNAL

    def __init__(
        self,
        message: str,
        details: dict[str, Any] | None = None,
        *,
        facts: CallFacts | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.details = details
        self.facts = facts or CallFacts()


class Unauthenticated(GatingError):
    """No valid ID token."""

    code = ErrorCode.UNAUTHENTICATED
    outcome = Outcome.UNAUTHENTICATED


class InvalidArgument(GatingError):
    """The request is malformed; ``field`` names the offending field."""

    code = ErrorCode.INVALID_ARGUMENT
    outcome = Outcome.INVALID

    def __init__(self, field: str, problem: str, recorded: str | None = None) -> None:
        """``recorded``: the field as audits and logs name it, when ``field`` holds a name the
        client chose (an unknown key, a file name): records never carry request content."""
        reason = f"invalid {recorded or field}"
        super().__init__(f"{field}: {problem}", {"field": field}, facts=CallFacts(reason=reason))
        self.field = field


class NotFound(GatingError):
    """The thing does not exist or is not the caller's (the same answer, so ids can't be probed)."""

    code = ErrorCode.NOT_FOUND
    outcome = Outcome.NOT_FOUND


class PermissionDenied(GatingError):
    """The caller may not do this (premium required, or not an admin)."""

    code = ErrorCode.PERMISSION_DENIED
    outcome = Outcome.DENIED


class ResourceExhausted(GatingError):
    """A rate limit refused the call; details say when to come back."""

    code = ErrorCode.RESOURCE_EXHAUSTED
    outcome = Outcome.RATE_LIMITED


class Unavailable(GatingError):
    """The backing store could not be reached; never turned into a free pass."""

    code = ErrorCode.UNAVAILABLE
    outcome = Outcome.UNAVAILABLE


class Internal(GatingError):
    """Something of ours failed; the message carries only a reference for support."""

    code = ErrorCode.INTERNAL
    outcome = Outcome.INTERNAL
