"""Firestore security rules tests: harness.

Runs against a Firestore emulator over its REST API (plain HTTP via httpx), the way the
Firebase quickstart-testing suites do with `@firebase/rules-unit-testing`:

* the rules in ``firestore.rules`` are loaded once per session
  (``PUT /emulator/v1/projects/{project}:securityRules``);
* before each test the database is cleared and the fixed data set below is seeded with
  ``Authorization: Bearer owner``, which bypasses rules (as the Admin SDK would);
* each role acts through its own client: anonymous sends no token, the others send an
  unsigned JWT (``alg: none``) that the emulator accepts as a Firebase ID token.

The emulator comes from ``FIRESTORE_EMULATOR_HOST`` (set by ``scripts/with-emulators.sh``);
the project id from ``GCLOUD_PROJECT`` (default ``demo-cv-enrichment``). Without an emulator
these tests fail; they never skip, so a green run always means the rules were exercised.

A test class declares its expectations as a ``MATRIX`` text table (roles down, operations
across, ``allow``/``deny`` in the cells); ``pytest_generate_tests`` below turns each cell into
its own parametrized case, so a failure names the cell, e.g. ``test_cell[owner-update-allow]``.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

# ---------------------------------------------------------------- identities

ANONYMOUS = "anonymous"
OTHER = "other"
OWNER = "owner"
ADMIN = "admin"
ROLES = (ANONYMOUS, OTHER, OWNER, ADMIN)

OWNER_UID = "alice"
OTHER_UID = "bob"
ADMIN_UID = "root"

ROLE_UIDS: dict[str, str | None] = {
    ANONYMOUS: None,
    OTHER: OTHER_UID,
    OWNER: OWNER_UID,
    ADMIN: ADMIN_UID,
}

OPERATIONS = ("get", "list", "create", "update", "delete")

RULES_FILE = Path(__file__).resolve().parents[2] / "firestore.rules"
NOW = dt.datetime(2026, 11, 26, 4, 0, tzinfo=dt.UTC)
LATER = NOW + dt.timedelta(days=3)

# ---------------------------------------------------------------- the seeded data set

#: Every document the tests start from, written with rules bypassed. `alice` owns the
#: user-scoped data; `bob` is "another user"; `root` carries the admin claim and owns nothing.
SEED: dict[str, dict[str, Any]] = {
    "users/alice": {
        "displayName": "Alice",
        "subscription": {"tier": "free", "status": "active"},
        "rolloutGroups": ["beta-testers"],
        "role": "user",
    },
    "users/bob": {"displayName": "Bob"},
    "users/root": {"displayName": "Root", "role": "admin"},
    "cvs/cv-alice": {"userId": OWNER_UID, "title": "Alice's CV", "updatedAt": NOW},
    "cvs/cv-bob": {"userId": OTHER_UID, "title": "Bob's CV", "updatedAt": NOW},
    "cvs/cv-alice/externalData/latest": {
        "userId": OWNER_UID,
        "status": "success",
        "skills": ["python"],
    },
    "external_data_usage/alice": {"uid": OWNER_UID, "totals": {"requests": 1}},
    "external_data_usage/alice/events/ev1": {
        "uid": OWNER_UID,
        "type": "access_granted",
        "at": NOW,
        "expireAt": LATER,
    },
    "external_data_usage/alice/conversions/cv1": {
        "uid": OWNER_UID,
        "at": NOW,
        "precededByFunnel": True,
    },
    "external_data_usage/bob": {"uid": OTHER_UID, "totals": {"requests": 2}},
    "rate_limits/alice_enrich_2026-11-26T04:00": {"count": 1, "expireAt": LATER},
    "external_data_cache/github_0123abcd": {
        "source": "github",
        "payload": {},
        "expireAt": LATER,
    },
    "external_data_metrics/h_2026-11-26T04_0": {
        "granularity": "h",
        "bucketStart": NOW,
        "shard": 0,
        "c": {"requests": 1},
    },
    "external_data_security_audit/audit1": {
        "type": "unauthorized_access",
        "at": NOW,
        "uid": OWNER_UID,
        "fn": "enrichCVWithExternalData",
        "reason": "premium_required",
    },
    "config/externalDataRollout": {
        "phase": "beta",
        "rolloutPercentage": 10,
        "version": 1,
    },
    "config/externalDataRollout/history/h1": {
        "at": NOW,
        "by": "ops",
        "action": "set",
        "version": 1,
    },
    "unknown_collection/doc1": {"anything": "here"},
}


# ---------------------------------------------------------------- value encoding


def encode_value(value: Any) -> dict[str, Any]:
    """Encode a Python value as a Firestore REST ``Value``."""
    if value is None:
        return {"nullValue": None}
    if isinstance(value, bool):
        return {"booleanValue": value}
    if isinstance(value, int):
        return {"integerValue": str(value)}
    if isinstance(value, float):
        return {"doubleValue": value}
    if isinstance(value, str):
        return {"stringValue": value}
    if isinstance(value, dt.datetime):
        return {"timestampValue": value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")}
    if isinstance(value, list | tuple):
        return {"arrayValue": {"values": [encode_value(v) for v in value]}}
    if isinstance(value, Mapping):
        return {"mapValue": {"fields": encode_fields(value)}}
    raise TypeError(f"cannot encode {type(value).__name__} for Firestore")


def encode_fields(data: Mapping[str, Any]) -> dict[str, Any]:
    """Encode a document body (``fields`` of a REST ``Document``)."""
    return {key: encode_value(value) for key, value in data.items()}


def unsigned_jwt(uid: str, *, admin: bool = False, claims: Mapping[str, Any] | None = None) -> str:
    """An unsigned (``alg: none``) Firebase ID token the emulator accepts for rules;
    ``claims``: custom claims of any value (an ``admin`` that is not ``true``)."""

    def b64(obj: Mapping[str, Any]) -> str:
        raw = json.dumps(obj, separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    issued = int(dt.datetime.now(dt.UTC).timestamp())
    token: dict[str, Any] = {
        "iss": f"https://securetoken.google.com/{project_id()}",
        "aud": project_id(),
        "iat": issued,
        "exp": issued + 3600,
        "auth_time": issued,
        "sub": uid,
        "user_id": uid,
        "firebase": {"sign_in_provider": "custom", "identities": {}},
    }
    if admin:
        token["admin"] = True
    token.update(claims or {})
    return f"{b64({'alg': 'none', 'typ': 'JWT'})}.{b64(token)}."


def project_id() -> str:
    """The emulator project (``GCLOUD_PROJECT``, default ``demo-cv-enrichment``)."""
    return os.environ.get("GCLOUD_PROJECT") or "demo-cv-enrichment"


# ---------------------------------------------------------------- clients


class UnexpectedResponse(AssertionError):
    """The emulator answered neither "allowed" (2xx) nor "denied" (403)."""


@dataclass(frozen=True)
class Result:
    """What the emulator answered to one client operation."""

    response: httpx.Response

    @property
    def outcome(self) -> str:
        """``"allow"`` for a 2xx answer, ``"deny"`` for 403 PERMISSION_DENIED.

        Anything else (404, 409, 400...) means the test did not exercise the rules it meant to,
        so it raises instead of passing as a "deny".
        """
        r = self.response
        if r.is_success:
            return "allow"
        if r.status_code == 403:
            return "deny"
        raise UnexpectedResponse(
            f"{r.request.method} {r.request.url} -> {r.status_code}: {r.text[:500]}"
        )

    @property
    def allowed(self) -> bool:
        """The operation was allowed (and succeeded)."""
        return self.outcome == "allow"

    @property
    def denied(self) -> bool:
        """The rules refused the operation."""
        return self.outcome == "deny"


@dataclass(frozen=True)
class Client:
    """One caller of the Firestore REST API: a role, or the rules-bypassing seeder."""

    http: httpx.Client
    base: str  # .../v1/projects/P/databases/(default)/documents
    authorization: str | None
    name: str

    def _headers(self) -> dict[str, str]:
        return {"Authorization": self.authorization} if self.authorization else {}

    def request(self, method: str, url: str, **kwargs: Any) -> Result:
        """Send one request with this caller's credentials."""
        return Result(self.http.request(method, url, headers=self._headers(), **kwargs))

    # Each operation returns a Result; `.outcome` says allow/deny.

    def get(self, path: str) -> Result:
        """Get one document."""
        return self.request("GET", f"{self.base}/{path}")

    def list(self, collection: str) -> Result:
        """List a whole collection (no filter: rules must allow reading every doc in it)."""
        return self.request("GET", f"{self.base}/{collection}", params={"pageSize": 50})

    def query_group(self, collection_id: str, field: str, value: Any) -> Result:
        """A collection-group ``runQuery``: every ``collection_id`` collection in the database,
        ``where field == value``."""
        body = {
            "structuredQuery": {
                "from": [{"collectionId": collection_id, "allDescendants": True}],
                "where": {
                    "fieldFilter": {
                        "field": {"fieldPath": field},
                        "op": "EQUAL",
                        "value": encode_value(value),
                    }
                },
            }
        }
        return self.request("POST", f"{self.base}:runQuery", json=body)

    def query_equal(self, collection: str, field: str, value: Any) -> Result:
        """``runQuery`` on ``collection`` with ``where field == value`` (rules can prove it)."""
        parent, _, collection_id = collection.rpartition("/")
        url = f"{self.base}/{parent}:runQuery" if parent else f"{self.base}:runQuery"
        body = {
            "structuredQuery": {
                "from": [{"collectionId": collection_id}],
                "where": {
                    "fieldFilter": {
                        "field": {"fieldPath": field},
                        "op": "EQUAL",
                        "value": encode_value(value),
                    }
                },
            }
        }
        return self.request("POST", url, json=body)

    def create(self, path: str, data: Mapping[str, Any]) -> Result:
        """Create a document that must not exist yet (``createDocument``)."""
        collection, _, doc_id = path.rpartition("/")
        return self.request(
            "POST",
            f"{self.base}/{collection}",
            params={"documentId": doc_id},
            json={"fields": encode_fields(data)},
        )

    def update(
        self, path: str, data: Mapping[str, Any], mask: Sequence[str] | None = None
    ) -> Result:
        """Update an existing doc, touching only the fields in ``mask`` (default: data's keys).

        A field named in ``mask`` but absent from ``data`` is deleted.
        """
        params: list[tuple[str, str]] = [("currentDocument.exists", "true")]
        params += [("updateMask.fieldPaths", f) for f in (mask if mask is not None else list(data))]
        return self.request(
            "PATCH",
            f"{self.base}/{path}",
            params=params,
            json={"fields": encode_fields(data)},
        )

    def delete(self, path: str) -> Result:
        """Delete a document (a deleted CV or profile is noted: its trigger runs after it)."""
        result = self.request("DELETE", f"{self.base}/{path}")
        if result.allowed and path.count("/") == 1 and path.startswith(("cvs/", "users/")):
            TRIGGERED.append(path)
        return result


