"""One load run, end to end: ``python -m loadtests.run --profile NAME [--arrival open|burst]``.

Starts the stack (``stack.py``), seeds users, runs Locust headless with the profile's phases,
injects the profile's faults, then checks that nothing was lost (``check.py``; a difference
fails the run with exit status 1), counts the Firestore cost, and writes
``docs/benchmarks/load-<name>.md`` beside Locust's CSV and HTML (and a PNG for the step run).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
for _p in (ROOT, ROOT / "functions"):
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

from common.vocab import SOURCES  # noqa: E402
from loadtests import check, counting, faults, paired  # noqa: E402
from loadtests.drain import DrainRecording  # noqa: E402
from loadtests.seed import seed  # noqa: E402
from loadtests.stack import (  # noqa: E402
    ServeConfig,
    Stack,
    children,
    cmdline,
    describe,
    machine_busy_seconds,
    rss_kb,
)

OUT = ROOT / "docs" / "benchmarks"
DRAIN_S = 60
"""Seconds of CPU samples (``drain.py``) in a burst run's last phase."""


@dataclass(frozen=True)
class Profile:
    """Phases ``[(seconds, rps)]`` and how a run of them is judged and shaped."""

    phases: list[tuple[float, float]]
    arrival: str = "open"
    mix: str = "premium_full=70,free_preview=30"
    faults: list[tuple[float, str]] = field(default_factory=list)
    step: bool = False
    soak: bool = False
    note: str = ""
    sample: bool = False
    """Sample where the request threads spend their time (``sampler.py``, 20 Hz per worker)."""
    fresh: float = 0.1
    """Share of premium calls with ``forceRefresh`` (the sources really fetched)."""


PROFILES = {
    "short": Profile(
        [(60, 10), (120, 20)], note="the plan's profile, 1 + 2 minutes instead of 5 + 10"
    ),
    "plan": Profile([(300, 10), (600, 20)], note="the rollout plan's load-testing profile"),
    "peak5x": Profile(
        [(300, 50), (600, 100)], sample=True, note="the plan's profile at 5x (50 then 100 rps)"
    ),
    "burst": Profile(
        [(240, 50), (120, 100)],
        arrival="burst",
        note="4 minutes of bursts of 50 (the emulator's JVM compiles its code: a third of its"
        " CPU in a run's third minute, 2% in its fifth), then bursts of 100 calls every second:"
        " the goal's phase",
    ),
    "step": Profile(
        [(30, r) for r in (50, 100, 150, 200, 250, 300, 350, 400)],
        step=True,
        note="a step every 30 s until p95 or errors break (the knee)",
    ),
    "faults": Profile(
        [(240, 20)],
        mix="premium_full=65,free_preview=30,free_full=5",
        faults=faults.FAULT_SCHEDULE,
        fresh=0.5,
        note="the plan's peak rate while faults are injected",
    ),
    "tiny": Profile([(20, 5)], note="a 20-second check of the harness itself"),
    "hundred": Profile(
        [(90, 50), (150, 100)],
        note="1.5 minutes at 50 rps (the emulator's JVM warms up), then 2.5 at 100: serving"
        " settings compared side by side",
    ),
    "soak": Profile([(600, 30)], soak=True, note="10 minutes at a steady rate, worker RSS sampled"),
}

ARRIVALS = {
    "open": "open-loop: Poisson arrivals (each simulated user fires after exponential gaps of"
    " mean {pacing:g} s; users = rps x {pacing:g}), independent of how fast answers come",
    "burst": "synchronized bursts: users = rps, every user fires at each whole second of the"
    " wall clock (one burst of rps calls per second, the worst case)",
}


