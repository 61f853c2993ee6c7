"""scripts/deploy.py: the preflight stops a deploy for each kind of failure with a message; dry
runs print the exact commands; the sequence deploys rules and indexes, then each function
alone with a smoke check after it, stops at the first failure, and records what it deployed so
``rollback --to previous`` finds the commit before."""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest

from scripts import deploy
from stores.memory import MemoryStore
from tests.unit.deploy.conftest import STAGING_ENV, Deployed, Repo, git

CALLABLES = [
    "enrichCVWithExternalData",
    "trackExternalDataUsage",
    "getUserExternalDataUsageStats",
    "getExternalDataAnalytics",
]


@pytest.fixture(autouse=True)
def _rules_emulator(firestore_host: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", firestore_host)


Run = Callable[..., tuple[int, str]]


@pytest.fixture
def store() -> MemoryStore:
    """The deploy log's store."""
    return MemoryStore()


@pytest.fixture
def run(repo: Repo, deployed: Deployed, store: MemoryStore) -> Run:
    """``scripts/deploy.py ARGS`` against the throwaway repo; (exit status, output)."""

    def go(*args: str) -> tuple[int, str]:
        out: list[str] = []
        argv = [*args, "--firebase", str(repo.firebase), "--functions-url", deployed.url]
        status = deploy.main(
            argv,
            root=repo.root,
            log=lambda _project: deploy.DeployLog(store),
            say=out.append,
        )
        return status, "\n".join(out)

    return go


def deploy_lines(repo: Repo) -> list[str]:
    """The fake CLI's ``deploy`` invocations."""
    return [c for c in repo.invocations() if c.startswith("deploy ")]


def test_dry_run_prints_the_plans_sequence_and_changes_nothing(repo: Repo, run: Run) -> None:
    status, out = run("--project", "staging", "--dry-run")
    assert status == 0, out
    fb = shlex.quote(str(repo.firebase))
    base = f"{fb} deploy --project staging --non-interactive --only"
    lines = [ln.strip() for ln in out.splitlines() if ln.strip().startswith(fb)]
    assert lines[0] == f"{base} firestore:rules,firestore:indexes"
    assert lines[1:5] == [f"{base} functions:{n}" for n in CALLABLES]
    assert lines[5:] == [
        f"{base} functions:{n}"
        for n in ("evaluateExternalDataRollout", "onUserSubscriptionWritten")
    ]
    assert "record the commit in Firestore config/externalDataDeploys/history/ of cv-stage-1" in out
    assert deploy_lines(repo) == []


def test_dry_run_of_one_function_prints_only_it(repo: Repo, run: Run) -> None:
    status, out = run("--project", "staging", "--only", "trackExternalDataUsage", "--dry-run")
    assert status == 0, out
    fb = shlex.quote(str(repo.firebase))
    printed = [ln.strip() for ln in out.splitlines() if ln.strip().startswith(f"{fb} deploy")]
    assert printed == [
        f"{fb} deploy --project staging --non-interactive --only functions:trackExternalDataUsage"
    ]


def test_dry_run_names_the_missing_secrets(repo: Repo, run: Run) -> None:
    repo.fail_on("secrets:get EXTERNAL_DATA_WEB_SEARCH_API_KEY")
    status, out = run("--project", "staging", "--dry-run")
    assert status == 1
    assert (
        "FAIL  secrets: missing in cv-stage-1 (or not readable): EXTERNAL_DATA_WEB_SEARCH_API_KEY"
        in out
    )
    assert "functions:enrichCVWithExternalData" in out  # the plan is still printed


def test_deploy_runs_each_step_smoke_checks_it_and_records_the_commit(
    repo: Repo, run: Run, store: MemoryStore
) -> None:
    head = git(repo.root, "rev-parse", "HEAD")
    status, out = run("--project", "staging")
    assert status == 0, out
    steps = [c.split("--only ")[1] for c in deploy_lines(repo)]
    assert steps[:5] == [
        "firestore:rules,firestore:indexes",
        *(f"functions:{n}" for n in CALLABLES),
    ]
    assert (
        "smoke: enrichCVWithExternalData: unauthenticated call refused with unauthenticated" in out
    )
    (entry,) = deploy.DeployLog(store).entries("cv-stage-1")
    assert entry["commit"] == head and entry["action"] == "deploy"
    assert entry["functions"] == [s.split(":")[1] for s in steps[1:]]
    assert "smoke: onUserSubscriptionWritten: event trigger, no HTTP surface" in out


def test_a_failed_smoke_check_stops_the_sequence_and_says_how_to_undo(
    repo: Repo, run: Run, deployed: Deployed, store: MemoryStore
) -> None:
    deployed.broken.add("trackExternalDataUsage")
    status, out = run("--project", "staging")
    assert status == 2
    assert "smoke check of trackExternalDataUsage" in out
    assert "answered HTTP 200" in out
    assert "deployed so far: ['enrichCVWithExternalData', 'trackExternalDataUsage']" in out
    assert "rollback --project staging --to previous" in out
    assert deploy_lines(repo)[-1].endswith("functions:trackExternalDataUsage")
    (entry,) = deploy.DeployLog(store).entries("cv-stage-1")  # what changed, marked as stopped
    assert entry["functions"] == ["enrichCVWithExternalData", "trackExternalDataUsage"]
    assert entry["failed"].startswith("smoke check of trackExternalDataUsage")


def test_a_failed_deploy_command_stops_the_sequence(repo: Repo, run: Run) -> None:
    repo.fail_on("--only firestore:rules")
    status, out = run("--project", "staging")
    assert status == 2
    assert "failed (status 1)" in out and "deployed so far: nothing" in out
    assert len(deploy_lines(repo)) == 1


def _preflight_fails(repo: Repo, run: Run, expected: str) -> None:
    status, out = run("--project", "staging")
    assert status == 1, out
    assert "deploy stopped: the preflight failed" in out
    assert expected in out, out
    assert deploy_lines(repo) == []


def test_no_env_file_for_the_project_stops_the_deploy(repo: Repo, run: Run) -> None:
    (repo.root / "functions" / ".env.staging").unlink()
    repo.commit()
    _preflight_fails(repo, run, "FAIL  env: no functions/.env.staging (or .env.cv-stage-1)")


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (
            "EXTERNAL_DATA_GRACE_DAYS=soon",
            "EXTERNAL_DATA_GRACE_DAYS must be an integer, not 'soon'",
        ),
        (
            "EXTERNAL_DATA_CONFIG_TTL_SECONDS=90",
            "EXTERNAL_DATA_CONFIG_TTL_SECONDS must be between 0 and 30",
        ),
        ("EXTERNAL_DATA_HASH_SALT=0123456789abcdef", "EXTERNAL_DATA_HASH_SALT is a secret"),
        (
            "EXTERNAL_DATA_RATE_LIMT_FREE=3",
            "EXTERNAL_DATA_RATE_LIMT_FREE is not a setting of the functions",
        ),
        ("FIREBASE_CONFIG={}", "FIREBASE_CONFIG is reserved"),
        ("not a setting", "line 3 is not KEY=VALUE"),
    ],
)
def test_a_bad_env_file_stops_the_deploy(repo: Repo, run: Run, line: str, expected: str) -> None:
    (repo.root / "functions" / ".env.staging").write_text(STAGING_ENV + line + "\n")
    repo.commit()
    _preflight_fails(repo, run, expected)


