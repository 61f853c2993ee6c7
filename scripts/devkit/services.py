"""The loopback fakes of the third-party services on the fixed ports that functions/.env.local
names, so the functions running in the emulator reach them."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import Any

from scripts.devkit.fakes import FakeService, fake_brave, fake_github, fake_website

GITHUB_PORT, WEBSITE_PORT, BRAVE_PORT = 18081, 18082, 18083
WEBSITE_URL = f"http://127.0.0.1:{WEBSITE_PORT}/"


@dataclass
class Services:
    """The running fakes."""

    github: FakeService
    website: FakeService
    brave: FakeService


@contextmanager
def fixed_port_services(**github_behaviour: Any) -> Iterator[Services]:
    """Start the three fakes on their fixed ports; fails loudly if a port is taken."""
    with ExitStack() as stack:
        try:
            gh = stack.enter_context(fake_github(port=GITHUB_PORT, **github_behaviour))
            site = stack.enter_context(fake_website(port=WEBSITE_PORT))
            brave = stack.enter_context(fake_brave(port=BRAVE_PORT))
        except OSError as exc:
            raise RuntimeError(
                f"cannot start the loopback fakes on ports {GITHUB_PORT}-{BRAVE_PORT}: {exc}"
            ) from exc
        yield Services(gh, site, brave)
