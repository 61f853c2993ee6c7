"""A production-like host for the functions: ``functions-framework`` (gunicorn underneath) in a
subprocess on loopback, beside the emulators. Used where the functions emulator cannot help:
a dead backing store (``unavailable``) and throughput measurements."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    """An unused loopback port."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def functions_framework(
    target: str, env: Mapping[str, str] | None = None, *, port: int | None = None
) -> Iterator[str]:
    """Serve one function; yields its URL. Output goes to .tools/ff-<target>.log."""
    port = port or free_port()
    log_path = ROOT / ".tools" / f"ff-{target}.log"
    log_path.parent.mkdir(exist_ok=True)
    full_env = {
        **os.environ,
        "PYTHONPATH": str(ROOT / "functions"),
        **(env or {}),
    }
    exe = Path(os.environ.get("VIRTUAL_ENV", ROOT / ".venv")) / "bin" / "functions-framework"
    if not exe.exists():
        exe = ROOT / ".venv" / "bin" / "functions-framework"
    with open(log_path, "w") as log:
        proc = subprocess.Popen(  # noqa: S603 - fixed argv: the venv's functions-framework
            [
                str(exe),
                "--source",
                str(ROOT / "functions" / "main.py"),
                "--target",
                target,
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
            ],
            cwd=ROOT / "functions",
            env=full_env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 30
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(f"functions-framework exited; see {log_path}")
                try:
                    httpx.get(url, timeout=1)
                    break
                except httpx.TransportError:
                    if time.monotonic() > deadline:
                        raise RuntimeError(
                            f"functions-framework did not start; see {log_path}"
                        ) from None
                    time.sleep(0.2)
            yield url
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
