"""The operator scripts (``scripts/*.py``) imported as modules, for tests that call their
``main`` or their helpers directly."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"


def load_script(stem: str, module_name: str, *, reuse: bool = False) -> ModuleType:
    """``scripts/{stem}.py`` imported under ``module_name`` (registered in ``sys.modules``, as
    its dataclasses need). ``reuse``: the module already imported under that name, if any;
    otherwise the script is executed afresh."""
    if reuse and module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, SCRIPTS / f"{stem}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module
