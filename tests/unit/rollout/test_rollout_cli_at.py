"""``scripts/rollout.py --at``: acting "as of" another time is for replays and tests. A change
as of the future would pass the phase windows' time checks (beta's 48 h) without the time having
passed, so it is refused before anything is read or written."""

from __future__ import annotations

from types import ModuleType

import pytest

from tests.support.scripts import load_script


def _rollout() -> ModuleType:
    return load_script("rollout", "rollout_cli")


@pytest.mark.parametrize(
    "argv",
    [
        ["advance", "--reason", "skip the window"],
        ["rollback", "immediate", "--reason", "r"],
        ["evaluate"],
    ],
)
def test_a_change_as_of_the_future_is_refused(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as done:
        _rollout().main([*argv, "--at", "2999-01-01T00:00:00Z"])
    assert done.value.code == 2
    assert "--at in the future is only for status, history and evaluate --dry-run" in (
        capsys.readouterr().err
    )


@pytest.mark.parametrize(
    "argv",
    [
        ["set", "--percentage", "150", "--reason", "r"],
        ["set", "--percentage", "-1", "--reason", "r"],
        ["set", "--phase", "bogus", "--reason", "r"],
        ["rollback", "immediate", "--reason", "   "],
    ],
)
def test_a_bad_value_is_a_usage_error_before_anything_is_read(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    """The README's exit codes: a bad value is 2 (usage), not 1 (a refusal after reading)."""
    with pytest.raises(SystemExit) as done:
        _rollout().main(argv)
    assert done.value.code == 2 and "error:" in capsys.readouterr().err


def test_a_cap_in_other_digits_is_a_usage_error_not_a_crash(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rollout = _rollout()
    monkeypatch.setattr(rollout.cli, "make_store", lambda project: object())
    with pytest.raises(SystemExit) as done:
        rollout.main(["set", "--max-cohort-users", "²", "--reason", "r"])
    assert done.value.code == 2  # was ValueError: exit 70
