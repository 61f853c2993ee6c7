"""The Markdown summary of one load run (``docs/benchmarks/load-<name>.md``)."""

from __future__ import annotations

import argparse
import shlex
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from loadtests import report
from loadtests.counting import Cost

ROOT = Path(__file__).resolve().parents[1]


def _rel(p: Path) -> str:
    try:
        return str(p.relative_to(ROOT))
    except ValueError:
        return str(p)


def _header(
    args: argparse.Namespace, prof: Any, name: str, m: dict[str, Any], serve: dict[str, Any]
) -> list[str]:
    from loadtests.run import ARRIVALS

    cores = {k: v / m["wall"] for k, v in m["cpu"].items()}
    argv = _argv(args)
    python = f"`.venv/bin/python -m loadtests.run {' '.join(argv)}`"
    command = python  # options beyond the profile and the arrival model: no make line says it
    if not argv[4:]:
        burst = " ARRIVAL=burst" if name.endswith("-burst") else ""
        command = f"`make load PROFILE={args.profile}{burst}` (= {python})"
    return [
        f"# Load run `{name}`: {prof.note}",
        "",
        f"- when: {datetime.fromtimestamp(m['t0'], UTC):%Y-%m-%d %H:%M} UTC, {m['wall']:.0f} s of load",
        f"- command: {command}",
        f"- arrival model: {ARRIVALS[args.arrival].format(pacing=args.pacing)}",
        f"- mix: {args.mix}; {m['users']} users ({args.premium_users} premium, {args.free_users} free), "
        "rollout phase full without fallback (free users get previews)",
        f"- served: `{serve['target']}` from `functions/main.py` by functions-framework under gunicorn, "
        f"{_instances_text(serve)} (keep-alive {serve['keepaliveS']} s), on loopback beside the Firestore "
        "emulator and the Auth emulator (ID tokens from it); every call asks for "
        f"{_sources_text(args.sources, serve['sourceDelayMs'])}; "
        f"{args.fresh:.0%} of premium calls force a refresh (the rest are cache hits); "
        f"hourly limits raised to 1000 per user for the run ({serve['env']})",
        "- CPU used, in cores (the machine has 2): "
        + ", ".join(f"{k} {v:.2f}" for k, v in cores.items())
        + (
            f"; load average {m['load'][0]:.1f} at the start, {m['load'][1]:.1f} at the end"
            if "load" in m
            else ""
        ),
        f"- Locust's own output: `{_rel(Path(str(m['csv_prefix']) + '_stats.csv'))}`, "
        f"`_failures.csv`, `_stats_history.csv`, `{Path(m['html']).name}`",
    ]


def _instances_text(serve: dict[str, Any]) -> str:
    """How many servers, workers and threads served the run."""
    per = f"{serve['workers']} worker(s) x {serve['threads']} threads"
    n = serve["instances"]
    if n == 1:
        return per
    return f"{n} instances (servers) of {per} each, Locust's users spread evenly over them"


_SOURCE_TEXT = {
    "github": "GitHub (loopback fake answering after {delay} ms)",
    "linkedin": "LinkedIn (the export parsed locally)",
    "website": "a personal website (loopback fake answering after {delay} ms)",
    "web": "web search (loopback fake answering after {delay} ms)",
}


def _sources_text(sources: str, delay_ms: object) -> str:
    """The sources a run's calls ask for, in words, with the fakes' delay."""
    names = [_SOURCE_TEXT[n].format(delay=delay_ms) for n in sources.split(",")]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def _argv(args: argparse.Namespace) -> list[str]:
    """The run's command-line options: the profile, the arrival model, and every other option
    whose value is not its default (so the command recorded is the command that was run)."""
    from loadtests.run import PROFILES, parse

    prof = PROFILES[args.profile]
    # The mix and the share of forced refreshes default to the profile's (run.main fills them).
    defaults = {**vars(parse(["--profile", args.profile])), "mix": prof.mix, "fresh": prof.fresh}
    out = ["--profile", args.profile, "--arrival", args.arrival]
    for key, value in vars(args).items():
        if key in ("profile", "arrival") or value is None or value == defaults.get(key):
            continue
        flag = f"--{key.replace('_', '-')}"
        out += [flag] if value is True else [flag, str(value)]
    return [shlex.quote(a) for a in out]


