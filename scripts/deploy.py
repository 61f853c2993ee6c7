#!/usr/bin/env python3
"""Deploy to a Firebase project, checked step by step, and undo (issue 11, item 6).

    scripts/deploy.py --project staging [--only enrichCVWithExternalData] [--dry-run]
    scripts/deploy.py rollback --project staging --to previous|REF [--only NAME] [--dry-run]

A deploy is: the preflight (every check runs; any failure stops the deploy, all failures are
listed), then the rollout plan's deployment sequence: Firestore rules and
indexes, then each function alone, each followed by a smoke check (the health endpoint when a
function ``*Health`` exists; every callable answers an unauthenticated call with
``unauthenticated``), then the deployed commit is recorded in Firestore
(``config/externalDataDeploys/history/*``) so ``rollback --to previous`` knows what ran before.
A rollback redeploys an earlier commit the same way from a clean ``git worktree``.

The preflight:
  env        ``functions/.env`` + ``.env.<project id>`` or ``.env.<alias>`` (firebase-tools
             refuses both) parse with the functions' own settings code
             (``common.settings.load_settings``, as the deploy's function discovery runs it:
             secrets absent); no unknown ``EXTERNAL_DATA_*`` name, no secret, and every key one
             firebase-tools accepts (uppercase, not reserved)
  secrets    every secret the discovered functions declare exists in Secret Manager
             (``firebase functions:secrets:get``: metadata only, the value is never printed)
  rules      ``firestore.rules`` compiles on the Firestore emulator
  indexes    ``firestore.indexes.json`` is JSON shaped as the Firestore CLI expects
  tree       the working tree is clean, and its commit passed ``make test`` (listed in
             ``.tools/test-passed``, which ``make test`` appends to)
  discovery  the functions import and list themselves as firebase-tools will see them
  log        the deploy log in Firestore can be read (the deploy is recorded there)

``--dry-run`` runs the preflight, prints every command the deploy would run, and exits 1 if a
check failed (a missing secret is named). Exit status: 0 done, 1 preflight failed (or a usage
error), 2 a deploy command or a smoke check failed, or Ctrl-C, part way (what was deployed so
far is printed and recorded with ``failed``, so ``rollback --to previous`` still finds the
version before), or the record could not be written.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import httpx

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT / "functions") not in sys.path:
    sys.path.insert(0, str(ROOT / "functions"))

from common.settings import VARIABLES, SettingsError, load_settings  # noqa: E402

REGION = "us-central1"
HISTORY = "config/externalDataDeploys/history"
"""One document per deploy or rollback: project, commit, functions, when, who."""
# firebase-tools' own key rules (lib/functions/env.js: validateKey, RESERVED_KEYS/PREFIXES).
RESERVED_PREFIXES = ("X_GOOGLE_", "FIREBASE_", "EXT_", "KIT_")
RESERVED_KEYS = {
    "FIREBASE_CONFIG",
    "CLOUD_RUNTIME_CONFIG",
    "EVENTARC_CLOUD_EVENT_SOURCE",
    "ENTRY_POINT",
    "GCP_PROJECT",
    "GCLOUD_PROJECT",
    "GOOGLE_CLOUD_PROJECT",
    "FUNCTION_TRIGGER_TYPE",
    "FUNCTION_NAME",
    "FUNCTION_MEMORY_MB",
    "FUNCTION_TIMEOUT_SEC",
    "FUNCTION_IDENTITY",
    "FUNCTION_REGION",
    "FUNCTION_TARGET",
    "FUNCTION_SIGNATURE_TYPE",
    "K_SERVICE",
    "K_REVISION",
    "PORT",
    "K_CONFIGURATION",
}
KEY_FORMAT = re.compile(r"[A-Z_][A-Z0-9_]*")
ORDER = (
    "enrichCVWithExternalData",
    "trackExternalDataUsage",
    "getUserExternalDataUsageStats",
    "getExternalDataAnalytics",
)
"""The plan's order for the callables it names; other functions follow alphabetically."""
_DISCOVER = """
import json, yaml
from firebase_functions.private import serving
print(json.dumps(yaml.safe_load(serving.functions_as_yaml(serving.get_functions()))))
"""

Runner = Callable[[Sequence[str], Path], "subprocess.CompletedProcess[str]"]


class DeployError(Exception):
    """A step failed; the message says which and why."""


