"""Logs carry no request content (contract 5; issue 8, "Why" 4).

A distinctive e-mail address, phone number and token are seeded into every request field and
every upstream answer (the loopback fakes of GitHub, a website and Brave serve copies of the
fixtures with the canaries in them). All four callables then run on an App with the real engine
(a cache through the same store) through success, refusal and crash paths. Every log line
(``common.logs`` on a ``StringIO``, the engine's ``enrichment.*`` loggers included) and every
stored document are searched: the canaries may appear only in a user's own enrichment result
(``cvs/{cvId}/externalData/*`` of that user's CV).
"""

from __future__ import annotations

import io
import json
import logging
import random
import re
import shutil
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from common import logs
from common.errors import GatingError
from common.settings import EnrichmentSettings, load_settings
from enrichment.cache import StoreCacheStore
from enrichment.engine import Engine
from scripts.devkit.fakes import FIXTURES, fake_brave, fake_github, fake_website
from stores.base import Fields, Write
from stores.errors import StoreError
from stores.memory import MemoryStore
from tests.support.clock import FakeClock
from tests.support.doubles import StaticEngine, seed_user, set_config
from usecases import analytics, enrich, stats, track
from usecases.app import App
from usecases.context import Caller

EMAIL = "mara.quillfeather@pii-canary.example"
PHONE = "+44 20 7946 0321"
TOKEN = "tokXv9RtCanaryQ4w8"
CANARIES = {
    "e-mail": re.compile(r"quillfeather|pii-canary", re.I),
    "phone": re.compile(r"7946\D{0,3}0321"),
    "token": re.compile(r"xv9rtcanary", re.I),
}
_FIXTURE_PII = {
    "ada.lovelace@example.org": EMAIL,
    "ada@example.org": EMAIL,
    "octocat@example.com": EMAIL,
    "octo@example.com": EMAIL,
    "+44 20 7946 0958": PHONE,
    "+442079460958": PHONE.replace(" ", ""),
    "+1 415 555 0100": PHONE,
    "Ada Lovelace": f"Ada Lovelace {TOKEN}",
    "The Octocat": f"The Octocat {TOKEN}",
    "My first repository on GitHub!": f"Mine {EMAIL} {PHONE} {TOKEN}",
}


# ---------------------------------------------------------------------------- upstream


def _canary_fixtures(root: Path) -> Path:
    """A copy of the fixtures with every known piece of PII replaced by a canary."""
    out = root / "fixtures"
    shutil.copytree(FIXTURES, out)
    for path in out.rglob("*"):
        if path.is_file():
            text = path.read_text("utf-8", errors="surrogateescape")
            for old, new in _FIXTURE_PII.items():
                text = text.replace(old, new)
            path.write_text(text, "utf-8", errors="surrogateescape")
    login = TOKEN.lower()  # the request's GitHub user is the token itself
    for kind in ("users", "repos"):
        shutil.copy(out / "github" / kind / "octocat.json", out / "github" / kind / f"{login}.json")
    return out


@dataclass
class Upstream:
    settings: EnrichmentSettings
    website: str
    linkedin: dict[str, str]


@pytest.fixture(scope="module")
def upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Upstream]:
    root = _canary_fixtures(tmp_path_factory.mktemp("pii"))
    linkedin = {p.name: p.read_text("utf-8") for p in (root / "linkedin" / "complete").iterdir()}
    with (
        fake_github(root / "github") as gh,
        fake_website(root / "website" / "portfolio") as site,
        fake_brave(root / "brave") as brave,
    ):
        settings = EnrichmentSettings(
            github_api_url=str(gh),
            web_search_url=str(brave),
            web_search_api_key="test-brave-key",
            allow_hosts=(gh.host_port, site.host_port, brave.host_port),
            retry_base_ms=5,
            retry_attempts=1,
        )
        yield Upstream(settings, str(site), linkedin)


# ----------------------------------------------------------------------------- capture


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    """Every log line of the test, as the structured handler writes it."""
    stream = io.StringIO()
    before = logs._handler
    root = logging.getLogger()
    level = root.level
    handler = logs.configure("DEBUG", stream=stream)
    yield stream
    root.removeHandler(handler)
    logs._handler = before
    if before is not None:
        root.addHandler(before)
    root.setLevel(level)


