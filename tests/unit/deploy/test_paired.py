"""A paired load run (``loadtests/paired.py``): the second instance serves another commit's
``functions/``, and the page compares the two trees' answers and CPU per call."""

from __future__ import annotations

from pathlib import Path

import pytest

from loadtests import paired, stack
from loadtests.report import Row, read_rows
from loadtests.run import parse
from loadtests.stack import ServeConfig

ROOT = Path(__file__).resolve().parents[3]
A, B = "http://127.0.0.1:1", "http://127.0.0.1:2"


def test_the_page_compares_the_trees_in_the_last_phase_and_per_call_cpu() -> None:
    # Before t=100 (earlier phases): counted for CPU per call, not in the last phase's answers.
    rows = [(50.0, 999.0, "OK", A), (50.0, 999.0, "OK", B)]
    rows += [(100.0 + i, 10.0 + i, "OK", A) for i in range(100)]  # A: 10..109 ms
    rows += [(100.0 + i, 20.0 + 2 * i, "OK", B) for i in range(99)]  # B: 20..216 ms
    rows.append((150.0, 5.0, "UNAVAILABLE", B))
    served = [(paired.Side("this tree", ROOT), A), (paired.Side("old (abc)", ROOT), B)]
    cpu = {A: 0.404, B: 0.808}  # seconds: 4.0 and 8.0 ms a call over 101 calls each
    answers = [Row(t, "premium_full", ms, status, host) for t, ms, status, host in rows]
    lines = paired.markdown(answers, [(100, 1), (100, 1)], 0.0, served, cpu)
    table = [line for line in lines if line.startswith("| ")]
    assert table[1] == "| this tree | 101 | 4.00 | 100 | 59 | 104 | 108 | 0 |"
    assert table[2] == "| old (abc) | 101 | 8.00 | 100 | 116 | 206 | 214 | 1 |"
    assert table[3] == "| second / first | | 2.00x | | 1.97x | 1.98x | 1.98x | |"


def test_the_rows_keep_the_instance_that_answered(tmp_path: Path) -> None:
    header = "t,kind,ms,status,access,result,requestId,uid"
    (tmp_path / "new.csv").write_text(f"{header},host\n1.5,free_preview,12.0,OK,,,r1,u,{A}\n")
    (tmp_path / "old.csv").write_text(f"{header}\n1.5,free_preview,12.0,OK,,,r1,u\n")
    assert read_rows(tmp_path / "new.csv") == [Row(1.5, "free_preview", 12.0, "OK", A)]
    assert read_rows(tmp_path / "old.csv") == [Row(1.5, "free_preview", 12.0, "OK", "")]


def test_another_commit_s_functions_are_exported_without_touching_the_tree(
    tmp_path: Path,
) -> None:
    label, functions = paired.export("HEAD", tmp_path)
    assert label == f"HEAD ({paired._git('rev-parse', '--short', 'HEAD')})"
    committed = paired._git("show", "HEAD:functions/main.py")
    assert (functions / "main.py").read_text().strip() == committed
    with pytest.raises(SystemExit, match="not a commit"):
        paired.export("no-such-ref-anywhere", tmp_path / "x")


def test_a_pair_needs_two_instances_and_each_serves_its_own_tree(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert parse(["--pair", "HEAD~1"]).pair == "HEAD~1"
    with pytest.raises(SystemExit):
        parse(["--pair", "HEAD~1", "--instances", "3"])
    assert "--pair needs --instances 2" in capsys.readouterr().err
    assert ServeConfig().trees == ()


def test_each_instance_serves_its_tree_and_the_rest_serve_this_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    started: list[dict[str, object]] = []

    class Started:
        pid = 0

        def __init__(self, argv: list[str], **kw: object) -> None:
            started.append({"argv": argv, **kw})

    monkeypatch.setattr("loadtests.stack.subprocess.Popen", Started)
    monkeypatch.setattr(stack, "_wait_http", lambda *a, **kw: None)
    other = tmp_path / "pair" / "functions"
    s = stack.Stack(
        tmp_path / "work", stack.ServeConfig(instances=3, trees=(ROOT / "functions", other))
    )
    s.env = {"PYTHONPATH": "unused", "KEPT": "1"}
    s.start_function()
    served = [(p["cwd"], p["env"]["PYTHONPATH"], p["env"]["KEPT"]) for p in started]  # type: ignore[index]
    assert served == [
        (ROOT / "functions", f"{ROOT / 'functions'}:{ROOT}", "1"),
        (other, f"{other}:{ROOT}", "1"),
        (ROOT / "functions", f"{ROOT / 'functions'}:{ROOT}", "1"),
    ]
    assert len(set(s.urls)) == 3
