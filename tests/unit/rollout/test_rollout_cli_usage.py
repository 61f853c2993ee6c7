"""``scripts/rollout.py`` (and ``support.py``): what the command line alone shows to be wrong is
a usage error, exit 2, said before the store is opened, never a refusal (exit 1) after reading:
``set`` with nothing to set, an unknown message key, a blank ``--as``."""

from __future__ import annotations

from types import ModuleType

import pytest

from stores.memory import MemoryStore
from tests.support.scripts import load_script


def _load(name: str) -> ModuleType:
    return load_script(name, f"{name}_cli")


@pytest.fixture
def rollout(monkeypatch: pytest.MonkeyPatch) -> tuple[ModuleType, MemoryStore]:
    module = _load("rollout")
    store = MemoryStore()
    monkeypatch.setattr(module.cli, "make_store", lambda project: store)
    return module, store


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["set", "--reason", "x"], "set needs something to set"),
        (["set", "--force", "--reason", "x"], "--max-cohort-users"),
        (["advance", "--reason", "x", "--as", ""], "--as NAME"),
        (["rollback", "immediate", "--reason", "x", "--as", "  "], "--as NAME"),
        (["set-messages", "bogus=hi", "--reason", "x"], "'bogus' is not a message key"),
        (["set-messages", "no-equals", "--reason", "x"], "expected KEY=TEXT"),
    ],
)
def test_a_mistake_on_the_command_line_is_a_usage_error(
    rollout: tuple[ModuleType, MemoryStore],
    argv: list[str],
    says: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    module, store = rollout
    with pytest.raises(SystemExit) as done:
        module.main(argv)
    err = capsys.readouterr().err
    assert done.value.code == 2 and says in err, err
    assert store.docs == {} and store.round_trips == 0


def test_a_known_message_key_is_still_set(
    rollout: tuple[ModuleType, MemoryStore], capsys: pytest.CaptureFixture[str]
) -> None:
    module, store = rollout
    key = "upgrade"
    assert module.main(["set-messages", f"{key}=Upgrade now", "--reason", "copy"]) == module.OK
    assert store.docs["config/externalDataRollout"]["messages"][key] == "Upgrade now"
    assert module.main(["set", "--percentage", "5", "--reason", "x"]) == module.OK


def test_support_refuses_a_blank_as_too(capsys: pytest.CaptureFixture[str]) -> None:
    support = _load("support")
    with pytest.raises(SystemExit) as done:
        support.main(["reset-quota", "u1", "--reason", "x", "--as", " "])
    assert done.value.code == 2 and "--as NAME" in capsys.readouterr().err
