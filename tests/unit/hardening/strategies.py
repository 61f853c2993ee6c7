"""What the callable protocol can deliver as ``data``, and the checks every parser and use case
must pass on it (contract 2.1: a parsed request or ``invalid-argument`` naming the field, never
anything else). Shared by the fast profile (``test_total_parsing.py``, in ``make test``) and the
long one (``tests/fuzz/test_requests_fuzz.py``, ``HYPOTHESIS_PROFILE=fuzz``).

``data`` is whatever ``json.loads`` makes of the body: ``None``, booleans, integers of up to
4,300 digits, floats including ``NaN`` and ``Infinity``, strings holding any code point (a
``\\ud800`` escape gives a lone surrogate), lists and objects nested as deep as the parser's
recursion allows (about 1,000 levels).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

from hypothesis import strategies as st

from common.errors import GatingError, Internal, InvalidArgument
from common.settings import load_settings
from common.vocab import SOURCES
from stores.memory import MemoryStore
from tests.support.clock import FakeClock
from tests.support.doubles import StaticEngine, seed_user, set_config
from usecases.app import App
from usecases.context import Caller

OWNER = "alice"
CV = "cv-alice"

# ------------------------------------------------------------------------------ strategies

any_text = st.text(st.characters(codec=None, exclude_categories=()), max_size=300)
"""Every Unicode category, lone surrogates included."""
huge_text = st.builds(
    lambda ch, n: ch * n,
    st.characters(codec=None, exclude_categories=()),
    st.integers(0, 1_200_000),
)
"""One character repeated up to 1.2 million times (past every size bound)."""
tricky_text = st.sampled_from(
    [
        "http://[",
        "http://]",
        "https://[::1",
        "http://a\uff03b/",  # FULLWIDTH NUMBER SIGN: NFKC turns it into '#'
        "http://ex\u2100ample.com/",  # ACCOUNT OF: NFKC gives 'a/c'
        "http://\ud800.example/",
        "http://exa mple.com",
        "http://" + "a" * 64 + ".com/",  # label too long for IDNA
        "http://a..b/",
        "http://user:pw@example.com/",
        "http://example.com:99999/",
        "http://example.com:port/",
        "https://xn--/",
        "https://\u0000/",
        "https://example.com/\ud800",
        "javascript:alert(1)",
        "\ud800",
        "\udfff\ud800",
        "a@b.example",
        "",
    ]
)
any_string = st.one_of(any_text, tricky_text, huge_text)
huge_int = st.integers(min_value=1, max_value=4000).map(lambda n: int("9" * n))
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    huge_int,
    huge_int.map(lambda i: -i),
    st.floats(allow_nan=True, allow_infinity=True),
    any_string,
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(any_text, inner, max_size=5),
    max_leaves=25,
)


def _nest(value: Any, depth: int, as_map: bool) -> Any:
    for _ in range(depth):
        value = {"a": value} if as_map else [value]
    return value


deep_values = st.builds(_nest, scalars, st.integers(0, 990), st.booleans())
"""Lists or objects nested up to 990 levels (what ``json.loads`` still parses)."""
arbitrary = st.one_of(json_values, deep_values)


def _field(valid: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """A field's value: often valid (so later checks run), else anything at all."""
    return st.one_of(valid, valid, arbitrary)


_sources = st.lists(st.sampled_from(SOURCES), min_size=1, max_size=5)
_linkedin = st.fixed_dictionaries(
    {"export": st.dictionaries(st.one_of(st.just("Profile.csv"), any_text), any_string, max_size=3)}
)
enrich_requests = st.fixed_dictionaries(
    {"cvId": _field(st.just(CV))},
    optional={
        "mode": _field(st.sampled_from(["full", "preview"])),
        "sources": _field(_sources),
        "github": _field(st.sampled_from(["octocat", "a-b"])) | any_string,
        "website": _field(st.just("https://ada.example/")) | any_string,
        "linkedin": _field(_linkedin),
        "name": _field(st.just("Ada Lovelace")) | any_string,
        "options": _field(
            st.fixed_dictionaries(
                {},
                optional={
                    "forceRefresh": _field(st.booleans()),
                    "timeoutMs": _field(st.integers(1000, 30000)) | st.floats(),
                },
            )
        ),
        "idempotencyKey": _field(st.just("key-0001")) | any_string,
        "extra": arbitrary,
    },
)
track_requests = st.fixed_dictionaries(
    {"event": _field(st.sampled_from(["gate_shown", "upgrade_clicked"]))},
    optional={
        "cvId": _field(st.just(CV)),
        "source": _field(st.sampled_from(SOURCES)),
        "metadata": _field(st.dictionaries(st.text(max_size=5), st.text(max_size=10))),
        "userId": arbitrary,
    },
)
stats_requests = st.fixed_dictionaries({}, optional={"userId": _field(st.just(OWNER))})
analytics_requests = st.fixed_dictionaries(
    {
        "startDate": _field(st.just("2026-11-01")),
        "endDate": _field(st.sampled_from(["2026-11-02", "2026-11-20"])),
    },
    optional={
        "granularity": _field(st.sampled_from(["hour", "day"])),
        "sources": _field(_sources),
    },
)
REQUESTS: dict[str, st.SearchStrategy[Any]] = {
    "enrich": enrich_requests,
    "track": track_requests,
    "stats": stats_requests,
    "analytics": analytics_requests,
}
"""Per callable: request-shaped values (known fields, valid or not) and arbitrary JSON."""

# ---------------------------------------------------------------------------------- checks


def storable(value: Any, where: str = "request") -> None:
    """Every string of a parsed request encodes as UTF-8 (Firestore and the logs need it)."""
    if isinstance(value, str):
        value.encode("utf-8")
    elif isinstance(value, Mapping):
        for k, v in value.items():
            storable(k, where)
            storable(v, where)
    elif isinstance(value, list | tuple):
        for v in value:
            storable(v, where)
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        for f in dataclasses.fields(value):
            storable(getattr(value, f.name), f"{where}.{f.name}")


def check_parser(parse: Callable[[Any], Any], raw: Any) -> None:
    """``parse(raw)`` gives a storable request or ``InvalidArgument`` naming a field."""
    refused: InvalidArgument | None = None
    try:
        parsed = parse(raw)
    except InvalidArgument as err:
        refused = err
    if refused is None:
        storable(parsed)
        return
    assert refused.field and isinstance(refused.field, str), refused.field
    assert refused.message.startswith(refused.field), refused.message
    refused.message.encode("utf-8")


def make_app() -> App:
    """A fresh app over an in-memory store: premium owner with a CV, every gate on."""
    store = MemoryStore()
    seed_user(store, OWNER, premium=True)
    set_config(store)
    return App(load_settings({}), store, StaticEngine(), now=FakeClock(), rng=lambda n: 0)


def check_use_case(run: Callable[[App, Caller, Any], Any], raw: Any, admin: bool = False) -> None:
    """The use case answers or refuses with a domain error, and never with ``Internal``."""
    app = make_app()
    try:
        answer = run(app, Caller(OWNER, admin=admin, ip="203.0.113.9"), raw)
    except Internal as err:  # a crash inside the use case, mapped by the hook
        raise AssertionError(f"internal error for {raw!r:.300}") from err
    except GatingError:
        return
    assert isinstance(answer, dict)