def test_a_missing_secret_stops_the_deploy(repo: Repo, run: Run) -> None:
    repo.fail_on("secrets:get EXTERNAL_DATA_HASH_SALT")
    _preflight_fails(
        repo, run, "EXTERNAL_DATA_HASH_SALT; set each with `firebase functions:secrets:set NAME"
    )


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (("allow read", "allow reed"), "compiles with issues: line"),
        (
            ("allow read", "allow read: if foo( }"),
            "FAIL  rules: firestore.rules does not compile: Error compiling rules",
        ),
    ],
)
def test_rules_that_do_not_compile_stop_the_deploy(
    repo: Repo, run: Run, change: tuple[str, str], expected: str
) -> None:
    rules = repo.root / "firestore.rules"
    rules.write_text(rules.read_text().replace(*change, 1))
    repo.commit()
    _preflight_fails(repo, run, expected)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"indexes": [', "firestore.indexes.json is not valid JSON"),
        (
            '{"indexes": [{"queryScope": "COLLECTION", "fields": []}]}',
            "indexes[0]: collectionGroup is required",
        ),
        (
            '{"indexes": [{"collectionGroup": "events", "fields": [{"fieldPath": "at", "order": "UP"}]}]}',
            "order must be ASCENDING or DESCENDING",
        ),
        (
            '{"indexes": [], "fieldOverrides": [{"collectionGroup": "x", "fieldPath": "y", "ttl": "yes"}]}',
            "ttl must be true or false",
        ),
    ],
)
def test_invalid_indexes_stop_the_deploy(repo: Repo, run: Run, text: str, expected: str) -> None:
    (repo.root / "firestore.indexes.json").write_text(text)
    repo.commit()
    _preflight_fails(repo, run, expected)


