"""One configuration read at start, one structured logger (issue 7, items 4 and 5)."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from common import logs
from common.settings import (
    SECRET_NAMES,
    VARIABLES,
    SettingsError,
    default_of,
    load_settings,
    markdown_table,
)

ROOT = Path(__file__).resolve().parents[3]


def _import_main(
    env: dict[str, str], code: str = "import main"
) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("EXTERNAL_DATA_", "FIRE"))}
    base.pop("FUNCTIONS_EMULATOR", None)
    base.pop("ADMIN_PORT", None)
    return subprocess.run(  # noqa: S603 (the test's own code)
        [sys.executable, "-c", code],
        cwd=ROOT / "functions",
        env={**base, "GCLOUD_PROJECT": "demo-settings-test", **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("EXTERNAL_DATA_GRACE_DAYS", "three"),
        ("EXTERNAL_DATA_RATE_LIMIT_FREE_HOURLY", "-1"),
        ("EXTERNAL_DATA_AUDIT_ENABLED", "maybe"),
        ("EXTERNAL_DATA_GITHUB_API_URL", "ftp://example.com"),
        ("EXTERNAL_DATA_MIN_INSTANCES", "enrichCVWithExternalDat=1"),
        ("EXTERNAL_DATA_MIN_INSTANCES", "enrichCVWithExternalData=101"),
        ("EXTERNAL_DATA_MIN_INSTANCES", "enrichCVWithExternalData"),
        ("EXTERNAL_DATA_REQUEST_THREADS", "0"),
        ("EXTERNAL_DATA_REQUEST_THREADS", "1001"),
    ],
)
def test_a_bad_value_fails_the_import_of_main_naming_the_variable(name: str, value: str) -> None:
    done = _import_main({"FUNCTIONS_EMULATOR": "true", name: value})
    assert done.returncode != 0
    assert "SettingsError" in done.stderr and name in done.stderr


def test_min_instances_reach_the_deployed_functions_manifest() -> None:
    """``firebase deploy`` reads ``minInstances`` from each entry's endpoint at discovery."""
    probe = (
        "import main, json; v = {f: getattr(main, f).__firebase_endpoint__.minInstances"
        " for f in ('enrichCVWithExternalData', 'getExternalDataAnalytics')};"
        " print(json.dumps({f: n if isinstance(n, int) else repr(type(n)) for f, n in v.items()}))"
    )
    env = {
        "FUNCTIONS_EMULATOR": "true",
        "EXTERNAL_DATA_MIN_INSTANCES": "enrichCVWithExternalData=2, trackExternalDataUsage=1",
    }
    done = _import_main(env, probe)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1]) == {
        "enrichCVWithExternalData": 2,
        # not configured: the SDK's reset sentinel (the platform's default, no warm instance)
        "getExternalDataAnalytics": "<class 'firebase_functions.private.util.Sentinel'>",
    }
    settings = load_settings({"EXTERNAL_DATA_MIN_INSTANCES": "trackExternalDataUsage=1,"})
    assert settings.min_instances_of("trackExternalDataUsage") == 1
    assert settings.min_instances_of("enrichCVWithExternalData") == 0


@pytest.mark.parametrize(
    ("configured", "expected", "cpu"), [(None, 16, 1), ("24", 24, 1), ("1", 1, "gcf_gen1")]
)
def test_one_setting_gives_the_concurrency_deployed_and_the_threads_served(
    configured: str | None, expected: int, cpu: object
) -> None:
    """Every function's ``concurrency`` (read by ``firebase deploy`` at discovery) and the
    ``THREADS`` functions-framework reads after importing ``main`` are the same number; a
    ``THREADS`` already in the environment does not make them differ. Concurrency above 1 comes
    with a whole vCPU, which firebase deploy requires for it."""
    probe = (
        "import main, json, os; fs = ('enrichCVWithExternalData', 'getExternalDataAnalytics',"
        " 'onCvDeleted'); e = [getattr(main, f).__firebase_endpoint__ for f in fs];"
        " print(json.dumps([[x.concurrency for x in e], os.environ['THREADS'],"
        " [x.cpu for x in e]]))"
    )
    env = {"FUNCTIONS_EMULATOR": "true", "THREADS": "3"}
    if configured:
        env["EXTERNAL_DATA_REQUEST_THREADS"] = configured
    done = _import_main(env, probe)
    assert done.returncode == 0, done.stderr
    concurrency, threads, cpus = json.loads(done.stdout.strip().splitlines()[-1])
    assert concurrency == [expected] * 3
    assert threads == str(expected)
    assert cpus == [cpu] * 3


