"""The callable entrypoints' transport policy (issue 8): every refused token is audited, a body
that is not JSON is ``invalid-argument`` (never ``internal``), App Check is switchable.

``main`` reads its settings at import, so each environment runs in its own interpreter
(``entry_probe.py``), which sends requests through the real SDK entry (the Flask request
functions-framework passes) to an App over a ``MemoryStore``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[3]
CALLABLES = (
    "enrichCVWithExternalData",
    "trackExternalDataUsage",
    "getUserExternalDataUsageStats",
    "getExternalDataAnalytics",
    "exportMyExternalData",
    "deleteMyExternalData",
)


@cache
def probe(scenario: str, enforce: str | None = None) -> dict[str, Any]:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("EXTERNAL_DATA_", "FIRESTORE_"))
    }
    env.update(
        FUNCTIONS_EMULATOR="true",
        GCLOUD_PROJECT="demo-entry-probe",
        PYTHONPATH=f"{ROOT / 'functions'}{os.pathsep}{ROOT}",
    )
    if enforce is not None:
        env["EXTERNAL_DATA_ENFORCE_APP_CHECK"] = enforce
    done = subprocess.run(  # noqa: S603 - our own module, fixed arguments
        [sys.executable, "-m", "tests.unit.hardening.entry_probe", scenario],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    *logged, last = done.stdout.strip().splitlines()
    out: dict[str, Any] = json.loads(last)
    out["_logged"] = "\n".join(logged) + done.stderr
    return out


def _audits(out: dict[str, Any], **where: str) -> list[dict[str, str]]:
    return [a for a in out["audits"] if all(a.get(k) == v for k, v in where.items())]


# ------------------------------------------------------------------ refused ID tokens


def test_an_invalid_id_token_is_answered_401_and_audited_on_every_callable() -> None:
    out = probe("refusals")
    for fn in CALLABLES:
        answer = out["calls"]["garbage"][fn]
        assert answer["status"] == 401, (fn, answer)
        assert answer["body"]["error"]["status"] == "UNAUTHENTICATED"
        audits = _audits(out, fn=fn, reason="invalid ID token")
        assert len(audits) == 1, (fn, out["audits"])
        assert audits[0]["type"] == "unauthenticated" and "uid" not in audits[0]
    assert out["engine_calls"] == 0


def test_a_missing_token_is_audited_once_by_the_use_case_not_twice() -> None:
    out = probe("refusals")
    assert out["calls"]["no_token"]["status"] == 401
    assert len(_audits(out, reason="no ID token")) == 1
    assert out["unauthenticated"] == len(CALLABLES) + 1  # the counters see every refusal


def test_the_audit_hashes_the_address_the_platform_appended() -> None:
    """X-Forwarded-For: the client writes the first entry; Google's front end appends the last."""
    out = probe("refusals")
    hashes = {a.get("ipHash") for a in out["audits"]}
    assert hashes == {out["ip_hash"]}
    assert out["client_ip_hash"] not in hashes


ENVELOPES = ("not_json", "huge_int", "no_data", "extra_field", "a_list", "null")
"""Bodies that are not the callable protocol's ``{"data": ...}`` (``entry_probe``)."""


def test_a_body_that_is_not_the_protocols_is_invalid_argument_naming_data() -> None:
    out = probe("envelope")
    for case in (*(f"{e}/token" for e in ENVELOPES), "text_plain/token"):
        # The SDK alone answers these 400 "Bad Request" (500 "internal" for JSON that does not
        # parse) with no field named and nothing audited.
        answer = out["calls"][case]
        assert answer["status"] == 400, (case, answer)
        assert answer["body"]["error"]["status"] == "INVALID_ARGUMENT", case
        assert answer["body"]["error"]["details"] == {"field": "data"}, case
    audits = _audits(out, type="invalid_request", reason="invalid data")
    assert len(audits) == len(ENVELOPES) + 1
    assert {a["uid"] for a in audits} == {"alice"}  # the token checked out: the caller is known


def test_a_value_nested_past_the_json_parser_is_invalid_argument_naming_its_field() -> None:
    # Contract 2.1: "huge or deeply nested values" are invalid-argument naming the field. The
    # SDK's parse of such a body fails (RecursionError) before any field is seen.
    out = probe("deep")
    for case, field in (("name", "name"), ("options", "options"), ("data", "data")):
        answer = out["calls"][case]
        assert answer["status"] == 400, (case, answer)
        error = answer["body"]["error"]
        assert error["status"] == "INVALID_ARGUMENT", case
        assert error["details"] == {"field": field}, case
        assert error["message"] == f"{field}: is nested too deeply", case
    assert out["calls"]["metadata/no_token"]["status"] == 401  # the token is checked first
    assert len(_audits(out, type="invalid_request", reason="nested too deeply")) == 3
    assert out["engine_calls"] == 0


