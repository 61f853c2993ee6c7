"""``bounds._Cutter`` tries the exact types of a result first, by identity (it walks every
answer); this checks it against the rules written plainly (the general ``isinstance`` walk it
replaced), on arbitrary values: subclasses (string and integer enums, a dict subclass),
tuples, huge integers, NaN and infinities, unknown types, deep nesting and long lists."""

from __future__ import annotations

import math
from enum import IntEnum, StrEnum
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from enrichment.bounds import MAX_DEPTH, SAFE_INT, _Cutter


class Colour(StrEnum):
    RED = "red"


class Level(IntEnum):
    HIGH = 2**60


class Tagged(dict):  # type: ignore[type-arg]
    pass


class Opaque:
    def __str__(self) -> str:
        return "opaque" * 3


def reference(cutter: _Cutter, value: Any, key: str, depth: int) -> Any:
    if isinstance(value, str):
        if len(value) > cutter.string_cap:
            cutter.cut = True
            return value[: cutter.string_cap]
        return value
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        return max(-SAFE_INT, min(SAFE_INT, value))
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if depth >= MAX_DEPTH:
        cutter.cut = True
        return None
    if isinstance(value, dict):
        return {str(k): reference(cutter, v, str(k), depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple):
        cap = cutter.list_cap(key)
        if len(value) > cap:
            cutter.cut = True
        return [reference(cutter, v, "", depth + 1) for v in value[:cap]]
    return reference(cutter, str(value), key, depth)


scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from([Colour.RED, Level.HIGH, Opaque(), 10**40]),
)
keys = st.one_of(st.sampled_from(["skills", "projects", "positions", "x"]), st.text(max_size=4))


def containers(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(
        st.lists(children, max_size=8),
        st.lists(children, max_size=8).map(tuple),
        st.dictionaries(keys, children, max_size=5),
        st.dictionaries(st.integers(0, 3), children, max_size=3),
        st.dictionaries(keys, children, max_size=3).map(Tagged),
    )


values = st.recursive(scalars, containers, max_leaves=40)


@settings(max_examples=400, deadline=None)
@given(
    data=st.dictionaries(keys, values, max_size=4),
    cap=st.sampled_from([3, 5, 4000]),
    scale=st.sampled_from([0.05, 0.1, 1.0]),
    depth=st.sampled_from([1, MAX_DEPTH - 3, MAX_DEPTH]),
)
def test_the_cutter_follows_the_plain_rules(
    data: dict[str, Any], cap: int, scale: float, depth: int
) -> None:
    fast, plain = _Cutter(cap, scale), _Cutter(cap, scale)
    got = {str(k): fast.value(v, str(k), depth) for k, v in data.items()}
    want = {str(k): reference(plain, v, str(k), depth) for k, v in data.items()}
    assert repr(got) == repr(want)  # repr: NaN is gone either way, enum members show
    assert fast.cut is plain.cut