def _targets(phases: list[report.PhaseStats]) -> list[str]:
    last = phases[-1]
    plan_ok = all(p.p95 < 3000 and p.error_rate < 0.01 for p in phases)
    return [
        f"Plan's criteria (p95 < 3 s, errors < 1%) in every phase: **{'met' if plan_ok else 'NOT met'}**. "
        f"Last phase: {last.achieved_rps:.1f} rps achieved of {last.offered_rps:g} offered, "
        f"p50 {last.p50:.0f} ms, p95 {last.p95:.0f} ms, p99 {last.p99:.0f} ms.",
    ]


def _windows(rows: list[report.Row], t0: float, width: float = 10) -> list[str]:
    out = ["| seconds | answers | p95 ms | answers by kind |", "|---|---|---|---|"]
    end = max((r.t for r in rows), default=t0)
    t = t0
    while t <= end:
        inside = [r for r in rows if t <= r.t < t + width]
        ms = sorted(r.ms for r in inside)
        kinds = ", ".join(f"{k} {n}" for k, n in Counter(r.status for r in inside).most_common())
        out.append(
            f"| {t - t0:.0f}-{t - t0 + width:.0f} | {len(inside)} | {report.percentile(ms, 0.95):.0f} | {kinds} |"
        )
        t += width
    return out


def _fault_checks(rows_path: Path, t0: float, entries: list[tuple[float, str]]) -> list[str]:
    """What the faults must not do: no free user answered full (the config deleted or
    corrupted), no call admitted while the store was frozen, recovery without a restart."""
    import csv

    with open(rows_path, newline="") as f:
        rows = list(csv.DictReader(f))
    free_full = sum(1 for r in rows if r["kind"].startswith("free") and r["access"] == "full")
    premium_preview = sum(
        1 for r in rows if r["kind"] == "premium_full" and r["access"] == "preview"
    )
    out = [
        f"- free users answered `full` during the whole run: **{free_full}** (contract section 3: a"
        " missing config document is phase off, the pre-gating experience, so the deletion window"
        " serves everyone full; the corrupted one must not); "
        f"premium users answered `preview`: **{premium_preview}**",
    ]
    for i, (t, what) in enumerate(entries):
        if what.startswith("config document") and "restored" not in what:
            end = t0 + (entries[i + 1][0] if i + 1 < len(entries) else 1e9)
            inside = [
                r for r in rows if t0 + t <= float(r["t"]) < end and r["kind"].startswith("free")
            ]
            full = sum(1 for r in inside if r["access"] == "full")
            out.append(
                f'- from "{what}" to the next change: free users\' calls {len(inside)}, answered full {full}'
            )
    stop = next((t0 + t for t, w in entries if "frozen" in w), None)
    start = next((t0 + t for t, w in entries if "resumed" in w), None)
    if stop is not None and start is not None:
        inside = [r for r in rows if stop + 0.5 <= float(r["t"]) < start]
        kinds = Counter(r["status"] for r in inside)
        admitted = kinds.get("OK", 0)
        after = sorted(
            float(r["t"]) + float(r["ms"]) / 1000
            for r in rows
            if r["status"] == "OK" and float(r["t"]) >= start
        )
        back = f"{after[0] - start:.1f} s after the resume" if after else "never"
        slow = sorted(float(r["ms"]) for r in inside)
        out += [
            f"- calls started while Firestore was frozen ({start - stop:.0f} s): {len(inside)}, answered "
            + ", ".join(f"{k} {n}" for k, n in kinds.most_common())
            + f"; admitted once the store answered again: {admitted} (each with its rate-limit unit: "
            "the checker's free-pass check); answers took p50 "
            f"{report.percentile(slow, 0.5) / 1000:.1f} s, max {slow[-1] / 1000 if slow else 0:.1f} s",
            f"- first admitted answer after the resume, same processes (no restart): {back}",
        ]
    return out