def test_without_a_valid_token_a_bad_body_is_unauthenticated_first() -> None:
    """Contract 2.1's order: no token is ``unauthenticated`` before any check of the request."""
    out = probe("envelope")
    for case in (*(f"{e}/no_token" for e in ENVELOPES), "extra_field/bad_token"):
        answer = out["calls"][case]
        assert answer["status"] == 401, (case, answer)
        assert answer["body"]["error"]["status"] == "UNAUTHENTICATED", case
    assert len(_audits(out, type="unauthenticated", reason="no ID token")) == len(ENVELOPES)
    assert len(_audits(out, type="unauthenticated", reason="invalid ID token")) == 1


def test_a_request_that_is_not_a_call_is_left_to_the_sdk_unrecorded() -> None:
    """A GET (a probe, a crawler) is no callable request: the SDK's 400, and no audit write that
    anyone could cause by fetching the URL."""
    out = probe("envelope")
    assert out["calls"]["get/no_token"]["status"] == 400
    fns = {a["fn"] for a in out["audits"]}
    assert "trackExternalDataUsage" in fns  # the POSTs were audited
    assert len(out["audits"]) == 2 * len(ENVELOPES) + 2  # ... and the GET was not


def test_a_refused_body_reaches_no_log_line() -> None:
    from tests.unit.hardening.entry_probe import MARKER

    out = probe("envelope")
    assert "invalid data" in out["_logged"]  # the entry's own refusal lines were captured
    assert MARKER not in out["_logged"]
    assert "Bad Request" not in out["_logged"] and "Logging error" not in out["_logged"]


def test_the_wrapped_entries_keep_the_sdks_endpoint_for_discovery() -> None:
    out = probe("refusals")
    for fn in CALLABLES:
        assert "callableTrigger" in out["endpoints"][fn] and "entryPoint" in out["endpoints"][fn]


# ------------------------------------------------------------------------- App Check


def test_app_check_is_off_by_default() -> None:
    out = probe("refusals")
    assert out["policies"] == {fn: {"enforce": False, "consume": False} for fn in CALLABLES}


def test_app_check_on_enforces_on_every_callable_and_consumes_on_the_enrichment_only() -> None:
    out = probe("app_check", "true")
    assert out["policies"] == {
        fn: {"enforce": True, "consume": fn == "enrichCVWithExternalData"} for fn in CALLABLES
    }


def test_app_check_on_refuses_calls_without_a_valid_app_token_and_audits_them() -> None:
    out = probe("app_check", "true")
    for case in ("no_app_token", "bad_app_token"):
        assert out["calls"][case]["status"] == 401, out["calls"][case]
    # Contract 5: the audit names the uid, if any: alice's ID token was valid, her App Check
    # token missing or forged (the entry used to record no uid, and "invalid ID token").
    missing = _audits(out, reason="missing App Check token")
    forged = _audits(out, reason="invalid App Check token")
    assert len(missing) == 1 and missing[0]["uid"] == "alice"
    assert len(forged) == 1 and forged[0]["uid"] == "alice"
    assert out["engine_calls"] == 1  # only the call with a good token reached the engine


def test_app_check_on_audits_a_bad_body_of_a_signed_in_caller_with_their_uid() -> None:
    """The same refusal when the body is not the protocol's as well: the SDK answers the body
    before any token, and the entry recorded no uid and "invalid ID token or App Check token"
    for a valid ID token whose App Check token was missing or forged (contract 5: uid if any)."""
    out = probe("app_check_envelope", "true")
    for case in ("no_app_token", "forged_app_token", "no_id_token"):
        assert out["calls"][case]["status"] == 401, (case, out["calls"][case])
    missing = _audits(out, reason="missing App Check token")
    forged = _audits(out, reason="invalid App Check token")
    assert len(missing) == 1 and missing[0]["uid"] == "alice", out["audits"]
    assert len(forged) == 1 and forged[0]["uid"] == "alice", out["audits"]
    anonymous = _audits(out, reason="no ID token")
    assert len(anonymous) == 1 and "uid" not in anonymous[0], out["audits"]
    assert len(out["audits"]) == 3


