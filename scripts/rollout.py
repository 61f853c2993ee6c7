#!/usr/bin/env python3
"""Operator CLI for the external-data premium gating rollout (issue 4).

    python scripts/rollout.py status
    python scripts/rollout.py advance [--force] --reason TEXT
    python scripts/rollout.py rollback immediate|gradual|partial [--component NAME] --reason TEXT
    python scripts/rollout.py restore [--component NAME] --reason TEXT   (alias: enable)
        (without --component it also undoes the evaluator's gradual steps since the last
        operator change: phase, percentage and fallback as they were before them)
    python scripts/rollout.py set [--phase P] [--percentage N] [--fallback on|off]
                                  [--groups A,B] [--force] --reason TEXT
    python scripts/rollout.py set-messages KEY=TEXT... --reason TEXT   (KEY= resets to default)
    python scripts/rollout.py history [--limit N] [--details]
    python scripts/rollout.py evaluate [--dry-run]

Every subcommand takes ``--project ID`` (real project, Application Default Credentials; the
emulator is used whenever FIRESTORE_EMULATOR_HOST is set), ``--as NAME`` (recorded as ``by``;
default $USER) and ``--at ISO`` (evaluate as of another time: tests and replays). Changing
subcommands take ``--expect-version N``: refused unless the config is still at version N.

Exit codes: 0 done (or nothing to change), 1 refused (invalid config, lost race with another
operator, success metrics not met), 2 usage error, 3 Firestore unreachable or no credentials,
69 .venv missing (run `make setup`), 70 unexpected error (a bug; the traceback is on stderr).
Started from any Python, the script re-executes itself under the project's .venv.
"""

from __future__ import annotations

import argparse
import os
import sys
import textwrap
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import scripts._venv  # noqa: F401 - first: re-executes under .venv when started from elsewhere

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "functions"))

from common import logs
from gating.rollout import COMPONENTS, FREE_USER_MESSAGES, PREMIUM_USER_MESSAGES, Phase
from rollout_control import changes, health, plan
from rollout_control.evaluator import assess, evaluate
from scripts.devkit import cli
from stores.errors import StoreError

OK, REFUSED, USAGE, UNREACHABLE = 0, 1, 2, 3


class Usage(Exception):
    """A usage error found after parsing (exit 2)."""


# -- formatting -----------------------------------------------------------------------------


