"""Make the operator scripts work as the README writes them (``python scripts/rollout.py ...``)
from any Python: imported first by each script, it re-executes the script under the project's
``.venv`` when another interpreter started it, and gives crashes an exit code of their own.

It acts only when a script in this folder is the program being run (``__main__``); importing a
script from the tests, or from another script already in the venv, changes nothing.

Exit codes it adds to the scripts' own (0 done, 1 refused, 2 usage, 3 Firestore unreachable,
4 not found): 69 the venv is missing (run ``make setup``), 70 an unexpected error (a bug: the
traceback is on stderr). Neither can be mistaken for "refused".
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from types import TracebackType

SCRIPTS = Path(__file__).resolve().parent
ROOT = SCRIPTS.parent
VENV = ROOT / ".venv"
EXIT_NO_VENV = 69
EXIT_CRASH = 70
_GUARD = "CV_ENRICHMENT_VENV_REEXEC"
"""Set on the re-executed process, so a broken venv cannot loop."""


def _started_as_script() -> bool:
    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None)
    return bool(path) and Path(str(path)).resolve().parent == SCRIPTS


def _in_venv() -> bool:
    return Path(sys.prefix).resolve() == VENV.resolve()


def reexec_under_venv() -> None:
    """Replace this process by the same command under ``.venv/bin/python`` (if not there yet)."""
    if _in_venv() or os.environ.get(_GUARD):
        return
    python = VENV / "bin" / "python"
    if not python.exists():
        print(
            f"error: {python.relative_to(ROOT)} is missing; run `make setup` in {ROOT} first",
            file=sys.stderr,
        )
        sys.exit(EXIT_NO_VENV)
    os.environ[_GUARD] = "1"
    os.execv(str(python), [str(python), sys.argv[0], *sys.argv[1:]])  # noqa: S606 - our own venv


def _crash_hook(kind: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
    """Print the traceback as Python would, then exit 70 instead of Python's 1 (= refused)."""
    sys.__excepthook__(kind, exc, tb)
    if isinstance(exc, KeyboardInterrupt):
        return  # Python ends with the interrupt's own status
    print(f"(exit {EXIT_CRASH}: unexpected error, not a refusal)", file=sys.stderr)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(EXIT_CRASH)


if _started_as_script():
    reexec_under_venv()
    sys.excepthook = _crash_hook
