"""The benchmark's CPU placement (``loadtests.stack.Cores``): separate cores put every thread
of this process on the last CPU and every thread of the other process (the emulator's JVM in a
bench) on the rest, threads started later included; shared gives both every CPU back."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator

import pytest

from loadtests.stack import Cores, pin_threads

CPUS = frozenset(os.sched_getaffinity(0))
needs_two = pytest.mark.skipif(len(CPUS) < 2, reason="separate cores need two CPUs")
# A child with three threads, like the JVM has many; it prints when they are all up.
CHILD = (
    "import threading, time\n"
    "for _ in range(2): threading.Thread(target=time.sleep, args=(60,), daemon=True).start()\n"
    "print('up', flush=True); time.sleep(60)\n"
)


def allowed(pid: int) -> dict[int, set[int]]:
    """Each thread of ``pid``: the CPUs it may run on."""
    return {int(tid): os.sched_getaffinity(int(tid)) for tid in os.listdir(f"/proc/{pid}/task")}


@pytest.fixture
def child() -> Iterator[int]:
    proc = subprocess.Popen(  # noqa: S603 - this interpreter, our own script
        [sys.executable, "-c", CHILD], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "up"
        yield proc.pid
    finally:
        proc.kill()
        proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


@pytest.fixture
def restored() -> Iterator[None]:
    """This process's threads get every CPU back whatever a test did."""
    yield
    pin_threads(os.getpid(), CPUS)


@needs_two
def test_separate_then_shared(child: int, restored: None) -> None:
    cores = Cores(child)
    assert cores.possible
    last = max(CPUS)
    cores.place(Cores.SEPARATE)
    assert cores.placement == Cores.SEPARATE
    theirs = allowed(child)
    assert len(theirs) == 3
    assert all(cpus == CPUS - {last} for cpus in theirs.values())
    assert all(cpus == {last} for cpus in allowed(os.getpid()).values())
    # A thread started after the placement inherits it.
    seen: list[set[int]] = []
    t = threading.Thread(target=lambda: seen.append(os.sched_getaffinity(0)))
    t.start()
    t.join()
    assert seen == [{last}]
    cores.place(Cores.SHARED)
    assert all(cpus == CPUS for cpus in allowed(child).values())
    assert all(cpus == CPUS for cpus in allowed(os.getpid()).values())


def test_without_an_emulator_only_shared() -> None:
    cores = Cores(None)
    assert not cores.possible
    with pytest.raises(RuntimeError, match="two CPUs and the emulator"):
        cores.place(Cores.SEPARATE)
    cores.place(Cores.SHARED)  # nothing to move, and no error
    assert cores.placement == Cores.SHARED
    with pytest.raises(ValueError, match="unknown placement"):
        cores.place("elsewhere")


def test_pin_threads_of_a_process_gone() -> None:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    assert pin_threads(proc.pid, CPUS) == 0  # reaped: no threads left to place
