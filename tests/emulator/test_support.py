"""``scripts/support.py`` against the Emulator Suite: ``explain`` predicts what
``enrichCVWithExternalData`` then does for that user (called through the callable protocol), and
every change is audited with who and why. Runs under ``scripts/with-emulators.sh``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from scripts.devkit.emulator import call, seed

ROOT = Path(__file__).resolve().parents[2]
ENRICH = "enrichCVWithExternalData"


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - our own script, fixed arguments
        [sys.executable, str(ROOT / "scripts" / "support.py"), *args, "--as", "sam"],
        cwd=ROOT,
        env=dict(os.environ),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def explain(uid: str) -> dict[str, Any]:
    r = cli("explain", uid, "--json")
    assert r.returncode == 0, r.stderr
    out: dict[str, Any] = json.loads(r.stdout)
    return out


def changes(store: Any, uid: str) -> list[dict[str, Any]]:
    rows = store.query("external_data_security_audit", [("uid", "==", uid)])
    return [d for _, d in rows if d.get("type") == "support_change"]


def test_explain_predicts_what_the_callable_does(store: Any) -> None:
    user, cv = seed(store, "explained")
    x = explain(user.uid)
    assert (x["tier"], x["inCohort"], x["full"]["access"], x["preview"]["access"]) == (
        "free",
        True,
        "denied",
        "preview",
    )
    assert call(ENRICH, {"cvId": cv, "sources": ["github"], "github": "octocat"}, user).status == (
        "PERMISSION_DENIED"
    )
    preview = {"cvId": cv, "mode": "preview", "sources": ["github"], "github": "octocat"}
    out = call(ENRICH, preview, user).result
    assert out["access"] == "preview" and out["usage"]["remaining"] == x["remaining"] - 1
    for _ in range(2):
        assert call(ENRICH, preview, user).ok
    x = explain(user.uid)
    assert (x["used"], x["remaining"]) == (3, 0)
    refused = call(ENRICH, preview, user)
    assert refused.status == "RESOURCE_EXHAUSTED"
    assert refused.error["details"]["resetAt"] == x["nextFreeSlot"]
    assert [a["type"] for a in x["audit"]][:1] == ["access_granted"]
    text = cli("explain", user.uid)
    assert (
        text.returncode == 0
        and "next free slot" in text.stdout
        and "premium_required" in text.stdout
    )


def test_every_change_is_audited_and_takes_effect(store: Any, tmp_path: Path) -> None:
    user, cv = seed(store, "helped")
    preview = {"cvId": cv, "mode": "preview", "sources": ["github"], "github": "octocat"}
    for _ in range(3):
        assert call(ENRICH, preview, user).ok
    assert cli("reset-quota", user.uid, "--reason", "ticket 1").returncode == 0
    assert explain(user.uid)["remaining"] == 3 and call(ENRICH, preview, user).ok

    until = (datetime.now(UTC) + timedelta(days=10)).date().isoformat()
    assert cli("grant", user.uid, "--until", until, "--reason", "ticket 2").returncode == 0
    x = explain(user.uid)
    assert x["tier"] == "premium" and "complimentary" in x["tierWhy"]
    full = {"cvId": cv, "sources": ["github"], "github": "octocat"}
    assert call(ENRICH, full, user).result["access"] == "full"
    assert cli("revoke", user.uid, "--reason", "ticket 3").returncode == 0
    assert explain(user.uid)["tier"] == "free"

    assert cli("groups", "add", user.uid, "beta-testers", "--reason", "ticket 4").returncode == 0
    listed = cli("groups", "list", "beta-testers")
    assert listed.returncode == 0 and user.uid in listed.stdout
    assert cli("groups", "remove", user.uid, "beta-testers", "--reason", "t5").returncode == 0

    audited = changes(store, user.uid)
    assert sorted(d["action"] for d in audited) == [
        "grant",
        "groups add",
        "groups remove",
        "reset-quota",
        "revoke",
    ]
    assert all(d["by"] == "sam" and d["reason"].startswith("t") for d in audited)

    out = tmp_path / "export.json"
    r = cli("export", user.uid, "--reason", "e-mail request", "--out", str(out))
    assert r.returncode == 0, r.stderr
    exported = json.loads(out.read_text())
    assert exported["userId"] == user.uid and exported["results"][0]["cvId"] == cv
    r = cli("delete", user.uid, "--reason", "e-mail request")
    assert r.returncode == 0 and "erased" in r.stdout, r.stderr
    assert changes(store, user.uid) == []  # the audit now names the hash only
    assert store.query(f"external_data_usage/{user.uid}/events") == []


def test_refusals_and_errors_have_their_own_exit_codes(store: Any) -> None:
    paying, _ = seed(store, "paying", premium=True)
    r = cli("revoke", paying.uid, "--reason", "x")
    assert r.returncode == 1 and "refused" in r.stderr
    until = (datetime.now(UTC) + timedelta(days=3)).date().isoformat()
    assert cli("grant", paying.uid, "--until", until, "--reason", "x").returncode == 1
    assert cli("grant", "no-such-user", "--until", until, "--reason", "x").returncode == 4
    assert cli("grant", paying.uid, "--until", until).returncode == 2
    assert changes(store, paying.uid) == []
