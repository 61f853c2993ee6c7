"""``make mutate``: mutation testing of the core with mutmut (issue 13).

Why mutmut (3.x) rather than cosmic-ray: mutmut records which tests run each function and runs
only those against a mutant, in forked workers, so a mutant costs a few tests rather than the
whole selection; cosmic-ray runs the full test command per mutant. On a 2-core machine shared
with load runs that is the difference between minutes and hours.

The tests import the core as top-level packages (``gating.decision``: pytest's ``pythonpath``
holds ``functions``), while mutmut names mutants after their path from the working directory.
So the run happens in a flat copy under ``.tools/mutate/ws``: the packages of ``functions/`` at
its root, ``tests/`` and ``scripts/`` beside them, the repository's pyproject with
``pythonpath = ["."]``, and ``setup.cfg`` from ``tests/mutation/mutmut.cfg`` (mutmut reads its
``[mutmut]`` section; the repository's pyproject has no ``[tool.mutmut]``). Nothing in the
checkout is modified.

Modules run one at a time (``mutmut run "gating.decision.*"``), each with its wall time, and
the results go to ``.tools/mutate/results.json``; ``docs/benchmarks/mutation.md`` records them.

    python tests/mutation/run_mutation.py [--only gating/decision.py ...] [--children 2]
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
WORK = ROOT / ".tools" / "mutate"
WS = WORK / "ws"
MUTMUT = [sys.executable, "-m", "mutmut"]

MODULES: dict[str, tuple[str, ...]] = {
    "gating/decision.py": ("*",),
    "gating/preview.py": ("*",),
    "gating/rollout.py": ("x_bucket__*", "x_in_cohort__*", "x_in_cohort_by_bucket_only__*"),
    "gating/entitlements.py": ("*",),
    "gating/ratelimit.py": ("*",),
    "enrichment/net.py": ("xǁUrlGuardǁ*", "x_is_public__*", "x__unwrap__*", "x_is_metadata__*"),
    "rollout_control/health.py": ("x_beta_checks__*", "x_premium_checks__*"),
    "rollout_control/evaluator.py": (
        "x__error_rule__*",
        "x__outage_rule__*",
        "x__latency_trigger__*",
        "x__conversion_trigger__*",
    ),
    "enrichment/fetch.py": ("xǁFetcherǁget__*", "xǁFetcherǁ_get_with_retry__*"),
    "usecases/requests.py": ("x_parse_enrich__*", "x__cv_id__*", "x__source_list__*"),
}
"""The core under mutation, relative to ``functions/`` (the cfg's ``only_mutate``), in the
order they run, with the functions whose mutants are run (mutmut name patterns after the
module's dotted name; ``xǁClassǁmethod`` for methods). Where not every function is listed, the
rest (message texts, document forms, config parsing) is left out to keep a run within minutes
on this shared machine; docs/benchmarks/mutation.md says which."""


def build_workspace() -> None:
    """A fresh flat copy of the code and the tests (``mutants/`` of an earlier run is dropped,
    so every run tests the current code)."""
    if WS.exists():
        shutil.rmtree(WS)
    WS.mkdir(parents=True)
    skip = shutil.ignore_patterns("venv", "__pycache__", "*.pyc", ".hypothesis")
    for item in (ROOT / "functions").iterdir():
        if item.name in ("venv", "__pycache__") or item.name.startswith("."):
            continue
        if item.is_dir():
            shutil.copytree(item, WS / item.name, ignore=skip)
        elif item.suffix == ".py":
            shutil.copy2(item, WS / item.name)
    for name in ("tests", "scripts"):
        shutil.copytree(ROOT / name, WS / name, ignore=skip)
    pyproject = (ROOT / "pyproject.toml").read_text()
    flat = re.sub(r"pythonpath = \[[^\]]*\]", 'pythonpath = ["."]', pyproject)
    assert flat != pyproject, "pyproject.toml: pytest pythonpath not found"
    (WS / "pyproject.toml").write_text(flat)
    shutil.copy2(Path(__file__).with_name("mutmut.cfg"), WS / "setup.cfg")


def patterns(module: str) -> list[str]:
    """mutmut name patterns of ``module``'s selected functions (``gating.decision.*``)."""
    dotted = module.removesuffix(".py").replace("/", ".")
    return [f"{dotted}.{p}" for p in MODULES[module]]


def run_module(module: str, children: int) -> dict[str, Any]:
    """One ``mutmut run`` for ``module``; its statuses, survivors and wall time."""
    started = time.monotonic()
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    proc = subprocess.run(  # noqa: S603 - this interpreter's mutmut
        [*MUTMUT, "run", "--max-children", str(children), *patterns(module)],
        cwd=WS,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    seconds = time.monotonic() - started
    (WORK / f"{module.replace('/', '.')}.log").write_text(proc.stdout + proc.stderr)
    statuses = results(module)
    counts: dict[str, int] = {}
    for status in statuses.values():
        counts[status] = counts.get(status, 0) + 1
    survivors = {name: show(name) for name, s in statuses.items() if s != "killed"}
    return {
        "module": module,
        "exit": proc.returncode,
        "seconds": round(seconds, 1),
        "counts": counts,
        "others": survivors,
    }


def results(module: str) -> dict[str, str]:
    """Every mutant of ``module`` and its status, from ``mutmut results --all true``."""
    out = subprocess.run(  # noqa: S603
        [*MUTMUT, "results", "--all", "true"],
        cwd=WS,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    wanted = patterns(module)
    found: dict[str, str] = {}
    for line in out.splitlines():
        name, sep, status = line.strip().rpartition(": ")
        if sep and any(fnmatch.fnmatchcase(name, p) for p in wanted):
            found[name] = status
    return found


def show(name: str) -> str:
    """The diff of one mutant."""
    return subprocess.run(  # noqa: S603
        [*MUTMUT, "show", name], cwd=WS, capture_output=True, text=True, check=False
    ).stdout


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--only", nargs="*", default=list(MODULES), help="modules to run")
    parser.add_argument("--children", type=int, default=2, help="parallel mutant workers")
    parser.add_argument("--keep", action="store_true", help="reuse the workspace (and cache)")
    parser.add_argument(
        "--budget-minutes",
        type=float,
        default=0,
        help="start no further module once this many minutes have passed (0: no limit)",
    )
    args = parser.parse_args()
    WORK.mkdir(parents=True, exist_ok=True)
    if not args.keep or not WS.exists():
        build_workspace()
    report_path = WORK / "results.json"
    report: dict[str, Any] = json.loads(report_path.read_text()) if report_path.exists() else {}
    began = time.monotonic()
    for module in args.only:
        if args.budget_minutes and time.monotonic() - began > args.budget_minutes * 60:
            print(f"{module}: not run (budget of {args.budget_minutes} min spent)", flush=True)
            continue
        entry = run_module(module, args.children)
        report[module] = entry
        report_path.write_text(json.dumps(report, indent=1, sort_keys=True))
        killed = entry["counts"].get("killed", 0)
        total = sum(entry["counts"].values())
        print(
            f"{module}: {killed}/{total} killed in {entry['seconds']} s "
            f"{ {k: v for k, v in entry['counts'].items() if k != 'killed'} }",
            flush=True,
        )
    print(f"results: {report_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
