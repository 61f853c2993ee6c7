"""Run by ``test_entrypoints.py`` in a subprocess (``main`` reads its settings at import, so each
environment needs a fresh interpreter): imports ``main``, puts an App over a ``MemoryStore``
behind it, sends callable requests through the real SDK entry (Flask requests, as
functions-framework passes them) and prints what happened as one JSON object.

``python -m tests.unit.hardening.entry_probe SCENARIO`` with SCENARIO ``refusals`` (the SDK's own
ID-token check, untouched) or ``app_check`` (Google's token services replaced by a stand-in that
knows a fixed set of tokens: there is no App Check emulator, and the thing under test is what
the entry does with the SDK's answers, not the verification).
"""

from __future__ import annotations

import io
import json
import sys
from typing import Any

import flask

CALLABLES = (
    "enrichCVWithExternalData",
    "trackExternalDataUsage",
    "getUserExternalDataUsageStats",
    "getExternalDataAnalytics",
    "exportMyExternalData",
    "deleteMyExternalData",
)
XFF = "203.0.113.1, 198.51.100.7"
"""A client-written first entry, then the one the platform's front end appended."""


def _fake_token_services() -> set[str]:
    """ID tokens ``id-<uid>``; App Check tokens ``app-*``; returns the consumed set."""
    from firebase_admin import app_check, auth

    consumed: set[str] = set()

    def verify_id_token(token: str, *args: Any, **kwargs: Any) -> dict[str, Any]:
        if not token.startswith("id-"):
            raise ValueError("not a token")
        return {"uid": token[3:], "sub": token[3:]}

    def verify_token(token: str, app: Any = None, consume: bool = False) -> dict[str, Any]:
        if not token.startswith("app-"):
            raise ValueError("not an App Check token")
        claims: dict[str, Any] = {"sub": "1:123:web:abc", "app_id": "1:123:web:abc"}
        if consume:
            claims["already_consumed"] = token in consumed
            consumed.add(token)
        return claims

    auth.verify_id_token = verify_id_token
    app_check.verify_token = verify_token
    return consumed


def main(scenario: str) -> None:
    faked = ("app_check", "app_check_envelope", "envelope", "cold_start_crash", "oversized", "deep")
    if scenario in faked:
        _fake_token_services()
    import main as entry
    from common.settings import load_settings
    from stores.memory import MemoryStore
    from tests.support.aggregates import buckets
    from tests.support.doubles import StaticEngine, seed_user, set_config
    from usecases.app import App

    store = MemoryStore()
    seed_user(store, "alice", premium=True)
    set_config(store)
    engine = StaticEngine()
    entry._app = App(load_settings({}), store, engine, rng=lambda n: 0)
    web = flask.Flask("probe")

    def send(
        fn: str,
        data: Any = None,
        body: str | None = None,
        method: str = "POST",
        chunked: bool = False,
        **headers: str,
    ) -> Any:
        raw = body if body is not None else json.dumps({"data": data})
        hdrs = {"Content-Type": "application/json", "X-Forwarded-For": XFF, **headers}
        # chunked: no Content-Length, the server says where the body ends (as gunicorn does)
        sent = {"input_stream": io.BytesIO(raw.encode())} if chunked else {"data": raw}
        terminated = {"wsgi.input_terminated": True} if chunked else {}
        with web.test_request_context(
            "/", method=method, headers=hdrs, environ_overrides=terminated, **sent
        ):
            request = flask.request._get_current_object()  # type: ignore[attr-defined]
            response = getattr(entry, fn)(request)
            read = getattr(request, "_cached_data", None) is not None  # werkzeug's get_data
        return {
            "status": response.status_code,
            "body": response.get_json(silent=True),
            "read": read,
        }

    if scenario == "cold_start_crash":
        import stores.firestore

        def broken(project: str) -> Any:
            raise RuntimeError("credentials of mara.quill@pii-canary.example refused")

        stores.firestore.make_client = broken  # type: ignore[assignment]
        entry._app = None
        answer = send(
            "enrichCVWithExternalData", {"cvId": "cv-alice"}, Authorization="Bearer id-alice"
        )
        print(json.dumps({"calls": {"crash": answer}, "audits": []}))
        return
    calls = _calls(scenario, send)
    audits = [d for p, d in store.docs.items() if p.startswith("external_data_security_audit/")]
    sec = [d.get("sec", {}) for d in buckets(store, "m")]
    out = {
        "calls": calls,
        "audits": [{k: str(v) for k, v in a.items()} for a in audits],
        "unauthenticated": sum(int(s.get("unauthenticated", 0)) for s in sec),
        "engine_calls": len(engine.calls),
        "policies": {f: getattr(entry, f).__app_check__._asdict() for f in CALLABLES},
        "endpoints": {
            f: sorted(
                k for k, v in vars(getattr(entry, f).__firebase_endpoint__).items() if v is not None
            )
            for f in CALLABLES
        },
        "json_provider": type(web.json).__name__,
        "ip_hash": entry.app().recorder.hash("198.51.100.7"),
        "client_ip_hash": entry.app().recorder.hash("203.0.113.1"),
    }
    print(json.dumps(out))