def run_command(argv: Sequence[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run a command, capturing its output (the default runner); a program that cannot be run
    at all is a ``DeployError``."""
    try:
        return subprocess.run(list(argv), cwd=cwd, capture_output=True, text=True, check=False)
    except OSError as exc:
        raise DeployError(f"cannot run {argv[0]}: {exc.strerror} (run `make setup`)") from None


# -- project and env files ---------------------------------------------------------------------


def aliases(root: Path) -> dict[str, str]:
    """``.firebaserc``'s projects: alias -> project id (``DeployError`` if it cannot be read)."""
    rc = root / ".firebaserc"
    if not rc.exists():
        return {}
    try:
        projects = json.loads(rc.read_text()).get("projects", {})
        if not isinstance(projects, dict) or not all(isinstance(v, str) for v in projects.values()):
            raise ValueError('"projects" is not an object of alias: project id')
    except (ValueError, AttributeError, UnicodeDecodeError) as exc:
        raise DeployError(
            f".firebaserc cannot be read ({exc}): it must be JSON like "
            '{"projects": {"staging": "<project id>"}}'
        ) from None
    return dict(projects)


def resolve_project(root: Path, project: str) -> tuple[str, str]:
    """(alias, project id) from ``.firebaserc``; an id that is no alias is its own alias."""
    projects = aliases(root)
    if project in projects:
        return project, str(projects[project])
    return project, project


_DOTENV_LINE = re.compile(
    r"""\s*(?:export)?\s*([\w./]+)\s*=[\f\t\v]*"""
    r"""(\s*'(?:\\'|[^'])*'|\s*"(?:\\"|[^"])*"|[^#\r\n]*)?\s*(?:#.*)?""",
    re.ASCII,
)
"""firebase-tools' LINE_RE (lib/functions/env.js), one line at a time."""
_ESCAPES = {
    "\\n": "\n",
    "\\r": "\r",
    "\\t": "\t",
    "\\v": "\v",
    "\\\\": "\\",
    "\\'": "'",
    '\\"': '"',
}


def parse_dotenv(text: str) -> dict[str, str]:
    """``KEY=VALUE`` lines as firebase-tools reads them: ``#`` comments (an unquoted value ends
    at ``#``), blank lines, optional ``export``, single or double quotes (escapes ``\\n \\r
    \\t \\v \\\\ \\' \\"`` inside double quotes). Values are one line each here
    (firebase-tools also reads a quoted value over several lines: its second line fails here as
    not ``KEY=VALUE``)."""
    out: dict[str, str] = {}
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        m = _DOTENV_LINE.fullmatch(line)
        if not m:
            raise DeployError(f"line {n} is not KEY=VALUE: {raw!r}")
        value = (m[2] or "").strip()
        quoted = re.fullmatch(r"""(["'])(.*)\1""", value, re.S)
        if quoted:
            value = quoted[2]
            if quoted[1] == '"':
                value = re.sub(r"""\\[nrtv\\'"]""", lambda e: _ESCAPES[e[0]], value)
        out[m[1]] = value
    return out


def env_files(root: Path, alias: str, project_id: str) -> list[Path]:
    """The dotenv files firebase-tools deploys for this project, in the order it merges them."""
    names = [".env", f".env.{project_id}"] + ([f".env.{alias}"] if alias != project_id else [])
    return [root / "functions" / n for n in names if (root / "functions" / n).exists()]


def check_env(root: Path, alias: str, project_id: str, secret_names: Sequence[str]) -> str:
    """The env preflight; returns a one-line description, raises ``DeployError``."""
    files = env_files(root, alias, project_id)
    specific = [f for f in files if f.name != ".env"]
    known = aliases(root)
    if not specific and alias == project_id and known and alias not in known.values():
        raise DeployError(
            f"{alias} is not an alias of .firebaserc ({', '.join(sorted(known))}) nor a project "
            f"with a functions/.env.{alias}: a typo? (a new project: add its alias to "
            ".firebaserc and its settings from functions/.env.example)"
        )
    if not specific:
        raise DeployError(
            f"no functions/.env.{alias} (or .env.{project_id}): every project needs its own "
            "settings file (start from functions/.env.example)"
        )
    if len(specific) > 1:
        raise DeployError(
            f"both {' and '.join('functions/' + f.name for f in specific)}: firebase-tools "
            f"refuses to deploy with both; keep one (functions/.env.{alias})"
        )
    env: dict[str, str] = {}
    for f in files:
        try:
            env.update(parse_dotenv(f.read_text()))
        except DeployError as exc:
            raise DeployError(f"functions/{f.name}: {exc}") from None
    settings = {v.name for v in VARIABLES}
    for key in env:
        if not KEY_FORMAT.fullmatch(key):
            raise DeployError(
                f"{key}: firebase-tools accepts only uppercase ASCII letters, digits and "
                "underscores in a key (not starting with a digit)"
            )
        if key in secret_names:
            raise DeployError(
                f"{key} is a secret: set it with `firebase functions:secrets:set {key}`, not in a .env file"
            )
        if key.startswith("EXTERNAL_DATA_") and key not in settings:
            raise DeployError(
                f"{key} is not a setting of the functions (typo?); known: common/settings.py VARIABLES"
            )
        if key.startswith(RESERVED_PREFIXES) or key in RESERVED_KEYS:
            raise DeployError(
                f"{key} is reserved by Cloud Functions and may not be set in a .env file"
            )
    try:
        # As the deploy's discovery imports main.py: ADMIN_PORT set, secrets not there yet.
        load_settings({**env, "GCLOUD_PROJECT": project_id, "ADMIN_PORT": "0"}, emulator=False)
    except SettingsError as exc:
        raise DeployError(f"functions/.env files: {exc}") from None
    return f"{', '.join('functions/' + f.name for f in files)}: {len(env)} variables, valid"


# -- indexes, rules, tree, discovery, secrets --------------------------------------------------

_ORDERS = {"ASCENDING", "DESCENDING"}


def _index_fields(fields: Any, where: str) -> None:
    if not isinstance(fields, list) or not fields:
        raise DeployError(f"{where}: fields must be a non-empty list")
    for f in fields:
        if not isinstance(f, dict) or not isinstance(f.get("fieldPath"), str):
            raise DeployError(f"{where}: every field needs a fieldPath")
        modes = [k for k in ("order", "arrayConfig", "vectorConfig") if k in f]
        if len(modes) != 1:
            raise DeployError(
                f"{where}: field {f['fieldPath']} needs exactly one of order, arrayConfig"
            )
        if "order" in f and f["order"] not in _ORDERS:
            raise DeployError(
                f"{where}: field {f['fieldPath']} order must be ASCENDING or DESCENDING"
            )
        if "arrayConfig" in f and f["arrayConfig"] != "CONTAINS":
            raise DeployError(f"{where}: field {f['fieldPath']} arrayConfig must be CONTAINS")


def check_indexes(path: Path) -> str:
    """``firestore.indexes.json``: JSON with ``indexes`` and ``fieldOverrides`` shaped as the
    Firestore CLI deploys them."""
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise DeployError(f"{path.name} is not valid JSON: {exc}") from None
    if not isinstance(doc, dict) or set(doc) - {"indexes", "fieldOverrides"}:
        raise DeployError(f"{path.name} must be an object with indexes and fieldOverrides only")
    for i, idx in enumerate(doc.get("indexes", [])):
        where = f"{path.name} indexes[{i}]"
        if not isinstance(idx, dict) or not isinstance(idx.get("collectionGroup"), str):
            raise DeployError(f"{where}: collectionGroup is required")
        if idx.get("queryScope", "COLLECTION") not in ("COLLECTION", "COLLECTION_GROUP"):
            raise DeployError(f"{where}: queryScope must be COLLECTION or COLLECTION_GROUP")
        _index_fields(idx.get("fields"), where)
    for i, fo in enumerate(doc.get("fieldOverrides", [])):
        where = f"{path.name} fieldOverrides[{i}]"
        if not isinstance(fo, dict) or not all(
            isinstance(fo.get(k), str) for k in ("collectionGroup", "fieldPath")
        ):
            raise DeployError(f"{where}: collectionGroup and fieldPath are required")
        if "ttl" in fo and not isinstance(fo["ttl"], bool):
            raise DeployError(f"{where}: ttl must be true or false")
        for j, ix in enumerate(fo.get("indexes", [])):
            _index_fields(
                [
                    {k: v for k, v in ix.items() if k != "queryScope"}
                    | {"fieldPath": fo["fieldPath"]}
                ],
                f"{where}.indexes[{j}]",
            )
    return f"{path.name}: {len(doc.get('indexes', []))} indexes, {len(doc.get('fieldOverrides', []))} field overrides"


def check_rules(path: Path, emulator_host: str) -> str:
    """Load ``firestore.rules`` into the Firestore emulator at ``emulator_host`` (under a project
    of its own, so a running suite's rules are untouched); a compile error fails."""
    url = f"http://{emulator_host}/emulator/v1/projects/demo-deploy-preflight:securityRules"
    body = {"rules": {"files": [{"name": path.name, "content": path.read_text()}]}}
    try:
        r = httpx.put(url, json=body, timeout=30)
    except httpx.TransportError as exc:
        raise DeployError(
            f"rules: the Firestore emulator at {emulator_host} did not answer ({exc})"
        ) from None
    if r.status_code != 200:
        try:
            issues = r.json().get("error", {}).get("message") or r.text
        except ValueError:
            issues = r.text
        raise DeployError(f"{path.name} does not compile: {str(issues).strip()[:800]}")
    found = _rules_issues(r)
    if found:
        raise DeployError(f"{path.name} compiles with issues: {'; '.join(found[:5])}")
    return f"{path.name} compiles"


def _rules_issues(r: httpx.Response) -> list[str]:
    """The emulator's warnings (an unknown method, an unused function...): each is a bug."""
    try:
        issues = r.json().get("issues") or []
    except (ValueError, AttributeError):
        return []
    out = []
    for i in issues:
        pos = i.get("sourcePosition", {})
        out.append(
            f"line {pos.get('line')}:{pos.get('column')} {i.get('severity', '')} {i.get('description', '')}"
        )
    return out


def check_tree(root: Path, runner: Runner) -> tuple[str, str]:
    """(description, commit): a clean tree whose commit passed ``make test``."""
    status = runner(["git", "status", "--porcelain"], root)
    if status.returncode != 0:
        raise DeployError(f"git status failed: {status.stderr.strip()}")
    if status.stdout.strip():
        changed = status.stdout.strip().splitlines()
        raise DeployError(
            f"the working tree is not clean ({len(changed)} changes, e.g. {changed[0].strip()}): commit or remove them first"
        )
    commit = runner(["git", "rev-parse", "HEAD"], root).stdout.strip()
    passed = root / ".tools" / "test-passed"
    recorded = passed.read_text().split() if passed.exists() else []
    if commit not in recorded:
        raise DeployError(
            f"commit {commit[:12]} has no passing `make test` on record (.tools/test-passed): run `make test` first"
        )
    return f"clean at {commit[:12]}, `make test` passed", commit


@dataclass(frozen=True)
class Function:
    """A discovered function: its name, trigger kind and declared secrets."""

    name: str
    kind: str
    """``callable``, ``https``, ``event`` or ``schedule``."""
    secrets: tuple[str, ...] = ()


def discover(
    root: Path, project_id: str, env: Mapping[str, str], python: Path | None = None
) -> list[Function]:
    """Import ``main.py`` as firebase-tools' discovery does (the functions venv, ADMIN_PORT set,
    the project's env) and list the functions in deploy order."""
    exe = python or root / "functions" / "venv" / "bin" / "python"
    full = {
        "PATH": os.environ.get("PATH", ""),
        **env,
        "GCLOUD_PROJECT": project_id,
        "ADMIN_PORT": "8081",
    }
    try:
        out = subprocess.run(
            [str(exe), "-c", _DISCOVER],
            cwd=root / "functions",
            env=full,
            capture_output=True,
            text=True,
            check=False,
        )
    except OSError as exc:
        raise DeployError(f"cannot run {exe}: {exc.strerror} (run `make setup`)") from None
    if out.returncode != 0:
        tail = (out.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise DeployError(f"function discovery failed (importing functions/main.py): {tail}")
    endpoints = json.loads(out.stdout.strip().splitlines()[-1])["endpoints"]
    found = []
    for name, ep in endpoints.items():
        kind = next((k for k, t in (("callable", "callableTrigger"), ("https", "httpsTrigger"),
                                     ("event", "eventTrigger"), ("schedule", "scheduleTrigger")) if t in ep), "other")  # fmt: skip
        secrets = tuple(s["key"] for s in ep.get("secretEnvironmentVariables") or [])
        found.append(Function(name, kind, secrets))
    rank = {n: i for i, n in enumerate(ORDER)}
    return sorted(found, key=lambda f: (rank.get(f.name, len(ORDER)), f.name))


def check_secrets(
    firebase: Sequence[str], project_id: str, names: Sequence[str], root: Path, runner: Runner
) -> list[str]:
    """The declared secrets that do not exist (or cannot be read) in the project."""
    missing = []
    for name in names:
        r = runner([*firebase, "functions:secrets:get", name, "--project", project_id], root)
        if r.returncode != 0:
            missing.append(name)
    return missing


# -- the preflight -----------------------------------------------------------------------------


@dataclass
class Preflight:
    """Every check's outcome: ``passed`` lines, ``failed`` messages, what was learned."""

    passed: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    commit: str = ""
    functions: list[Function] = field(default_factory=list)
    missing_secrets: list[str] = field(default_factory=list)

    def check(self, name: str, fn: Callable[[], str]) -> None:
        """Run one check; a ``DeployError`` is recorded as its failure."""
        try:
            self.passed.append(f"{name}: {fn()}")
        except DeployError as exc:
            self.failed.append(f"{name}: {exc}")

    def report(self) -> str:
        """Every check, one line each."""
        return "\n".join(
            [*(f"  ok    {p}" for p in self.passed), *(f"  FAIL  {f}" for f in self.failed)]
        )


@dataclass
class Target:
    """Where a deploy goes and what it runs with."""

    root: Path
    alias: str
    project_id: str
    firebase: tuple[str, ...]
    functions_url: str
    emulator_host: str | None = None
    """A Firestore emulator for the rules check; without one, a temporary one is started."""
    python: Path | None = None
    """The functions' Python (default: functions/venv of ``root``)."""
    tools: Path | None = None
    """The checkout whose ``.tools`` and ``.venv`` (gitignored: ``make setup``) start the
    temporary Firestore emulator (default ``root``; a rollback's worktree has neither)."""


def preflight(t: Target, runner: Runner, *, require_tests: bool = True) -> Preflight:
    """Run every check (none stops the others) and return the outcomes."""
    pf = Preflight()
    all_secrets = tuple(v.name for v in VARIABLES if v.secret)
    env: dict[str, str] = {}
    pf.check("env", lambda: check_env(t.root, t.alias, t.project_id, all_secrets))
    if not pf.failed:
        for f in env_files(t.root, t.alias, t.project_id):
            env.update(parse_dotenv(f.read_text()))
    pf.check("indexes", lambda: check_indexes(t.root / "firestore.indexes.json"))
    pf.check("rules", lambda: _rules(t))
    if require_tests:

        def tree() -> str:
            text, pf.commit = check_tree(t.root, runner)
            return text

        pf.check("tree", tree)

    def found() -> str:
        pf.functions = discover(t.root, t.project_id, env, t.python)
        return f"{len(pf.functions)} functions: {', '.join(f.name for f in pf.functions)}"

    pf.check("discovery", found)

    def secrets() -> str:
        declared = sorted({s for f in pf.functions for s in f.secrets})
        pf.missing_secrets = check_secrets(t.firebase, t.project_id, declared, t.root, runner)
        if pf.missing_secrets:
            raise DeployError(
                f"missing in {t.project_id} (or not readable): {', '.join(pf.missing_secrets)}; "
                f"set each with `firebase functions:secrets:set NAME --project {t.alias}`"
            )
        return f"{len(declared)} declared, all exist"

    if pf.functions:
        pf.check("secrets", secrets)
    return pf


def _rules(t: Target) -> str:
    if t.emulator_host:
        return check_rules(t.root / "firestore.rules", t.emulator_host)
    with temporary_firestore(t.tools or t.root) as host:
        return check_rules(t.root / "firestore.rules", host)


class temporary_firestore:  # noqa: N801 - used as a context manager, like contextlib's
    """The Cloud SDK's Firestore emulator on a free port for the rules check (the same launcher
    jar ``make setup`` builds for with-emulators.sh)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> str:
        import socket

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        java = run_command(
            [str(self.root / "scripts" / "with-emulators.sh"), "--print-java"], self.root
        ).stdout.strip()
        jar = self.root / ".tools" / "firestore-launcher.jar"
        if not java or not jar.exists():
            raise DeployError("rules: no Firestore emulator to compile them on (run `make setup`)")
        self.proc = subprocess.Popen(
            [java, "-jar", str(jar), "--host=127.0.0.1", f"--port={port}"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            return self._wait(self.proc, port)
        except BaseException:  # not up, or Ctrl-C meanwhile: stop it, no one else will
            self.__exit__()
            raise

    @staticmethod
    def _wait(proc: subprocess.Popen[bytes], port: int) -> str:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise DeployError(
                    f"rules: the temporary Firestore emulator exited (status {proc.returncode}): "
                    "check Java and .tools/firestore-launcher.jar (`make setup`)"
                )
            try:
                httpx.get(f"http://127.0.0.1:{port}/", timeout=1)
                return f"127.0.0.1:{port}"
            except httpx.TransportError:
                time.sleep(0.3)
        raise DeployError("rules: the temporary Firestore emulator did not start in 60 s")

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


# -- the sequence, smoke checks, history -------------------------------------------------------


def deploy_commands(t: Target, functions: Sequence[Function], only: str | None) -> list[list[str]]:
    """The plan's sequence: rules and indexes (unless ``only``), then each function alone."""
    base = [*t.firebase, "deploy", "--project", t.alias, "--non-interactive", "--only"]
    cmds = [] if only else [[*base, "firestore:rules,firestore:indexes"]]
    names = [f.name for f in functions if only in (None, f.name)]
    return cmds + [[*base, f"functions:{n}"] for n in names]


def smoke(base_url: str, fn: Function, *, attempts: int = 5, pause_s: float = 3.0) -> str:
    """Check one deployed function from outside: a ``*Health`` endpoint answers 2xx; a callable
    answers an unauthenticated call with ``unauthenticated``. Retried while it comes up."""
    url = f"{base_url.rstrip('/')}/{fn.name}"
    last = ""
    for i in range(attempts):
        if i:
            time.sleep(pause_s)
        try:
            if fn.kind == "https" and fn.name.lower().endswith("health"):
                r = httpx.get(url, timeout=20)
                if 200 <= r.status_code < 300:
                    return f"{fn.name}: health answered {r.status_code}"
                last = f"health answered HTTP {r.status_code}"
                continue
            if fn.kind != "callable":
                return f"{fn.name}: {fn.kind} trigger, no HTTP surface (deploy status only)"
            r = httpx.post(url, json={"data": {}}, timeout=20)
            status = _callable_status(r)
            if r.status_code == 401 and status == "UNAUTHENTICATED":
                return f"{fn.name}: unauthenticated call refused with unauthenticated"
            last = (
                f"an unauthenticated call answered HTTP {r.status_code} {status or r.text[:120]!r}"
            )
        except httpx.TransportError as exc:
            last = f"no answer ({type(exc).__name__})"
    raise DeployError(f"smoke check of {fn.name} at {url} failed: {last}")


def _callable_status(r: httpx.Response) -> str:
    try:
        err = r.json().get("error")
    except (ValueError, AttributeError):
        return ""
    return str(err.get("status", "")) if isinstance(err, dict) else ""


class DeployLog:
    """The deploys of every project, in Firestore ``config/externalDataDeploys/history``
    (through the functions' own ``DocumentStore``)."""

    def __init__(self, store: Any) -> None:
        self.store = store

    def record(
        self, project_id: str, commit: str, action: str, functions: Sequence[str], **extra: Any
    ) -> str:
        """Append one entry; returns its path."""
        from stores.base import Write

        at = datetime.now(UTC)
        path = f"{HISTORY}/{at.strftime('%Y%m%dT%H%M%S%f')}-{uuid.uuid4().hex[:6]}"
        by = os.environ.get("USER") or "unknown"
        doc = {"project": project_id, "commit": commit, "action": action, "at": at, "by": by,
               "functions": list(functions), **extra}  # fmt: skip
        self.store.commit([Write(path, doc, merge=False)])
        return path

    def entries(self, project_id: str) -> list[dict[str, Any]]:
        """The project's entries, newest first."""
        rows = self.store.query(HISTORY, [("project", "==", project_id)])
        return sorted((d for _, d in rows), key=lambda d: d["at"], reverse=True)

    def previous(self, project_id: str) -> str:
        """The commit deployed before the one deployed now."""
        entries = self.entries(project_id)
        if not entries:
            raise DeployError(f"no deploy of {project_id} on record: name a commit with --to REF")
        current = entries[0]["commit"]
        for e in entries[1:]:
            if e["commit"] != current:
                return str(e["commit"])
        raise DeployError(f"{project_id} has only ever run {current[:12]}: nothing to roll back to")


_T = TypeVar("_T")


def use_log(log: Callable[[], DeployLog], use: Callable[[DeployLog], _T], what: str) -> _T:
    """``use(log())``; a failure of the store (credentials, network, permissions) becomes a
    ``DeployError`` saying the log could not be ``what`` (read, written)."""
    try:
        return use(log())
    except DeployError:
        raise
    except Exception as exc:  # noqa: BLE001 - whichever the client raises, the same remedy
        raise DeployError(
            f"the deploy log ({HISTORY} in Firestore) could not be {what} "
            f"({type(exc).__name__}: {exc}; credentials: `gcloud auth application-default login`)"
        ) from None


def check_log(pf: Preflight, project_id: str, log: Callable[[], DeployLog]) -> None:
    """The deploy log can be read (the deploy is recorded there at the end)."""

    def read() -> str:
        n = len(use_log(log, lambda history: history.entries(project_id), "read"))
        return f"{n} deploys of {project_id} on record"

    pf.check("log", read)


def firestore_log(project_id: str) -> DeployLog:
    """The deploy log in the project's Firestore (the emulator when FIRESTORE_EMULATOR_HOST is
    set, otherwise Application Default Credentials)."""
    from stores.firestore import FirestoreStore, make_client

    return DeployLog(FirestoreStore(make_client(project_id)))


# -- deploy, rollback, CLI ---------------------------------------------------------------------

Say = Callable[[str], None]


RULES_STEP = "firestore:rules,firestore:indexes"


class Incomplete(DeployError):
    """The sequence stopped part way; ``deployed`` lists the steps that completed (the rules
    step, then function names)."""

    def __init__(self, reason: str, deployed: Sequence[str]) -> None:
        self.reason = reason
        self.deployed = list(deployed)
        super().__init__(f"{reason}; deployed so far: {so_far(self.deployed)}")

    @property
    def functions(self) -> list[str]:
        """The functions deployed before the sequence stopped."""
        return [d for d in self.deployed if d != RULES_STEP]


def so_far(deployed: Sequence[str]) -> str:
    """What a stopped sequence changed, in words."""
    functions = [d for d in deployed if d != RULES_STEP]
    rules = "the Firestore rules and indexes" if RULES_STEP in deployed else ""
    if functions and rules:
        return f"{functions} after {rules}"
    return str(functions) if functions else rules or "nothing"


def execute(
    t: Target, pf: Preflight, only: str | None, runner: Runner, say: Say, smoke_pause_s: float = 3.0
) -> list[str]:
    """Run the sequence; each function deploy is followed by its smoke check. Returns the
    functions deployed; raises ``Incomplete`` naming the step that failed (or was interrupted)
    and what was deployed before it."""
    by_name = {f.name: f for f in pf.functions}
    done: list[str] = []
    step = ""
    try:
        for cmd in deploy_commands(t, pf.functions, only):
            step = f"`{shlex.join(cmd)}`"
            say(f"$ {shlex.join(cmd)}")
            r = runner(cmd, t.root)
            if r.returncode != 0:
                tail = " / ".join((r.stderr or r.stdout).strip().splitlines()[-3:])
                raise DeployError(f"{step} failed (status {r.returncode}): {tail}")
            target = cmd[-1].removeprefix("functions:")
            done.append(target)
            if target in by_name:
                step = f"the smoke check of {target}"
                say(f"  smoke: {smoke(t.functions_url, by_name[target], pause_s=smoke_pause_s)}")
    except DeployError as exc:
        raise Incomplete(str(exc), done) from None
    except KeyboardInterrupt:
        raise Incomplete(f"interrupted during {step} (its outcome is unknown)", done) from None
    return [d for d in done if d != RULES_STEP]


def check_only(pf: Preflight, only: str | None) -> None:
    """``--only`` names one of the discovered functions (else a failure of the preflight)."""
    names = [f.name for f in pf.functions]
    if only and names and only not in names:
        pf.failed.append(
            f"--only: {only} is not a function of this source (its functions: {', '.join(names)})"
        )


def deploy(
    t: Target,
    only: str | None,
    dry_run: bool,
    runner: Runner,
    log: Callable[[], DeployLog],
    say: Say,
) -> int:
    """Preflight, then (unless ``dry_run``) the sequence and its record."""
    pf = preflight(t, runner)
    check_only(pf, only)
    check_log(pf, t.project_id, log)
    say(f"preflight for {t.alias} ({t.project_id}):\n{pf.report()}")
    return _run(
        t,
        pf,
        "deploy",
        Steps(only, dry_run, runner, log, say),
        plan="would run, in order (each function followed by its smoke check against "
        + t.functions_url
        + "):",
        record=f"  then record the commit in Firestore {HISTORY}/ of {t.project_id}",
        stopped="deploy stopped: the preflight failed (see FAIL above)",
        finished=lambda done, path: (
            f"deployed {pf.commit[:12]} to {t.project_id}: {done} (recorded as {path})"
        ),
    )


@dataclass(frozen=True)
class Steps:
    """How a deploy or a rollback runs: which function, for real or not, and its tools."""

    only: str | None
    dry_run: bool
    runner: Runner
    log: Callable[[], DeployLog]
    say: Say


def _run(
    t: Target,
    pf: Preflight,
    kind: str,
    steps: Steps,
    *,
    plan: str,
    record: str,
    stopped: str,
    finished: Callable[[str, str], str],
) -> int:
    """After the preflight: the plan (dry run), or the sequence and its record in the history.
    0 done, 1 stopped (or a dry run of a failed preflight), 2 failed part way."""
    say = steps.say
    if steps.dry_run:
        say(plan)
        for cmd in deploy_commands(t, pf.functions, steps.only):
            say(f"  {shlex.join(cmd)}")
        say(record)
        return 1 if pf.failed else 0
    if pf.failed:
        say(stopped)
        return 1
    try:
        done = execute(t, pf, steps.only, steps.runner, say)
    except Incomplete as exc:
        say(f"{kind} failed: {exc}")
        path = _record(t, pf.commit, kind, steps, exc.functions, failed=exc.reason)
        if path:
            say(f"recorded as {path} (stopped part way)")
        again = "previous" if kind == "deploy" else pf.commit[:12]
        verb = "undo" if kind == "deploy" else "retry"
        say(f"{verb} with `scripts/deploy.py rollback --project {t.alias} --to {again}`")
        return 2
    path = _record(t, pf.commit, kind, steps, done)
    if not path:
        say(f"{kind} of {pf.commit[:12]} to {t.project_id} done: {', '.join(done)}")
        return 2
    say(finished(", ".join(done), path))
    return 0


def _record(
    t: Target, commit: str, kind: str, steps: Steps, functions: list[str], **extra: str
) -> str:
    """Record the deploy or rollback; its path, or "" (and why, said) if it could not be."""

    def write(history: DeployLog) -> str:
        return history.record(t.project_id, commit, kind, functions, only=steps.only, **extra)

    try:
        return use_log(steps.log, write, "written")
    except DeployError as exc:
        steps.say(
            f"{kind} of {commit[:12]} NOT recorded: {exc}; until it is, `rollback --to previous` "
            f"does not know it: name commits with `rollback --to REF`"
        )
        return ""


def rollback(
    t: Target,
    ref: str,
    only: str | None,
    dry_run: bool,
    runner: Runner,
    log: Callable[[], DeployLog],
    say: Say,
) -> int:
    """Redeploy an earlier commit from a clean worktree, smoke checked, and record it."""
    try:
        wanted = (
            use_log(log, lambda h: h.previous(t.project_id), "read; name a commit with --to REF")
            if ref == "previous"
            else ref
        )
    except DeployError as exc:
        say(f"rollback stopped: {exc}")
        return 1
    resolved = runner(["git", "rev-parse", "--verify", f"{wanted}^{{commit}}"], t.root)
    if resolved.returncode != 0:
        say(f"rollback stopped: {wanted} is not a commit of this repository")
        return 1
    commit = resolved.stdout.strip()
    work = Path(tempfile.mkdtemp(prefix="deploy-rollback-"))
    steps = [
        ["git", "worktree", "add", "--detach", str(work / "src"), commit],
        [sys.executable, "-m", "venv", str(work / "src/functions/venv")],
        [
            str(work / "src/functions/venv/bin/pip"),
            "install",
            "--quiet",
            "-r",
            str(work / "src/functions/requirements.txt"),
        ],
    ]
    old = Target(
        work / "src", t.alias, t.project_id, t.firebase, t.functions_url, t.emulator_host, t.python
    )
    old.tools = t.tools or t.root  # its rules check uses this checkout's emulator
    try:
        for cmd in steps if not dry_run else steps[:1]:
            say(f"$ {shlex.join(cmd)}")
            r = runner(cmd, t.root)
            if r.returncode != 0:
                say(f"rollback stopped: `{shlex.join(cmd)}` failed: {r.stderr.strip()[-300:]}")
                return 1
        if dry_run:
            say(f"would then run: {shlex.join(steps[1])}\nwould then run: {shlex.join(steps[2])}")
            old.python = t.python or t.root / "functions/venv/bin/python"
        return _redeploy(old, commit, only, dry_run, runner, log, say)
    finally:
        runner(["git", "worktree", "remove", "--force", str(work / "src")], t.root)
        shutil.rmtree(work, ignore_errors=True)  # the worktree's parent, made above


def _redeploy(
    old: Target,
    commit: str,
    only: str | None,
    dry_run: bool,
    runner: Runner,
    log: Callable[[], DeployLog],
    say: Say,
) -> int:
    pf = preflight(old, runner, require_tests=False)
    pf.commit = commit
    check_only(pf, only)
    check_log(pf, old.project_id, log)
    say(f"preflight of {commit[:12]} for {old.alias} ({old.project_id}):\n{pf.report()}")
    return _run(
        old,
        pf,
        "rollback",
        Steps(only, dry_run, runner, log, say),
        plan="would run, in order, from the worktree (each function followed by its smoke check):",
        record=f"  then record the rollback to {commit[:12]} in Firestore {HISTORY}/ of {old.project_id}",
        stopped="rollback stopped: the preflight of the old commit failed (see FAIL above)",
        finished=lambda done, path: (
            f"rolled {old.project_id} back to {commit[:12]}: {done} (recorded as {path})"
        ),
    )


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        """A usage error exits 1 (nothing changed): argparse's 2 means "stopped part way" here."""
        self.print_usage(sys.stderr)
        self.exit(1, f"{self.prog}: error: {message}\n")


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    """Command-line options (``rollback`` as an optional first word)."""
    p = _Parser(description="Deploy to a Firebase project, checked step by step, and undo.")
    p.add_argument("action", nargs="?", choices=["deploy", "rollback"], default="deploy")
    p.add_argument(
        "--project",
        required=True,
        help="an alias of .firebaserc (staging, production) or a project id",
    )
    p.add_argument("--only", help="one function")
    p.add_argument("--to", help="rollback: a commit, tag or branch, or `previous`")
    p.add_argument(
        "--dry-run", action="store_true", help="preflight and print the commands; change nothing"
    )
    p.add_argument(
        "--functions-url",
        help=f"base URL of the deployed functions (default https://{REGION}-PROJECT.cloudfunctions.net)",
    )
    p.add_argument(
        "--firebase", default=str(ROOT / "node_modules/.bin/firebase"), help="the firebase CLI"
    )
    args = p.parse_args(argv)
    if args.action == "rollback" and not args.to:
        p.error("rollback needs --to REF or --to previous")
    return args


def main(argv: Sequence[str] | None = None, *, root: Path = ROOT, runner: Runner = run_command,
         log: Callable[[str], DeployLog] = firestore_log, say: Say = print) -> int:  # fmt: skip
    """The CLI; ``root``, ``runner``, ``log`` and ``say`` are replaceable for tests."""
    args = parse(argv)
    try:
        alias, project_id = resolve_project(root, args.project)
    except DeployError as exc:
        say(f"deploy stopped: {exc}")
        return 1
    t = Target(
        root, alias, project_id, tuple(shlex.split(args.firebase)),
        args.functions_url or f"https://{REGION}-{project_id}.cloudfunctions.net",
        os.environ.get("FIRESTORE_EMULATOR_HOST"), ROOT / "functions/venv/bin/python" if root != ROOT else None,
    )  # fmt: skip
    history = lambda: log(project_id)  # noqa: E731 - built only when needed (credentials)
    if args.action == "rollback":
        return rollback(t, args.to, args.only, args.dry_run, runner, history, say)
    return deploy(t, args.only, args.dry_run, runner, history, say)


def stop_on_sigterm() -> None:
    """SIGTERM (a cancelled CI job, ``kill``) stops a run as Ctrl-C does: what was deployed is
    said and recorded, and a rollback's worktree is removed (the default handler exits at once,
    skipping both)."""

    def stop(_signum: int, _frame: object) -> NoReturn:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)


if __name__ == "__main__":
    stop_on_sigterm()
    sys.exit(main())
