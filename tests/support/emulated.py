"""Whether a suite that runs on both stores runs on the Firestore emulator too.

The store suites (``test_store_contract``, ``test_rollup``, ``test_enrichment_cache``) run in
the unit phase on the in-memory store and again under the emulators. ``make test`` sets
``REQUIRE_FIRESTORE_EMULATOR=1`` for that second run: a missing emulator then fails the
collection instead of quietly running the in-memory half alone."""

from __future__ import annotations

import os


def firestore_emulator() -> bool:
    """True when ``FIRESTORE_EMULATOR_HOST`` is set; raises when it is required and is not."""
    if os.environ.get("FIRESTORE_EMULATOR_HOST"):
        return True
    if os.environ.get("REQUIRE_FIRESTORE_EMULATOR") == "1":
        raise RuntimeError(
            "REQUIRE_FIRESTORE_EMULATOR=1 but FIRESTORE_EMULATOR_HOST is not set: run this suite "
            "through scripts/with-emulators.sh (make test does)"
        )
    return False
