"""Contract 2.1: the backing store down is ``unavailable``, never a free pass.

The functions emulator shares one Firestore, so this runs the same entrypoint under
functions-framework (the production host) with its Firestore pointed at a closed port, while
ID tokens are still verified by the real Auth emulator.
"""

from __future__ import annotations

import time

from scripts.devkit.emulator import call, require_emulators, sign_up
from tests.support.ffserver import free_port, functions_framework


def test_enrich_with_the_store_down_is_unavailable() -> None:
    require_emulators()
    user = sign_up("stranded")
    dead = f"127.0.0.1:{free_port()}"
    with functions_framework("enrichCVWithExternalData", {"FIRESTORE_EMULATOR_HOST": dead}) as url:
        started = time.monotonic()
        answer = call("", {"cvId": "cv-anything", "mode": "full"}, user, base_url=url.rstrip("/"))
        took = time.monotonic() - started
    assert answer.status == "UNAVAILABLE", answer.body
    assert "retry" in answer.error["message"].lower()
    assert "127.0.0.1" not in answer.error["message"]
    assert took < 20