def test_a_dirty_tree_stops_the_deploy(repo: Repo, run: Run) -> None:
    (repo.root / "functions" / "scratch.py").write_text("x = 1\n")
    _preflight_fails(
        repo,
        run,
        "FAIL  tree: the working tree is not clean (1 changes, e.g. ?? functions/scratch.py)",
    )


def test_a_commit_without_a_passing_make_test_stops_the_deploy(repo: Repo, run: Run) -> None:
    (repo.root / "README.md").write_text("new\n")
    git(repo.root, "add", "-A")
    git(repo.root, "commit", "-q", "-m", "untested")
    _preflight_fails(repo, run, "has no passing `make test` on record (.tools/test-passed)")


def test_functions_that_do_not_import_stop_the_deploy(repo: Repo, run: Run) -> None:
    main = repo.root / "functions" / "main.py"
    main.write_text(main.read_text() + "\nraise RuntimeError('broken at import')\n")
    repo.commit()
    _preflight_fails(
        repo,
        run,
        "FAIL  discovery: function discovery failed (importing functions/main.py): RuntimeError: broken at import",
    )


def test_an_unknown_only_name_stops_the_deploy(repo: Repo, run: Run) -> None:
    status, out = run("--project", "staging", "--only", "enrichCV")
    assert status == 1 and "--only: enrichCV is not a function of this source" in out