def test_a_replayed_limited_use_token_is_refused_on_the_enrichment() -> None:
    out = probe("app_check", "true")
    assert out["calls"]["first"]["status"] == 200
    replay = out["calls"]["replay"]
    assert replay["status"] == 401 and replay["body"]["error"]["status"] == "UNAUTHENTICATED"
    audits = _audits(out, reason="replayed App Check token")
    assert len(audits) == 1 and audits[0]["uid"] == "alice"
    # The other callables verify but do not consume: the same token works twice.
    assert out["calls"]["track_1"]["status"] == out["calls"]["track_2"]["status"] == 200


def test_app_check_off_serves_a_call_without_an_app_token() -> None:
    out = probe("app_check", "false")
    assert out["calls"]["no_app_token"]["status"] == 200
    assert out["calls"]["replay"]["status"] == 200


def test_the_serving_app_writes_answers_with_the_encoded_data_provider() -> None:
    """``main`` makes the serving Flask app's JSON provider ``AnswerJSON`` (the answer's data is
    encoded once, for the stored result, and written in place), and the answer that went
    through it carries the engine's data whole."""
    out = probe("app_check", "false")
    assert out["json_provider"] == "AnswerJSON"
    data = out["calls"]["first"]["body"]["result"]["enrichedData"]
    assert [r["name"] for r in data["github"]["repositories"]] == [f"r{i}" for i in range(6)]
    assert len(data["skills"]) == 5 and len(data["projects"]) == 2


def test_a_failure_before_the_use_case_is_logged_by_type_and_answered_with_a_reference() -> None:
    # Contract 5: an exception is logged by type and a reference. One raised while the instance
    # builds its app (a Firestore client refused) was logged nowhere: the SDK's own line, which
    # quotes the exception's text, is dropped.
    out = probe("cold_start_crash")
    answer = out["calls"]["crash"]
    assert answer["status"] == 500 and answer["body"]["error"]["status"] == "INTERNAL"
    message = answer["body"]["error"]["message"]
    assert message.startswith("Something went wrong (ref ")
    ref = message.removeprefix("Something went wrong (ref ").removesuffix(").")
    lines = [json.loads(x) for x in out["_logged"].splitlines() if x.startswith("{")]
    failed = [x for x in lines if x.get("message") == "call failed before its use case"]
    assert len(failed) == 1 and failed[0]["ref"] == ref
    assert failed[0].get("errorType") == "RuntimeError"
    assert "pii-canary" not in out["_logged"]


# ---------------------------------------------------------------------- body size


def test_a_body_larger_than_any_valid_request_is_refused_unread() -> None:
    """The SDK parsed any body, twice, before any token was checked: 30 MB of nested empty
    lists took 21 s of CPU from a caller with no token (the platform takes 32 MB). A body past
    what a valid request needs is now refused before it is read: ``unauthenticated`` without
    a token (contract 2.1's order), else ``invalid-argument`` naming ``data``, audited."""
    out = probe("oversized")
    calls = out["calls"]
    for case in ("enrich/token", "track/token", "track/chunked"):
        answer = calls[case]  # each a request the parser accepts: it used to be served
        assert answer["status"] == 400, (case, answer)
        assert answer["body"]["error"]["status"] == "INVALID_ARGUMENT", case
        assert answer["body"]["error"]["details"] == {"field": "data"}, case
    for case in ("enrich/token", "track/token"):
        assert calls[case]["body"]["error"]["message"] == "data: the request is too large", case
    for case in ("enrich/no_token", "largest_export/no_token"):
        # Without a valid ID token a body is read up to the small limit only: a valid
        # enrichment's size is no free CPU for an anonymous caller either.
        assert calls[case]["status"] == 401, (case, calls[case])
        assert calls[case]["body"]["error"]["status"] == "UNAUTHENTICATED", case
    unread = [case for case, answer in calls.items() if answer.get("read") is False]
    assert sorted(unread) == sorted(set(calls) - {"largest_export", "sizes"})
    too_large = _audits(out, type="invalid_request", reason="request too large")
    assert {a["fn"] for a in too_large} == {"enrichCVWithExternalData", "trackExternalDataUsage"}
    assert len(_audits(out, type="unauthenticated", reason="no ID token")) == 2
    assert out["engine_calls"] == 1  # the largest valid export below, and nothing else


def test_the_largest_valid_enrichment_still_fits_under_the_body_limit() -> None:
    """1 MB of export, every byte a control character (6 bytes of JSON each), is served."""
    out = probe("oversized")
    assert out["calls"]["sizes"]["largest"] > 6_000_000
    assert out["calls"]["largest_export"]["status"] == 200, out["calls"]["largest_export"]