@pytest.mark.parametrize(("env", "keepalive"), [({"FUNCTIONS_EMULATOR": "true"}, 75), ({}, 2)])
def test_under_the_functions_emulator_gunicorn_outlasts_its_proxys_idle_connections(
    env: dict[str, str], keepalive: int
) -> None:
    """The server functions-framework builds after importing ``main`` keeps idle connections
    75 s under the functions emulator (its Node proxy keeps them 5 s and reuses them: a call on
    one gunicorn had closed after its 2 s failed as ECONNRESET); elsewhere gunicorn's default."""
    probe = (
        "import main, flask; from functions_framework._http.gunicorn import GunicornApplication"
        " as G; print(G(flask.Flask('x'), '127.0.0.1', 0, False).cfg.keepalive)"
    )
    done = _import_main({"EXTERNAL_DATA_HASH_SALT": "a-long-enough-secret-salt", **env}, probe)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == str(keepalive)


def test_importing_main_freezes_what_lives_as_long_as_the_instance() -> None:
    """``main`` ends with ``gc.freeze()``: what the import made is out of the cyclic
    collector's full passes, which then scan under a quarter of what they would (counted in
    objects, not timed: ``gc.get_objects()`` lists what a full pass scans)."""
    probe = (
        "import gc; n = len(gc.get_objects()); import main"
        "; print(gc.get_freeze_count() - n, gc.get_freeze_count(), len(gc.get_objects()))"
    )
    done = _import_main({"FUNCTIONS_EMULATOR": "true"}, probe)
    assert done.returncode == 0, done.stderr
    made, frozen, scanned = (int(v) for v in done.stdout.split()[-3:])
    assert made > 20_000  # what importing main made, at least
    assert scanned < frozen / 4


def test_good_values_import_and_declare_the_secret_params() -> None:
    done = _import_main({"FUNCTIONS_EMULATOR": "true", "EXTERNAL_DATA_GRACE_DAYS": "5"})
    assert done.returncode == 0, done.stderr


def test_outside_the_emulator_the_salt_is_required_but_not_at_discovery() -> None:
    refused = _import_main({})
    assert refused.returncode != 0 and "EXTERNAL_DATA_HASH_SALT" in refused.stderr
    assert _import_main({"ADMIN_PORT": "8081"}).returncode == 0  # firebase deploy's discovery
    salted = _import_main({"EXTERNAL_DATA_HASH_SALT": "a-long-enough-secret-salt"})
    assert salted.returncode == 0, salted.stderr


def test_a_short_salt_is_refused_outside_the_emulator() -> None:
    with pytest.raises(SettingsError, match="EXTERNAL_DATA_HASH_SALT"):
        load_settings({"EXTERNAL_DATA_HASH_SALT": "short"}, emulator=False)


def test_the_readme_lists_exactly_the_variables_with_their_defaults() -> None:
    readme = (ROOT / "README.md").read_text()
    assert markdown_table() in readme
    listed = {line.split("`")[1] for line in readme.splitlines() if line.startswith("| `EXTERNAL")}
    assert listed == {v.name for v in VARIABLES}


