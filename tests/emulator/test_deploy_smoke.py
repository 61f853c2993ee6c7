"""scripts/deploy.py against the Emulator Suite: the smoke check of every callable (an
unauthenticated call must answer ``unauthenticated``), the rules compile check, and the deploy
log that ``rollback --to previous`` reads, on the real Firestore emulator."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

from scripts import deploy
from scripts.devkit.emulator import require_emulators

ROOT = Path(__file__).resolve().parents[2]
CALLABLES = (
    "enrichCVWithExternalData",
    "trackExternalDataUsage",
    "getUserExternalDataUsageStats",
    "getExternalDataAnalytics",
)


@pytest.fixture(autouse=True)
def _suite() -> None:
    require_emulators()


@pytest.mark.parametrize("name", CALLABLES)
def test_smoke_check_passes_for_each_callable(name: str) -> None:
    fn = deploy.Function(name, "callable")
    said = deploy.smoke(os.environ["FUNCTIONS_BASE_URL"], fn, attempts=3, pause_s=2)
    assert said == f"{name}: unauthenticated call refused with unauthenticated"


def test_smoke_check_fails_for_a_function_that_is_not_deployed() -> None:
    fn = deploy.Function("noSuchFunction", "callable")
    with pytest.raises(deploy.DeployError, match=r"smoke check of noSuchFunction at .* failed"):
        deploy.smoke(os.environ["FUNCTIONS_BASE_URL"], fn, attempts=2, pause_s=0)


def test_the_projects_rules_compile_on_the_emulator() -> None:
    said = deploy.check_rules(ROOT / "firestore.rules", os.environ["FIRESTORE_EMULATOR_HOST"])
    assert said == "firestore.rules compiles"


def test_broken_rules_fail_on_the_emulator(tmp_path: Path) -> None:
    broken = tmp_path / "firestore.rules"
    broken.write_text(
        (ROOT / "firestore.rules").read_text().replace("allow read", "allow read: if (", 1)
    )
    with pytest.raises(deploy.DeployError, match="does not compile: Error compiling rules"):
        deploy.check_rules(broken, os.environ["FIRESTORE_EMULATOR_HOST"])


def test_the_deploy_log_finds_the_previous_commit_in_firestore() -> None:
    from stores.firestore import FirestoreStore, make_client

    log = deploy.DeployLog(FirestoreStore(make_client()))
    project = f"p-{uuid.uuid4().hex[:8]}"
    first, second = "1" * 40, "2" * 40
    log.record(project, first, "deploy", list(CALLABLES))
    log.record(project, second, "deploy", list(CALLABLES))
    log.record(f"{project}-other", "3" * 40, "deploy", list(CALLABLES))
    assert [e["commit"] for e in log.entries(project)] == [second, first]
    assert log.previous(project) == first
    log.record(project, first, "rollback", list(CALLABLES))
    assert log.previous(project) == second
