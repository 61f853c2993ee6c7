"""Contract 2.1's size bounds on an enrichment result: list and string caps, and a byte ceiling.

Lists are capped by the key that holds them (``skills`` 200, ``projects`` 100, ``positions`` 100,
any other list 50), strings at 4,000 characters, at every depth. If the capped result still
serialises to more than ``MAX_RESULT_BYTES`` (fifty lists of fifty 4,000-character strings
would), strings and lists are tightened step by step until it fits. Numbers are made JSON- and
Firestore-safe on the way (no NaN or infinity, integers within +-2**53).

Sources apply it to their own payloads with looser list caps (``SOURCE_LIST_SCALE``: a cache
entry keeps all 230 repositories of a prolific user, and stays under Firestore's 1 MiB by the
byte ceiling); the caller applies it to the merged result with the contract's caps and answers
``truncated: true`` when it says so.
"""

from __future__ import annotations

import json
import math
from typing import Any

LIST_CAPS: dict[str, int] = {"skills": 200, "projects": 100, "positions": 100}
"""Caps of lists by the key that holds them."""
OTHER_LIST_CAP = 50
"""Cap of any other list (and of a list inside a list)."""
STRING_CAP = 4000
"""Characters kept of any string."""
MAX_RESULT_BYTES = 900_000
"""The answer and the stored result stay under this (contract 2.1)."""
MAX_DEPTH = 32
"""Deeper values are dropped (``None``); results of the engine are about 5 deep."""
SOURCE_LIST_SCALE = 20
"""List caps of a source's own payload, as a multiple of the result's."""
SAFE_INT = 2**53
"""Integers are clamped to +-this (JSON clients read numbers as doubles; Firestore has int64)."""

# Tightening steps when the capped result is still too big: (string cap, list scale).
_STEPS: tuple[tuple[int, float], ...] = (
    (STRING_CAP, 1.0),
    (1000, 1.0),
    (500, 0.5),
    (200, 0.25),
    (100, 0.1),
    (50, 0.05),
    (20, 0.02),
)


def compact_json(data: Any) -> str:
    """``data`` as compact JSON with non-ASCII escaped, the way the service stores it."""
    return json.dumps(data, separators=(",", ":"), default=str)


def json_size(data: Any) -> int:
    """Bytes of ``data`` as compact JSON with non-ASCII escaped, the way the service stores it
    (``compact_json``); never less than its UTF-8 size."""
    return len(compact_json(data).encode("utf-8"))


class _Cutter:
    def __init__(self, string_cap: int, scale: float) -> None:
        self.string_cap = string_cap
        self.scale = scale
        self.cut = False

    def list_cap(self, key: str) -> int:
        return max(1, int(LIST_CAPS.get(key, OTHER_LIST_CAP) * self.scale))

    def value(self, value: Any, key: str, depth: int) -> Any:
        """``value`` within the caps. The exact types a result is made of are tried first, by
        identity (this walk is on every answer's path); ``_other`` handles everything else
        (subclasses, tuples, unknown types) as the general rules say."""
        t = type(value)
        if t is str:
            return self._text(value)
        if t is dict:
            return self._map(value, depth)
        if t is list:
            return self._list(value, key, depth)
        if t is int:
            return max(-SAFE_INT, min(SAFE_INT, value))
        return self._other(value, key, depth)

    def _other(self, value: Any, key: str, depth: int) -> Any:
        if isinstance(value, str):
            return self._text(value)
        if isinstance(value, bool) or value is None:
            return value
        if isinstance(value, int):
            return max(-SAFE_INT, min(SAFE_INT, value))
        if isinstance(value, float):
            return value if math.isfinite(value) else None
        if isinstance(value, dict):
            return self._map(value, depth)
        if isinstance(value, list | tuple):
            return self._list(value, key, depth)
        if depth >= MAX_DEPTH:
            self.cut = True
            return None
        return self.value(str(value), key, depth)

    def _text(self, value: str) -> str:
        if len(value) > self.string_cap:
            self.cut = True
            return value[: self.string_cap]
        return value

    def _map(self, value: dict[Any, Any], depth: int) -> dict[str, Any] | None:
        if depth >= MAX_DEPTH:
            self.cut = True
            return None
        inner = depth + 1
        out = {}
        for k, v in value.items():
            name = k if type(k) is str else str(k)
            out[name] = self.value(v, name, inner)
        return out

    def _list(self, value: list[Any] | tuple[Any, ...], key: str, depth: int) -> list[Any] | None:
        if depth >= MAX_DEPTH:
            self.cut = True
            return None
        cap = self.list_cap(key)
        if len(value) > cap:
            self.cut = True
        # A list inside a list is an "other" list.
        return [self.value(v, "", depth + 1) for v in value[:cap]]


def bound_result(
    data: dict[str, Any], *, max_bytes: int = MAX_RESULT_BYTES, list_scale: float = 1.0
) -> tuple[dict[str, Any], bool]:
    """``(bounded copy of data, whether anything was cut)``.

    Also True when a source's section already says ``"truncated": true`` (the source cut its
    own payload, or GitHub had more repository pages than were read)."""
    out, cut, _text = bound_result_json(data, max_bytes=max_bytes, list_scale=list_scale)
    return out, cut


def bound_result_json(
    data: dict[str, Any], *, max_bytes: int = MAX_RESULT_BYTES, list_scale: float = 1.0
) -> tuple[dict[str, Any], bool, str]:
    """``bound_result`` and the bounded copy's ``compact_json``, which measuring its size
    produced (a caller that stores the JSON need not encode it again)."""
    already = any(isinstance(v, dict) and v.get("truncated") is True for v in data.values())
    out: dict[str, Any] = {}
    cut = False
    text = ""
    for string_cap, scale in _STEPS:
        cutter = _Cutter(string_cap, scale * list_scale)
        out = {str(k): cutter.value(v, str(k), 1) for k, v in data.items()}
        cut = cut or cutter.cut
        text = compact_json(out)
        if len(text.encode("utf-8")) <= max_bytes:
            break
        cut = True
    return out, cut or already, text


REDACTION_MARGIN = 256
"""Characters kept past ``STRING_CAP`` before redaction, so that an address straddling the cut
is still whole when it is redacted (the final bound cuts at ``STRING_CAP``)."""


def trim_for_redaction(payload: dict[str, Any]) -> dict[str, Any]:
    """A source's payload cut to its list caps and to ``STRING_CAP + REDACTION_MARGIN``
    characters a string, so redaction never works on text the result will not keep (a 1 MB
    run used to be redacted whole, then cut to 4,000 characters). ``truncated: true`` is
    added when something was cut."""
    cutter = _Cutter(STRING_CAP + REDACTION_MARGIN, SOURCE_LIST_SCALE)
    out = {str(k): cutter.value(v, str(k), 1) for k, v in payload.items()}
    if cutter.cut:
        out["truncated"] = True
    return out


def bound_payload(payload: dict[str, Any]) -> dict[str, Any]:
    """A source's payload within the bounds, with ``truncated: true`` added when it was cut."""
    out, cut = bound_result(payload, list_scale=SOURCE_LIST_SCALE)
    if cut:
        out["truncated"] = True
    return out