def _calls(scenario: str, send: Any) -> dict[str, Any]:
    if scenario == "refusals":
        garbage = "Bearer not-a-real-id-token"
        return {
            "garbage": {f: send(f, {"cvId": "cv-alice"}, Authorization=garbage) for f in CALLABLES},
            "no_token": send("trackExternalDataUsage", {"event": "gate_shown"}),
        }
    alice = {"Authorization": "Bearer id-alice"}
    if scenario == "envelope":
        return _envelope_calls(send, alice)
    if scenario == "oversized":
        return _oversized_calls(send, alice)
    if scenario == "deep":
        deep = "[" * 5000 + "]" * 5000  # past the JSON parser's recursion; the JS SDK sends it
        return {
            "name": send(
                "enrichCVWithExternalData",
                body=f'{{"data": {{"cvId": "cv-alice", "name": {deep}}}}}',
                **alice,
            ),
            "options": send(
                "enrichCVWithExternalData",
                body=f'{{"data": {{"cvId": "cv-alice", "options": {{"timeoutMs": {deep}}}}}}}',
                **alice,
            ),
            "data": send("trackExternalDataUsage", body=f'{{"data": {deep}}}', **alice),
            "metadata/no_token": send(
                "trackExternalDataUsage",
                body=f'{{"data": {{"event": "gate_shown", "metadata": {deep}}}}}',
            ),
        }
    if scenario == "app_check_envelope":
        bad = json.dumps({"cvId": "cv-alice"})  # no `data`: the SDK answers before any token
        return {
            "no_app_token": send("enrichCVWithExternalData", body=bad, **alice),
            "forged_app_token": send(
                "enrichCVWithExternalData", body=bad, **alice, **{"X-Firebase-AppCheck": "forged"}
            ),
            "no_id_token": send(
                "enrichCVWithExternalData", body=bad, **{"X-Firebase-AppCheck": "app-1"}
            ),
        }
    enrich = {"cvId": "cv-alice", "sources": ["github"]}
    return {
        "no_app_token": send("enrichCVWithExternalData", enrich, **alice),
        "bad_app_token": send(
            "enrichCVWithExternalData", enrich, **alice, **{"X-Firebase-AppCheck": "forged"}
        ),
        "first": send(
            "enrichCVWithExternalData", enrich, **alice, **{"X-Firebase-AppCheck": "app-1"}
        ),
        "replay": send(
            "enrichCVWithExternalData", enrich, **alice, **{"X-Firebase-AppCheck": "app-1"}
        ),
        "track_1": send(
            "trackExternalDataUsage",
            {"event": "gate_shown"},
            **alice,
            **{"X-Firebase-AppCheck": "app-2"},
        ),
        "track_2": send(
            "trackExternalDataUsage",
            {"event": "gate_shown"},
            **alice,
            **{"X-Firebase-AppCheck": "app-2"},
        ),
    }


MARKER = "leak.marker@example.com"
"""Request content that must reach no log line (contract 5)."""


def _envelope_calls(send: Any, alice: dict[str, str]) -> dict[str, Any]:
    """Bodies that are not the callable protocol's ``{"data": ...}``, with and without a token."""
    bodies = {
        "not_json": '{"data": {',
        "huge_int": '{"data": ' + "9" * 5000 + "}",
        "no_data": json.dumps({"cvId": MARKER}),
        "extra_field": json.dumps({"data": {"event": "gate_shown"}, "userId": MARKER}),
        "a_list": json.dumps([MARKER]),
        "null": "null",
    }
    out: dict[str, Any] = {}
    for name, body in bodies.items():
        out[f"{name}/token"] = send("trackExternalDataUsage", body=body, **alice)
        out[f"{name}/no_token"] = send("trackExternalDataUsage", body=body)
    out["extra_field/bad_token"] = send(
        "enrichCVWithExternalData", body=bodies["extra_field"], Authorization="Bearer forged"
    )
    out["get/no_token"] = send("trackExternalDataUsage", body="", method="GET")
    out["text_plain/token"] = send(
        "getUserExternalDataUsageStats",
        body='{"data": {}}',
        **alice,
        **{"Content-Type": "text/plain"},
    )
    return out


def _oversized_calls(send: Any, alice: dict[str, str]) -> dict[str, Any]:
    """Bodies past what any valid request needs, each one a request the parser would accept
    (repeated sources are ignored, whitespace is JSON), and the largest valid export."""
    many = json.dumps({"data": {"cvId": "cv-alice", "sources": ["github"] * 900_000}})
    padded = '{"data": {"event": "gate_shown"}' + " " * 100_000 + "}"
    # 1 MB of export (contract 2.1), every byte a control character: 6 bytes of JSON each.
    export = {"Profile.csv": "\x01" * (1_000_000 - len("Profile.csv"))}
    largest = json.dumps({"data": {"cvId": "cv-alice", "linkedin": {"export": export}}})
    return {
        "enrich/token": send("enrichCVWithExternalData", body=many, **alice),
        "enrich/no_token": send("enrichCVWithExternalData", body=many),
        "track/token": send("trackExternalDataUsage", body=padded, **alice),
        "track/chunked": send("trackExternalDataUsage", body=padded, chunked=True, **alice),
        "largest_export": send("enrichCVWithExternalData", body=largest, **alice),
        "largest_export/no_token": send("enrichCVWithExternalData", body=largest),
        "sizes": {"many": len(many), "padded": len(padded), "largest": len(largest)},
    }


if __name__ == "__main__":
    main(sys.argv[1])
