#!/usr/bin/env python3
"""The rollout's messages to users (issue 12): who gets which one, and what it says.

    python scripts/comms.py audience followup|beta|premium|all_active [--since DATE] [--out FILE.csv]
    python scripts/comms.py render TEMPLATE --user UID [--format text|html] [--launch-date DATE]
    python scripts/comms.py samples [--out docs/comms] [--launch-date DATE]

Audiences (CSV ``uid,locale,qualified_by``: no e-mail address, no name, nothing else):
    followup    the server recorded a preview or a gate for the user since DATE
                (``external_data_usage/{uid}.lastFunnelAt``), no conversion after it
                (``convertedAt``), and the user is not premium now: the T+3 follow-up
    beta        ``users/{uid}.rolloutGroups`` holds one of the rollout config's ``targetGroups``
    premium     premium now (contract section 1, ``EXTERNAL_DATA_GRACE_DAYS``)
    all_active  any enrichment answered or refused since DATE (``lastUsedAt``/``lastFunnelAt``)
``locale`` is the template locale the user gets (from ``users/{uid}.locale``, e.g. "de-DE" ->
"de"; English when missing or not translated).

Templates (``scripts/templates/{locale}/{name}.j2``, Jinja2, one copy per locale rendered as
plain text or as HTML with autoescape): t_minus_7, launch_day, followup, beta_invite, rollback.
``samples`` writes every template, both locales, both formats for a sample free and premium
user to ``docs/comms/`` (no Firestore needed).

Like ``rollout.py``: the emulator whenever FIRESTORE_EMULATOR_HOST is set, ``--project ID`` for a
real project (Application Default Credentials). Links use ``--app-url`` (or $COMMS_APP_URL).

Exit codes: 0 done, 1 other error (Firestore unreachable, a template error, an ``--out`` that
cannot be written), 2 usage error, 3 not found (user, template).
"""

from __future__ import annotations

import argparse
import csv
import io
import os
import re
import sys
import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "functions"))

from gating.entitlements import is_premium
from scripts.devkit.cli import iso_argument, make_store, report_store_failure

OK, ERROR, USAGE, NOT_FOUND = 0, 1, 2, 3
TEMPLATE_DIR = Path(__file__).resolve().parent / "templates"
MESSAGES = ("t_minus_7", "launch_day", "followup", "beta_invite", "rollback")
"""The plan's messages, by template name."""
LOCALES = ("en", "de")
"""Translated locales; the first is the fallback."""
FORMATS = ("text", "html")
AUDIENCES = ("followup", "beta", "premium", "all_active")
PRODUCT = "CVPlus"
DEFAULT_APP_URL = "https://cvplus.web.app"
USERS, USAGE_COLLECTION, CONFIG_PATH = "users", "external_data_usage", "config/externalDataRollout"
SOURCE_NAMES = {
    "en": {
        "github": "GitHub",
        "linkedin": "your LinkedIn data export",
        "website": "your website",
        "web": "a web search",
    },
    "de": {
        "github": "GitHub",
        "linkedin": "Ihrem LinkedIn-Datenexport",
        "website": "Ihrer Website",
        "web": "einer Websuche",
    },
}
"""How a message names the sources a user tried (German in the dative: "mit ...")."""
_MONTHS_DE = "Januar Februar März April Mai Juni Juli August September Oktober November Dezember"
_MONTHS_EN = "January February March April May June July August September October November December"
_DAYS_EN = "Monday Tuesday Wednesday Thursday Friday Saturday Sunday"


class Usage(Exception):
    """A usage error found after parsing (exit 2)."""


class NotFound(Exception):
    """The user or template does not exist (exit 3)."""


# -- locales and rendering ------------------------------------------------------------------


def resolve_locale(raw: Any) -> str:
    """The template locale for a profile's ``locale`` ("de", "de-DE", "de_AT" -> "de");
    English when it is missing, malformed or not translated."""
    if isinstance(raw, str) and raw.strip():
        lang = re.split(r"[-_]", raw.strip().lower(), maxsplit=1)[0]
        if lang in LOCALES:
            return lang
    return LOCALES[0]


def reflow(value: Any, width: int = 72, first: str = "", rest: str | None = None) -> Any:
    """Join a paragraph's lines. Plain text is wrapped at ``width`` (0: one line) without
    breaking URLs; HTML (``Markup``, already escaped) only has its whitespace collapsed."""
    if isinstance(value, Markup):
        # Joining the pieces of an already escaped string: nothing unescaped is introduced.
        return Markup(" ".join(value.split()))  # noqa: S704
    words = " ".join(str(value).split())
    if width <= 0:
        return words
    return textwrap.fill(
        words,
        width=width,
        initial_indent=first,
        subsequent_indent=first if rest is None else rest,
        break_long_words=False,
        break_on_hyphens=False,
    )