ERASURES_DUE: list[str] = []
"""Profiles deleted by the current test whose erasure trigger has not been seen to finish."""
TRIGGERED: list[str] = []
"""CVs and profiles deleted by the current test: the functions' delete triggers (``onCvDeleted``
removes a CV's results, the users trigger erases the user) run after the test, asynchronously,
and could remove the next test's freshly seeded documents."""
TRIGGER_SETTLE_S = 2.0


@dataclass(frozen=True)
class Emulator:
    """The Firestore emulator for this session, rules loaded."""

    http: httpx.Client
    host: str
    project: str

    @property
    def documents_url(self) -> str:
        """Base URL of the default database's documents."""
        return f"http://{self.host}/v1/projects/{self.project}/databases/(default)/documents"

    def client(self, role: str) -> Client:
        """A client acting as ``role`` (one of ROLES)."""
        uid = ROLE_UIDS[role]
        auth = None if uid is None else f"Bearer {unsigned_jwt(uid, admin=role == ADMIN)}"
        return Client(self.http, self.documents_url, auth, role)

    def client_for(
        self, uid: str, *, admin: bool = False, claims: Mapping[str, Any] | None = None
    ) -> Client:
        """A signed-in client with an arbitrary uid (and custom ``claims``)."""
        return Client(
            self.http,
            self.documents_url,
            f"Bearer {unsigned_jwt(uid, admin=admin, claims=claims)}",
            uid,
        )

    @property
    def server(self) -> Client:
        """The rules-bypassing client (``Bearer owner``), standing in for the Admin SDK."""
        return Client(self.http, self.documents_url, "Bearer owner", "server")

    def clear(self) -> None:
        """Delete every document of the project's default database."""
        r = self.http.delete(
            f"http://{self.host}/emulator/v1/projects/{self.project}/databases/(default)/documents"
        )
        r.raise_for_status()

    def seed(self, docs: Mapping[str, Mapping[str, Any]]) -> None:
        """Write ``docs`` in one commit, bypassing rules."""
        prefix = f"projects/{self.project}/databases/(default)/documents"
        writes = [
            {"update": {"name": f"{prefix}/{path}", "fields": encode_fields(data)}}
            for path, data in docs.items()
        ]
        r = self.server.request(
            "POST", f"{self.documents_url}:commit", json={"writes": writes}
        ).response
        if not r.is_success:
            raise RuntimeError(f"seeding failed: {r.status_code} {r.text[:500]}")

    def remove(self, path: str) -> None:
        """Delete ``path`` with rules bypassed (no error if it is absent).

        Deleting a ``users/{uid}`` document makes the functions erase that user's data (the
        data-rights trigger, contract 2.5), asynchronously: ``settle_erasures`` waits for it
        before the next test seeds, so the erasure never removes the next test's data."""
        if path.count("/") == 1 and path.startswith("users/") and self.exists(path):
            ERASURES_DUE.append(path)
        if path.count("/") == 1 and path.startswith("cvs/") and self.exists(path):
            TRIGGERED.append(path)
        self.server.delete(path).response.raise_for_status()

    def settle_erasures(self, bound_s: float = 30.0) -> None:
        """Wait until every profile deleted since the last seed has been erased (its
        ``data_erasure`` audit entry exists); fails the test run if that takes over ``bound_s``."""
        if not ERASURES_DUE:
            return
        deadline = time.monotonic() + bound_s
        while time.monotonic() < deadline:
            r = self.server.query_equal("external_data_security_audit", "type", "data_erasure")
            found = [row for row in r.response.json() if "document" in row]
            if len(found) >= len(ERASURES_DUE):
                ERASURES_DUE.clear()
                return
            time.sleep(0.2)
        raise AssertionError(f"the erasure trigger did not finish for {ERASURES_DUE}")

    def exists(self, path: str) -> bool:
        """Whether ``path`` exists (read with rules bypassed)."""
        r = self.server.get(path).response
        if r.status_code == 404:
            return False
        r.raise_for_status()
        return True

    def read(self, path: str) -> dict[str, Any]:
        """The REST ``fields`` of ``path`` (read with rules bypassed)."""
        r = self.server.get(path).response
        r.raise_for_status()
        fields: dict[str, Any] = r.json().get("fields", {})
        return fields