def _sources(text: str) -> str:
    """``--sources``: known names, each once, in the order given."""
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in SOURCES]
    if not names or unknown or len(set(names)) != len(names):
        raise argparse.ArgumentTypeError(
            f"{text!r}: name each of {', '.join(SOURCES)} at most once, comma-separated"
        )
    return ",".join(names)


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--profile", choices=sorted(PROFILES), default="short")
    p.add_argument("--arrival", choices=sorted(ARRIVALS), help="override the profile's")
    p.add_argument("--name", help="output name (default: the profile, plus -burst)")
    p.add_argument(
        "--instances", type=int, default=2, help="function instances (servers), users spread evenly"
    )
    p.add_argument("--workers", type=int, default=1, help="gunicorn workers per instance")
    p.add_argument(
        "--threads",
        type=int,
        default=ServeConfig.threads,
        help="threads per worker (default: the product's EXTERNAL_DATA_REQUEST_THREADS default)",
    )
    p.add_argument("--delay-ms", type=float, default=20, help="delay of every source fake answer")
    p.add_argument("--fresh", type=float, help="share of premium calls with forceRefresh")
    p.add_argument(
        "--sources",
        type=_sources,
        default="github,linkedin",
        help="sources every call asks for, comma-separated (github, linkedin, website, web)",
    )
    p.add_argument(
        "--pacing", type=float, default=2.0, help="open: mean seconds between a user's calls"
    )
    p.add_argument("--premium-users", type=int, default=300)
    p.add_argument("--free-users", type=int, default=150)
    p.add_argument("--mix", help="override the profile's mix")
    p.add_argument("--sample", action="store_true", help="sample the request threads' stacks")
    p.add_argument(
        "--gil-profile",
        type=int,
        default=0,
        metavar="SECONDS",
        help="py-spy --gil of every worker for SECONDS during the last phase (gil_profile.py)",
    )
    p.add_argument(
        "--pair",
        metavar="REF",
        help="the second instance serves git REF's functions/ (paired.py); needs 2 instances",
    )
    p.add_argument("--out", type=Path, default=OUT)
    args = p.parse_args(argv)
    if args.pair and args.instances != 2:
        p.error("--pair needs --instances 2: one instance for each tree")
    return args


class Sampler:
    """Worker RSS every ``every_s`` while the run goes (for the soak)."""

    def __init__(self, stack: Stack, every_s: float = 15) -> None:
        self.stack, self.every, self.samples = stack, every_s, []  # type: ignore[var-annotated]
        self.stop = threading.Event()
        self.t0 = time.time()
        threading.Thread(target=self._loop, daemon=True).start()

    def _loop(self) -> None:
        while not self.stop.wait(self.every):
            pids = self.stack.worker_pids()
            self.samples.append((time.time() - self.t0, {p: rss_kb(p) for p in pids}))


class RollupLoop:
    """The scheduled roll-up (``rollUpExternalDataMetrics``, every minute) while the run goes,
    so the checker proves the readers against what it folded, as in production."""

    def __init__(self, client: Any, every_s: float = 60) -> None:
        from stores.firestore import FirestoreStore

        self.store = FirestoreStore(client, deadline_s=60.0)
        self.every, self.stop = every_s, threading.Event()
        self.runs = self.minutes = self.raw_docs = 0
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _loop(self) -> None:
        from analytics.rollup import roll_up
        from stores.errors import StoreError

        while not self.stop.wait(self.every):
            try:
                run = roll_up(self.store, datetime.now(UTC))
            except StoreError as exc:  # a frozen store (fault runs): the next minute retries
                print(f"load: roll-up failed ({type(exc).__name__}); retried next minute")
                continue
            self.runs += 1
            self.minutes += run.minutes_with_data
            self.raw_docs += run.raw_docs

    def finish(self) -> dict[str, int]:
        """Stop the loop; what it did."""
        self.stop.set()
        self.thread.join(timeout=120)
        return {"runs": self.runs, "minutesWithData": self.minutes, "rawDocsRead": self.raw_docs}


def last_phase_third(prof: Profile, seconds: float) -> float:
    """Seconds from the run's start to a third of the way into its last phase (or to that
    phase's start, when it is shorter than a recording of ``seconds``)."""
    *before, (last, _rps) = prof.phases
    return sum(s for s, _ in before) + (last / 3 if last >= seconds * 1.5 else 0)


def drain_pids(stack: Stack) -> dict[str, list[int]]:
    """The processes ``drain`` samples: the instances' gunicorn masters and workers, the emulator, Locust (a
    child of this process) and this process."""
    fn = stack.function_pids()
    emulator = [stack.firestore.proc.pid] if stack.firestore.proc else []
    locust = [p for p in children(os.getpid()) if b"locust" in cmdline(p)]
    return {"function": fn, "emulator": emulator, "locust": locust, "harness": [os.getpid()]}


