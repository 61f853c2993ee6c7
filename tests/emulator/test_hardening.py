"""Issue 8 on the Emulator Suite: a deleted CV takes its results with it (the ``onCvDeleted``
trigger), and a call with an invalid ID token is answered ``unauthenticated`` and audited."""

from __future__ import annotations

import base64
import json
import os
import time
from datetime import UTC, datetime
from typing import Any

import httpx

from scripts.devkit.emulator import User, call, project, seed
from stores.base import Write


def _unsigned_jwt(uid: str) -> str:
    """A token the Firestore emulator accepts for rules (``alg: none``), as a client SDK's."""

    def b64(obj: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()

    now = int(time.time())
    claims = {"sub": uid, "user_id": uid, "iat": now, "exp": now + 3600, "aud": project()}
    claims["iss"] = f"https://securetoken.google.com/{project()}"
    return f"{b64({'alg': 'none', 'typ': 'JWT'})}.{b64(claims)}."


def test_deleting_a_cv_through_the_client_deletes_its_results(store: Any) -> None:
    user, cv = seed(store, "leaver")
    results = [f"cvs/{cv}/externalData/latest", f"cvs/{cv}/externalData/previous"]
    store.commit(
        [Write(p, {"userId": user.uid, "status": "success"}, merge=False) for p in results]
    )
    docs = f"http://{os.environ['FIRESTORE_EMULATOR_HOST']}/v1/projects/{project()}/databases/(default)/documents"
    r = httpx.delete(
        f"{docs}/cvs/{cv}", headers={"Authorization": f"Bearer {_unsigned_jwt(user.uid)}"}
    )
    assert r.status_code == 200, r.text  # the owner's own delete, under the rules
    deadline = time.monotonic() + 20
    left = results
    while left and time.monotonic() < deadline:
        time.sleep(0.5)
        got = store.get_many(results)
        left = [p for p in results if got[p] is not None]
    assert not left, f"still there after 20 s: {left}"


def test_a_garbage_id_token_is_answered_unauthenticated_and_audited(store: Any) -> None:
    started = datetime.now(UTC)
    garbage = User(uid="nobody", email="", password="", token="not.a.token")
    answer = call("enrichCVWithExternalData", {"cvId": "cv-x"}, garbage)
    assert answer.status == "UNAUTHENTICATED" and answer.http_status == 401
    audits = [
        d
        for _, d in store.query("external_data_security_audit", [("at", ">=", started)])
        if d.get("reason") == "invalid ID token"
    ]
    assert [(a["type"], a["fn"]) for a in audits] == [
        ("unauthenticated", "enrichCVWithExternalData")
    ]
    assert "uid" not in audits[0] and audits[0].get("ipHash")
