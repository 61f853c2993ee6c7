"""``scripts/comms.py`` and ``scripts/migration.py`` against the Firestore emulator (issue 12):
audiences are written as exactly the expected CSV rows, ``render`` picks the profile's locale
(English as fallback) and the plan, and the migration check finds each seeded kind of problem
(exit 1) while a clean seed exits 0.

Runs under ``scripts/with-emulators.sh``; fails (never skips) without FIRESTORE_EMULATOR_HOST.
Usage seeds sit in 2099 so the other tests' real-time documents never match ``--since``; beta
uses a group name of this run; the migration tests empty ``users`` first (they read all of it)
and the module puts the rollout config back at the end.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from stores.base import Write

ROOT = Path(__file__).resolve().parents[2]
COMMS = ROOT / "scripts" / "comms.py"
MIGRATION = ROOT / "scripts" / "migration.py"
BILLING = ROOT / "tests" / "fixtures" / "billing"
CONFIG = "config/externalDataRollout"
RUN = uuid.uuid4().hex[:8]


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def run(script: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - our own scripts, fixed arguments
        [sys.executable, str(script), *args],
        cwd=ROOT,
        env=os.environ.copy(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture(scope="module")
def fs(store: Any) -> Iterator[Any]:
    original = store.get_many([CONFIG])[CONFIG]
    yield store
    ref = store.client.document(CONFIG)
    if original is None:
        ref.delete()
    else:
        ref.set(original)


def seed(fs: Any, docs: dict[str, dict[str, Any]]) -> None:
    fs.commit([Write(path, data, merge=False) for path, data in docs.items()])


def clear_users(fs: Any) -> None:
    batch = fs.client.batch()
    for n, ref in enumerate(fs.client.collection("users").list_documents(), start=1):
        batch.delete(ref)
        if n % 400 == 0:
            batch.commit()
            batch = fs.client.batch()
    batch.commit()


# -- audiences ------------------------------------------------------------------------------


def test_followup_audience_is_exactly_the_unconverted_free_users_who_saw_the_gate(
    fs: Any, tmp_path: Path
) -> None:
    u = f"fu-{RUN}"
    seed(
        fs,
        {
            f"users/{u}-de": {"locale": "de-DE"},
            f"external_data_usage/{u}-de": {"lastFunnelAt": at("2099-01-02T10:00:00")},
            f"users/{u}-fr": {"locale": "fr"},
            f"external_data_usage/{u}-fr": {"lastFunnelAt": at("2099-01-03T00:00:00")},
            f"external_data_usage/{u}-nodoc": {"lastFunnelAt": at("2099-01-04T00:00:00")},
            f"users/{u}-conv": {"locale": "de"},
            f"external_data_usage/{u}-conv": {
                "lastFunnelAt": at("2099-01-02T00:00:00"),
                "convertedAt": at("2099-01-02T01:00:00"),
            },
            f"users/{u}-prem": {"subscription": {"tier": "premium", "status": "active"}},
            f"external_data_usage/{u}-prem": {"lastFunnelAt": at("2099-01-02T00:00:00")},
            f"users/{u}-early": {},
            f"external_data_usage/{u}-early": {"lastFunnelAt": at("2098-12-31T23:59:59")},
            f"users/{u}-used": {},
            f"external_data_usage/{u}-used": {"lastUsedAt": at("2099-01-02T00:00:00")},
        },
    )
    out = tmp_path / "followup.csv"
    r = run(
        COMMS,
        "audience",
        "followup",
        "--since",
        "2099-01-01",
        "--at",
        "2099-01-05T00:00:00Z",
        "--out",
        str(out),
    )
    assert r.returncode == 0, r.stderr
    assert "3 user(s) in audience followup" in r.stdout
    assert out.read_text() == (
        "uid,locale,qualified_by\n"
        f"{u}-de,de,lastFunnelAt=2099-01-02T10:00:00Z\n"
        f"{u}-fr,en,lastFunnelAt=2099-01-03T00:00:00Z\n"
        f"{u}-nodoc,en,lastFunnelAt=2099-01-04T00:00:00Z\n"
    )


def test_all_active_audience_on_stdout(fs: Any) -> None:
    u = f"aa-{RUN}"
    seed(
        fs,
        {
            f"users/{u}-a": {"locale": "de_AT"},
            f"external_data_usage/{u}-a": {
                "lastUsedAt": at("2099-06-02T00:00:00"),
                "lastFunnelAt": at("2099-06-01T00:00:00"),
            },
            f"external_data_usage/{u}-b": {"lastFunnelAt": at("2099-06-03T00:00:00")},
            f"external_data_usage/{u}-old": {"lastUsedAt": at("2099-05-01T00:00:00")},
        },
    )
    r = run(COMMS, "audience", "all_active", "--since", "2099-06-01T00:00:00Z")
    assert r.returncode == 0, r.stderr
    assert r.stdout == (
        "uid,locale,qualified_by\n"
        f"{u}-a,de,lastUsedAt=2099-06-02T00:00:00Z\n"
        f"{u}-b,en,lastFunnelAt=2099-06-03T00:00:00Z\n"
    )


def test_beta_audience_follows_the_rollout_configs_target_groups(fs: Any) -> None:
    u, group = f"bt-{RUN}", f"beta-{RUN}"
    seed(
        fs,
        {
            CONFIG: {
                "phase": "beta",
                "rolloutPercentage": 1,
                "targetGroups": [group, f"other-{RUN}"],
                "version": 7,
            },
            f"users/{u}-in": {"rolloutGroups": ["x", group], "locale": "de"},
            f"users/{u}-both": {"rolloutGroups": [f"other-{RUN}", group]},
            f"users/{u}-out": {"rolloutGroups": ["x"]},
        },
    )
    r = run(COMMS, "audience", "beta")
    assert r.returncode == 0, r.stderr
    assert r.stdout == (
        "uid,locale,qualified_by\n"
        f"{u}-both,en,rolloutGroups=beta-{RUN}|other-{RUN}\n"
        f"{u}-in,de,rolloutGroups=beta-{RUN}\n"
    )


def test_premium_audience_is_premium_now(fs: Any) -> None:
    u = f"pr-{RUN}"
    seed(
        fs,
        {
            f"users/{u}-p": {
                "subscription": {
                    "tier": "premium",
                    "status": "active",
                    "currentPeriodEnd": at("2099-02-01T00:00:00"),
                },
                "locale": "de",
            },
            f"users/{u}-grace": {
                "subscription": {
                    "tier": "premium",
                    "status": "past_due",
                    "currentPeriodEnd": at("2099-01-14T00:00:00"),
                }
            },
            f"users/{u}-late": {
                "subscription": {
                    "tier": "premium",
                    "status": "past_due",
                    "currentPeriodEnd": at("2099-01-01T00:00:00"),
                }
            },
            f"users/{u}-free": {"subscription": {"tier": "free", "status": "active"}},
        },
    )
    r = run(COMMS, "audience", "premium", "--at", "2099-01-15T00:00:00Z")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("uid,locale,qualified_by\n")
    mine = [line for line in r.stdout.splitlines() if line.startswith(u)]
    assert mine == [
        f"{u}-grace,en,subscription=premium past_due until 2099-01-14T00:00:00Z",
        f"{u}-p,de,subscription=premium active until 2099-02-01T00:00:00Z",
    ]


# -- render ---------------------------------------------------------------------------------


def test_render_uses_the_profiles_locale_and_plan_with_english_fallback(fs: Any) -> None:
    u = f"rd-{RUN}"
    seed(
        fs,
        {
            f"users/{u}-de": {
                "locale": "de-DE",
                "subscription": {"tier": "premium", "status": "active"},
            },
            f"users/{u}-fr": {"locale": "fr-FR"},
            f"users/{u}-none": {},
            f"external_data_usage/{u}-fr": {
                "bySource": {"github": {"requests": 1}, "web": {"requests": 1}}
            },
        },
    )
    r = run(COMMS, "render", "launch_day", "--user", f"{u}-de", "--app-url", "https://app.test")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("Subject: Externe Daten sind jetzt Teil Ihres Premium-Tarifs\n")
    assert "Guten Tag," in r.stdout

    r = run(COMMS, "render", "launch_day", "--user", f"{u}-de", "--format", "html")
    assert r.returncode == 0, r.stderr
    assert '<html lang="de">' in r.stdout and "Premium-Tarifs</title>" in r.stdout

    r = run(COMMS, "render", "followup", "--user", f"{u}-fr")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("Subject: The full results of your external data preview\n")
    assert "with GitHub and a web search." in " ".join(r.stdout.split())

    r = run(COMMS, "render", "t_minus_7", "--user", f"{u}-none", "--launch-date", "2099-03-02")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("Subject: What changes for external data on Monday 2 March 2099\n")


def test_render_of_a_missing_user_or_template_is_not_found(fs: Any) -> None:
    r = run(COMMS, "render", "followup", "--user", f"nobody-{RUN}")
    assert r.returncode == 3 and "no user" in r.stderr and "Traceback" not in r.stderr
    r = run(COMMS, "render", "newsletter", "--user", f"nobody-{RUN}")
    assert r.returncode == 3 and "no template" in r.stderr
    r = run(COMMS, "audience", "followup")
    assert r.returncode == 2 and "--since" in r.stderr


# -- migration check ------------------------------------------------------------------------

PAID = {"tier": "premium", "status": "active", "currentPeriodEnd": at("2099-02-01T00:00:00")}


def test_migration_check_finds_each_seeded_kind(fs: Any) -> None:
    clear_users(fs)
    seed(
        fs,
        {
            "users/mig-notmap": {"subscription": "premium"},
            "users/mig-missing": {"subscription": {"tier": "premium"}},
            "users/mig-badtier": {"subscription": {**PAID, "tier": "Premium"}},
            "users/mig-badstatus": {"subscription": {**PAID, "status": "paid"}},
            "users/mig-badend": {"subscription": {**PAID, "currentPeriodEnd": "2099-02-01"}},
            "users/mig-badlife": {"subscription": {**PAID, "lifetime": "yes"}},
            "users/mig-expired": {
                "subscription": {**PAID, "currentPeriodEnd": at("2099-01-01T00:00:00")}
            },
            "users/mig-free": {"subscription": {**PAID, "tier": "free"}},
            "users/mig-cus": {"subscription": {**PAID, "customerId": "cus_record"}},
            "users/mig-plan": {"subscription": PAID},
            "users/mig-status": {"subscription": {**PAID, "status": "trialing"}},
            "users/mig-end": {"subscription": PAID},
        },
    )
    r = run(
        MIGRATION,
        "check",
        "--billing-export",
        str(BILLING / "mismatches.csv"),
        "--json",
        "--at",
        "2099-01-15T00:00:00Z",
    )
    assert r.returncode == 1, r.stderr
    report = json.loads(r.stdout)
    found = {k: sorted(e["uid"] for e in v["examples"]) for k, v in report["findings"].items()}
    assert found == {
        "subscription_not_a_map": ["mig-notmap"],
        "missing_field": ["mig-missing"],
        "bad_tier": ["mig-badtier"],
        "bad_status": ["mig-badstatus"],
        "bad_period_end": ["mig-badend"],
        "bad_lifetime": ["mig-badlife"],
        "active_but_expired": ["mig-expired"],
        "no_user_doc": ["mig-ghost"],
        "paying_but_not_premium": ["mig-free"],
        "customer_id_mismatch": ["mig-cus"],
        "plan_mismatch": ["mig-free", "mig-plan"],
        "status_mismatch": ["mig-status"],
        "period_end_mismatch": ["mig-end"],
        "export_row_invalid": ["mig-bad"],
    }
    assert report["usersChecked"] == 12 and report["exportRows"] == 6

    text = run(
        MIGRATION,
        "check",
        "--billing-export",
        str(BILLING / "mismatches.csv"),
        "--at",
        "2099-01-15T00:00:00Z",
    )
    assert text.returncode == 1
    assert "FOUND 15 problem(s)" in text.stdout
    assert (
        "mig-free: billing premium_monthly/active until 2099-02-01T00:00:00Z; record: tier free"
        in text.stdout
    )


def test_migration_check_of_a_clean_seed_exits_0(fs: Any) -> None:
    clear_users(fs)
    seed(
        fs,
        {
            "users/mig-ok-premium": {"subscription": {**PAID, "customerId": "cus_ok1"}},
            "users/mig-ok-free": {"subscription": {"tier": "free", "status": "canceled"}},
            "users/mig-ok-lifetime": {
                "subscription": {"tier": "premium", "status": "active", "lifetime": True}
            },
            "users/mig-no-sub": {"locale": "de"},
        },
    )
    r = run(
        MIGRATION,
        "check",
        "--billing-export",
        str(BILLING / "clean.csv"),
        "--at",
        "2099-01-15T00:00:00Z",
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert "3 user(s) with a subscription" in r.stdout and "CLEAN" in r.stdout
    r = run(MIGRATION, "check", "--at", "2099-01-15T00:00:00Z")
    assert r.returncode == 0, r.stdout + r.stderr
    r = run(MIGRATION, "check", "--billing-export", str(BILLING / "missing.csv"))
    assert r.returncode == 3 and "not found" in r.stderr