class GilRecording:
    """``gil_profile.record`` of every worker for ``seconds``, started a third of the way into
    the profile's last phase (or at once, when that phase is shorter than the recording)."""

    def __init__(self, seconds: int, prof: Profile, stack: Stack, out: Path, t0: float) -> None:
        begin = last_phase_third(prof, seconds)
        self.files: list[Path] = []

        def go() -> None:
            from loadtests import gil_profile

            time.sleep(max(0.0, t0 + begin - time.time()))
            self.files = gil_profile.record(stack.worker_pids(), seconds, out)

        self.thread = threading.Thread(target=go, daemon=True)
        self.thread.start()

    def finish(self) -> list[Path]:
        """The raw files once the recording is done."""
        self.thread.join()
        return self.files


def run_locust(
    args: argparse.Namespace, prof: Profile, stack: Stack, paths: dict[str, Path]
) -> list[str]:
    """Run Locust headless until the profile's last phase ends; returns its command."""
    env = {
        **os.environ,
        "LOAD_PHASES": json.dumps(prof.phases),
        "LOAD_ARRIVAL": args.arrival,
        "LOAD_MIX": args.mix,
        "LOAD_PACING": str(args.pacing),
        "LOAD_FRESH": str(args.fresh),
        "LOAD_SOURCES": args.sources,
        "LOAD_USERS": str(paths["users"]),
        "LOAD_ROWS": str(paths["rows"]),
        "LOAD_WEBSITE_URL": stack.website_url,
        "LOAD_HOSTS": ",".join(stack.urls),
    }
    cmd = [
        str(ROOT / ".venv/bin/locust"),
        "-f",
        str(ROOT / "loadtests/locustfile.py"),
        "--headless",
        "--stop-timeout",
        "120",
        "--only-summary",
        "--host",
        stack.urls[0],
        "--loglevel",
        "WARNING",
        "--csv",
        str(paths["csv"]),
        "--html",
        str(paths["html"]),
    ]
    with open(paths["locust_log"], "w") as log:
        proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)  # noqa: S603
        proc.wait()
    return cmd


def measure(
    args: argparse.Namespace, prof: Profile, stack: Stack, paths: dict[str, Path]
) -> dict[str, Any]:
    """Seed, run Locust (with faults and sampling), wait for the workers' counts to flush."""
    os.environ.update(stack.client_env())
    from stores.firestore import make_client

    users = seed(args.premium_users, args.free_users, paths["users"], "demo-cv-enrichment")
    client = make_client("demo-cv-enrichment")
    cpu0 = {"firestore": stack.firestore.cpu_seconds(), "function": stack.function_cpu_seconds(),
            "machine": machine_busy_seconds(), "self": own_cpu_seconds()}  # fmt: skip
    per_instance = stack.instance_cpu_seconds()
    load0 = os.getloadavg()[0]
    t0 = time.time()
    timeline = faults.Timeline(t0)
    if prof.faults:
        faults.schedule(prof.faults, faults.actions(stack, client, timeline), t0)
    sampler = Sampler(stack) if prof.soak else None
    rollup = RollupLoop(client)
    gil = (
        GilRecording(args.gil_profile, prof, stack, paths["gil"], t0) if args.gil_profile else None
    )
    drain = None
    if args.arrival == "burst":
        begin = last_phase_third(prof, DRAIN_S)
        seconds = min(DRAIN_S, sum(s for s, _ in prof.phases) - begin)
        drain = DrainRecording(seconds, t0 + begin, lambda: drain_pids(stack))
    cmd = run_locust(args, prof, stack, paths)
    wall = time.time() - t0
    cpu = {
        "firestore": stack.firestore.cpu_seconds() - cpu0["firestore"],
        "function": stack.function_cpu_seconds() - cpu0["function"],
        "locust": cpu_seconds_of_children(),
        "harness": own_cpu_seconds() - cpu0["self"],
    }
    cpu["other processes"] = max(0.0, machine_busy_seconds() - cpu0["machine"] - sum(cpu.values()))
    load = (load0, os.getloadavg()[0])
    if sampler:
        sampler.stop.set()
    rolled = rollup.finish()
    time.sleep(counting.FLUSH_EVERY_S + 2)
    after = stack.instance_cpu_seconds()
    return {
        "instance_cpu": {url: after[url] - s for url, s in per_instance.items()},
        "gil_files": gil.finish() if gil else [],
        "drain": drain.finish() if drain else [],
        "cmd": cmd,
        "t0": t0,
        "wall": wall,
        "cpu": cpu,
        "users": len(users),
        "client": client,
        "timeline": timeline,
        "rss": sampler.samples if sampler else [],
        "load": load,
        "rollup": rolled,
    }