def ts(value: Any) -> str:
    """A timestamp for humans (UTC)."""
    if not isinstance(value, datetime):
        return "-"
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def ago(value: Any, now: datetime) -> str:
    """'12 min ago' style."""
    if not isinstance(value, datetime):
        return ""
    s = int((now - value).total_seconds())
    if s < -5:
        # A time ahead of this machine's clock: one of the two clocks is wrong.
        return f"{ago(now, value).removesuffix(' ago')} ahead of this machine's clock"
    if s < 0:
        return "just now"
    if s < 90:
        return f"{s} s ago"
    if s < 5400:
        return f"{s // 60} min ago"
    if s < 172800:
        return f"{s / 3600:.1f} h ago"
    return f"{s / 86400:.1f} days ago"


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]], indent: str = "  ") -> str:
    """A plain aligned text table."""
    cells = [[str(h) for h in headers]] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = []
    for n, r in enumerate(cells):
        lines.append(
            indent + "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
        )
        if n == 0:
            lines.append(indent + "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def paren(text: str) -> str:
    return f" ({text})" if text else ""


def onoff(v: bool) -> str:
    return "on" if v else "OFF"


def wrap(text: str, indent: str = "  ") -> str:
    return textwrap.fill(text, width=100, initial_indent=indent, subsequent_indent=indent)


# -- store ----------------------------------------------------------------------------------


def target(args: argparse.Namespace) -> str:
    return cli.target(args.project)


# -- commands -------------------------------------------------------------------------------


def cmd_status(store: Any, args: argparse.Namespace, now: datetime) -> int:
    cur = changes.read_current(store)
    print(f"External data rollout: config/externalDataRollout in {target(args)}")
    if cur.cfg is None:
        print(f"\n  The config document is INVALID: {cur.problem}")
        print(
            "  The functions keep serving their last good config. Fix it with `set ... --reason`."
        )
        return OK
    cfg = cur.cfg
    p = plan.PLAN[cfg.phase]
    if cfg.phase.value == "off":
        who = "nobody"
    elif cfg.phase.value == "full":
        who = "everyone"
    else:
        who = (
            f"{cfg.rolloutPercentage}% of users + groups {', '.join(cfg.targetGroups) or '(none)'}"
        )
        if cfg.phase.value == "premium":
            who += " + premium users"
    gating = "ACTIVE" if cfg.gating_active else "INACTIVE (everyone gets the pre-gating experience)"
    idle = "" if cfg.gating_active else " (applies once gating is active)"
    if not cfg.gating_active and cfg.phase.value != "off":
        who = f"nobody now; once gating is active: {who}"
    overrides = sorted(cfg.messages)
    rows = [
        ("phase", f"{cfg.phase.value} ({p.label})"),
        ("rollout", f"{cfg.rolloutPercentage}%"),
        ("gated cohort", who),
        ("gating", gating),
        (
            "fallback",
            (
                "on: users outside the cohort get the pre-gating experience"
                if cfg.fallbackEnabled
                else "off: everyone outside the cohort is gated too"
            )
            + idle,
        ),
        (
            "components",
            "  ".join(f"{n} {onoff(getattr(cfg.components, n))}" for n in COMPONENTS),
        ),
        ("messages", f"overridden: {', '.join(overrides)}" if overrides else "the plan's wording"),
        ("version", str(cur.version) if cur.raw else "0 (no document yet: phase off, all on)"),
        (
            "updated",
            f"{ts(cfg.updatedAt)} by {cfg.updatedBy or '-'}{paren(ago(cfg.updatedAt, now))}",
        ),
        (
            "in phase since",
            f"{ts(cfg.phaseSince)}{paren(ago(cfg.phaseSince, now))}",
        ),
    ]
    rows.extend(_safety_rows(store, cfg, now))
    auto = cur.extras.get("autoRollback") or {}
    for kind in ("immediate", "gradual"):
        if isinstance(auto.get(kind), dict):
            a = auto[kind]
            rows.append((f"last auto {kind}", f"{ts(a.get('at'))} ({a.get('trigger')})"))
    width = max(len(k) for k, _ in rows)
    print()
    for k, v in rows:
        print(f"  {k.ljust(width)}  {v}")

    # the current phase against its success metrics
    print()
    if p.window is None:
        print("  Phase off: nothing to measure. `advance` starts beta (1%) without metrics.")
    else:
        report = health.phase_health(store, cfg, cfg.phaseSince, now)
        hours = p.window.total_seconds() / 3600
        print(
            f"  Health of phase {cfg.phase.value} over its {hours:.0f} h monitoring window "
            f"(hour buckets from {ts(report.start)} to now)"
        )
        print(
            table(
                ("metric", "threshold", "value", "status"),
                [(c.name, c.threshold, c.value, c.status) for c in report.checks],
                indent="    ",
            )
        )
        nxt = plan.next_phase(cfg.phase)
        failing = [c.name for c in report.checks if not c.ok]
        if nxt is None:
            print("    full is the last phase.")
        elif failing:
            print(f"    -> advance to {nxt.value}: BLOCKED by {', '.join(failing)} (or --force)")
        else:
            print(f"    -> advance to {nxt.value}: ready")

    # the live guards, as the evaluator sees them now (read only)
    from analytics.metrics import read_buckets
    from rollout_control.evaluator import DEFAULT
    from stores.schema import floor_to

    end = floor_to(now, "m")
    span = max(DEFAULT.error_minutes, DEFAULT.outage_minutes, DEFAULT.guard_minutes)
    from datetime import timedelta

    buckets = read_buckets(store, "m", end - timedelta(minutes=span), end)
    a = assess(cfg, cur.extras, buckets, now)
    print()
    print("  Automatic rollback guards (complete minutes; what `evaluate` would do now)")
    print(
        table(
            ("guard", "kind", "state", "observed"),
            [(t.name, t.kind, "FIRES" if t.fired else "quiet", t.text) for t in a.triggers],
            indent="    ",
        )
    )
    for n in a.notes:
        print(f"    note: {n}")
    verdict = {
        "none": "no action",
        "immediate": "IMMEDIATE rollback (kill switch)",
        "gradual": "one GRADUAL step",
    }[a.action]
    print(f"    -> evaluator verdict: {verdict}")
    return OK


def print_change(res: changes.ChangeResult, reason: str) -> None:
    print(f"Done: config v{res.version} ({res.action}) by {res.after.get('updatedBy')}")
    print(f"  {res.summary}")
    print(f"  reason: {reason}")
    print(f"  history: config/externalDataRollout/history/{res.history_id}")


def cmd_change(fn: Callable[[], changes.ChangeResult], reason: str) -> int:
    res = fn()
    print_change(res, reason)
    return OK


def cmd_advance(store: Any, args: argparse.Namespace, now: datetime) -> int:
    try:
        res = changes.advance(
            store,
            by=args.by,
            reason=args.reason,
            now=now,
            force=args.force,
            expected_version=args.expect_version,
        )
    except changes.AdvanceBlocked as exc:
        print(str(exc), file=sys.stderr)
        print(
            table(
                ("metric", "threshold", "value", "status"),
                [(c.name, c.threshold, c.value, c.status) for c in exc.checks],
            ),
            file=sys.stderr,
        )
        print("  (--force --reason TEXT overrides; it is recorded in history)", file=sys.stderr)
        return REFUSED
    print_change(res, args.reason)
    if res.action == "advance (forced)":
        print("  FORCED past failing metrics; they are recorded as the entry's evidence.")
    return OK


def cmd_rollback(store: Any, args: argparse.Namespace, now: datetime) -> int:
    kw = {"by": args.by, "reason": args.reason, "now": now, "expected_version": args.expect_version}
    if args.kind == "partial":
        if not args.component:
            raise Usage("rollback partial needs --component NAME (" + ", ".join(COMPONENTS) + ")")
        return cmd_change(
            lambda: changes.rollback_partial(store, args.component, **kw), args.reason
        )
    if args.component:
        raise Usage("--component only goes with `rollback partial`")
    if args.kind == "immediate":
        return cmd_change(lambda: changes.rollback_immediate(store, **kw), args.reason)
    return cmd_change(lambda: changes.rollback_gradual(store, **kw), args.reason)


def cmd_restore(store: Any, args: argparse.Namespace, now: datetime) -> int:
    if args.command == "enable" and not args.component:
        raise Usage("enable needs --component NAME (or use `restore` for every component)")
    return cmd_change(
        lambda: changes.restore(
            store,
            args.component,
            by=args.by,
            reason=args.reason,
            now=now,
            expected_version=args.expect_version,
        ),
        args.reason,
    )


def _bool(text: str) -> bool:
    v = text.strip().lower()
    if v in ("on", "true", "yes", "1"):
        return True
    if v in ("off", "false", "no", "0"):
        return False
    raise argparse.ArgumentTypeError(f"expected on or off, not {text!r}")


SET_OPTIONS = ("phase", "percentage", "fallback", "groups", "shadow", "max_cohort_users")
"""What ``set`` sets (``--force`` only allows a forward phase)."""


def cmd_set(store: Any, args: argparse.Namespace, now: datetime) -> int:
    groups = None
    if args.groups is not None:
        groups = [g.strip() for g in args.groups.split(",") if g.strip()]
    return cmd_change(
        lambda: changes.set_fields(
            store,
            by=args.by,
            reason=args.reason,
            now=now,
            phase=args.phase,
            percentage=args.percentage,
            fallback=args.fallback,
            target_groups=groups,
            force=args.force,
            expected_version=args.expect_version,
            other=_other_fields(args),
        ),
        args.reason,
    )


def reason_argument(text: str) -> str:
    """``--reason`` (here and in ``support.py``): some words; blank is a usage error (exit 2)
    before anything is read."""
    if not text.strip():
        raise argparse.ArgumentTypeError("a reason is required (it is kept with the change)")
    return text


def _percentage(text: str) -> int:
    """``--percentage``: a whole number from 0 to 100 (a usage error otherwise, exit 2)."""
    if not (text.isascii() and text.strip().isdigit()) or not 0 <= int(text) <= 100:
        raise argparse.ArgumentTypeError(f"{text!r}: a whole number from 0 to 100")
    return int(text)


def _other_fields(args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if args.shadow is not None:
        out["shadow"] = args.shadow
    if args.max_cohort_users is not None:
        text = args.max_cohort_users.strip().lower()
        if text != "none" and not (text.isascii() and text.isdigit()):
            raise Usage("--max-cohort-users takes a number of users or 'none'")
        out["maxCohortUsers"] = None if text == "none" else int(text)
    return out


def cmd_set_messages(store: Any, args: argparse.Namespace, now: datetime) -> int:
    texts: dict[str, str] = {}
    for pair in args.pairs:
        key, sep, text = pair.partition("=")
        if not sep:
            raise Usage(f"expected KEY=TEXT, not {pair!r}")
        texts[key.strip()] = text
    return cmd_change(
        lambda: changes.set_messages(
            store,
            texts,
            by=args.by,
            reason=args.reason,
            now=now,
            expected_version=args.expect_version,
        ),
        args.reason,
    )


def cmd_history(store: Any, args: argparse.Namespace, now: datetime) -> int:
    rows = changes.read_history(store, limit=args.limit)
    if not rows:
        print("No history yet.")
        return OK
    print(f"Rollout config history, newest first ({len(rows)} shown)")
    print(
        table(
            ("v", "at", "by", "action", "what", "why"),
            [
                (
                    d.get("version"),
                    ts(d.get("at")),
                    d.get("by"),
                    d.get("action"),
                    d.get("summary", ""),
                    _short(str(d.get("reason") or "-")),
                )
                for _, d in rows
            ],
        )
    )
    if args.details:
        for hid, d in rows:
            print()
            print(f"  v{d.get('version')}  {hid}")
            print(wrap(f"reason: {d.get('reason')}", "    "))
            ev = d.get("evidence")
            if isinstance(ev, dict):
                for t in ev.get("triggers") or []:
                    print(wrap(f"evidence [{t.get('name')}]: {t.get('text')}", "    "))
                for c in ev.get("checks") or []:
                    print(
                        f"    evidence [{c.get('name')}]: {c.get('value')} "
                        f"(threshold {c.get('threshold')}) {c.get('status')}"
                    )
    else:
        print("  (--details shows every entry's full reason and evidence)")
    return OK


def _short(text: str, width: int = 60) -> str:
    """One line of at most ``width`` characters."""
    line = " ".join(text.split())
    return line if len(line) <= width else line[: width - 1] + "…"


def cmd_evaluate(store: Any, args: argparse.Namespace, now: datetime) -> int:
    by = "evaluator (cli" + (f", {args.by})" if args.by else ")")
    res = evaluate(store, now, dry_run=args.dry_run, by=by)
    print(wrap(res.summary, ""))
    for text in res.breakers:
        verb = "Would move" if args.dry_run else "Circuit breaker"
        print(wrap(f"{verb}: {text}.", ""))
    return OK


# -- parser ---------------------------------------------------------------------------------


def _safety_rows(store: Any, cfg: Any, now: datetime) -> list[tuple[str, str]]:
    """Sources (switch, breaker, upstream failures over 5 minutes), the capped cohort, shadow
    mode's would-be figures and the phase baseline, as status rows."""
    from analytics.metrics import num, read_buckets, total
    from rollout_control.breakers import BREAKER_DEFAULT
    from stores.schema import EVALUATOR_PATH, cohort_seats_path, floor_to
    from usecases.cohort import phase_key

    end = floor_to(now, "m")
    recent = total(
        read_buckets(store, "m", end - timedelta(minutes=BREAKER_DEFAULT.window_minutes), end)
    )
    rows = []
    for name in ("github", "linkedin", "website", "web"):
        tries = num(recent, f"src.{name}.requests")
        failed = num(recent, f"src.{name}.upstreamFailures")
        rate = f"{failed}/{tries} upstream failures in 5 min" if tries else "no tries in 5 min"
        state = cfg.breaker(name, now).value.replace("_", "-")
        b = cfg.breakers.get(name)
        until = f" until {ts(b.until)}" if b is not None and b.until and state == "open" else ""
        switch = "on" if cfg.source_enabled(name) else "OFF (operator)"
        rows.append((f"source {name}", f"{switch}, breaker {state}{until}, {rate}"))
    if cfg.maxCohortUsers is not None:
        seats = store.get_many([cohort_seats_path(phase_key(cfg))])
        taken = num(next(iter(seats.values())) or {}, "taken")
        rows.append(("cohort cap", f"{taken} of {cfg.maxCohortUsers} seats taken this phase"))
    if cfg.shadow:
        day = total(read_buckets(store, "h", now - timedelta(hours=24), now))
        rows.append(
            (
                "shadow",
                f"ON: nobody is refused; last 24 h would refuse {num(day, 'c.wouldRefuse')}, "
                f"would preview {num(day, 'c.wouldPreview')} of {num(day, 'c.requests')} calls",
            )
        )
    state = store.get_many([EVALUATOR_PATH])[EVALUATOR_PATH] or {}
    base = state.get("baseline") or {}
    if base:
        p95 = f"{base['p95Ms']:.0f} ms" if base.get("p95Ms") else "n/a (too few calls)"
        conv = base.get("conversionRate")
        conv_txt = (
            f"{conv * 100:.1f}% ({base.get('conversionBasis', '')})" if conv is not None else "n/a"
        )
        rows.append(("phase baseline", f"p95 {p95}, conversion {conv_txt}"))
    last = state.get("lastRunAt")
    rows.append(
        ("evaluator", f"last ran {ts(last)}{paren(ago(last, now))}" if last else "never ran")
    )
    from analytics.metrics import rollup_cursor

    through = rollup_cursor(store)[1]
    rows.append(
        (
            "aggregates",
            f"rolled up through {ts(through)}{paren(ago(through, now))}; later minutes are read raw"
            if through
            else "never rolled up (every minute is read from the raw shards)",
        )
    )
    return rows


def cmd_source(store: Any, args: argparse.Namespace, now: datetime) -> int:
    from rollout_control.breakers import set_source

    res = set_source(
        store,
        args.name,
        args.state == "on",
        by=args.by,
        reason=args.reason,
        now=now,
        expected_version=args.expect_version,
    )
    print(f"{res.summary}: config v{res.version}, history {res.history_id}.")
    return OK


def build_parser() -> argparse.ArgumentParser:
    common = cli.operator_options()
    change = argparse.ArgumentParser(add_help=False)
    change.add_argument(
        "--reason", required=True, type=reason_argument, help="why (kept in history)"
    )
    change.add_argument(
        "--expect-version",
        type=int,
        help="refuse unless the config is still at this version (as `status` showed it)",
    )

    ap = argparse.ArgumentParser(
        prog="rollout.py",
        description="Move the external-data premium gate between phases, roll it back, and audit it.",
        epilog="Exit codes: 0 done, 1 refused, 2 usage error, 3 Firestore unreachable, "
        "69 .venv missing, 70 unexpected error.",
    )
    sub = ap.add_subparsers(dest="command", required=True, metavar="SUBCOMMAND")

    sub.add_parser("status", parents=[common], help="phase, switches, version and live health")

    p = sub.add_parser("advance", parents=[common, change], help="to the next phase (1, 25, 100%%)")
    p.add_argument("--force", action="store_true", help="advance even if the metrics did not hold")

    p = sub.add_parser("rollback", parents=[common, change], help="immediate | gradual | partial")
    p.add_argument("kind", choices=("immediate", "gradual", "partial"))
    p.add_argument("--component", choices=COMPONENTS, help="for partial: the component to turn off")

    for name, help_ in (
        (
            "restore",
            "undo the evaluator's gradual steps since the last operator change and turn every"
            " component back on (--component NAME: that component only)",
        ),
        ("enable", "turn --component NAME back on"),
    ):
        p = sub.add_parser(name, parents=[common, change], help=help_)
        p.add_argument("--component", choices=COMPONENTS)

    p = sub.add_parser("set", parents=[common, change], help="set fields directly (validated)")
    p.add_argument(
        "--phase",
        choices=[p.value for p in Phase],
        help="off | beta | premium | full (forward needs --force)",
    )
    p.add_argument("--percentage", type=_percentage, help="rolloutPercentage 0..100")
    p.add_argument("--fallback", type=_bool, help="on | off")
    p.add_argument("--groups", help="target groups, comma separated")
    p.add_argument("--force", action="store_true", help="allow moving the phase forward")
    p.add_argument(
        "--shadow", type=_bool, help="on: decide and record, refuse nobody (see would-be figures)"
    )
    p.add_argument(
        "--max-cohort-users", help="cap on users the bucket takes into the cohort, or 'none'"
    )

    keys = ", ".join([*FREE_USER_MESSAGES, *PREMIUM_USER_MESSAGES])
    p = sub.add_parser(
        "set-messages",
        parents=[common, change],
        help=f"override texts ({keys}); KEY= resets to the plan's wording",
    )
    p.add_argument("pairs", nargs="+", metavar="KEY=TEXT")

    p = sub.add_parser("history", parents=[common], help="who changed what, when and why")
    p.add_argument("--limit", type=int, default=20)
    p.add_argument("--details", action="store_true", help="reasons and evidence of every entry")

    p = sub.add_parser(
        "source", parents=[common, change], help="switch one source on or off (contract 3)"
    )
    p.add_argument("name", choices=("github", "linkedin", "website", "web"))
    p.add_argument("state", choices=("on", "off"))

    p = sub.add_parser("evaluate", parents=[common], help="run the automatic-rollback evaluator")
    p.add_argument("--dry-run", action="store_true", help="say what it would do, write nothing")
    return ap


COMMANDS: dict[str, Callable[[Any, argparse.Namespace, datetime], int]] = {
    "status": cmd_status,
    "advance": cmd_advance,
    "rollback": cmd_rollback,
    "restore": cmd_restore,
    "enable": cmd_restore,
    "set": cmd_set,
    "set-messages": cmd_set_messages,
    "history": cmd_history,
    "evaluate": cmd_evaluate,
    "source": cmd_source,
}


def usage_problem(args: argparse.Namespace) -> str | None:
    """A usage error the parser cannot see (exit 2, before the store is opened), or None."""
    if args.command == "set" and all(getattr(args, name) is None for name in SET_OPTIONS):
        names = ", ".join("--" + n.replace("_", "-") for n in SET_OPTIONS)
        return f"set needs something to set: one or more of {names}"
    if args.command == "set-messages":
        known = [*FREE_USER_MESSAGES, *PREMIUM_USER_MESSAGES]
        for pair in args.pairs:
            key, sep, _ = pair.partition("=")
            if not sep:
                return f"expected KEY=TEXT, not {pair!r}"
            if key.strip() not in known:
                return f"{key.strip()!r} is not a message key (there are: {', '.join(known)})"
    return None


def main(argv: Sequence[str] | None = None) -> int:
    ap = build_parser()
    args = ap.parse_args(argv)
    problem = usage_problem(args)
    if problem:
        ap.error(problem)
    if getattr(args, "limit", 1) is not None and getattr(args, "limit", 1) < 1:
        ap.error("--limit must be at least 1")
    wall = datetime.now(UTC)
    reading = args.command in ("status", "history") or getattr(args, "dry_run", False)
    if args.at is not None and args.at > wall + timedelta(minutes=1) and not reading:
        # A change made "as of" the future would pass the phase windows' time checks (48 h of
        # beta) without the time having passed, and stamp the history out of order.
        ap.error("--at in the future is only for status, history and evaluate --dry-run")
    now = args.at or wall
    # Structured lines on stderr, as the functions write them; only what an operator must see.
    logs.configure("ERROR")
    try:
        store = cli.make_store(args.project)
        return COMMANDS[args.command](store, args, now)
    except Usage as exc:
        ap.error(str(exc))
    except changes.NoChange as exc:
        print(f"Nothing changed ({exc}).")
        return OK
    except changes.Refused as exc:
        print(str(exc) if str(exc).startswith("refused") else f"refused: {exc}", file=sys.stderr)
        return REFUSED
    except StoreError:
        # StoreError's text names the failing call's exception class: not for operators.
        print(
            f"error: cannot reach Firestore ({target(args)}); nothing was changed", file=sys.stderr
        )
        return UNREACHABLE
    except Exception as exc:
        if type(exc).__module__.startswith(("google.", "grpc")):
            print(f"error: Firestore not usable ({target(args)}): {exc}", file=sys.stderr)
            if not os.environ.get("FIRESTORE_EMULATOR_HOST"):
                print(
                    "  (set FIRESTORE_EMULATOR_HOST for the emulator, or run "
                    "`gcloud auth application-default login` and pass --project)",
                    file=sys.stderr,
                )
            return UNREACHABLE
        raise


if __name__ == "__main__":
    sys.exit(main())
