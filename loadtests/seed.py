"""Users for a load run: signed up on the Auth emulator (real ID tokens), each with a profile
(premium or free) and a CV in Firestore, and the gated rollout config (phase full, no fallback:
free users get previews, premium users full enrichments)."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from scripts.devkit.emulator import GATED, sign_up
from stores.base import Write
from stores.firestore import FirestoreStore, make_client
from stores.schema import CONFIG_PATH, cv_path, user_path


@dataclass(frozen=True)
class LoadUser:
    """One simulated user."""

    uid: str
    token: str
    cv: str
    tier: str


def _one(tier: str) -> LoadUser:
    user = sign_up(f"load-{tier}")
    return LoadUser(user.uid, user.token, f"cv-{user.uid}", tier)


def seed(premium: int, free: int, out: Path, project: str) -> list[LoadUser]:
    """Sign up ``premium`` + ``free`` users, write their documents and the config; the users go
    to ``out`` (JSON) for the Locust processes."""
    with ThreadPoolExecutor(8) as pool:
        users = list(pool.map(_one, ["premium"] * premium + ["free"] * free))
    store = FirestoreStore(make_client(project))
    writes: list[Write] = [Write(CONFIG_PATH, dict(GATED), merge=False)]
    for u in users:
        profile: dict[str, Any] = {"displayName": u.uid[:6]}
        if u.tier == "premium":
            profile["subscription"] = {"tier": "premium", "status": "active"}
        writes.append(Write(user_path(u.uid), profile, merge=False))
        writes.append(Write(cv_path(u.cv), {"userId": u.uid, "title": "load"}, merge=False))
    for i in range(0, len(writes), 400):
        store.commit(writes[i : i + 400])
    out.write_text(json.dumps([asdict(u) for u in users]))
    return users
