"""A cache hit's data is shaped for its answer while the call's increment is in flight
(``usecases.shaping``), before the answer's budget is known. Shaping done at a larger budget
is used only where it is exactly what shaping at the answer's budget gives."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from common.vocab import Access
from enrichment.bounds import MAX_RESULT_BYTES
from usecases import shaping

# Strings long enough to meet the bounds' string caps (4000, then 1000 ... 20 characters) and
# lists long enough for a preview's trimming and the list caps' tighter steps.
strings = st.builds(lambda c, n: c * n, st.sampled_from('aé"x'), st.integers(0, 5000))
leaves = st.none() | st.booleans() | st.integers(-(2**60), 2**60) | strings
values = st.recursive(
    leaves,
    lambda children: (
        st.lists(children, max_size=12)
        | st.dictionaries(st.sampled_from(["name", "url", "items", "a"]), children, max_size=4)
    ),
    max_leaves=30,
)
datas = st.dictionaries(
    st.sampled_from(["github", "skills", "projects", "positions", "website", "other"]),
    values,
    max_size=5,
)


def _same(a: shaping.Shaped, b: shaping.Shaped) -> bool:
    return (a.data, a.truncated, a.text) == (b.data, b.truncated, b.text)


@settings(max_examples=300, deadline=None)
@given(
    data=datas,
    access=st.sampled_from([Access.FULL, Access.PREVIEW]),
    budgets=st.lists(st.integers(2, 60_000), min_size=2, max_size=2),
)
def test_shaping_at_a_larger_budget_holds_where_it_says_it_does(
    data: dict[str, Any], access: Access, budgets: list[int]
) -> None:
    small, large = sorted(budgets)
    early = shaping.bounded(data, access, large)
    now = shaping.bounded(data, access, small)
    if shaping.holds(early, data, access, small):
        assert _same(early, now)
    # ``least`` is a size check that passed: shaping at that budget gives the same again.
    assert _same(shaping.bounded(data, access, max(early.least, 2)), early) or early.least > large


def test_a_result_of_ordinary_size_is_shaped_once_for_any_budget_an_answer_has() -> None:
    data = {"skills": [{"name": f"s{i}"} for i in range(30)], "github": {"login": "octo"}}
    for access in (Access.FULL, Access.PREVIEW):
        early = shaping.shape(data, access)
        assert shaping.holds(early, data, access, MAX_RESULT_BYTES - 2_000)
        assert _same(early, shaping.bounded(data, access, MAX_RESULT_BYTES - 2_000))
    # A preview keeps fewer skills than the full answer: shaped for one, not used for the other.
    full, preview = shaping.shape(data, Access.FULL), shaping.shape(data, Access.PREVIEW)
    assert len(preview.data["skills"]) < len(full.data["skills"]) == 30
    assert not shaping.holds(full, data, Access.PREVIEW, MAX_RESULT_BYTES)


def test_shaping_is_not_used_for_other_data_or_a_budget_it_does_not_fit() -> None:
    data = {"other": ["x" * 3000 for _ in range(20)]}  # about 60 KB of JSON
    early = shaping.shape(data, Access.FULL)
    assert not early.truncated and early.least > 60_000
    assert not shaping.holds(early, dict(data), Access.FULL, MAX_RESULT_BYTES)  # a copy
    assert not shaping.holds(early, data, Access.FULL, 20_000)
    cut = shaping.bounded(data, Access.FULL, 20_000)
    assert cut.truncated and len(cut.text) <= 20_000 and not _same(cut, early)


def test_a_preview_whose_locks_outweigh_its_cuts_is_not_used_below_its_own_size() -> None:
    # Each map loses one small item and gains ``"locked":true``: the preview's JSON is longer
    # than the bounded data's, so a budget between the two has the answer cut again.
    data = {"other": {f"k{i}": {"items": [0, 0, 0, 0]} for i in range(40)}}
    early = shaping.shape(data, Access.PREVIEW)
    full_size = len(shaping.bounded(data, Access.FULL, MAX_RESULT_BYTES).text)
    assert full_size < len(early.text) == early.least
    between = full_size + (early.least - full_size) // 2
    assert not shaping.holds(early, data, Access.PREVIEW, between)
    assert shaping.bounded(data, Access.PREVIEW, between).truncated and not early.truncated