def longdate(value: date, locale: str) -> str:
    """A date as the locale writes it in a sentence: "Tuesday 8 December 2026",
    "8. Dezember 2026" (German puts "am"/"ab dem" before it)."""
    if locale == "de":
        return f"{value.day}. {_MONTHS_DE.split()[value.month - 1]} {value.year}"
    day = _DAYS_EN.split()[value.weekday()]
    return f"{day} {value.day} {_MONTHS_EN.split()[value.month - 1]} {value.year}"


def andjoin(items: Sequence[str], locale: str) -> str:
    """Join names as a sentence does: "A", "A and B", "A, B and C" ("und" in German)."""
    word = "und" if locale == "de" else "and"
    items = list(items)
    if len(items) <= 1:
        return "".join(items)
    return f"{', '.join(items[:-1])} {word} {items[-1]}"


def environment(fmt: str) -> jinja2.Environment:
    """The Jinja2 environment of one format: autoescape for HTML, StrictUndefined always
    (a variable a template needs and the caller did not give is an error, never blank)."""
    if fmt not in FORMATS:
        raise Usage(f"format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATE_DIR),
        undefined=jinja2.StrictUndefined,
        autoescape=fmt == "html",  # noqa: S701 - plain text is never HTML; HTML escapes
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["reflow"] = reflow
    env.filters["longdate"] = longdate
    env.filters["andjoin"] = andjoin
    return env


@dataclass(frozen=True)
class Message:
    """One rendered message."""

    template: str
    locale: str
    format: str
    subject: str
    body: str
    """The whole text (``Subject:`` line first) or the whole HTML document."""


def render(template: str, locale: str, fmt: str, context: Mapping[str, Any]) -> Message:
    """Render one message. Raises ``NotFound`` for an unknown template and
    ``jinja2.UndefinedError`` for a missing variable."""
    if template not in MESSAGES:
        raise NotFound(f"no template {template!r} (there are: {', '.join(MESSAGES)})")
    loc = resolve_locale(locale)
    variables = {**context, "locale": loc, "format": fmt}
    env = environment(fmt)
    tmpl = env.get_template(f"{loc}/{template}.j2")
    body = tmpl.render(variables)
    body = re.sub(r"[ \t]+\n", "\n", body)
    body = re.sub(r"\n{3,}", "\n\n", body).strip() + "\n"
    text_tmpl = environment("text").get_template(f"{loc}/{template}.j2")
    subject = reflow("".join(text_tmpl.blocks["subject"](text_tmpl.new_context(variables))), 0)
    return Message(template, loc, fmt, subject, body)


def message_context(
    *,
    tier: str,
    locale: str,
    sources_tried: Sequence[str] = (),
    launch_date: date,
    app_url: str,
    free_limit: int,
    premium_limit: int,
    upgrade_path: str,
) -> dict[str, Any]:
    """Every variable the templates use (StrictUndefined: a template may need any of them)."""
    app = app_url.rstrip("/")
    upgrade = upgrade_path if "://" in upgrade_path else f"{app}/{upgrade_path.lstrip('/')}"
    names = SOURCE_NAMES[resolve_locale(locale)]
    return {
        "product": PRODUCT,
        "tier": tier,
        "sources_tried": [
            names[s] for s in ("github", "linkedin", "website", "web") if s in sources_tried
        ],
        "launch_date": launch_date,
        "app_url": app,
        "upgrade_url": upgrade,
        "preferences_url": f"{app}/settings/notifications",
        "free_limit": free_limit,
        "premium_limit": premium_limit,
    }


# -- audiences (pure) -----------------------------------------------------------------------


@dataclass(frozen=True, order=True)
class Member:
    """One CSV row: who, in which locale, and the fact that put them in the audience."""

    uid: str
    locale: str
    qualified_by: str


def iso(value: datetime) -> str:
    """UTC, seconds, ``Z``."""
    return value.astimezone(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def _time(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    return None


def _locale_of(doc: Mapping[str, Any] | None) -> str:
    return resolve_locale((doc or {}).get("locale"))


def followup_members(
    usage: Mapping[str, Mapping[str, Any]],
    users: Mapping[str, Mapping[str, Any] | None],
    since: datetime,
    now: datetime,
    grace_days: int,
) -> list[Member]:
    """Preview or gate since ``since``, no conversion after it, not premium now."""
    out = []
    for uid, doc in usage.items():
        funnel = _time(doc.get("lastFunnelAt"))
        if funnel is None or funnel < since:
            continue
        converted = _time(doc.get("convertedAt"))
        if converted is not None and converted >= funnel:
            continue
        profile = users.get(uid)
        if is_premium(profile, now, grace_days):
            continue
        out.append(Member(uid, _locale_of(profile), f"lastFunnelAt={iso(funnel)}"))
    return sorted(out)


def all_active_members(
    usage: Mapping[str, Mapping[str, Any]],
    users: Mapping[str, Mapping[str, Any] | None],
    since: datetime,
) -> list[Member]:
    """Any enrichment answered (``lastUsedAt``) or refused at the gate (``lastFunnelAt``) since
    ``since``; the later of the two is the qualifying fact."""
    out = []
    for uid, doc in usage.items():
        times = [
            (t, name)
            for name in ("lastUsedAt", "lastFunnelAt")
            if (t := _time(doc.get(name))) is not None and t >= since
        ]
        if times:
            t, name = max(times)
            out.append(Member(uid, _locale_of(users.get(uid)), f"{name}={iso(t)}"))
    return sorted(out)


def beta_members(users: Mapping[str, Mapping[str, Any]], groups: Sequence[str]) -> list[Member]:
    """Users whose ``rolloutGroups`` holds one of ``groups``."""
    wanted = set(groups)
    out = []
    for uid, doc in users.items():
        raw = doc.get("rolloutGroups")
        mine = (
            sorted(g for g in raw if isinstance(g, str) and g in wanted)
            if isinstance(raw, list)
            else []
        )
        if mine:
            out.append(Member(uid, _locale_of(doc), "rolloutGroups=" + "|".join(mine)))
    return sorted(out)


def premium_members(
    users: Mapping[str, Mapping[str, Any]], now: datetime, grace_days: int
) -> list[Member]:
    """Users premium now by contract section 1."""
    out = []
    for uid, doc in users.items():
        if not is_premium(doc, now, grace_days):
            continue
        sub = doc["subscription"]
        end = _time(sub.get("currentPeriodEnd"))
        fact = "lifetime" if sub.get("lifetime") is True else str(sub.get("status"))
        if end is not None and sub.get("lifetime") is not True:
            fact += f" until {iso(end)}"
        out.append(Member(uid, _locale_of(doc), f"subscription=premium {fact}"))
    return sorted(out)


def to_csv(members: Sequence[Member]) -> str:
    """The segment as CSV (header ``uid,locale,qualified_by``)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(("uid", "locale", "qualified_by"))
    for m in members:
        w.writerow((m.uid, m.locale, m.qualified_by))
    return buf.getvalue()


# -- Firestore ------------------------------------------------------------------------------


def _uid(path: str) -> str:
    return path.rsplit("/", 1)[1]


def read_users(store: Any, uids: Sequence[str]) -> dict[str, dict[str, Any] | None]:
    """``users/{uid}`` of each uid (None where missing), 100 per round trip."""
    out: dict[str, dict[str, Any] | None] = {}
    ordered = sorted(set(uids))
    for i in range(0, len(ordered), 100):
        got = store.get_many([f"{USERS}/{u}" for u in ordered[i : i + 100]])
        out.update({_uid(p): d for p, d in got.items()})
    return out


def usage_since(store: Any, fields: Sequence[str], since: datetime) -> dict[str, dict[str, Any]]:
    """``external_data_usage/{uid}`` documents with any of ``fields`` at or after ``since``."""
    out: dict[str, dict[str, Any]] = {}
    for name in fields:
        for path, doc in store.query(USAGE_COLLECTION, [(name, ">=", since)]):
            out[_uid(path)] = doc
    return out


def target_groups(store: Any) -> list[str]:
    """The rollout config's ``targetGroups`` (the code's default when the doc has none)."""
    from gating.rollout import ConfigInvalid, parse

    try:
        return list(parse(store.get_many([CONFIG_PATH])[CONFIG_PATH]).targetGroups)
    except ConfigInvalid as exc:
        raise Usage(f"the rollout config is invalid ({exc}): fix it with rollout.py set") from None


def audience(
    store: Any, name: str, since: datetime | None, now: datetime, grace: int
) -> list[Member]:
    """Read what the audience needs and select it."""
    if name in ("followup", "all_active") and since is None:
        raise Usage(f"audience {name} needs --since DATE")
    if name == "followup":
        assert since is not None  # noqa: S101 - checked just above (for mypy)
        usage = usage_since(store, ["lastFunnelAt"], since)
        return followup_members(usage, read_users(store, list(usage)), since, now, grace)
    if name == "all_active":
        assert since is not None  # noqa: S101
        usage = usage_since(store, ["lastUsedAt", "lastFunnelAt"], since)
        return all_active_members(usage, read_users(store, list(usage)), since)
    if name == "beta":
        groups = target_groups(store)
        users: dict[str, dict[str, Any]] = {}
        for i in range(0, len(groups), 30):  # array-contains-any takes at most 30 values
            for path, doc in store.query(
                USERS, [("rolloutGroups", "array_contains_any", groups[i : i + 30])]
            ):
                users[_uid(path)] = doc
        return beta_members(users, groups)
    if name == "premium":
        # Ordering by a field keeps exactly the documents that have it: "subscription exists".
        subs = {_uid(p): d for p, d in store.query(USERS, order_by="subscription")}
        return premium_members(subs, now, grace)
    raise Usage(f"unknown audience {name!r} (there are: {', '.join(AUDIENCES)})")


# -- the command line -----------------------------------------------------------------------


@dataclass(frozen=True)
class Limits:
    """What the messages and audiences need of the functions' configuration."""

    grace_days: int
    free_hourly: int
    premium_hourly: int
    upgrade_url: str


def _env_int(env: Mapping[str, str], name: str, default: int, lo: int, hi: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise Usage(f"{name} must be an integer, not {raw!r}") from None
    if not lo <= value <= hi:
        raise Usage(f"{name} must be between {lo} and {hi}, not {value}")
    return value


def limits(env: Mapping[str, str] | None = None) -> Limits:
    """The functions' variables with the contract's defaults (3 grace days, 3 and 100 an hour,
    /pricing), so the copy states the limits the functions apply. Read here rather than through
    the functions' settings, which also demand the deployment's secrets."""
    e = os.environ if env is None else env
    return Limits(
        grace_days=_env_int(e, "EXTERNAL_DATA_GRACE_DAYS", 3, 0, 365),
        free_hourly=_env_int(e, "EXTERNAL_DATA_RATE_LIMIT_FREE_HOURLY", 3, 0, 1_000_000),
        premium_hourly=_env_int(e, "EXTERNAL_DATA_RATE_LIMIT_PREMIUM_HOURLY", 100, 0, 1_000_000),
        upgrade_url=e.get("EXTERNAL_DATA_UPGRADE_URL", "").strip() or "/pricing",
    )


_since = iso_argument("ISO date or time")


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {text!r}") from None


def build_parser() -> argparse.ArgumentParser:
    """The command line."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--project", help="a real project (Application Default Credentials)")
    common.add_argument("--at", type=_since, help="act as of this UTC time (tests and replays)")
    looks = argparse.ArgumentParser(add_help=False)
    looks.add_argument(
        "--launch-date",
        type=_date,
        help="the day gating starts, for t_minus_7 (default: a week from today)",
    )
    looks.add_argument(
        "--app-url",
        default=os.environ.get("COMMS_APP_URL", DEFAULT_APP_URL),
        help=f"the app's address in links (default $COMMS_APP_URL or {DEFAULT_APP_URL})",
    )
    ap = argparse.ArgumentParser(
        prog="comms.py",
        description="Audiences and messages of the external-data premium rollout.",
        epilog="Exit codes: 0 done, 1 error, 2 usage error, 3 user or template not found.",
    )
    sub = ap.add_subparsers(dest="command", required=True, metavar="SUBCOMMAND")
    p = sub.add_parser("audience", parents=[common], help="write a segment as CSV")
    p.add_argument("name", choices=AUDIENCES)
    p.add_argument("--since", type=_since, help="ISO date or time (followup, all_active)")
    p.add_argument("--out", type=Path, metavar="FILE.csv", help="default: standard output")
    p = sub.add_parser("render", parents=[common, looks], help="one message for one user")
    p.add_argument("template", help=", ".join(MESSAGES))
    p.add_argument("--user", required=True, metavar="UID")
    p.add_argument("--format", choices=FORMATS, default="text")
    p = sub.add_parser("samples", parents=[looks], help="every message for sample users, to files")
    p.add_argument("--out", type=Path, default=Path("docs/comms"), help="default docs/comms")
    return ap


def cmd_audience(args: argparse.Namespace, now: datetime) -> int:
    grace = limits().grace_days
    members = audience(make_store(args.project), args.name, args.since, now, grace)
    text = to_csv(members)
    if args.out is None:
        sys.stdout.write(text)
    else:
        args.out.write_text(text, encoding="utf-8")
        print(f"{len(members)} user(s) in audience {args.name} written to {args.out}")
    return OK


def cmd_render(args: argparse.Namespace, now: datetime) -> int:
    if args.template not in MESSAGES:
        raise NotFound(f"no template {args.template!r} (there are: {', '.join(MESSAGES)})")
    s = limits()
    store = make_store(args.project)
    user_path, usage_path = f"{USERS}/{args.user}", f"{USAGE_COLLECTION}/{args.user}"
    got = store.get_many([user_path, usage_path])
    profile = got[user_path]
    if profile is None:
        raise NotFound(f"no user {args.user} (users/{{uid}} does not exist)")
    usage = got[usage_path] or {}
    by_source = usage.get("bySource")
    locale = resolve_locale(profile.get("locale"))
    ctx = message_context(
        tier="premium" if is_premium(profile, now, s.grace_days) else "free",
        locale=locale,
        sources_tried=sorted(by_source) if isinstance(by_source, Mapping) else (),
        launch_date=args.launch_date or (now + timedelta(days=7)).date(),
        app_url=args.app_url,
        free_limit=s.free_hourly,
        premium_limit=s.premium_hourly,
        upgrade_path=s.upgrade_url,
    )
    sys.stdout.write(render(args.template, locale, args.format, ctx).body)
    return OK


SAMPLE_USERS = {
    "free": {"tier": "free", "sources_tried": ("github", "website")},
    "premium": {"tier": "premium", "sources_tried": ()},
}
"""The sample users of ``docs/comms``: a free user who tried GitHub and a website, and a
premium user."""
TIER_DEPENDENT = ("t_minus_7", "launch_day", "beta_invite", "rollback")
"""Messages whose copy depends on the plan (rendered for both sample users)."""


def cmd_samples(args: argparse.Namespace, now: datetime) -> int:
    s = limits()
    launch = args.launch_date or (now + timedelta(days=7)).date()
    written = 0
    for loc in LOCALES:
        folder = args.out / loc
        folder.mkdir(parents=True, exist_ok=True)
        for template in MESSAGES:
            tiers = ("free", "premium") if template in TIER_DEPENDENT else ("free",)
            for tier in tiers:
                sample = SAMPLE_USERS[tier]
                ctx = message_context(
                    tier=str(sample["tier"]),
                    locale=loc,
                    sources_tried=list(sample["sources_tried"]),
                    launch_date=launch,
                    app_url=args.app_url,
                    free_limit=s.free_hourly,
                    premium_limit=s.premium_hourly,
                    upgrade_path=s.upgrade_url,
                )
                for fmt, ext in (("text", "txt"), ("html", "html")):
                    msg = render(template, loc, fmt, ctx)
                    (folder / f"{template}.{tier}.{ext}").write_text(msg.body, encoding="utf-8")
                    written += 1
    print(f"{written} files written under {args.out}")
    return OK


COMMANDS = {"audience": cmd_audience, "render": cmd_render, "samples": cmd_samples}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code."""
    ap = build_parser()
    args = ap.parse_args(argv)
    now = getattr(args, "at", None) or datetime.now(UTC)
    try:
        return COMMANDS[args.command](args, now)
    except Usage as exc:
        ap.error(str(exc))
    except NotFound as exc:
        print(f"error: {exc}", file=sys.stderr)
        return NOT_FOUND
    except jinja2.TemplateError as exc:
        print(f"error: template {getattr(args, 'template', '')}: {exc}", file=sys.stderr)
        return ERROR
    except Exception as exc:
        if not reported(exc, args):
            raise
        return ERROR


def reported(exc: Exception, args: argparse.Namespace) -> bool:
    """Say on stderr an error no command handles and that is no bug, and return True: output
    that cannot be written (``--out``), a store that cannot be used. False for anything else."""
    if isinstance(exc, OSError) and exc.filename is not None:
        print(f"error: cannot write {exc.filename}: {exc.strerror or exc}", file=sys.stderr)
        return True
    # ``samples`` reads no store and has no --project.
    return report_store_failure(exc, getattr(args, "project", None))


if __name__ == "__main__":
    sys.exit(main())