def _soak(samples: list[tuple[float, dict[int, int]]]) -> list[str]:
    if not samples:
        return []
    pids = sorted({p for _, s in samples for p in s})
    out = [
        "## Worker memory (RSS, MB)",
        "",
        "| seconds | " + " | ".join(f"worker {p}" for p in pids) + " |",
        "|---|" + "---|" * len(pids),
    ]
    for t, s in samples:
        out.append(f"| {t:.0f} | " + " | ".join(f"{s.get(p, 0) / 1024:.1f}" for p in pids) + " |")
    first, last = samples[min(2, len(samples) - 1)][1], samples[-1][1]
    growth = [(last.get(p, 0) - first.get(p, 0)) / 1024 for p in pids]
    out += [
        "",
        f"Growth per worker from the third sample to the last: {', '.join(f'{g:+.1f} MB' for g in growth)}.",
    ]
    return out


def _knee(phases: list[report.PhaseStats], png: Path, title: str) -> list[str]:
    report.knee_chart(phases, png, title)
    k = report.knee(phases, 250, 0.01)
    found = (
        f"**{k.offered_rps:g} rps offered** ({k.achieved_rps:.1f} achieved, p95 {k.p95:.0f} ms)"
        if k
        else "none up to the last step"
    )
    return [
        "",
        f"![knee]({png.name})",
        "",
        "Each step's first 5 s are left out (ramp). Knee (first step with p95 > 250 ms, "
        f"errors > 1% or < 95% of the offered rate answered): {found}",
    ]


def write_summary(
    args: argparse.Namespace,
    prof: Any,
    name: str,
    paths: dict[str, Path],
    m: dict[str, Any],
    cost: Cost,
    problems: list[str],
    figures: dict[str, Any],
    serve: dict[str, Any],
) -> None:
    """Write ``paths['md']`` (and the knee chart for a step run)."""
    m["csv_prefix"], m["html"] = paths["csv"], paths["html"]
    rows = report.read_rows(paths["rows"])
    start = min((r.t for r in rows), default=m["t0"])
    skip = 5.0 if prof.step else 0.0
    phases = report.split_phases(rows, prof.phases, start, skip)
    lines = _header(args, prof, name, m, serve)
    lines += ["", "## Answers", "", report.phase_table(phases), "", *_targets(phases)]
    if prof.step:
        lines += _knee(
            phases,
            paths["png"],
            f"{name}: {args.arrival} arrivals, {serve['workers']}x{serve['threads']}",
        )
    verdict = "**balanced**" if not problems else "**FAILED**: " + "; ".join(problems)
    lines += ["", "## Nothing lost", "", f"Checker (`loadtests/check.py`): {verdict}.", ""]
    lines += [f"- {k}: {report.fmt_json(v)}" for k, v in figures.items()]
    lines += ["", "## Firestore cost", "", report.cost_section(cost)]
    if prof.faults:
        lines += [
            "",
            "## Faults",
            "",
            *[f"- {t:.0f} s: {what}" for t, what in m["timeline"].entries],
            "",
            "Checks:",
            "",
            *_fault_checks(paths["rows"], m["t0"], m["timeline"].entries),
            "",
            "What the callers saw, per 10 s (seconds from the first call):",
            "",
            *_windows(rows, start),
        ]
    from loadtests.sampler import markdown

    lines += ["", *markdown(m["samples_dir"])] if m.get("samples_dir") else []
    if m.get("gil_files"):
        from loadtests import gil_profile

        lines += ["", *gil_profile.markdown(gil_profile.load(m["gil_files"]), args.gil_profile)]
    if m.get("drain"):
        from loadtests import drain

        burst = int(prof.phases[-1][1])
        starts = [(r.t, r.ms) for r in rows]
        lines += ["", *drain.markdown(m["drain"], starts, burst, paths["drain_png"])]
    lines += ["", *_soak(m["rss"])]
    if m.get("served"):
        from loadtests import paired

        cpu = m["instance_cpu"]
        lines += ["", *paired.markdown(rows, prof.phases, start, m["served"], cpu)]
    paths["md"].write_text("\n".join(lines).rstrip() + "\n")
