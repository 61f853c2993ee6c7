"""What the operator command lines (``rollout.py``, ``support.py``, ``comms.py``,
``migration.py``) share: which Firestore they talk to, the store they open on it, the ISO time
their ``--at`` takes and the options every changing command carries.

The functions' folder must be on ``sys.path`` before ``make_store`` is called (each script puts
it there on import)."""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any


def target(project: str | None) -> str:
    """Which Firestore the command reads, for humans."""
    host = os.environ.get("FIRESTORE_EMULATOR_HOST")
    name = (
        project
        or os.environ.get("GCLOUD_PROJECT")
        or os.environ.get("GOOGLE_CLOUD_PROJECT")
        or ("demo-cv-enrichment" if host else "(ADC default project)")
    )
    return (
        f"{name} on the emulator at {host}" if host else f"{name} (Application Default Credentials)"
    )


def make_store(project: str | None) -> Any:
    """The storage layer's Firestore store (emulator-aware)."""
    from stores.firestore import FirestoreStore, make_client

    return FirestoreStore(make_client(project))


def report_store_failure(exc: Exception, project: str | None) -> bool:
    """Say on stderr that Firestore could not be read (``StoreError``) or used (an error of the
    Google client or gRPC) and return True; False, saying nothing, for any other error."""
    from stores.errors import StoreError

    if isinstance(exc, StoreError):
        print(f"error: cannot read Firestore ({target(project)}): {exc}", file=sys.stderr)
        return True
    if type(exc).__module__.startswith(("google.", "grpc")):
        print(f"error: Firestore not usable ({target(project)}): {exc}", file=sys.stderr)
        return True
    return False


def iso_argument(what: str = "ISO time") -> Callable[[str], datetime]:
    """An argparse ``type`` for an ISO time (``Z`` accepted; a naive one is taken as UTC) that
    calls a bad value "not an {what}"."""

    def parse(text: str) -> datetime:
        try:
            t = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise argparse.ArgumentTypeError(f"not an {what}: {text!r}") from None
        return t if t.tzinfo else t.replace(tzinfo=UTC)

    return parse


parse_iso = iso_argument()


def who_argument(text: str) -> str:
    """``--as``: a name; blank is a usage error (exit 2), as every change records who made it."""
    if not text.strip():
        raise argparse.ArgumentTypeError("who is making the change must be named (--as NAME)")
    return text


def operator_options() -> argparse.ArgumentParser:
    """The parent parser of every subcommand: ``--project``, ``--as`` (who) and ``--at``."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--project", help="Firebase project id (ADC); default $GCLOUD_PROJECT")
    common.add_argument(
        "--as",
        dest="by",
        type=who_argument,
        default=os.environ.get("USER") or getpass.getuser(),
        help="who is making the change (default $USER)",
    )
    common.add_argument(
        "--at",
        type=parse_iso,
        help="act as of this UTC time (tests and replays; a change may not be in the future)",
    )
    return common
