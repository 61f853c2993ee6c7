"""Session set-up for the callable-protocol tests: the Emulator Suite must be up (these tests
fail, never skip, without it), the loopback fakes run on their fixed ports, and the rollout
config starts in phase "full" without fallback, so every user is gated."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from scripts.devkit.emulator import GATED, require_emulators
from scripts.devkit.emulator import store as make_store
from scripts.devkit.services import Services, fixed_port_services


@pytest.fixture(scope="session")
def store() -> Any:
    require_emulators()
    s = make_store()
    from stores.base import Write

    s.commit([Write("config/externalDataRollout", GATED, merge=False)])
    return s


@pytest.fixture(scope="session", autouse=True)
def services(store: Any) -> Iterator[Services]:
    with fixed_port_services() as svc:
        yield svc
