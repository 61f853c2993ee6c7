"""``scripts/comms.py``: an ``--out`` that cannot be written is said plainly and exits 1 (its
documented "other error"), for ``samples`` (which has no ``--project``) as for ``audience``."""

from __future__ import annotations

import pytest

from scripts import comms
from stores.memory import MemoryStore


def test_samples_into_a_path_that_cannot_be_a_folder(capsys: pytest.CaptureFixture[str]) -> None:
    assert comms.main(["samples", "--out", "/dev/null/x"]) == comms.ERROR
    err = capsys.readouterr().err
    assert "error: cannot write /dev/null/x" in err and "Traceback" not in err


def test_an_audience_into_a_path_that_cannot_be_written(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(comms, "make_store", lambda project: MemoryStore())
    assert comms.main(["audience", "premium", "--out", "/dev/null/x.csv"]) == comms.ERROR
    assert "error: cannot write /dev/null/x.csv" in capsys.readouterr().err


def test_a_store_failure_is_still_said_and_other_errors_still_raise(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    down = MemoryStore()
    down.fail = True
    monkeypatch.setattr(comms, "make_store", lambda project: down)
    assert comms.main(["audience", "premium"]) == comms.ERROR
    assert "error: cannot read Firestore" in capsys.readouterr().err

    def broken(args: object, now: object) -> int:
        raise KeyError("bug")

    monkeypatch.setitem(comms.COMMANDS, "samples", broken)
    with pytest.raises(KeyError):
        comms.main(["samples"])
