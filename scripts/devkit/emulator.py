"""Talking to the Emulator Suite: users on the Auth emulator, the callable protocol, and a
server-side (rules-bypassing) Firestore store for seeding and checking."""

from __future__ import annotations

import json
import os
import uuid
from dataclasses import dataclass
from typing import Any

import httpx

GATED: dict[str, Any] = {
    "phase": "full",
    "rolloutPercentage": 100,
    "targetGroups": ["beta-testers", "internal-team", "trusted-advisors"],
    "fallbackEnabled": False,
    "components": {
        "premiumGating": True,
        "usageTracking": True,
        "rateLimiting": True,
        "securityAudit": True,
    },
    "version": 1,
}
"""The rollout config the emulator tests and the demo start from: phase full, no fallback,
so every user is gated."""

REQUIRED = ("FIRESTORE_EMULATOR_HOST", "FIREBASE_AUTH_EMULATOR_HOST", "FUNCTIONS_BASE_URL")


def require_emulators() -> None:
    """Fail (never skip) when the suite is not up: these tests run under with-emulators.sh."""
    missing = [v for v in REQUIRED if not os.environ.get(v)]
    if missing:
        raise RuntimeError(
            f"{', '.join(missing)} not set: run these tests through "
            "`scripts/with-emulators.sh` (make test does)"
        )


def project() -> str:
    """The demo project id."""
    return os.environ.get("GCLOUD_PROJECT", "demo-cv-enrichment")


@dataclass
class User:
    """A signed-in user on the Auth emulator."""

    uid: str
    email: str
    password: str
    token: str


def _auth_url(path: str) -> str:
    return f"http://{os.environ['FIREBASE_AUTH_EMULATOR_HOST']}/identitytoolkit.googleapis.com/v1/{path}"


def sign_up(prefix: str = "user", admin: bool = False) -> User:
    """A new user (and, for admins, the custom claim ``admin: true`` on a fresh token)."""
    email = f"{prefix}-{uuid.uuid4().hex[:10]}@example.test"
    password = "secret-" + uuid.uuid4().hex[:8]
    r = httpx.post(
        _auth_url("accounts:signUp?key=any"),
        json={"email": email, "password": password, "returnSecureToken": True},
        timeout=10,
    )
    r.raise_for_status()
    body = r.json()
    user = User(body["localId"], email, password, body["idToken"])
    if admin:
        r = httpx.post(
            _auth_url(f"projects/{project()}/accounts:update"),
            headers={"Authorization": "Bearer owner"},
            json={"localId": user.uid, "customAttributes": json.dumps({"admin": True})},
            timeout=10,
        )
        r.raise_for_status()
        r = httpx.post(
            _auth_url("accounts:signInWithPassword?key=any"),
            json={"email": email, "password": password, "returnSecureToken": True},
            timeout=10,
        )
        r.raise_for_status()
        user.token = r.json()["idToken"]
    return user


@dataclass
class Answer:
    """A callable's answer: ``result`` or ``error`` (status, message, details)."""

    http_status: int
    body: dict[str, Any]

    @property
    def ok(self) -> bool:
        return "result" in self.body

    @property
    def result(self) -> Any:
        if "result" not in self.body:  # raised, not asserted: this also runs outside pytest
            raise AssertionError(f"expected a result, got {self.body}")
        return self.body["result"]

    @property
    def status(self) -> str:
        """``OK`` for a result, the error's status otherwise (``HTTP nnn`` for a non-callable
        answer, so nothing unexpected can pass for success)."""
        if "result" in self.body:
            return "OK"
        err = self.body.get("error")
        if isinstance(err, dict) and err.get("status"):
            return str(err["status"])
        return f"HTTP {self.http_status}: {str(self.body)[:200]}"

    @property
    def error(self) -> dict[str, Any]:
        if "error" not in self.body:  # raised, not asserted: this also runs outside pytest
            raise AssertionError(f"expected an error, got {self.body}")
        return dict(self.body["error"])


def call(
    name: str,
    data: Any,
    user: User | None = None,
    *,
    base_url: str | None = None,
    client: httpx.Client | None = None,
    timeout: float = 60,
) -> Answer:
    """POST ``{"data": data}`` to a callable, as ``httpsCallable`` would."""
    url = f"{base_url or os.environ['FUNCTIONS_BASE_URL']}/{name}".rstrip("/")
    headers = {"Content-Type": "application/json"}
    if user is not None:
        headers["Authorization"] = f"Bearer {user.token}"
    poster = client.post if client is not None else httpx.post
    r = poster(url, json={"data": data}, headers=headers, timeout=timeout)
    try:
        body = r.json()
    except ValueError:
        body = {"error": {"status": f"HTTP {r.status_code}", "message": r.text[:200]}}
    return Answer(r.status_code, body)


def store() -> Any:
    """A server-side store on the Firestore emulator (bypasses rules, like the Admin SDK)."""
    from stores.firestore import FirestoreStore, make_client

    return FirestoreStore(make_client(project()))


def seed(
    store: Any,
    prefix: str,
    *,
    premium: bool = False,
    groups: list[str] | None = None,
    admin: bool = False,
) -> tuple[Any, str]:
    """A signed-up user with a profile and a CV; returns (user, cvId)."""
    from stores.base import Write

    user = sign_up(prefix, admin=admin)
    profile: dict[str, Any] = {"displayName": prefix}
    if premium:
        profile["subscription"] = {"tier": "premium", "status": "active"}
    if groups:
        profile["rolloutGroups"] = groups
    cv_id = f"cv-{user.uid}"
    store.commit(
        [
            Write(f"users/{user.uid}", profile, merge=False),
            Write(f"cvs/{cv_id}", {"userId": user.uid, "title": f"{prefix}'s CV"}, merge=False),
        ]
    )
    return user, cv_id
