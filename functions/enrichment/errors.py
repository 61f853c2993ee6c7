"""The one error vocabulary of the enrichment sources (contract 2.1 ``sources[].error.code``)."""

from __future__ import annotations

from common.vocab import SourceErrorCode

ErrorCode = SourceErrorCode
"""The sources' name for the contract's source error codes (``common.vocab.SourceErrorCode``)."""


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


class SourcesCrashed(Exception):
    """No tried source succeeded and at least one of them crashed in our own code: the
    enrichment failed through a bug of the service (an ``internal`` answer), not the user's
    input or a third party's outage."""