def test_every_variable_reaches_its_field() -> None:
    for var in VARIABLES:
        default_of(var)  # raises AttributeError when the table names a field that is not there
    s = load_settings({"EXTERNAL_DATA_CACHE_TTL_GITHUB": "30", "EXTERNAL_DATA_GRACE_DAYS": "7"})
    assert s.enrichment.ttl_for("github") == 30 and s.grace_days == 7
    assert set(SECRET_NAMES) == {
        "EXTERNAL_DATA_GITHUB_TOKEN",
        "EXTERNAL_DATA_WEB_SEARCH_API_KEY",
        "EXTERNAL_DATA_HASH_SALT",
    }


def test_request_limits_come_from_settings() -> None:
    from common.errors import InvalidArgument
    from usecases.requests import parse_enrich

    text = "x" * 3000
    request = {"cvId": "cv1", "linkedin": {"export": {"Profile.csv": text}}}
    assert parse_enrich(request, 4000).linkedin_export is not None
    with pytest.raises(InvalidArgument):
        parse_enrich(
            request, load_settings({"EXTERNAL_DATA_LINKEDIN_MAX_BYTES": "2048"}).linkedin_max_bytes
        )


def test_log_lines_are_whole_json_objects_under_threads() -> None:
    stream = io.StringIO()
    handler = logs.configure("INFO", stream=stream)
    try:

        def burst(n: int) -> None:
            for i in range(200):
                logs.log("INFO", "line", labels={"function": "f"}, worker=n, i=i, text="x" * 200)

        threads = [threading.Thread(target=burst, args=(n,)) for n in range(16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        logging.getLogger().removeHandler(handler)
        logs._handler = None
    lines = [line for line in stream.getvalue().split("\n") if line]
    parsed = [json.loads(line) for line in lines]  # a merged or split line would not parse
    ours = [p for p in parsed if p.get("message") == "line"]
    assert len(ours) == 16 * 200
    assert {p["severity"] for p in ours} == {"INFO"}
    assert all(p["logging.googleapis.com/labels"]["component"] == "external-data" for p in ours)
    assert all(p["logging.googleapis.com/labels"]["function"] == "f" for p in ours)


def test_an_exception_is_logged_by_type_and_place_never_its_message() -> None:
    try:
        "alice@example.com".encode("ascii", "strict").decode("utf-16")
    except UnicodeError as exc:
        ref = logs.error_ref(exc)
    assert ref["errorType"] == "UnicodeDecodeError"
    assert "example.com" not in json.dumps(ref) and ref["errorAt"].startswith("test_settings")


def test_the_sdks_token_lines_are_dropped_for_they_quote_the_token() -> None:
    """The functions SDK logs (root logger) "verification passed" for every callable request,
    and, for a refused token, an error quoting it: a pasted token or an e-mail in the header
    reaches the log. Both are dropped (``main`` logs its own refusal line without content);
    other root lines stay."""
    from firebase_functions.private.util import on_call_check_tokens
    from flask import Flask

    stream = io.StringIO()
    handler = logs.configure("INFO", stream=stream)
    app = Flask(__name__)
    try:
        with app.test_request_context("/", method="POST", json={"data": {}}) as ctx:
            on_call_check_tokens(ctx.request)  # no token: passes, as an unauthenticated call
        for header in ("Basic abc", "Bearer mara@pii-canary.example", "Bearer a.b.c.d"):
            with app.test_request_context(
                "/", method="POST", json={"data": {}}, headers={"Authorization": header}
            ) as ctx:
                on_call_check_tokens(ctx.request)
        logging.info("an unrelated root line")
    finally:
        logging.getLogger().removeHandler(handler)
        logs._handler = None
    lines = [json.loads(line) for line in stream.getvalue().split("\n") if line]
    assert [(p["severity"], p["message"]) for p in lines] == [("INFO", "an unrelated root line")]
    assert "pii-canary" not in stream.getvalue()
