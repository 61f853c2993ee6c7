"""The one error vocabulary of the enrichment sources (contract 2.1 ``sources[].error.code``)."""

from __future__ import annotations

from enum import StrEnum


class ErrorCode(StrEnum):
    """Why a source did not succeed. User-caused: ``not_found``, ``invalid_input``, ``refused``;
    service-caused: ``upstream``, ``timeout``; ``quota`` and ``not_configured`` are operational."""

    NOT_FOUND = "not_found"
    INVALID_INPUT = "invalid_input"
    REFUSED = "refused"
    QUOTA = "quota"
    UPSTREAM = "upstream"
    TIMEOUT = "timeout"
    NOT_CONFIGURED = "not_configured"


class SourceFailure(Exception):
    """Raised inside a source; the engine turns it into a ``failed`` (or ``timeout``) report.

    ``message`` is shown to the user: short, no stack traces, tokens, addresses or paths.
    """

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class SourceSkipped(Exception):
    """Raised by a source that was asked for but cannot run (no input, not configured)."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