class FailingStore(MemoryStore):
    """A store that fails the way a careless backend would: with the data in the message."""

    def __init__(self, how: str) -> None:
        super().__init__()
        self.how = how

    def commit(self, writes: Sequence[Write]) -> None:
        # The cache's own writes go through: the engine's handling of a failing cache is the
        # test below; here, the gate's handling of a failing store.
        if self.how == "store" and not writes[0].path.startswith("external_data_cache/"):
            raise StoreError(f"commit refused: {[w.data for w in writes]!r}")
        super().commit(writes)

    def get_many(
        self, paths: Sequence[str], fields: Fields | None = None
    ) -> dict[str, dict[str, Any] | None]:
        if self.how == "crash":
            # An encoding error's message holds the whole input string (issue 8, "Why" 4).
            raise UnicodeEncodeError("utf-8", f"{EMAIL} {PHONE} {TOKEN}", 0, 1, "bad")
        return super().get_many(paths, fields)

    def query(self, collection: str, *args: Any, **kwargs: Any) -> list[tuple[str, dict[str, Any]]]:
        if self.how == "crash":
            raise UnicodeEncodeError("utf-8", f"{EMAIL} {PHONE} {TOKEN}", 0, 1, "bad")
        return super().query(collection, *args, **kwargs)


def _app(up: Upstream, store: MemoryStore) -> App:
    seed_user(store, "alice", premium=True)
    seed_user(store, "bob")
    set_config(store)
    clock = FakeClock()
    engine = Engine(up.settings, StoreCacheStore(store), now=clock, rng=random.Random(1))
    return App(load_settings({}), store, engine, now=clock, rng=lambda n: 0)


# ---------------------------------------------------------------------------- requests


def _enrich_request(up: Upstream, **over: Any) -> dict[str, Any]:
    linkedin = dict(up.linkedin)
    linkedin["Notes.csv"] = f"Note\n{EMAIL} {PHONE} {TOKEN}\n"
    req: dict[str, Any] = {
        "cvId": "cv-alice",
        "sources": ["github", "linkedin", "website", "web"],
        "github": TOKEN,
        "website": f"{up.website}/",
        "linkedin": {"export": linkedin},
        "name": f"Ada {EMAIL} {PHONE} {TOKEN}",
        "options": {"forceRefresh": True, "timeoutMs": 10000},
        "idempotencyKey": TOKEN,
    }
    req.update(over)
    return req


def _invalid_enrich_requests(up: Upstream) -> list[dict[str, Any]]:
    """The canaries in every field, in a form the parser refuses."""
    base = _enrich_request(up)
    return [
        {**base, "cvId": EMAIL},
        {**base, "mode": f"{EMAIL} {PHONE} {TOKEN}"},
        {**base, "sources": [EMAIL, PHONE, TOKEN]},
        {**base, "github": EMAIL},
        {**base, "website": f"mailto:{EMAIL}?p={PHONE}&t={TOKEN}"},
        {**base, "linkedin": {"export": {EMAIL: PHONE}}},
        {**base, "linkedin": {EMAIL: TOKEN}},
        {**base, "name": EMAIL * 50},
        {**base, "options": {"timeoutMs": TOKEN, "forceRefresh": EMAIL}},
        {**base, "options": {EMAIL: PHONE}},
        {**base, "idempotencyKey": EMAIL},
        {**base, EMAIL: TOKEN},
    ]


def _track_requests() -> list[dict[str, Any]]:
    metadata = {"email": EMAIL, "phone": PHONE, "token": TOKEN}
    good = {"event": "upgrade_clicked", "cvId": "cv-alice", "source": "github"}
    return [
        {**good, "metadata": metadata, "userId": TOKEN},
        {**good, "event": EMAIL},
        {**good, "source": PHONE},
        {**good, "cvId": EMAIL},
        {**good, "metadata": TOKEN},
        {**good, "metadata": {"x": EMAIL * 200}},
        {**good, TOKEN: EMAIL},
    ]


def _stats_requests() -> list[dict[str, Any]]:
    return [{"userId": TOKEN}, {"userId": EMAIL}, {PHONE: TOKEN}]


def _analytics_requests() -> list[dict[str, Any]]:
    good = {"startDate": "2026-11-20", "endDate": "2026-11-26"}
    return [
        good,
        {**good, "startDate": EMAIL},
        {**good, "granularity": PHONE},
        {**good, "sources": [TOKEN]},
        {**good, EMAIL: PHONE},
    ]