# ---------------------------------------------------------------- fixtures


_MISSING_EMULATOR: list[bool] = []  # set when the session found no emulator to talk to


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Repeat the one reason for a sea of setup errors at the very end of the output."""
    if _MISSING_EMULATOR:
        terminalreporter.write_line(
            "tests/rules: FIRESTORE_EMULATOR_HOST is not set, so no rules test could run "
            "(use scripts/with-emulators.sh).",
            red=True,
            bold=True,
        )


@pytest.fixture(scope="session")
def emulator() -> Iterator[Emulator]:
    """The Firestore emulator with ``firestore.rules`` loaded; fails if there is none."""
    host = os.environ.get("FIRESTORE_EMULATOR_HOST")
    if not host:
        _MISSING_EMULATOR.append(True)
        pytest.fail(
            "FIRESTORE_EMULATOR_HOST is not set: the rules tests need the Firestore emulator. "
            "Run them under scripts/with-emulators.sh, or start an emulator and export "
            "FIRESTORE_EMULATOR_HOST=host:port.",
            pytrace=False,
        )
    project = project_id()
    with httpx.Client(timeout=30.0) as http:
        try:
            http.get(f"http://{host}/")
        except httpx.HTTPError as exc:
            pytest.fail(
                f"Firestore emulator at FIRESTORE_EMULATOR_HOST={host} is not reachable: {exc}",
                pytrace=False,
            )
        rules = RULES_FILE.read_text(encoding="utf-8")
        r = http.put(
            f"http://{host}/emulator/v1/projects/{project}:securityRules",
            json={"rules": {"files": [{"name": "firestore.rules", "content": rules}]}},
        )
        if not r.is_success:
            pytest.fail(
                f"the emulator refused firestore.rules: {r.status_code} {r.text}",
                pytrace=False,
            )
        yield Emulator(http, host, project)


@pytest.fixture
def db(emulator: Emulator) -> Emulator:
    """A fresh database holding exactly SEED (seeded again if a trigger of the previous test's
    deletions removed part of it after the seed, when the functions emulator runs beside)."""
    if "functions" not in os.environ.get("WITH_EMULATORS_ONLY", "functions"):
        TRIGGERED.clear()
        ERASURES_DUE.clear()
    emulator.settle_erasures()
    emulator.clear()
    emulator.seed(SEED)
    if TRIGGERED:
        TRIGGERED.clear()
        time.sleep(TRIGGER_SETTLE_S)
        if not all(emulator.exists(path) for path in SEED):
            emulator.clear()
            emulator.seed(SEED)
    return emulator


@pytest.fixture
def anonymous(db: Emulator) -> Client:
    """No token at all."""
    return db.client(ANONYMOUS)


@pytest.fixture
def other(db: Emulator) -> Client:
    """A signed-in user who owns none of the seeded data (bob)."""
    return db.client(OTHER)


@pytest.fixture
def owner(db: Emulator) -> Client:
    """The signed-in user who owns the seeded user-scoped data (alice)."""
    return db.client(OWNER)


@pytest.fixture
def admin(db: Emulator) -> Client:
    """A signed-in user with the ``admin: true`` custom claim (root)."""
    return db.client(ADMIN)


# ---------------------------------------------------------------- matrix tables


def parse_matrix(table: str) -> list[tuple[str, str, str]]:
    """Parse a ``MATRIX`` table into ``(role, operation, expected)`` cells.

    The first non-blank line names the operations; every other line is a role followed by one
    ``allow``/``deny`` per operation. Every role and every operation must appear exactly once.
    """
    lines = [line.split() for line in table.strip().splitlines() if line.strip()]
    header, rows = lines[0], lines[1:]
    if tuple(header) != OPERATIONS:
        raise ValueError(f"matrix header must be {OPERATIONS}, got {header}")
    if tuple(row[0] for row in rows) != ROLES:
        raise ValueError(f"matrix rows must be {ROLES}, got {[row[0] for row in rows]}")
    cells = []
    for role, *expected in rows:
        if len(expected) != len(OPERATIONS) or not set(expected) <= {"allow", "deny"}:
            raise ValueError(f"bad matrix row for {role}: {expected}")
        cells += [(role, op, exp) for op, exp in zip(OPERATIONS, expected, strict=True)]
    return cells


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Parametrize ``test_cell(role, op, expected)`` from the class's ``MATRIX`` table."""
    if {"role", "op", "expected"} <= set(metafunc.fixturenames) and metafunc.cls is not None:
        cells = parse_matrix(metafunc.cls.MATRIX)
        metafunc.parametrize(
            ("role", "op", "expected"),
            cells,
            ids=[f"{role}-{op}-{exp}" for role, op, exp in cells],
        )
