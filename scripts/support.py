#!/usr/bin/env python3
"""Support CLI: why a user gets what they get, and the few changes support may make (issue 12).

    python scripts/support.py explain UID [--json]
    python scripts/support.py reset-quota UID --reason TEXT
    python scripts/support.py grant UID --until DATE --reason TEXT     (complimentary premium)
    python scripts/support.py revoke UID --reason TEXT                 (only a support grant)
    python scripts/support.py groups add|remove UID GROUP --reason TEXT
    python scripts/support.py groups list GROUP
    python scripts/support.py export UID --reason TEXT [--out FILE]    (data rights, by e-mail)
    python scripts/support.py delete UID --reason TEXT                 (data rights, by e-mail)

Like ``rollout.py``: the emulator when FIRESTORE_EMULATOR_HOST is set, otherwise ``--project ID``
with Application Default Credentials; ``--as NAME`` is recorded as who (default $USER); ``--at
ISO`` acts as of another time. Every change (and every export) writes an audit entry of type
``support_change`` (``data_export``) with who and why. ``explain`` takes its verdict from the
functions' own policy code (entitlements, rollout, decision, rate limiter), never a copy.

The hash of erased uids needs the functions' salt: EXTERNAL_DATA_HASH_SALT from the environment
(on the emulator, ``functions/.secret.local`` when unset). Other EXTERNAL_DATA_* settings are
read from the environment and ``functions/.env.<project>``, as the deployed functions read them.

Exit codes: 0 done (or nothing to change), 1 refused, 2 usage error, 3 Firestore unreachable or
no credentials, 4 no such user, 69 .venv missing (run `make setup`), 70 unexpected error.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import scripts._venv  # noqa: F401 - first: re-executes under .venv when started from elsewhere

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "functions"))

from common import logs
from common.clock import iso
from common.settings import Settings, SettingsError, load_settings
from common.vocab import SOURCES, Mode, Tier
from gating.decision import decide
from gating.entitlements import is_premium, rollout_groups, was_paying
from gating.rollout import bucket, in_cohort
from scripts.devkit import cli
from scripts.rollout import ago, reason_argument, table, target, ts
from stores.base import Write
from stores.errors import ConfigConflict, StoreError
from stores.schema import AUDIT, USERS, audit_path, user_path
from stores.userdata import rate_limit_paths
from usecases import data_rights, erasure
from usecases.app import App

ROOT = Path(__file__).resolve().parents[1]
OK, REFUSED, USAGE, UNREACHABLE, NOT_FOUND = 0, 1, 2, 3, 4
CHANGE = "support_change"


class Refused(Exception):
    """The change must not be made (exit 1); the message says why."""


class NoUser(Exception):
    """No ``users/{uid}`` document (exit 4)."""


# -- settings and the app -------------------------------------------------------------------


def _dotenv(path: Path) -> dict[str, str]:
    if not path.is_file():
        return {}
    pairs = (line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)
    return {k.strip(): v.strip() for k, v in pairs if not k.strip().startswith("#")}


def cli_settings(project: str | None, hashing: bool = True) -> Settings:
    """The functions' settings as this project's deployed (or emulated) functions read them.
    The salt is required only where uids are hashed (``hashing``: erasures)."""
    emulator = bool(os.environ.get("FIRESTORE_EMULATOR_HOST"))
    env = dict(os.environ)
    if project:
        env["GCLOUD_PROJECT"] = project
    files = [".env.local", ".secret.local"] if emulator else [f".env.{project or ''}"]
    for name in files:
        for key, value in _dotenv(ROOT / "functions" / name).items():
            env.setdefault(key, value)
    return load_settings(env, emulator=emulator or not hashing)


def make_app(args: argparse.Namespace) -> App:
    from stores.firestore import FirestoreStore, make_client

    settings = cli_settings(args.project, hashing=args.command == "delete")
    return App(settings, FirestoreStore(make_client(args.project)), now=lambda: args.now)


def user_doc(app: App, uid: str) -> dict[str, Any]:
    doc = app.store.get_many([user_path(uid)])[user_path(uid)]
    if doc is None:
        raise NoUser(f"no user document users/{uid}")
    return doc


def audit_entry(app: App, args: argparse.Namespace, uid: str, action: str, **facts: Any) -> Write:
    """The ``support_change`` audit entry: who, why, what, about whom."""
    doc = {
        "type": CHANGE,
        "at": args.now,
        "uid": uid,
        "by": args.by,
        "reason": args.reason,
        "action": action,
        "expireAt": args.now + timedelta(days=app.settings.event_ttl_days),
        **facts,
    }
    return Write(audit_path(uuid.uuid4().hex), doc, merge=False)


def done(text: str, entry: Write) -> int:
    print(f"Done: {text}")
    print(f"  audit: {entry.path} ({CHANGE})")
    return OK


# -- explain --------------------------------------------------------------------------------


def _when(value: Any) -> datetime | None:
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    return None


def tier_why(user: Mapping[str, Any] | None, now: datetime, grace_days: int) -> str:
    """The subscription facts behind the tier (the verdict itself is ``is_premium``'s)."""
    if user is None:
        return "no users document"
    sub = user.get("subscription")
    if not isinstance(sub, Mapping):
        return "no subscription"
    parts = [f"subscription tier {sub.get('tier')!s}, status {sub.get('status')!s}"]
    if sub.get("lifetime") is True:
        parts.append("lifetime")
    if sub.get("complimentary") is True:
        parts.append(f"complimentary (support grant by {sub.get('grantedBy', '?')})")
    end = _when(sub.get("currentPeriodEnd"))
    if sub.get("currentPeriodEnd") is not None and end is None:
        parts.append("currentPeriodEnd unreadable")
    if end is not None:
        left = (end - now).total_seconds() / 86400
        parts.append(
            f"period ends {ts(end)} ({left:.1f} days left)"
            if left > 0
            else f"period ended {ts(end)}"
        )
        if sub.get("status") == "past_due":
            grace = (end + timedelta(days=grace_days) - now).total_seconds() / 86400
            parts.append(
                f"grace of {grace_days} days: {grace:.1f} days left" if grace > 0 else "grace over"
            )
    return "; ".join(parts)


def cohort_why(cfg: Any, uid: str, premium: bool, groups: frozenset[str], seat: bool | None) -> str:
    if not cfg.gating_active:
        return "gating is off (phase off or the kill switch): nobody is gated"
    b = bucket(uid)
    reasons = []
    if cfg.phase.value == "full":
        reasons.append("phase full takes everyone")
    if groups & set(cfg.targetGroups):
        reasons.append(f"target group {', '.join(sorted(groups & set(cfg.targetGroups)))}")
    if cfg.phase.value == "premium" and premium:
        reasons.append("premium users are in the cohort in phase premium")
    if b < cfg.rolloutPercentage:
        reasons.append(f"bucket {b} < {cfg.rolloutPercentage}%")
        if seat is False:
            reasons.append("but the phase's maxCohortUsers seats went to others")
    else:
        reasons.append(f"bucket {b} >= {cfg.rolloutPercentage}%")
    return "; ".join(reasons)


def _seat(app: App, cfg: Any, uid: str) -> bool | None:
    """The user's seat under ``maxCohortUsers`` as recorded (read only): None when there is no
    cap or no seat was decided yet."""
    if getattr(cfg, "maxCohortUsers", None) is None:
        return None
    from stores.schema import cohort_member_path
    from usecases.cohort import kept_seat_path, phase_key

    # An erased user's seat is kept under the keyed hash of the uid (usecases.cohort).
    paths = [cohort_member_path(phase_key(cfg), uid), kept_seat_path(app, phase_key(cfg), uid)]
    got = app.store.get_many(paths)
    doc = next((d for d in got.values() if d and "seat" in d), {})
    return doc["seat"] is True if "seat" in doc else None


def breakers(app: App, cfg: Any, now: datetime) -> dict[str, str]:
    """Each source's operator switch and circuit breaker, as the config says now."""
    out = {}
    extra = app.store.get_many(["config/externalDataBreakers"])["config/externalDataBreakers"] or {}
    for s in SOURCES:
        state = cfg.breaker(s, now).value if hasattr(cfg, "breaker") else "closed"
        if isinstance(extra.get(s), Mapping):
            state = str(extra[s].get("state", state))
        on = cfg.source_enabled(s) if hasattr(cfg, "source_enabled") else True
        out[s] = f"breaker {state}" + ("" if on else "; switched OFF by the operator")
    return out


def explain(app: App, uid: str, now: datetime) -> dict[str, Any]:
    """The whole decision for ``uid`` as the service would take it now."""
    cfg = app.config.current()
    user = app.store.get_many([user_path(uid)])[user_path(uid)]
    premium = is_premium(user, now, app.settings.grace_days)
    groups = rollout_groups(user)
    seat = _seat(app, cfg, uid)
    effective = replace(cfg, rolloutPercentage=0) if seat is False else cfg  # as admission does
    full = decide(effective, uid, premium, groups, Mode.FULL)
    preview = decide(effective, uid, premium, groups, Mode.PREVIEW)
    limited = cfg.components.rateLimiting
    limit = (
        app.settings.premium_hourly if full.limit_tier is Tier.PREMIUM else app.settings.free_hourly
    )
    window = app.limiter.window(uid, now)
    got = app.store.get_many([window.current_path, window.previous_path])
    current = int((got[window.current_path] or {}).get("count", 0))
    previous = int((got[window.previous_path] or {}).get("count", 0))
    rate = app.limiter.usage(window, limit, previous, current)
    audit = app.store.query(AUDIT, [("uid", "==", uid)], order_by="at", descending=True, limit=10)
    return {
        "userId": uid,
        "userDocument": user is not None,
        "tier": (Tier.PREMIUM if premium else Tier.FREE).value,
        "tierWhy": tier_why(user, now, app.settings.grace_days),
        "groups": sorted(groups),
        "phase": cfg.phase.value,
        "shadow": bool(getattr(cfg, "shadow", False)),
        "bucket": bucket(uid),
        "inCohort": cfg.gating_active and in_cohort(effective, uid, premium, groups),
        "cohortWhy": cohort_why(cfg, uid, premium, groups, seat),
        "gated": full.gated,
        "fallback": cfg.fallbackEnabled,
        "full": {"access": full.access.value, "reason": full.reason.value},
        "preview": {"access": preview.access.value, "reason": preview.reason.value},
        "rateLimited": limited,
        "limitTier": full.limit_tier.value,
        "limit": limit if limited else None,
        "used": max(0, limit - rate.remaining) if limited else current,
        "remaining": rate.remaining if limited else None,
        "nextFreeSlot": iso(now if rate.remaining > 0 or not limited else rate.reset_at),
        "sources": breakers(app, cfg, now),
        "audit": [
            {k: data_rights.plain(d.get(k)) for k in ("at", "type", "fn", "reason")}
            for _, d in audit
        ],
    }


def print_explain(x: Mapping[str, Any], now: datetime) -> None:
    access = {"full": "FULL enrichment", "preview": "a PREVIEW", "denied": "REFUSED"}
    print(f"Why user {x['userId']} gets what they get (as of {ts(now)})")
    if not x["userDocument"]:
        print("  (no users document: free, no groups)")
    rows = [
        ("tier", f"{x['tier']}: {x['tierWhy']}"),
        ("groups", ", ".join(x["groups"]) or "(none)"),
        (
            "phase",
            x["phase"] + (" (SHADOW: decisions recorded, nobody refused)" if x["shadow"] else ""),
        ),
        ("bucket", f"{x['bucket']} of 0..99"),
        ("cohort", f"{'IN' if x['inCohort'] else 'outside'}: {x['cohortWhy']}"),
        (
            "gated",
            "yes"
            if x["gated"]
            else "no" + (" (fallback on: pre-gating experience)" if x["fallback"] else ""),
        ),
        ("asks full", f"{access[x['full']['access']]} ({x['full']['reason']})"),
        ("asks preview", f"{access[x['preview']['access']]} ({x['preview']['reason']})"),
    ]
    if x["rateLimited"]:
        nxt = _when(x["nextFreeSlot"])
        when = "now" if x["remaining"] else f"{ts(nxt)} ({ago(nxt, now)})"
        rows.append(("hourly limit", f"{x['limit']} ({x['limitTier']}-sized)"))
        rows.append(("used", f"{x['used']} in the sliding hour, {x['remaining']} left"))
        rows.append(("next free slot", when))
    else:
        rows.append(("hourly limit", f"none (rate limiting is off); {x['used']} this hour"))
    rows.extend((f"source {s}", v) for s, v in x["sources"].items())
    width = max(len(k) for k, _ in rows)
    for k, v in rows:
        print(f"  {k.ljust(width)}  {v}")
    print("\n  Last audit entries, newest first")
    if not x["audit"]:
        print("    (none)")
    else:
        print(
            table(
                ("at", "type", "function", "reason"), [list(a.values()) for a in x["audit"]], "    "
            )
        )


def cmd_explain(app: App, args: argparse.Namespace) -> int:
    x = explain(app, args.uid, args.now)
    if args.json:
        print(json.dumps(x, indent=2))
    else:
        print_explain(x, args.now)
    return OK


# -- changes --------------------------------------------------------------------------------


def cmd_reset_quota(app: App, args: argparse.Namespace) -> int:
    """Delete the user's enrichment counters: the sliding hour starts empty."""
    prefix = f"{args.uid}_{app.limiter.scope}_"
    paths = [
        p for p in rate_limit_paths(app.store, args.uid) if p.split("/")[-1].startswith(prefix)
    ]
    if not paths:
        print("Nothing changed (no enrichment counters: the user has their whole hourly quota).")
        return OK
    app.store.delete_many(paths)
    entry = audit_entry(app, args, args.uid, "reset-quota", counters=len(paths))
    app.store.commit([entry])
    text = f"reset the hourly quota of {args.uid} ({len(paths)} counter(s) deleted)"
    return done(text, entry)


def _until(text: str) -> datetime:
    """``--until``: a date means through that whole day (UTC); a time is taken as it is."""
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            return datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(days=1)
        t = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO date or time: {text!r}") from None
    except OverflowError:  # through 9999-12-31: its end is past the last representable day
        raise argparse.ArgumentTypeError(
            f"{text!r}: the last date a grant can run through is 9999-12-30"
        ) from None
    return t if t.tzinfo else t.replace(tzinfo=UTC)


UPDATE_TRIES = 5
"""Reads of ``users/{uid}`` a change makes when the document keeps changing under it."""


def update_user(
    app: App, uid: str, build: Callable[[dict[str, Any]], tuple[dict[str, Any], Write] | None]
) -> Write | None:
    """Replace ``users/{uid}`` with what ``build`` makes of it, with ``build``'s audit entry,
    only if nothing (billing, another operator) changed the document since it was read; if
    something did, read it again and let ``build`` decide again (it may refuse, or find nothing
    to change: None). Returns the audit entry written, or None."""
    for _ in range(UPDATE_TRIES):
        user = user_doc(app, uid)
        built = build(user)
        if built is None:
            return None
        doc, entry = built
        try:
            app.store.replace_if_unchanged(user_path(uid), user, doc, [entry])
        except ConfigConflict:
            continue
        return entry
    raise Refused(
        f"users/{uid} changed under this change {UPDATE_TRIES} times; nothing was changed "
        "(run it again)"
    )


def cmd_grant(app: App, args: argparse.Namespace) -> int:
    """Complimentary premium until ``--until``; a paid subscription is never overwritten (not
    even one billing writes while the grant is being made)."""
    if args.until <= args.now:
        raise Refused(f"--until {ts(args.until)} is not in the future")

    def build(user: dict[str, Any]) -> tuple[dict[str, Any], Write]:
        sub = user.get("subscription")
        sub = dict(sub) if isinstance(sub, Mapping) else None
        if sub and was_paying(user) and sub.get("complimentary") is not True:
            raise Refused(
                "the user has a paid subscription (billing owns it); a grant would overwrite it"
            )
        if sub and sub.get("complimentary") is True:
            sub = sub.get("replaced")  # extending a grant keeps what it replaced
        grant: dict[str, Any] = {
            "tier": "premium",
            "status": "active",
            "currentPeriodEnd": args.until,
            "complimentary": True,
            "grantedBy": args.by,
            "grantedAt": args.now,
            "grantReason": args.reason,
        }
        if sub:
            grant["replaced"] = sub
        entry = audit_entry(app, args, args.uid, "grant", until=args.until)
        return {**user, "subscription": grant}, entry

    entry = update_user(app, args.uid, build)
    assert entry is not None  # noqa: S101 - build always changes something
    return done(f"complimentary premium for {args.uid} until {ts(args.until)}", entry)


def cmd_revoke(app: App, args: argparse.Namespace) -> int:
    """End a support grant: the subscription it replaced comes back (or none)."""

    def build(user: dict[str, Any]) -> tuple[dict[str, Any], Write]:
        sub = user.get("subscription")
        if not isinstance(sub, Mapping) or sub.get("complimentary") is not True:
            raise Refused("the user has no complimentary grant (a paid subscription is billing's)")
        doc = {k: v for k, v in user.items() if k != "subscription"}
        if isinstance(sub.get("replaced"), Mapping):
            doc["subscription"] = dict(sub["replaced"])
        return doc, audit_entry(app, args, args.uid, "revoke", grantedBy=sub.get("grantedBy"))

    entry = update_user(app, args.uid, build)
    assert entry is not None  # noqa: S101 - build always changes something
    ttl = app.settings.entitlement_ttl_seconds
    return done(
        f"revoked the grant of {args.uid} (running instances may trust it up to {ttl} s more)",
        entry,
    )


def cmd_groups(app: App, args: argparse.Namespace) -> int:
    if args.action == "list":
        if len(args.names) != 1:
            raise Usage("groups list takes one GROUP")
        rows = app.store.query(USERS, [("rolloutGroups", "array_contains", args.names[0])])
        print(f"{len(rows)} user(s) in group {args.names[0]}")
        for path, _ in rows:
            print(f"  {path.rpartition('/')[2]}")
        return OK
    if len(args.names) != 2:
        raise Usage(f"groups {args.action} takes UID GROUP")
    if not args.reason:
        raise Usage(f"groups {args.action} needs --reason TEXT")
    uid, group = args.names

    def build(user: dict[str, Any]) -> tuple[dict[str, Any], Write] | None:
        groups = [g for g in user.get("rolloutGroups") or [] if isinstance(g, str)]
        add = args.action == "add"
        new = sorted({*groups, group}) if add else [g for g in groups if g != group]
        if sorted(new) == sorted(groups):
            return None
        entry = audit_entry(app, args, uid, f"groups {args.action}", group=group)
        return {**user, "rolloutGroups": new}, entry

    entry = update_user(app, uid, build)
    if entry is None:
        where = "is already" if args.action == "add" else "is not"
        print(f"Nothing changed ({uid} {where} in {group}).")
        return OK
    if group not in app.config.current().targetGroups:
        print(f"note: {group} is not one of the rollout config's targetGroups")
    return done(f"{args.action} {uid} {'to' if args.action == 'add' else 'from'} {group}", entry)


def cmd_export(app: App, args: argparse.Namespace) -> int:
    """Everything stored about the user, as ``exportMyExternalData`` answers it."""
    out = data_rights.export_user(app, args.uid, args.now)
    by = f"support: {args.by}"
    app.store.commit(
        [
            data_rights.rights_audit(
                app, data_rights.EXPORTED, args.uid, args.now, by=by, reason=args.reason
            )
        ]
    )
    text = json.dumps(out, indent=2, ensure_ascii=False)
    if args.out:
        Path(args.out).write_text(text + "\n", encoding="utf-8")
        print(f"Done: {len(out['events'])} events, {len(out['results'])} results -> {args.out}")
    else:
        print(text)
    return OK


def cmd_delete(app: App, args: argparse.Namespace) -> int:
    """The erasure of ``deleteMyExternalData``; the audit keeps the keyed hash only."""
    erased = erasure.erase_user(app, args.uid)
    hashed = app.recorder.hash(args.uid) or ""
    entry = audit_entry(app, args, hashed, "delete", uidHashed=True, deleted=erased.deleted)
    app.store.commit([entry])
    counts = ", ".join(f"{k} {v}" for k, v in erased.deleted.items() if v) or "nothing found"
    return done(
        f"erased the records of {args.uid}: {counts}; {erased.anonymised} audit entries now "
        f"carry the hash {hashed}",
        entry,
    )


# -- parser ---------------------------------------------------------------------------------


class Usage(Exception):
    """A usage error found after parsing (exit 2)."""


def build_parser() -> argparse.ArgumentParser:
    common = cli.operator_options()
    change = argparse.ArgumentParser(add_help=False)
    change.add_argument(
        "--reason", required=True, type=reason_argument, help="why (kept in the audit)"
    )
    ap = argparse.ArgumentParser(
        prog="support.py",
        description="Explain a user's access to external data; support changes, audited.",
        epilog="Exit codes: 0 done, 1 refused, 2 usage error, 3 Firestore unreachable, "
        "4 no such user, 69 .venv missing, 70 unexpected error.",
    )
    sub = ap.add_subparsers(dest="command", required=True, metavar="SUBCOMMAND")
    p = sub.add_parser("explain", parents=[common], help="the whole decision for one user, now")
    p.add_argument("uid")
    p.add_argument("--json", action="store_true", help="machine-readable")
    for name, help_ in (
        ("reset-quota", "empty the user's sliding hour of enrichments"),
        ("revoke", "end a complimentary grant"),
        ("delete", "erase the user's records (data rights); the audit keeps a hash"),
    ):
        sub.add_parser(name, parents=[common, change], help=help_).add_argument("uid")
    p = sub.add_parser("grant", parents=[common, change], help="complimentary premium until DATE")
    p.add_argument("uid")
    p.add_argument(
        "--until",
        type=_until,
        required=True,
        help="YYYY-MM-DD (through that day, UTC) or an ISO time",
    )
    p = sub.add_parser("groups", parents=[common], help="add|remove UID GROUP, or list GROUP")
    p.add_argument("action", choices=("add", "remove", "list"))
    p.add_argument("names", nargs="+", metavar="UID GROUP | GROUP")
    p.add_argument("--reason", type=reason_argument, help="why (required for add and remove)")
    p = sub.add_parser(
        "export", parents=[common, change], help="everything stored about a user, as JSON"
    )
    p.add_argument("uid")
    p.add_argument("--out", help="write to this file instead of stdout")
    return ap


COMMANDS: dict[str, Callable[[App, argparse.Namespace], int]] = {
    "explain": cmd_explain,
    "reset-quota": cmd_reset_quota,
    "grant": cmd_grant,
    "revoke": cmd_revoke,
    "groups": cmd_groups,
    "export": cmd_export,
    "delete": cmd_delete,
}


def main(argv: Sequence[str] | None = None) -> int:
    ap = build_parser()
    args = ap.parse_args(argv)
    args.now = args.at or datetime.now(UTC)
    logs.configure("ERROR")
    try:
        app = make_app(args)
        return COMMANDS[args.command](app, args)
    except Usage as exc:
        ap.error(str(exc))
    except SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return USAGE
    except Refused as exc:
        print(f"refused: {exc}", file=sys.stderr)
        return REFUSED
    except NoUser as exc:
        print(f"not found: {exc}", file=sys.stderr)
        return NOT_FOUND
    except StoreError as exc:
        print(f"error: cannot reach Firestore ({target(args)}): {exc}", file=sys.stderr)
        return UNREACHABLE
    except Exception as exc:
        if type(exc).__module__.startswith(("google.", "grpc")):
            print(
                f"error: Firestore not usable ({target(args)}): {type(exc).__name__}",
                file=sys.stderr,
            )
            return UNREACHABLE
        raise


if __name__ == "__main__":
    sys.exit(main())
