"""A throwaway git repository shaped like this project (its functions, rules, indexes, .firebaserc
and a staging env file), a fake ``firebase`` CLI that records its argv and fails on demand, a
loopback stand-in for the deployed functions, and one Firestore emulator for the rules check.

The fake CLI is a real executable run as a subprocess (``scripts/deploy.py`` cannot tell it from
firebase-tools): it appends each argv to ``calls.log`` and exits 1 when the argv contains a
substring listed in ``fail.txt``.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest

from scripts import deploy

ROOT = Path(__file__).resolve().parents[3]
_IGNORE = shutil.ignore_patterns(
    "venv", "__pycache__", ".mypy_cache", ".pytest_cache", ".secret.local"
)
FIXTURE_MAIN = '''"""A source shaped like functions/main.py: settings parsed at import, secret params, four
callables, a Firestore trigger and a scheduled function."""

from firebase_functions import firestore_fn, https_fn, params, scheduler_fn

from common.settings import SECRET_NAMES, load_settings

SETTINGS = load_settings()
SECRETS = {name: params.SecretParam(name) for name in SECRET_NAMES}
SALT = [SECRETS["EXTERNAL_DATA_HASH_SALT"]]


@https_fn.on_call(secrets=list(SECRETS.values()))
def enrichCVWithExternalData(req):
    return {}


@https_fn.on_call(secrets=SALT)
def trackExternalDataUsage(req):
    return {}


@https_fn.on_call(secrets=SALT)
def getUserExternalDataUsageStats(req):
    return {}


@https_fn.on_call(secrets=SALT)
def getExternalDataAnalytics(req):
    return {}


@firestore_fn.on_document_written(document="users/{uid}", secrets=SALT)
def onUserSubscriptionWritten(event):
    return None


@scheduler_fn.on_schedule(schedule="every 1 minutes", secrets=SALT)
def evaluateExternalDataRollout(event):
    return None
'''
"""The functions of the throwaway repository (the project's own main.py is checked by
``test_the_projects_functions_are_discoverable``)."""
STAGING_ENV = "EXTERNAL_DATA_RATE_LIMIT_FREE_HOURLY=3\nEXTERNAL_DATA_LOG_LEVEL=INFO\n"


def git(repo: Path, *args: str) -> str:
    """Run git in ``repo``; its stdout."""
    argv = ["git", "-c", "user.email=t@example.test", "-c", "user.name=t", *args]
    out = subprocess.run(  # noqa: S603 - git from PATH, as the script under test runs it
        argv,
        cwd=repo,
        check=True,
        capture_output=True,
        text=True,
    )
    return out.stdout.strip()


@dataclass
class Repo:
    """The throwaway project and its fakes."""

    root: Path
    calls: Path
    fail: Path
    firebase: Path

    def commit(self, message: str = "change") -> str:
        """Commit everything; returns the commit and records it as having passed make test."""
        git(self.root, "add", "-A")
        git(self.root, "commit", "-q", "--allow-empty", "-m", message)
        head = git(self.root, "rev-parse", "HEAD")
        passed = self.root / ".tools" / "test-passed"
        passed.parent.mkdir(exist_ok=True)
        with open(passed, "a") as f:
            f.write(head + "\n")
        return head

    def fail_on(self, *needles: str) -> None:
        """Make the fake CLI fail for argv containing any of ``needles``."""
        self.fail.write_text("\n".join(needles))

    def invocations(self) -> list[str]:
        """Every argv the fake CLI received, in order."""
        return self.calls.read_text().splitlines() if self.calls.exists() else []


@pytest.fixture(scope="session")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The project files, committed once (copied per test)."""
    repo = tmp_path_factory.mktemp("template") / "repo"
    repo.mkdir()
    (repo / "functions").mkdir()
    shutil.copytree(ROOT / "functions" / "common", repo / "functions" / "common", ignore=_IGNORE)
    shutil.copy(ROOT / "functions" / "requirements.txt", repo / "functions" / "requirements.txt")
    (repo / "functions" / "main.py").write_text(FIXTURE_MAIN)
    for name in ("firestore.rules", "firestore.indexes.json", "firebase.json"):
        shutil.copy(ROOT / name, repo / name)
    (repo / ".firebaserc").write_text(
        json.dumps({"projects": {"default": "demo-cv-enrichment", "staging": "cv-stage-1"}})
    )
    (repo / ".gitignore").write_text(".tools/\nfunctions/venv/\n__pycache__/\n")
    (repo / "functions" / ".env.staging").write_text(STAGING_ENV)
    git(repo, "init", "-q", "-b", "main")
    return repo


@pytest.fixture
def repo(template: Path, tmp_path: Path) -> Repo:
    """A fresh copy of the template with one commit that passed make test."""
    root = tmp_path / "repo"
    shutil.copytree(template, root)
    firebase = tmp_path / "firebase"
    calls, fail = tmp_path / "calls.log", tmp_path / "fail.txt"
    firebase.write_text(
        f"#!{sys.executable}\n"
        "import sys, pathlib\n"
        "argv = ' '.join(sys.argv[1:])\n"
        f"with open({str(calls)!r}, 'a') as f:\n"
        "    f.write(argv + '\\n')\n"
        f"fail = pathlib.Path({str(fail)!r})\n"
        "needles = fail.read_text().split('\\n') if fail.exists() else []\n"
        "sys.exit(1 if any(n and n in argv for n in needles) else 0)\n"
    )
    firebase.chmod(0o755)
    r = Repo(root, calls, fail, firebase)
    r.commit("initial")
    return r


class _Deployed(BaseHTTPRequestHandler):
    broken: ClassVar[set[str]] = set()

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_POST(self) -> None:
        name = self.path.strip("/")
        if name in self.broken:
            body, status = b'{"result": {"open": true}}', 200
        else:
            body, status = b'{"error": {"status": "UNAUTHENTICATED", "message": "no"}}', 401
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@dataclass
class Deployed:
    """A loopback stand-in for the deployed callables: each refuses an unauthenticated call as
    the callable SDK does, except the names in ``broken`` (which answer as if open)."""

    url: str
    broken: set[str]


@pytest.fixture
def deployed() -> Iterator[Deployed]:
    """See ``Deployed``."""
    broken: set[str] = set()
    handler = type("Handler", (_Deployed,), {"broken": broken})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Deployed(f"http://127.0.0.1:{server.server_address[1]}", broken)
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="session")
def firestore_host() -> Iterator[str]:
    """One Firestore emulator (the Cloud SDK's) for every rules check of the session."""
    with deploy.temporary_firestore(ROOT) as host:
        yield host