def test_rollback_to_previous_redeploys_the_commit_before_from_a_worktree(
    repo: Repo, run: Run, store: MemoryStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    first = git(repo.root, "rev-parse", "HEAD")
    assert run("--project", "staging")[0] == 0
    (repo.root / "README.md").write_text("second\n")
    second = repo.commit("second")
    assert run("--project", "staging")[0] == 0
    status, out = run("rollback", "--project", "staging", "--to", "previous", "--dry-run")
    assert status == 0, out
    assert "git worktree add --detach" in out and out.count(first) >= 1
    assert f"preflight of {first[:12]} for staging (cv-stage-1)" in out
    assert "functions:enrichCVWithExternalData" in out
    assert f"then record the rollback to {first[:12]}" in out
    assert second[:12] not in out
    assert len(git(repo.root, "worktree", "list").splitlines()) == 1  # removed again
    assert list(scratch.iterdir()) == []  # and its temporary directory with it


def test_rollback_without_history_or_to_an_unknown_ref_stops(repo: Repo, run: Run) -> None:
    status, out = run("rollback", "--project", "staging", "--to", "previous", "--dry-run")
    assert status == 1 and "no deploy of cv-stage-1 on record: name a commit with --to REF" in out
    status, out = run("rollback", "--project", "staging", "--to", "v9.9.9", "--dry-run")
    assert status == 1 and "v9.9.9 is not a commit of this repository" in out


def test_previous_skips_redeploys_of_the_current_commit() -> None:
    log = deploy.DeployLog(MemoryStore())
    log.record("p", "a" * 40, "deploy", ["f"])
    log.record("p", "b" * 40, "deploy", ["f"])
    log.record("p", "b" * 40, "deploy", ["g"])
    log.record("other", "c" * 40, "deploy", ["f"])
    assert log.previous("p") == "a" * 40
    only = deploy.DeployLog(MemoryStore())
    only.record("p", "a" * 40, "deploy", ["f"])
    with pytest.raises(deploy.DeployError, match="nothing to roll back to"):
        only.previous("p")


def test_dotenv_parsing_follows_firebase_tools() -> None:
    text = '# c\n\nexport A=1\nB="two words"\nC=\'x#y\'\nD=plain # note\nE="a\\nb"\n'
    assert deploy.parse_dotenv(text) == {
        "A": "1",
        "B": "two words",
        "C": "x#y",
        "D": "plain",
        "E": "a\nb",
    }


def test_the_projects_own_indexes_are_valid() -> None:
    root = Path(deploy.__file__).resolve().parents[1]
    assert "indexes" in deploy.check_indexes(root / "firestore.indexes.json")


def test_env_example_lists_every_non_secret_setting_once() -> None:
    from common.settings import VARIABLES

    root = Path(deploy.__file__).resolve().parents[1]
    text = (root / "functions" / ".env.example").read_text()
    listed = re.findall(r"^# (EXTERNAL_DATA_[A-Z_]+)=", text, flags=re.M)
    assert listed == [v.name for v in VARIABLES if not v.secret]
    assert all(v.name not in listed for v in VARIABLES if v.secret)


def test_the_projects_functions_are_discoverable() -> None:
    """The project's own functions/main.py, imported exactly as firebase-tools' discovery
    imports it (``firebase_functions.private.serving.get_functions``)."""
    root = Path(deploy.__file__).resolve().parents[1]
    found = deploy.discover(root, "cv-stage-1", {})
    names = {f.name for f in found}
    assert set(CALLABLES) <= names
    assert all(f.kind == "callable" for f in found if f.name in CALLABLES)
    assert "EXTERNAL_DATA_HASH_SALT" in next(f for f in found if f.name == CALLABLES[0]).secrets


# -- a bad day: what an operator meets when something goes wrong --------------------------------


def test_a_rollback_of_an_unknown_function_stops(repo: Repo, run: Run) -> None:
    """``rollback --only`` with a misspelled name deployed nothing, yet said it rolled back
    (exit 0) and recorded a rollback: the name is checked as for a deploy."""
    first = git(repo.root, "rev-parse", "HEAD")
    (repo.root / "README.md").write_text("second\n")
    repo.commit("second")
    status, out = run(
        "rollback", "--project", "staging", "--to", first, "--only", "enrichCV", "--dry-run"
    )
    assert status == 1, out
    assert "--only: enrichCV is not a function of this source" in out
    assert "trackExternalDataUsage" in out  # the names it could have been


def test_a_deploy_that_stops_part_way_is_recorded_so_previous_undoes_it(
    repo: Repo, run: Run, store: MemoryStore
) -> None:
    """The printed undo (`rollback --to previous`) must go back to what ran before this deploy:
    unrecorded, the log still named the commit before as current, and `previous` went back two
    versions. The report names everything that changed, rules and indexes included."""
    assert run("--project", "staging")[0] == 0
    before = git(repo.root, "rev-parse", "HEAD")
    (repo.root / "README.md").write_text("second\n")
    second = repo.commit("second")
    repo.fail_on("functions:trackExternalDataUsage")
    status, out = run("--project", "staging")
    assert status == 2, out
    so_far = "deployed so far: ['enrichCVWithExternalData'] after the Firestore rules and indexes"
    assert so_far in out
    assert "undo with `scripts/deploy.py rollback --project staging --to previous`" in out
    log = deploy.DeployLog(store)
    newest = log.entries("cv-stage-1")[0]
    assert newest["commit"] == second and newest["functions"] == ["enrichCVWithExternalData"]
    assert "functions:trackExternalDataUsage" in newest["failed"]
    assert log.previous("cv-stage-1") == before


def test_a_failure_after_the_rules_says_they_were_deployed(repo: Repo, run: Run) -> None:
    repo.fail_on("functions:enrichCVWithExternalData")
    status, out = run("--project", "staging")
    assert status == 2, out
    assert "deployed so far: the Firestore rules and indexes" in out
    assert "--to previous" in out


def test_ctrl_c_midway_says_what_was_deployed_and_records_it(
    repo: Repo, deployed: Deployed, store: MemoryStore
) -> None:
    def interrupted(argv: Sequence[str], cwd: Path) -> subprocess.CompletedProcess[str]:
        if argv[-1] == "functions:trackExternalDataUsage":
            raise KeyboardInterrupt
        return deploy.run_command(argv, cwd)

    out: list[str] = []
    argv = ["--project", "staging", "--firebase", str(repo.firebase)]
    try:
        status = deploy.main(
            [*argv, "--functions-url", deployed.url],
            root=repo.root,
            runner=interrupted,
            log=lambda _project: deploy.DeployLog(store),
            say=out.append,
        )
    except KeyboardInterrupt:
        pytest.fail("the interrupt escaped: nothing said about what was deployed, nothing recorded")
    text = "\n".join(out)
    assert status == 2, text
    assert "interrupted during `" in text and "functions:trackExternalDataUsage` (" in text
    assert "deployed so far: ['enrichCVWithExternalData'] after the Firestore rules" in text
    (entry,) = deploy.DeployLog(store).entries("cv-stage-1")
    assert entry["functions"] == ["enrichCVWithExternalData"] and "interrupted" in entry["failed"]


def test_a_rollback_compiles_the_rules_with_this_checkouts_emulator(
    repo: Repo, run: Run, firestore_host: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A real rollback runs without FIRESTORE_EMULATOR_HOST: the rules check starts a temporary
    emulator from a checkout's ``.tools/firestore-launcher.jar`` (and ``.venv``'s Java), which
    are gitignored, so the fresh worktree of the old commit has neither: the rollback's rules
    check always failed. This stand-in needs the jar as the real one does."""

    class Emulator:
        def __init__(self, root: Path) -> None:
            self.root = root

        def __enter__(self) -> str:
            if not (self.root / ".tools" / "firestore-launcher.jar").exists():
                raise deploy.DeployError("rules: no Firestore emulator to compile them on")
            return firestore_host

        def __exit__(self, *exc: object) -> None:
            pass

    monkeypatch.delenv("FIRESTORE_EMULATOR_HOST")
    monkeypatch.setattr(deploy, "temporary_firestore", Emulator)
    (repo.root / ".tools" / "firestore-launcher.jar").write_text("")  # as `make setup` leaves it
    first = git(repo.root, "rev-parse", "HEAD")
    (repo.root / "README.md").write_text("second\n")
    repo.commit("second")
    status, out = run("rollback", "--project", "staging", "--to", first, "--dry-run")
    assert status == 0, out
    assert "ok    rules: firestore.rules compiles" in out


def test_env_files_for_both_the_project_id_and_its_alias_stop_the_deploy(
    repo: Repo, run: Run
) -> None:
    """firebase-tools (lib/functions/env.js loadUserEnvs) refuses to deploy with both
    ``.env.<project id>`` and ``.env.<alias>``; the preflight merged them and passed, so the
    deploy failed at its first function, after the rules had gone out."""
    (repo.root / "functions" / ".env.cv-stage-1").write_text("EXTERNAL_DATA_LOG_LEVEL=DEBUG\n")
    repo.commit()
    _preflight_fails(repo, run, "both functions/.env.cv-stage-1 and functions/.env.staging")


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("external_data_log_level=DEBUG", "external_data_log_level: firebase-tools accepts only"),
        ("GCLOUD_PROJECT=other", "GCLOUD_PROJECT is reserved"),
        ("FUNCTION_NAME=x", "FUNCTION_NAME is reserved"),
        ("KIT_X=1", "KIT_X is reserved"),
    ],
)
def test_a_key_firebase_tools_refuses_stops_the_deploy(
    repo: Repo, run: Run, line: str, expected: str
) -> None:
    """Keys as firebase-tools validates them (validateKey): uppercase, none of its reserved
    keys or prefixes. The preflight passed these; the deploy failed after the rules."""
    (repo.root / "functions" / ".env.staging").write_text(STAGING_ENV + line + "\n")
    repo.commit()
    _preflight_fails(repo, run, expected)


def test_values_are_read_as_firebase_tools_reads_them() -> None:
    """firebase-tools' LINE_RE: an unquoted value ends at ``#``; a quoted value may be followed
    by a comment; double quotes unescape \\n \\r \\t \\v \\\\ \\' \\"."""
    text = 'A=x#y\nB="q" # note\nC="t\\tz\\\\"\nD= spaced  \nE=\nF=\'a\' #c\n'
    assert deploy.parse_dotenv(text) == {
        "A": "x",
        "B": "q",
        "C": "t\tz\\",
        "D": "spaced",
        "E": "",
        "F": "a",
    }


def test_a_quoted_setting_with_a_comment_passes_the_preflight(repo: Repo, run: Run) -> None:
    env = repo.root / "functions" / ".env.staging"
    env.write_text(STAGING_ENV + 'EXTERNAL_DATA_GRACE_DAYS="5" # a longer grace\n')
    repo.commit()
    status, out = run("--project", "staging", "--dry-run")
    assert status == 0, out


class _Clock:
    """``deploy.time`` whose clock jumps 20 s a reading and whose sleep returns at once."""

    def __init__(self) -> None:
        self.now = 0.0

    def monotonic(self) -> float:
        self.now += 20
        return self.now

    def sleep(self, _s: float) -> None:
        pass


def _fake_java(root: Path, body: str) -> Path:
    """A checkout whose with-emulators.sh names a fake java running ``body``; its pid file."""
    pid = root / "java.pid"
    java = root / "java"
    java.write_text(f"#!/bin/sh\necho $$ > {pid}\n{body}\n")
    (root / "scripts").mkdir()
    wrapper = root / "scripts" / "with-emulators.sh"
    wrapper.write_text(f"#!/bin/sh\necho {java}\n")
    (root / ".tools").mkdir()
    (root / ".tools" / "firestore-launcher.jar").write_text("")
    java.chmod(0o755)
    wrapper.chmod(0o755)
    return pid


def test_an_emulator_that_does_not_come_up_is_not_left_running(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The rules check's temporary emulator (every real deploy starts one) gave up after 60 s
    and left the JVM running, holding its port, with no one to stop it."""
    pid = _fake_java(tmp_path, "exec sleep 60")
    monkeypatch.setattr(deploy, "time", _Clock())
    try:
        with (
            pytest.raises(deploy.DeployError, match="did not start"),
            deploy.temporary_firestore(tmp_path),
        ):
            pass
        assert not Path(f"/proc/{pid.read_text().strip()}").exists()  # stopped and reaped
    finally:
        if pid.exists() and Path(f"/proc/{pid.read_text().strip()}").exists():
            os.kill(int(pid.read_text()), signal.SIGKILL)


def test_an_emulator_that_exits_at_once_is_reported_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A Java or jar that cannot start was waited on for the whole 60 s, then "did not start"."""
    _fake_java(tmp_path, "exit 3")
    monkeypatch.setattr(deploy, "time", _Clock())

    def refused(*_args: object, **_kwargs: object) -> None:
        time.sleep(0.5)  # long enough for the fake java to have exited
        raise httpx.ConnectError("refused")

    monkeypatch.setattr(httpx, "get", refused)
    with (
        pytest.raises(deploy.DeployError, match=r"exited \(status 3\)"),
        deploy.temporary_firestore(tmp_path),
    ):
        pass


class _Unreadable(MemoryStore):
    """A deploy log without credentials: every read fails."""

    def query(self, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("DefaultCredentialsError: no Application Default Credentials")


class _Unwritable(MemoryStore):
    """A deploy log that can be read but not written."""

    def commit(self, writes: Any) -> None:
        raise RuntimeError("403 Missing or insufficient permissions")


def _with_log(repo: Repo, deployed: Deployed, store: MemoryStore, *args: str) -> tuple[int, str]:
    out: list[str] = []
    argv = [*args, "--firebase", str(repo.firebase), "--functions-url", deployed.url]
    status = deploy.main(
        argv, root=repo.root, log=lambda _p: deploy.DeployLog(store), say=out.append
    )
    return status, "\n".join(out)


def test_an_unreadable_deploy_log_stops_the_deploy_before_anything_changes(
    repo: Repo, deployed: Deployed
) -> None:
    """The deploy is recorded at the end (for `rollback --to previous`); a log it cannot reach
    (no credentials) was found only then, after every function had been deployed."""
    status, out = _with_log(repo, deployed, _Unreadable(), "--project", "staging")
    assert status == 1, out
    assert "FAIL  log: the deploy log" in out and "DefaultCredentialsError" in out
    assert deploy_lines(repo) == []


def test_a_deploy_log_that_cannot_be_written_is_reported_not_a_traceback(
    repo: Repo, deployed: Deployed
) -> None:
    status, out = _with_log(repo, deployed, _Unwritable(), "--project", "staging")
    assert status == 2, out
    assert "NOT recorded" in out and "403 Missing or insufficient permissions" in out
    assert "--to previous" in out  # what it means for the next rollback


def test_rollback_to_previous_with_an_unreadable_log_says_so(
    repo: Repo, deployed: Deployed
) -> None:
    args = ("rollback", "--project", "staging", "--to", "previous", "--dry-run")
    status, out = _with_log(repo, deployed, _Unreadable(), *args)
    assert status == 1, out
    assert "rollback stopped: the deploy log" in out and "--to REF" in out


def test_a_misspelled_project_alias_is_named_as_such(repo: Repo, run: Run) -> None:
    """`--project stagign` was taken for a project id; the only failure said to create
    functions/.env.stagign, a fix for the wrong problem."""
    status, out = run("--project", "stagign", "--dry-run")
    assert status == 1, out
    assert "stagign is not an alias of .firebaserc (default, staging)" in out


@pytest.mark.parametrize("text", ["{not json", '{"projects": ["staging"]}', "[]"])
def test_a_malformed_firebaserc_stops_with_a_message_not_a_traceback(
    repo: Repo, run: Run, text: str
) -> None:
    (repo.root / ".firebaserc").write_text(text)
    repo.commit()
    status, out = run("--project", "staging", "--dry-run")
    assert status == 1, out
    assert "deploy stopped: .firebaserc cannot be read" in out


def test_a_missing_firebase_cli_fails_the_preflight_with_its_remedy(
    repo: Repo, deployed: Deployed, store: MemoryStore
) -> None:
    """Before `make setup` (no node_modules): the secrets check's CLI call was a traceback."""
    out: list[str] = []
    argv = ["--project", "staging", "--firebase", str(repo.root / "no" / "firebase")]
    status = deploy.main(
        [*argv, "--functions-url", deployed.url, "--dry-run"],
        root=repo.root,
        log=lambda _project: deploy.DeployLog(store),
        say=out.append,
    )
    text = "\n".join(out)
    assert status == 1, text
    assert f"FAIL  secrets: cannot run {repo.root / 'no' / 'firebase'}" in text
    assert "make setup" in text


def test_a_missing_functions_venv_fails_discovery_with_its_remedy(repo: Repo) -> None:
    """Before `make setup` (no functions/venv): discovery was a traceback."""
    with pytest.raises(deploy.DeployError, match=r"cannot run .*venv.*make setup"):
        deploy.discover(repo.root, "cv-stage-1", {}, repo.root / "functions/venv/bin/python")


def test_a_deploy_command_that_cannot_run_stops_the_sequence_part_way(
    repo: Repo, deployed: Deployed, store: MemoryStore
) -> None:
    """The CLI gone between the preflight and a step (or not executable): a stop part way."""

    def vanished(argv: Sequence[str], cwd: Path) -> subprocess.CompletedProcess[str]:
        if argv[-1] == "functions:trackExternalDataUsage":
            argv = [str(repo.root / "gone"), *argv[1:]]
        return deploy.run_command(argv, cwd)

    out: list[str] = []
    argv = ["--project", "staging", "--firebase", str(repo.firebase)]
    status = deploy.main(
        [*argv, "--functions-url", deployed.url],
        root=repo.root,
        runner=vanished,
        log=lambda _project: deploy.DeployLog(store),
        say=out.append,
    )
    text = "\n".join(out)
    assert status == 2, text
    assert "cannot run" in text and "deployed so far: ['enrichCVWithExternalData']" in text


@pytest.mark.parametrize(
    "argv",
    [["--projct", "staging"], ["rollback", "--project", "staging"], ["--project"]],
)
def test_a_usage_error_exits_1_nothing_changed_not_2(argv: list[str]) -> None:
    """Exit 2 means "stopped part way: something was deployed"; argparse's own 2 for a
    mistyped option said the same of a command that never started."""
    with pytest.raises(SystemExit) as stopped:
        deploy.main(argv, say=lambda _line: None)
    assert stopped.value.code == 1


def test_sigterm_stops_a_run_as_ctrl_c_does() -> None:
    """The default SIGTERM handler exits at once: a rollback's worktree stayed, and a deploy
    stopped part way was neither reported nor recorded. ``stop_on_sigterm`` (installed by the
    script's entry) turns it into the KeyboardInterrupt those paths handle."""
    before = signal.getsignal(signal.SIGTERM)
    try:
        deploy.stop_on_sigterm()
        with pytest.raises(KeyboardInterrupt):
            _terminate_self()
    finally:
        signal.signal(signal.SIGTERM, before)


def _terminate_self() -> None:
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(1)  # the handler runs between bytecodes, well before this ends
