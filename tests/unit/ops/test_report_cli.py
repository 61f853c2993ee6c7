"""``scripts/report.py``'s command line over an in-memory store: a period outside the days the
analytics callable accepts is a usage error (exit 2) naming the range, never a traceback; ``--at``
without a zone is UTC (as the other CLIs take it); a crash exits 70, not 1 (refused)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType

import pytest

from stores.memory import MemoryStore
from tests.support.scripts import load_script

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def report() -> ModuleType:
    return load_script("report", "report_cli", reuse=True)


@pytest.fixture
def store(monkeypatch: pytest.MonkeyPatch) -> MemoryStore:
    """The store ``report.main`` opens: an empty in-memory one."""
    import stores.firestore as sf

    mem = MemoryStore()
    monkeypatch.setattr(sf, "make_client", lambda project=None: None)
    monkeypatch.setattr(sf, "FirestoreStore", lambda client, deadline_s=None: mem)
    return mem


@pytest.fixture
def new_york(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.mark.parametrize(
    "argv",
    [
        ["daily", "--start", "0001-01-01"],
        ["daily", "--start", "9999-12-31"],
        ["daily", "--start", "1969-12-31"],
        ["security", "--start", "9998-12-30", "--end", "9999-01-01"],
        ["weekly", "--start", "1970-01-01", "--end", "1970-01-07"],
        ["daily", "--at", "0001-01-01T00:00:00Z"],
    ],
)
def test_a_day_the_callable_refuses_is_a_usage_error(
    report: ModuleType,
    store: MemoryStore,
    tmp_path: Path,
    argv: list[str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as done:
        report.main([*argv, "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert done.value.code == 2, err
    assert "1970-01-01" in err and ("9998-12-31" in err or "--at" in err), err
    assert "Traceback" not in err and list(tmp_path.iterdir()) == []


def test_the_first_weekly_report_the_range_allows_is_written(
    report: ModuleType, store: MemoryStore, tmp_path: Path
) -> None:
    argv = ["weekly", "--start", "1970-01-08", "--end", "1970-01-14", "--out", str(tmp_path)]
    assert report.main(argv) == report.OK
    assert (tmp_path / "weekly.md").read_text().count("1970-01-01..1970-01-07") == 1


def test_at_without_a_zone_is_utc_whatever_the_machine_zone(
    report: ModuleType, store: MemoryStore, tmp_path: Path, new_york: None
) -> None:
    args = report.build_parser().parse_args(["daily", "--at", "2026-11-26T01:30"])
    assert args.at == datetime(2026, 11, 26, 1, 30, tzinfo=UTC)
    assert report.main(["daily", "--at", "2026-11-26T01:30", "--out", str(tmp_path)]) == 0
    text = (tmp_path / "daily.md").read_text()
    assert "Period 2026-11-25 (UTC). Generated 2026-11-26 01:30" in text, text[:300]


def test_a_crash_exits_70_not_1() -> None:
    """report.py imports ``scripts._venv`` as the other CLIs do: an unexpected error is 70."""
    crash = (
        "import runpy, sys; sys.path.insert(0, 'functions'); import stores.firestore as sf; "
        "sf.make_client = lambda project=None: None; "
        "sf.FirestoreStore = lambda client, deadline_s=None: 1 / 0; "
        "sys.argv = ['scripts/report.py', 'daily']; "
        "runpy.run_path('scripts/report.py', run_name='__main__')"
    )
    crashed = subprocess.run(  # noqa: S603 - fixed arguments
        [sys.executable, "-c", crash],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "CV_ENRICHMENT_VENV_REEXEC": "1"},
    )
    assert crashed.returncode == 70, crashed.stderr
    assert "ZeroDivisionError" in crashed.stderr