Run = Callable[[App, Caller, Any], dict[str, Any]]


def _calls(up: Upstream) -> list[tuple[Run, Caller, Any]]:
    alice, bob = Caller("alice", ip="198.51.100.7"), Caller("bob", ip="198.51.100.8")
    admin, nobody = Caller("root", admin=True), Caller(None)
    calls: list[tuple[Run, Caller, Any]] = [
        (enrich.run, alice, _enrich_request(up)),
        (enrich.run, bob, _enrich_request(up, cvId="cv-bob", mode="preview")),
        (enrich.run, bob, _enrich_request(up, cvId="cv-bob")),  # premium required
        (enrich.run, nobody, _enrich_request(up)),
        (enrich.run, alice, _enrich_request(up, cvId="cv-bob")),  # not the caller's CV
    ]
    calls += [(enrich.run, alice, r) for r in _invalid_enrich_requests(up)]
    calls += [(track.run, who, r) for r in _track_requests() for who in (alice, nobody)]
    calls += [(stats.run, who, r) for r in _stats_requests() for who in (alice, admin)]
    calls += [(analytics.run, who, r) for r in _analytics_requests() for who in (admin, alice)]
    calls += [(enrich.run, bob, _enrich_request(up, cvId="cv-bob", mode="preview"))] * 3
    return calls  # the last three: bob's free hourly limit runs out


# ------------------------------------------------------------------------------ checks


def _found(text: str, kinds: Sequence[str] = tuple(CANARIES)) -> list[str]:
    return [name for name in kinds if CANARIES[name].search(text)]


_OWN = re.compile(
    r"cvs/cv-(?P<uid>[a-z]+)/externalData/[^/]+|external_data_idempotency/(?P<key_uid>[a-z]+)_.*"
)
"""A user's own result, and the copy of the first answer a retry with the same
``idempotencyKey`` gets back (contract 2.1; kept one hour, read by nobody but that retry)."""


def _own(path: str, doc: dict[str, Any]) -> bool:
    m = _OWN.fullmatch(path)
    if m is None:
        return False
    uid = m.group("uid") or m.group("key_uid")
    return m.group("key_uid") is not None or doc.get("userId") == uid


def _log_leaks(log_text: str, *, httpx: bool = False) -> list[str]:
    """Lines holding a canary; the HTTP client's own request lines apart (their own test)."""
    lines = [
        line for line in log_text.splitlines() if ('"python_logger": "httpx"' in line) == httpx
    ]
    return [f"log line: {line[:300]}" for line in lines if _found(line)]


def _stored_leaks(store: MemoryStore) -> list[str]:
    """Canaries in stored documents other than the user's own result. The source cache holds
    upstream answers shared by every user: text that only looks like a token (a name) cannot be
    told from any other text there, but e-mail addresses and phone numbers must be redacted."""
    out = []
    for path, doc in store.docs.items():
        if _own(path, doc):
            continue
        kinds = ("e-mail", "phone") if path.startswith("external_data_cache/") else tuple(CANARIES)
        text = json.dumps(doc, default=str, ensure_ascii=False)
        if found := _found(text, kinds):
            out.append(f"stored {path}: {found}: {text[:400]}")
    return out


def _leaks(store: MemoryStore, log_text: str) -> list[str]:
    return _log_leaks(log_text) + _stored_leaks(store)


def _run_all(app: App, calls: list[tuple[Run, Caller, Any]]) -> dict[str, int]:
    answers = {"answered": 0, "refused": 0}
    for run, caller, raw in calls:
        try:
            run(app, caller, raw)
            answers["answered"] += 1
        except GatingError:
            answers["refused"] += 1
    return answers


def test_the_canaries_reach_the_result_and_nothing_else(
    upstream: Upstream, captured: io.StringIO
) -> None:
    store = MemoryStore()
    app = _app(upstream, store)
    answers = _run_all(app, _calls(upstream))
    assert answers["answered"] >= 5 and answers["refused"] >= 30, answers
    result = store.docs["cvs/cv-alice/externalData/latest"]
    assert result["status"] in ("success", "partial"), result.get("sources")
    assert captured.getvalue().count("\n") > 40  # the calls did log
    assert not _leaks(store, captured.getvalue()), "\n".join(_leaks(store, captured.getvalue()))
    assert _found(json.dumps(result, default=str)), "the canaries never reached the result"


