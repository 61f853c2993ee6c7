"""How long functions-framework's gunicorn keeps an idle connection: a knob it does not expose.

functions-framework builds gunicorn's options from a fixed list, so gunicorn closes a
connection after its default 2 s idle. A client that keeps idle connections longer and reuses
them can send a call on a connection gunicorn is closing: the call fails before the function
runs. The functions emulator is such a client: it proxies every call through Node's global HTTP
agent (keep-alive, idle connections kept 5 s) and answers such a call itself, 500 with
``{"code": "ECONNRESET"}`` ("Request to function failed: socket hang up" in its log), then kills
the function's process. The load runs' Locust client is another. ``keep_alive`` makes gunicorn
outlast them; functions-framework reads it when it builds the server, after importing ``main``.
"""

from __future__ import annotations

from functions_framework._http import gunicorn as _ff_gunicorn

EMULATOR_KEEPALIVE_S = 75
"""Under the functions emulator: longer than Node's 5 s."""

_seconds = 0
"""Set by ``keep_alive`` before ``_with_keepalive`` is installed."""
_load_config = _ff_gunicorn.GunicornApplication.load_config


def _with_keepalive(self: _ff_gunicorn.GunicornApplication) -> None:
    self.options["keepalive"] = _seconds
    _load_config(self)  # type: ignore[no-untyped-call]


def keep_alive(seconds: int) -> None:
    """Idle connections kept ``seconds`` by every gunicorn server functions-framework builds
    in this process from now on (the last call wins)."""
    global _seconds
    _seconds = seconds
    _ff_gunicorn.GunicornApplication.load_config = _with_keepalive  # type: ignore[method-assign]
