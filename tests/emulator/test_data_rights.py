"""Data rights (contract 2.5) through the callable protocol on the Emulator Suite: the export
holds every kind of record, and after ``deleteMyExternalData`` (or deleting ``users/{uid}``)
nothing of the user remains in any collection but the audit, whose entries carry only the keyed
hash of the uid. Runs under ``scripts/with-emulators.sh``; fails, never skips, without it."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from common.settings import load_settings
from recording.recorder import Recorder
from scripts.devkit.emulator import User, call, seed
from stores.base import Write

ROOT = Path(__file__).resolve().parents[2]
SUBCOLLECTIONS = ("events", "conversions", "externalData", "history", "members")
"""Sub-collection names the functions write (each scanned as a collection group)."""


def emulator_hash(uid: str) -> str:
    """The keyed hash under the salt the emulated functions use (functions/.secret.local)."""
    text = (ROOT / "functions" / ".secret.local").read_text()
    salt = re.search(r"^EXTERNAL_DATA_HASH_SALT=(.*)$", text, re.M)
    assert salt is not None
    hashed = Recorder(load_settings({"EXTERNAL_DATA_HASH_SALT": salt.group(1)})).hash(uid)
    assert hashed is not None
    return hashed


def strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield str(k)
            yield from strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from strings(v)


def traces(store: Any, uid: str, cv_id: str) -> list[str]:
    """Every document, in any collection, that names ``uid`` in its path or its values, apart
    from the profile and the CV (the product's own data)."""
    client = store.client
    snaps = [s for col in client.collections() for s in col.stream()]
    for name in SUBCOLLECTIONS:
        snaps.extend(client.collection_group(name).stream())
    found = []
    for snap in snaps:
        path = snap.reference.path
        if path in (f"users/{uid}", f"cvs/{cv_id}"):
            continue
        named = any(seg == uid or seg.startswith(f"{uid}_") for seg in path.split("/"))
        if named or uid in set(strings(snap.to_dict() or {})):
            found.append(path)
    for parent in (f"external_data_usage/{uid}", f"cvs/{cv_id}"):
        found.extend(f"{parent}/{c.id}/*" for c in client.document(parent).collections())
    return sorted(set(found))


def use_everything(store: Any, user: User, cv: str) -> None:
    """A preview, a gate, a funnel event, an upgrade (the trigger's conversion), a full run."""
    assert call(
        "enrichCVWithExternalData",
        {"cvId": cv, "mode": "preview", "sources": ["github"], "github": "octocat"},
        user,
    ).ok
    assert (
        call(
            "enrichCVWithExternalData",
            {"cvId": cv, "sources": ["github"], "github": "octocat"},
            user,
        ).status
        == "PERMISSION_DENIED"
    )
    assert call("trackExternalDataUsage", {"event": "upgrade_clicked", "cvId": cv}, user).ok
    premium = {"tier": "premium", "status": "active"}
    store.commit([Write(f"users/{user.uid}", {"subscription": premium})])
    conv = f"external_data_usage/{user.uid}/conversions"
    deadline = time.monotonic() + 30
    while not store.query(conv) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert store.query(conv), "the users/{uid} trigger recorded no conversion"
    assert (
        call(
            "enrichCVWithExternalData",
            {"cvId": cv, "sources": ["github"], "github": "octocat"},
            user,
        ).result["access"]
        == "full"
    )


def test_export_holds_every_kind_of_record(store: Any) -> None:
    user, cv = seed(store, "exporter")
    use_everything(store, user, cv)
    out = call("exportMyExternalData", {}, user).result
    assert out["userId"] == user.uid
    kinds = {e["type"] for e in out["events"]}
    assert {"preview", "gate", "upgrade_clicked", "full"} <= kinds
    assert [r["cvId"] for r in out["results"]] == [cv]
    assert len(out["conversions"]) == 1 and out["stats"]["totals"]["requests"] == 3
    assert {"access_granted", "unauthorized_access"} <= {a["type"] for a in out["audit"]}
    other, _ = seed(store, "bystander")
    refused = call("exportMyExternalData", {"userId": user.uid}, other)
    assert refused.status == "PERMISSION_DENIED"


def test_delete_leaves_only_the_hashed_audit(store: Any) -> None:
    user, cv = seed(store, "eraser")
    use_everything(store, user, cv)
    assert traces(store, user.uid, cv), "the scan must see the user's records before erasure"
    out = call("deleteMyExternalData", {}, user).result
    assert out["deleted"]["events"] >= 4 and out["deleted"]["conversions"] == 1
    assert out["deleted"]["externalData"] == 1 and out["deleted"]["rate_limits"] >= 1
    assert traces(store, user.uid, cv) == []
    hashed = emulator_hash(user.uid)
    kept = store.query("external_data_security_audit", [("uid", "==", hashed)])
    assert len(kept) >= 3 and {d["type"] for _, d in kept} >= {
        "unauthorized_access",
        "data_erasure",
    }


def test_deleting_the_user_document_erases_the_same(store: Any) -> None:
    user, cv = seed(store, "leaver")
    use_everything(store, user, cv)
    store.client.document(f"users/{user.uid}").delete()
    deadline = time.monotonic() + 30
    while traces(store, user.uid, cv) and time.monotonic() < deadline:
        time.sleep(1)
    assert traces(store, user.uid, cv) == []
    kept = store.query("external_data_security_audit", [("uid", "==", emulator_hash(user.uid))])
    assert any(d["type"] == "data_erasure" and d["reason"] == "account deleted" for _, d in kept)


def test_five_rights_requests_per_hour(store: Any) -> None:
    user, _ = seed(store, "limited")
    statuses = [call("exportMyExternalData", {}, user).status for _ in range(6)]
    assert statuses == ["OK"] * 5 + ["RESOURCE_EXHAUSTED"]