def test_a_website_url_carrying_pii_is_not_stored_outside_the_result(
    upstream: Upstream, captured: io.StringIO
) -> None:
    store = MemoryStore()
    website = f"{upstream.website}/?e={EMAIL}&p={PHONE}"
    enrich.run(
        _app(upstream, store),
        Caller("alice"),
        _enrich_request(upstream, sources=["website"], website=website),
    )
    assert not _leaks(store, captured.getvalue()), "\n".join(_leaks(store, captured.getvalue()))


def test_the_http_clients_request_lines_carry_no_request_content(
    upstream: Upstream, captured: io.StringIO
) -> None:
    store = MemoryStore()
    enrich.run(_app(upstream, store), Caller("alice"), _enrich_request(upstream))
    assert not _log_leaks(captured.getvalue(), httpx=True), _log_leaks(
        captured.getvalue(), httpx=True
    )


@pytest.mark.parametrize("how", ["store", "crash"])
def test_failures_whose_messages_echo_the_input_log_no_content(
    upstream: Upstream, captured: io.StringIO, how: str
) -> None:
    """A store failing with the data in its message; an encoding error holding the input."""
    store = FailingStore("none")
    app = _app(upstream, store)
    store.how = how
    calls: list[tuple[Run, Caller, Any]] = [
        (enrich.run, Caller("alice"), _enrich_request(upstream))
    ]
    calls += [(track.run, Caller("alice"), _track_requests()[0])]
    calls += [(stats.run, Caller("alice"), {"userId": "alice"})]
    calls += [(analytics.run, Caller("root", admin=True), _analytics_requests()[0])]
    answers = _run_all(app, calls)
    if how == "crash":  # every callable answers "internal" with a reference
        assert answers == {"answered": 0, "refused": 4}, answers
    else:  # a failed recording is logged with the record; the answer stands
        assert captured.getvalue().count("recording failed") == 4
    assert "ERROR" in captured.getvalue()
    assert not _leaks(store, captured.getvalue()), "\n".join(_leaks(store, captured.getvalue()))


def test_an_engine_component_failing_with_content_in_its_message_logs_no_content(
    upstream: Upstream, captured: io.StringIO
) -> None:
    """The engine's own crash handling: a cache write that fails echoing the payload."""

    class EchoingCache(StoreCacheStore):
        def put(self, key: str, entry: Any) -> None:
            raise ValueError(f"cannot cache {entry.payload!r}")

    store = MemoryStore()
    app = _app(upstream, store)
    app._engine = Engine(upstream.settings, EchoingCache(store), now=app.now, rng=random.Random(1))
    enrich.run(app, Caller("alice"), _enrich_request(upstream))
    assert "cache write failed" in captured.getvalue()
    assert not _leaks(store, captured.getvalue()), "\n".join(_leaks(store, captured.getvalue()))


NAMED = "maraQuill.pii-canary.example"
"""A key a client chose that the error message may show back (letters, dots, no @ or digits)."""


@pytest.mark.parametrize(
    "request_body",
    [
        {"cvId": "cv-alice", NAMED: 1},
        {"cvId": "cv-alice", "options": {NAMED: 1}},
        {"cvId": "cv-alice", "linkedin": {"export": {NAMED: 3}}},
        {"cvId": "cv-alice", "linkedin": {"export": {NAMED: "\ud800"}}},
    ],
    ids=["unknown-field", "unknown-option", "file-not-text", "file-not-unicode"],
)
def test_a_field_name_the_client_chose_reaches_neither_the_audit_nor_the_logs(
    captured: io.StringIO, request_body: dict[str, Any]
) -> None:
    # The answer may name it back to the caller; the audit entry's reason and the log lines are
    # records, which never carry request content (contract 5).
    store = MemoryStore()
    seed_user(store, "alice")
    set_config(store)
    app = App(load_settings({}), store, StaticEngine(), now=FakeClock())
    with pytest.raises(GatingError) as err:
        enrich.run(app, Caller("alice"), request_body)
    assert err.value.code.value == "invalid-argument"
    audits = [d for p, d in store.docs.items() if p.startswith("external_data_security_audit/")]
    assert [a["type"] for a in audits] == ["invalid_request"]
    assert "canary" not in json.dumps(audits, default=str).lower()
    assert "canary" not in captured.getvalue().lower() and "invalid" in captured.getvalue()