def own_cpu_seconds() -> float:
    """CPU time of this process (seeding, fault injection, sampling)."""
    t = os.times()
    return t.user + t.system


def cpu_seconds_of_children() -> float:
    """CPU time of this process's finished children (Locust)."""
    ru = os.times()
    return ru.children_user + ru.children_system


def main(argv: list[str] | None = None) -> int:
    """Run one profile; exit status 1 when the checker finds a difference."""
    args = parse(argv)
    prof = PROFILES[args.profile]
    args.arrival = args.arrival or prof.arrival
    args.mix = args.mix or prof.mix
    args.fresh = prof.fresh if args.fresh is None else args.fresh
    name = args.name or (args.profile + ("-burst" if args.arrival != prof.arrival else ""))
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    work = ROOT / ".tools" / "load" / f"{name}-{stamp}"
    args.out.mkdir(parents=True, exist_ok=True)
    paths = {
        "users": work / "users.json",
        "rows": work / "rows.csv",
        "locust_log": work / "locust.log",
        "csv": args.out / f"load-{name}",
        "html": args.out / f"load-{name}.html",
        "md": args.out / f"load-{name}.md",
        "png": args.out / f"load-{name}-knee.png",
        "drain_png": args.out / f"load-{name}-drain.png",
        "gil": work / "gil",
    }
    limits = {
        "EXTERNAL_DATA_RATE_LIMIT_FREE_HOURLY": "1000",
        "EXTERNAL_DATA_RATE_LIMIT_PREMIUM_HOURLY": "1000",
        # The aggregates sized for the run's peak, as an operator would for this traffic.
        "EXTERNAL_DATA_PEAK_RPS": str(int(max(r for _s, r in prof.phases))),
    }
    sides = _pair(args.pair, work) if args.pair else []
    cfg = ServeConfig(
        trees=tuple(s.functions for s in sides),
        instances=args.instances,
        workers=args.workers,
        threads=args.threads,
        source_delay_s=args.delay_ms / 1000,
        sample=prof.sample or args.sample,
        env=limits,
    )
    print(f"load: {name}: stack in {work.relative_to(ROOT)}", flush=True)
    with Stack(work, cfg) as stack:
        m = measure(args, prof, stack, paths)
        m["served"] = list(zip(sides, stack.urls, strict=True)) if sides else []
        problems, figures = verify(prof, stack, m["client"], paths)
        figures["roll-up during the run (every 60 s)"] = m["rollup"]
        cost = counting.analyse(stack.counts_dir, calls=max(figures["calls"], 1))
    from loadtests.summary import write_summary

    m["samples_dir"] = work / "samples"
    write_summary(args, prof, name, paths, m, cost, problems, figures, describe(cfg))
    print(paths["md"].read_text())
    return 1 if problems else 0


def _pair(ref: str, work: Path) -> list[paired.Side]:
    """The two sides of ``--pair REF``: this tree, then REF's ``functions/`` exported into the
    run's work directory."""
    label, functions = paired.export(ref, work / "pair")
    return [paired.Side(paired.this_tree(), ROOT / "functions"), paired.Side(label, functions)]


def verify(
    prof: Profile, stack: Stack, client: Any, paths: dict[str, Path]
) -> tuple[list[str], dict[str, Any]]:
    """The nothing-lost check of the run."""
    answers = check.read_rows(paths["rows"])
    server = check.read_server(client)
    lost = check.Lost()
    if prof.faults:
        lost = check.read_lost(stack.fn_log.read_text().splitlines(), server.event_ids)
    problems = check.compare(answers, server, lost)
    figures = check.summary(answers, server, lost)
    figures["calls"] = sum(server.events.values()) + sum(lost.by_outcome.values())
    return problems, figures


if __name__ == "__main__":
    sys.exit(main())
