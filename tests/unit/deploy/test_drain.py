"""The burst pages' CPU-through-the-second section (``loadtests/drain.py``)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from loadtests import drain
from loadtests.drain import Sample


def _series(seconds: int, busy_until: float, per_s: float = 50) -> list[Sample]:
    """A machine of 2 cores, both busy for the first ``busy_until`` of every second and idle
    after; the function does 3/4 of the work, the emulator 1/4."""
    out = []
    busy = fn = em = 0.0
    step = 1 / per_s
    t = 1000.0
    for _ in range(int(seconds * per_s)):
        out.append(Sample(t, busy, (fn, em, 0.0, 0.0)))
        if (t + step / 2) % 1.0 < busy_until:
            busy += 2 * step
            fn += 1.5 * step
            em += 0.5 * step
        t += step
    return out


def test_samples_fold_into_the_bin_of_their_interval() -> None:
    f = drain.fold(_series(10, 0.3), cores=2)
    busy = f.share(f.busy)
    assert busy[:6] == pytest.approx([1.0] * 6)
    assert busy[6:] == pytest.approx([0.0] * 14)
    assert f.share(f.groups["function"])[:6] == pytest.approx([0.75] * 6)
    assert f.share(f.groups["emulator"])[:6] == pytest.approx([0.25] * 6)
    assert sum(f.wall) == pytest.approx(10 - 1 / 50)


def test_saturation_is_measured_over_the_drain_only() -> None:
    share, until = drain.busy_while_draining(drain.fold(_series(10, 0.4), cores=2))
    assert share == pytest.approx(1.0)
    assert until == 400
    assert drain.busy_while_draining(drain.fold(_series(5, 0.0), cores=2)) == (0.0, 0)


def test_the_floor_is_the_cpu_of_the_first_answers_over_the_cores() -> None:
    assert drain.floor_ms(7.0, burst=100, cores=2) == pytest.approx(95 * 7.0 / 2)
    assert drain.floor_ms(5.0, burst=10, cores=1, q=0.5) == pytest.approx(25.0)


def test_cpu_per_call_counts_the_calls_started_in_the_window() -> None:
    samples = [
        Sample(100.0, 10.0, (1.0, 2.0, 3.0, 4.0)),
        Sample(110.0, 12.0, (1.5, 2.25, 3.05, 4.1)),
    ]
    starts = [(99.0, 1.0), (100.0, 30.0), (105.0, 10.0), (109.9, 20.0), (110.0, 5.0)]
    w = drain.window(samples, starts)
    assert w.calls == 3
    assert w.latencies == (10.0, 20.0, 30.0)
    assert w.per_call_ms["function"] == pytest.approx(500 / 3)
    assert w.per_call_ms["emulator"] == pytest.approx(250 / 3)
    assert w.per_call_ms["locust"] == pytest.approx(50 / 3)
    assert w.per_call_ms["harness"] == pytest.approx(100 / 3)
    assert w.per_call_ms["other"] == pytest.approx(1100 / 3)
    assert w.call_ms == pytest.approx(800 / 3)
    assert w.per_locust_cpu == pytest.approx((500 + 250) / 50)


def test_the_page_compares_runs_by_the_cpu_per_ms_of_locusts(tmp_path: Path) -> None:
    def page(locust_s: float) -> str:
        samples = [
            Sample(100.0, 10.0, (1.0, 2.0, 3.0, 0.0)),
            Sample(110.0, 12.0, (1.6, 2.2, 3.0 + locust_s, 0.0)),
        ]
        starts = [(100.0 + i / 100, 50.0) for i in range(1000)]
        return "\n".join(drain.markdown(samples, starts, burst=100, png=tmp_path / "d.png"))

    assert "per ms of Locust's CPU: **16.0**" in page(0.05)  # (0.6 + 0.2) s / 0.05 s
    assert "per ms of Locust's CPU" not in page(0.0)  # not measured: not stated


def test_the_page_states_floor_and_saturation_and_draws_the_chart(tmp_path: Path) -> None:
    samples = _series(20, 0.35)
    # 50 calls a second, each answered 200 ms after the whole second.
    starts = [(float(s), 200.0) for s in range(1001, 1019) for _ in range(50)]
    png = tmp_path / "drain.png"
    lines = drain.markdown(samples, starts, burst=50, png=png)
    text = "\n".join(lines)
    assert png.stat().st_size > 10_000
    assert "calls started in the window: 900" in text
    assert "p50 200 / p95 200 ms" in text
    cores = os.cpu_count() or 1
    per_call = (samples[-1].busy - samples[0].busy) / 900 * 1000
    assert f"**{drain.floor_ms(per_call, 50, cores):.0f} ms**" in text
    assert "| 0-50 | " in text and "| 950-1000 | " in text


def test_no_samples_says_so(tmp_path: Path) -> None:
    lines = drain.markdown([], [], burst=100, png=tmp_path / "x.png")
    assert "No CPU samples" in lines[-1]
    assert not (tmp_path / "x.png").exists()


def test_sampling_reads_this_process_and_the_machine() -> None:
    rec = drain.DrainRecording(0.3, time.time(), lambda: {g: [os.getpid()] for g in drain.GROUPS})
    end = time.process_time() + 0.2
    while time.process_time() < end:  # burn CPU so the readings move
        pass
    samples = rec.finish()
    assert len(samples) >= 5
    assert samples[-1].t > samples[0].t
    assert samples[-1].busy >= samples[0].busy
    assert samples[-1].groups[0] > samples[0].groups[0]


def test_kept_open_files_read_what_a_fresh_open_reads_and_a_gone_process_reads_zero() -> None:
    """``ProcFiles`` reads each file again from its start: the same figures as ``stack``'s
    readers, which open the file every time; a process that has exited counts 0."""
    from loadtests.stack import TICK, cpu_seconds, machine_busy_seconds

    burn = "sum(range(10 ** 7))"  # a tenth of a second or more, which must not be counted
    gone = subprocess.Popen([sys.executable, "-c", burn])  # noqa: S603 - this interpreter
    files = drain.ProcFiles({g: [os.getpid(), gone.pid] for g in drain.GROUPS})
    try:
        gone.wait()
        before = files.sample(time.time())
        end = time.process_time() + 0.1
        while time.process_time() < end:
            pass
        mine, busy = cpu_seconds(os.getpid()), machine_busy_seconds()
        after = files.sample(time.time())
        tick = 1 / TICK
        assert after.groups[0] >= before.groups[0] + 0.08  # moved: read afresh, not cached
        assert abs(after.groups[0] - mine) <= 2 * tick  # gone.pid adds nothing
        assert abs(after.busy - busy) <= 0.05
        assert files.cpu(None) == 0.0
    finally:
        files.close()
