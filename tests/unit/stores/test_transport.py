"""``stores.transport``: gRPC's experiments are chosen before grpcio starts, an operator's own
choice is kept, and the entrypoints import it before anything that imports grpcio."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
FUNCTIONS = ROOT / "functions"


def _in_fresh_process(code: str, env: dict[str, str]) -> dict[str, object]:
    """Run ``code`` (which prints one JSON line) in a new interpreter with ``functions/`` on
    the path and ``env`` over a copy of this environment without ``GRPC_EXPERIMENTS``."""
    base = {k: v for k, v in os.environ.items() if k != "GRPC_EXPERIMENTS"}
    out = subprocess.run(  # noqa: S603 - this interpreter, code written here
        [sys.executable, "-c", f"import sys; sys.path.insert(0, {str(FUNCTIONS)!r})\n{code}"],
        env={**base, **env},
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    return dict(json.loads(out.strip().splitlines()[-1]))


REPORT = (
    "import json, os; from stores import transport; import grpc\n"
    "print(json.dumps({'env': os.environ.get('GRPC_EXPERIMENTS'), 'applied': transport.APPLIED,"
    " 'late': transport.TOO_LATE, 'operator': transport.OPERATOR_SET}))"
)


def test_the_event_engine_client_is_turned_off_before_grpcio_starts() -> None:
    got = _in_fresh_process(REPORT, {})
    assert got == {"env": "-event_engine_client", "applied": True, "late": False, "operator": False}


def test_an_operators_own_choice_is_kept() -> None:
    got = _in_fresh_process(REPORT, {"GRPC_EXPERIMENTS": "event_engine_client"})
    assert got == {"env": "event_engine_client", "applied": False, "late": False, "operator": True}


def test_too_late_is_said_and_nothing_is_set() -> None:
    got = _in_fresh_process("import grpc\n" + REPORT, {})
    assert got == {"env": None, "applied": False, "late": True, "operator": False}


def _imports(path: Path) -> list[str]:
    """The modules a file imports at its top level, in order (``from m import n`` as
    ``m.n``; an import inside a top-level ``try`` counts, as bench.py's does)."""
    order = []
    for node in ast.parse(path.read_text()).body:
        for stmt in node.body if isinstance(node, ast.Try) else [node]:
            if isinstance(stmt, ast.ImportFrom) and stmt.module != "__future__":
                order.append(f"{stmt.module}.{stmt.names[0].name}")
            elif isinstance(stmt, ast.Import):
                order.extend(alias.name for alias in stmt.names)
    return order


@pytest.mark.parametrize("entry", ["functions/main.py", "loadtests/served.py"])
def test_the_functions_entrypoint_imports_it_first(entry: str) -> None:
    assert _imports(ROOT / entry)[0] == "stores.transport"


def test_the_bench_imports_it_before_any_google_library() -> None:
    order = _imports(ROOT / "scripts" / "bench.py")
    google = next(i for i, name in enumerate(order) if name.startswith(("google", "grpc")))
    assert order.index("stores.transport") < google, order
