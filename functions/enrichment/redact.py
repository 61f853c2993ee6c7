"""Remove e-mail addresses and phone numbers from free text before it is stored or returned.

Applied to every string of a source's payload except URLs, dates and identifiers (keys listed
in ``_KEEP``), so a new free-text field is redacted by default.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any, Protocol

EMAIL_MARK = "[email removed]"
PHONE_MARK = "[phone removed]"

# The lookbehind makes a match start only where a run of local-part characters starts: without
# it every position of a long run without "@" was a new start scanning to the run's end
# (quadratic: a 60 KB run took 41 s). A match found from inside a run is also found from its
# start, so what is redacted does not change.
_EMAIL = re.compile(
    r"(?<![A-Za-z0-9._%+\-])[A-Za-z0-9._%+\-]+"
    r"(?:@|\s*[\[(]\s*at\s*[\])]\s*)"
    r"[A-Za-z0-9\-]+(?:(?:\.|\s*[\[(]\s*dot\s*[\])]\s*)[A-Za-z0-9\-]+)*"
    r"(?:\.|\s*[\[(]\s*dot\s*[\])]\s*)[A-Za-z]{2,}",
    re.IGNORECASE,
)
# A run of digits with phone-like separators. Whether it is a phone is decided in _phone():
# enough digits, and not a date or a year range.
_PHONE_CANDIDATE = re.compile(r"(?<![\w.])(?:\+|00)?\(?\d[\d\s().\-/]{6,}\d(?![\w])")
_DATE_LIKE = re.compile(r"^\d{4}[-/.]\d{1,2}([-/.]\d{1,2})?$|^\d{1,2}[-/.]\d{1,2}[-/.]\d{2,4}$")
_YEAR_RANGE = re.compile(r"^(19|20)\d\d\s*[-/]\s*(19|20)\d\d$")

# camelCase suffixes (``htmlUrl``, ``updatedAt``, ``startedOn``) or whole keys, case-sensitive
# on purpose: "description" and "location" end in "on" but are free text.
_KEEP = re.compile(
    r"(?<=[a-z])(Url|Urls|At|On|Date|Id)$"
    r"|^(url|urls|href|login|id|etag|language|date|start|end|published|updated|sameAs)$"
)


def _phone(match: re.Match[str]) -> str:
    text = match.group(0)
    digits = sum(ch.isdigit() for ch in text)
    stripped = text.strip()
    if _DATE_LIKE.match(stripped) or _YEAR_RANGE.match(stripped):
        return text
    international = stripped.startswith(("+", "00"))
    if digits >= 9 or (international and digits >= 7) or (digits >= 7 and "(" in stripped):
        return PHONE_MARK
    return text


def redact_text(text: str) -> str:
    """``text`` with e-mail addresses and phone numbers replaced by markers."""
    if not text:
        return text
    text = _EMAIL.sub(EMAIL_MARK, text)
    return _PHONE_CANDIDATE.sub(_phone, text)


def _kept(text: str) -> str:
    """A URL, date or identifier, kept as it is, except a URL's query and fragment: those are
    free text a person typed (``?contact=alice@example.com``) and are redacted like text."""
    cut = min((i for i in (text.find("?"), text.find("#")) if i >= 0), default=-1)
    return text if cut < 0 else text[:cut] + redact_text(text[cut:])


def redact(value: Any, key: str = "") -> Any:
    """A copy of ``value`` (JSON-like) with every free-text string redacted."""
    if isinstance(value, str):
        return _kept(value) if key and _KEEP.search(key) else redact_text(value)
    if isinstance(value, dict):
        return {k: redact(v, str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact(v, key) for v in value]
    return value


class _Deadline(Protocol):
    def check(self) -> None: ...


async def redact_async(
    value: Any, *, deadline: _Deadline | None = None, pause_every: int = 64 * 1024
) -> Any:
    """``redact`` that lets the event loop run after every ``pause_every`` characters of text
    and checks ``deadline`` there (a megabyte of text takes ~0.1 s or more)."""
    budget = [pause_every]

    async def walk(v: Any, key: str) -> Any:
        if isinstance(v, str):
            budget[0] -= len(v)
            if budget[0] <= 0:
                budget[0] = pause_every
                if deadline is not None:
                    deadline.check()
                await asyncio.sleep(0)
            return _kept(v) if key and _KEEP.search(key) else redact_text(v)
        if isinstance(v, dict):
            return {k: await walk(x, str(k)) for k, x in v.items()}
        if isinstance(v, list | tuple):
            return [await walk(x, key) for x in v]
        return v

    if deadline is not None:
        deadline.check()
    return await walk(value, "")
