"""A result's data shaped for an enrichment answer (``usecases.answer``): bounded to what the
answer and its result document leave of the 900 KB, and trimmed for a preview. A cache hit's
data is shaped while the call's increment is in flight (``usecases.enrich``), before the budget
is known; ``holds`` says when that shaping is exactly what shaping at the budget would give."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

from common.memo import IdentityMemo
from common.vocab import Access
from enrichment.bounds import MAX_RESULT_BYTES, bound_result_json, compact_json
from gating.preview import trim_preview

SHAPED_CHARS = 1_000_000
"""Answer JSON characters of shaped data an instance keeps at most (``App.shaped``)."""


class Shaped(NamedTuple):
    """A result's data as an answer of ``access`` shows it (``bounded``): bounded, trimmed
    for a preview, and its JSON. ``least``: the longest JSON a size check passed on while
    shaping; at any budget of at least ``least`` every check answers as it did, so shaping
    gives exactly this again (a check that failed fails at any smaller budget too)."""

    of: Mapping[str, Any]
    access: Access
    data: dict[str, Any]
    truncated: bool
    text: str
    least: int


Kept = IdentityMemo[Shaped]
"""Shapings by the data object shaped and the access (``shape``)."""


def shape(data: Mapping[str, Any], access: Access, kept: Kept | None = None) -> Shaped:
    """``data`` shaped for an answer of ``access`` before the answer's budget is known (at the
    largest budget any answer has): a cache hit's, while its increment is in flight. With
    ``kept`` (the instance's, ``App.shaped``), the shaping of this very data object for this
    access is done once and handed out again: a warm call on held cache entries is given the
    same merged data as the call before it (``Engine.from_cache``). Only an uncut shaping is
    kept: its JSON's length is then what the data weighs."""
    if kept is not None:
        found = kept.get((data,), access)
        if found is not None:
            return found
    shaped = bounded(data, access, MAX_RESULT_BYTES - 1)
    if kept is not None and not shaped.truncated:
        kept.put((data,), access, shaped, len(shaped.text))
    return shaped


def at(shaped: Shaped | None, data: Mapping[str, Any], access: Access, budget: int) -> Shaped:
    """``data`` shaped for an answer of ``access`` at ``budget``: ``shaped`` (done early, by
    ``shape``) where it ``holds``, else shaped now."""
    if shaped is not None and holds(shaped, data, access, budget):
        return shaped
    return bounded(data, access, budget)


def holds(shaped: Shaped, data: Mapping[str, Any], access: Access, budget: int) -> bool:
    """Whether ``shaped`` is what shaping ``data`` for ``access`` at ``budget`` gives."""
    return shaped.of is data and shaped.access is access and shaped.least <= budget


def bounded(data: Mapping[str, Any], access: Access, budget: int) -> Shaped:
    """``data`` bounded to ``budget`` bytes of JSON, trimmed for a preview. A preview's locks
    could outweigh what it cut: it is bounded again then. The JSON is ASCII (``compact_json``):
    its length is its size."""
    out, truncated, text = bound_result_json(dict(data), max_bytes=budget)
    least = len(text)
    if access is Access.PREVIEW:
        out = trim_preview(out)
        text = compact_json(out)
        if len(text) > budget:
            out, cut, text = bound_result_json(out, max_bytes=budget)
            truncated = truncated or cut
        least = max(least, len(text))
    return Shaped(data, access, out, truncated, text, least)
