"""The official Firebase JavaScript SDK against the Emulator Suite: runs the Node suite in
tests/sdk (``node --test``) with this session's emulators and fails with Node's output if any
of its tests fails. Nothing is skipped: a missing ``node`` or ``node_modules/firebase`` (``make
setup`` installs it from package.json) fails here, and so does a Node run that reports a skipped
or todo test, or none at all."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
SDK_TESTS = ROOT / "tests" / "sdk"
TIMEOUT_S = 240


def _summary(output: str) -> dict[str, int]:
    """The counts in the spec reporter's summary (its last lines, such as ``pass 30``)."""
    return {
        key: int(n)
        for key, n in re.findall(
            r"^\S*\s*(tests|pass|fail|cancelled|skipped|todo) (\d+)$", output, re.MULTILINE
        )
    }


def test_the_firebase_js_sdk_suite_passes(store: Any) -> None:
    # `store` (conftest): the emulators are up and the rollout config is the gated one.
    node = shutil.which("node")
    assert node, "node is not on PATH (Node.js 20+ is a prerequisite, see README.md)"
    assert (ROOT / "node_modules" / "firebase" / "package.json").is_file(), (
        "node_modules/firebase is missing: run `make setup` (npm ci installs it from package.json)"
    )
    files = sorted(str(p.relative_to(ROOT)) for p in SDK_TESTS.glob("*.test.mjs"))
    assert files, f"no *.test.mjs under {SDK_TESTS}"
    done = subprocess.run(  # noqa: S603 - our own test files, fixed arguments
        [node, "--test", "--test-reporter=spec", *files],
        cwd=ROOT,
        env={**os.environ, "NO_COLOR": "1", "FORCE_COLOR": "0"},
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        check=False,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, f"node --test failed (exit {done.returncode}):\n{output}"
    counts = _summary(output)
    assert counts.get("tests", 0) > 0, f"node --test ran no tests:\n{output}"
    assert counts.get("pass") == counts["tests"], f"not every test passed:\n{output}"
    for key in ("fail", "cancelled", "skipped", "todo"):
        assert counts.get(key, 0) == 0, f"{key} {counts[key]}:\n{output}"
