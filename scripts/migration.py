#!/usr/bin/env python3
"""Before the gate goes on: find the paying customers who would be refused on day one (issue 12).

    python scripts/migration.py check [--billing-export FILE.csv] [--json] [--at ISO]

Reads every ``users/{uid}`` that has a ``subscription`` and, with ``--billing-export``, the
billing system's export (CSV with the columns ``uid, customer_id, plan, status,
current_period_end``), and reports, per kind of problem, a count and up to five example uids:

    record problems (no export needed)
      subscription_not_a_map     ``subscription`` is not a map (null, a string, ...)
      missing_field              ``tier`` or ``status`` is missing
      bad_tier                   ``tier`` is not "free" or "premium" (wrong type, case, spelling)
      bad_status                 ``status`` is not active / trialing / past_due / canceled
      bad_period_end             ``currentPeriodEnd`` is there but not a timestamp
      bad_lifetime               ``lifetime`` is there but not true or false
      active_but_expired         premium, status active/trialing, but the period ended: refused
    against the billing export
      no_user_doc                a customer in the export has no ``users/{uid}`` document
      paying_but_not_premium     billing says active/trialing (or past_due within the grace days)
                                 but the record makes the user free: refused on day one
      customer_id_mismatch       the record's ``customerId`` is not the export's customer_id
      plan_mismatch              the export's plan is not the record's tier
      status_mismatch            the export's status is not the record's status
      period_end_mismatch        the period ends differ by more than an hour (or one side has none)
      export_row_invalid         a row of the export that cannot be read (named by line)

Premium is decided as the service decides it (contract section 1, ``gating.entitlements``), with
``EXTERNAL_DATA_GRACE_DAYS`` (default 3). Plans: ``free``; ``premium``, ``premium_*`` or
``premium-*`` (e.g. premium_monthly); ``lifetime`` (premium with ``lifetime: true``).

Informational (never a finding): premium records with no row in the export (complimentary grants,
or customers the export missed), shown under "notes".

Like ``rollout.py``: the emulator whenever FIRESTORE_EMULATOR_HOST is set, ``--project ID`` for
a real project (Application Default Credentials).

Exit codes: 0 clean, 1 findings (or Firestore unreachable), 2 usage error, 3 export file not found.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "functions"))

from gating.entitlements import is_premium
from scripts.devkit.cli import make_store, report_store_failure, target

OK, FINDINGS, USAGE, NOT_FOUND = 0, 1, 2, 3
EXAMPLES = 5
"""Example uids shown per kind."""
PERIOD_END_TOLERANCE = timedelta(hours=1)
"""Billing and the subscription webhook may round or lag a little; more than this is a mismatch."""
EXPORT_COLUMNS = ("uid", "customer_id", "plan", "status", "current_period_end")
TIERS = ("free", "premium")
STATUSES = ("active", "trialing", "past_due", "canceled")
USERS = "users"


class Kind(StrEnum):
    """The kinds of problem the check reports, in report order."""

    SUBSCRIPTION_NOT_A_MAP = "subscription_not_a_map"
    MISSING_FIELD = "missing_field"
    BAD_TIER = "bad_tier"
    BAD_STATUS = "bad_status"
    BAD_PERIOD_END = "bad_period_end"
    BAD_LIFETIME = "bad_lifetime"
    ACTIVE_BUT_EXPIRED = "active_but_expired"
    NO_USER_DOC = "no_user_doc"
    PAYING_BUT_NOT_PREMIUM = "paying_but_not_premium"
    CUSTOMER_ID_MISMATCH = "customer_id_mismatch"
    PLAN_MISMATCH = "plan_mismatch"
    STATUS_MISMATCH = "status_mismatch"
    PERIOD_END_MISMATCH = "period_end_mismatch"
    EXPORT_ROW_INVALID = "export_row_invalid"


DESCRIPTIONS: dict[Kind, str] = {
    Kind.SUBSCRIPTION_NOT_A_MAP: "subscription is not a map",
    Kind.MISSING_FIELD: "subscription lacks tier or status",
    Kind.BAD_TIER: "tier is not free or premium",
    Kind.BAD_STATUS: "status is not active, trialing, past_due or canceled",
    Kind.BAD_PERIOD_END: "currentPeriodEnd is not a timestamp",
    Kind.BAD_LIFETIME: "lifetime is not true or false",
    Kind.ACTIVE_BUT_EXPIRED: "premium and active, but the period has ended (refused)",
    Kind.NO_USER_DOC: "customer in the billing export has no user document",
    Kind.PAYING_BUT_NOT_PREMIUM: "billing says paying, the record says free (refused)",
    Kind.CUSTOMER_ID_MISMATCH: "customer id differs from billing",
    Kind.PLAN_MISMATCH: "plan differs from billing",
    Kind.STATUS_MISMATCH: "status differs from billing",
    Kind.PERIOD_END_MISMATCH: "period end differs from billing",
    Kind.EXPORT_ROW_INVALID: "billing export row cannot be read",
}


class Usage(Exception):
    """A usage error found after parsing (exit 2)."""


# -- the billing export ---------------------------------------------------------------------


@dataclass(frozen=True)
class BillingRow:
    """One customer of the billing export, parsed."""

    uid: str
    customer_id: str
    plan: str
    tier: str
    """``free`` or ``premium``, from the plan."""
    lifetime: bool
    status: str
    period_end: datetime | None
    line: int
    """Line number in the file (the header is line 1)."""


@dataclass(frozen=True)
class Finding:
    """One problem of one user (or one export line)."""

    kind: Kind
    uid: str
    detail: str


def parse_time(value: Any) -> datetime | None:
    """An ISO-8601 date/time or epoch seconds as an aware UTC datetime; None when unreadable."""
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip()
    if text.isdigit():
        return datetime.fromtimestamp(int(text), UTC)
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def plan_tier(plan: str) -> tuple[str, bool] | None:
    """(tier, lifetime) of a billing plan name, or None for a plan this check does not know."""
    p = plan.strip().lower()
    if p == "free":
        return "free", False
    if p == "lifetime":
        return "premium", True
    if p == "premium" or p.startswith(("premium_", "premium-")):
        return "premium", False
    return None


def parse_export(text: str) -> tuple[list[BillingRow], list[Finding]]:
    """Rows of the export and a finding per unreadable row.

    Raises ``Usage`` when a column is missing (the file is not the export this check reads).
    """
    reader = csv.DictReader(io.StringIO(text))
    header = [h.strip() for h in (reader.fieldnames or [])]
    missing = [c for c in EXPORT_COLUMNS if c not in header]
    if missing:
        raise Usage(
            f"billing export lacks column(s) {', '.join(missing)} (has: {', '.join(header)})"
        )
    rows: list[BillingRow] = []
    bad: list[Finding] = []
    seen: dict[str, int] = {}
    for n, raw in enumerate(reader, start=2):
        rec = {(k or "").strip(): (v or "").strip() for k, v in raw.items() if isinstance(v, str)}
        uid = rec.get("uid", "")
        where = f"line {n}"
        if not uid:
            bad.append(Finding(Kind.EXPORT_ROW_INVALID, where, f"{where}: no uid"))
            continue
        if uid in seen:
            bad.append(
                Finding(Kind.EXPORT_ROW_INVALID, uid, f"{where}: uid already on line {seen[uid]}")
            )
            continue
        seen[uid] = n
        tier = plan_tier(rec.get("plan", ""))
        if tier is None:
            bad.append(
                Finding(Kind.EXPORT_ROW_INVALID, uid, f"{where}: unknown plan {rec.get('plan')!r}")
            )
            continue
        status = rec.get("status", "").lower()
        if not status:
            bad.append(Finding(Kind.EXPORT_ROW_INVALID, uid, f"{where}: no status"))
            continue
        end_text = rec.get("current_period_end", "")
        end = parse_time(end_text)
        if end_text and end is None:
            bad.append(
                Finding(
                    Kind.EXPORT_ROW_INVALID,
                    uid,
                    f"{where}: current_period_end {end_text!r} is not a date",
                )
            )
            continue
        rows.append(
            BillingRow(
                uid=uid,
                customer_id=rec.get("customer_id", ""),
                plan=rec.get("plan", ""),
                tier=tier[0],
                lifetime=tier[1],
                status=status,
                period_end=end,
                line=n,
            )
        )
    return rows, bad


# -- classification (pure) ------------------------------------------------------------------


def ts(value: datetime | None) -> str:
    """A time for the report (UTC, seconds)."""
    if value is None:
        return "none"
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _show(value: Any) -> str:
    """A stored value for the report, with its type when it is not the expected one."""
    if isinstance(value, datetime):
        return ts(value)
    return f"{value!r} ({type(value).__name__})"


def record_problems(uid: str, sub: Any, now: datetime) -> list[Finding]:
    """What is wrong with one stored subscription on its own (no billing data needed)."""
    if not isinstance(sub, Mapping):
        return [Finding(Kind.SUBSCRIPTION_NOT_A_MAP, uid, f"subscription is {_show(sub)}")]
    out: list[Finding] = []
    missing = [f for f in ("tier", "status") if f not in sub]
    if missing:
        out.append(Finding(Kind.MISSING_FIELD, uid, f"no {' and no '.join(missing)}"))
    if "tier" in sub and sub["tier"] not in TIERS:
        out.append(Finding(Kind.BAD_TIER, uid, f"tier {_show(sub['tier'])}"))
    if "status" in sub and sub["status"] not in STATUSES:
        out.append(Finding(Kind.BAD_STATUS, uid, f"status {_show(sub['status'])}"))
    end_raw = sub.get("currentPeriodEnd")
    if end_raw is not None and not isinstance(end_raw, datetime):
        out.append(Finding(Kind.BAD_PERIOD_END, uid, f"currentPeriodEnd {_show(end_raw)}"))
    if "lifetime" in sub and not isinstance(sub["lifetime"], bool):
        out.append(Finding(Kind.BAD_LIFETIME, uid, f"lifetime {_show(sub['lifetime'])}"))
    end = parse_time(end_raw) if isinstance(end_raw, datetime) else None
    # Premium by its own fields, yet refused: the renewal never reached the record.
    if (
        sub.get("tier") == "premium"
        and sub.get("lifetime") is not True
        and sub.get("status") in ("active", "trialing")
        and end is not None
        and end <= now
    ):
        out.append(
            Finding(
                Kind.ACTIVE_BUT_EXPIRED,
                uid,
                f"status {sub['status']} but currentPeriodEnd {ts(end)} has passed",
            )
        )
    return out


def billing_paying(row: BillingRow, now: datetime, grace_days: int) -> bool:
    """Whether billing considers the customer entitled to premium now (the same rules)."""
    doc = {
        "subscription": {
            "tier": row.tier,
            "status": row.status,
            "lifetime": row.lifetime,
            **({"currentPeriodEnd": row.period_end} if row.period_end else {}),
        }
    }
    return is_premium(doc, now, grace_days)


def _record_summary(sub: Any) -> str:
    if not isinstance(sub, Mapping):
        return "no subscription" if sub is None else f"subscription {_show(sub)}"
    end = sub.get("currentPeriodEnd")
    parts = [f"tier {sub.get('tier')}", f"status {sub.get('status')}"]
    parts.append(f"until {ts(end) if isinstance(end, datetime) else end}")
    if sub.get("lifetime") is True:
        parts.append("lifetime")
    return ", ".join(parts)


def compare(
    row: BillingRow, doc: Mapping[str, Any] | None, now: datetime, grace_days: int
) -> list[Finding]:
    """How one user's record disagrees with their billing row."""
    uid = row.uid
    billing = f"billing {row.plan}/{row.status} until {ts(row.period_end)}"
    if doc is None:
        return [Finding(Kind.NO_USER_DOC, uid, f"{billing}; no users/{{uid}} document")]
    sub = doc.get("subscription")
    out: list[Finding] = []
    if billing_paying(row, now, grace_days) and not is_premium(doc, now, grace_days):
        out.append(
            Finding(Kind.PAYING_BUT_NOT_PREMIUM, uid, f"{billing}; record: {_record_summary(sub)}")
        )
    if not isinstance(sub, Mapping):
        return out
    rec_customer = sub.get("customerId")
    if rec_customer is not None and row.customer_id and rec_customer != row.customer_id:
        out.append(
            Finding(
                Kind.CUSTOMER_ID_MISMATCH,
                uid,
                f"billing {row.customer_id}, record {_show(rec_customer)}",
            )
        )
    if sub.get("tier") != row.tier or (row.lifetime and sub.get("lifetime") is not True):
        out.append(
            Finding(
                Kind.PLAN_MISMATCH,
                uid,
                f"billing plan {row.plan}, record tier {sub.get('tier')!r}"
                + (", lifetime not set" if row.lifetime and sub.get("tier") == "premium" else ""),
            )
        )
    if sub.get("status") != row.status:
        out.append(
            Finding(
                Kind.STATUS_MISMATCH,
                uid,
                f"billing {row.status}, record {sub.get('status')!r}",
            )
        )
    rec_end_raw = sub.get("currentPeriodEnd")
    # A malformed period end is reported as bad_period_end already; compare only readable ones.
    if rec_end_raw is None or isinstance(rec_end_raw, datetime):
        rec_end = parse_time(rec_end_raw)
        if rec_end is None or row.period_end is None:
            differs = (rec_end is None) != (row.period_end is None)
        else:
            differs = abs(rec_end - row.period_end) > PERIOD_END_TOLERANCE
        if differs:
            out.append(
                Finding(
                    Kind.PERIOD_END_MISMATCH,
                    uid,
                    f"billing {ts(row.period_end)}, record {ts(rec_end)}",
                )
            )
    return out


@dataclass
class Report:
    """The check's result: findings grouped by kind, and informational notes."""

    checked_at: datetime
    grace_days: int
    users_checked: int
    export_rows: int | None
    findings: dict[Kind, list[Finding]] = field(default_factory=dict)
    premium_not_in_export: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        """No finding of any kind."""
        return not any(self.findings.values())

    def affected_users(self) -> int:
        """Distinct uids (or export lines) with at least one finding."""
        return len({f.uid for fs in self.findings.values() for f in fs})

    def to_json(self) -> dict[str, Any]:
        """The report as JSON-ready data (``--json``)."""
        return {
            "checkedAt": ts(self.checked_at),
            "graceDays": self.grace_days,
            "usersChecked": self.users_checked,
            "exportRows": self.export_rows,
            "clean": self.clean,
            "affectedUsers": self.affected_users(),
            "findings": {
                k.value: {
                    "count": len(fs),
                    "description": DESCRIPTIONS[k],
                    "examples": [{"uid": f.uid, "detail": f.detail} for f in fs[:EXAMPLES]],
                }
                for k, fs in self.findings.items()
                if fs
            },
            "notes": {
                "premiumNotInExport": {
                    "count": len(self.premium_not_in_export),
                    "examples": self.premium_not_in_export[:EXAMPLES],
                }
            }
            if self.export_rows is not None
            else {},
        }


def classify(
    users: Mapping[str, Mapping[str, Any] | None],
    export: Sequence[BillingRow] | None,
    now: datetime,
    grace_days: int,
    export_problems: Iterable[Finding] = (),
) -> Report:
    """The whole check, without I/O.

    ``users`` maps uid to its ``users/{uid}`` document (None when there is none): every user with
    a subscription, plus every uid of the export. ``export`` is None when no export was given.
    """
    checked = [uid for uid, doc in users.items() if doc is not None and "subscription" in doc]
    report = Report(
        checked_at=now,
        grace_days=grace_days,
        users_checked=len(checked),
        export_rows=None if export is None else len(export),
    )
    found: list[Finding] = []
    for uid in sorted(checked):
        found.extend(record_problems(uid, (users[uid] or {}).get("subscription"), now))
    if export is not None:
        in_export = {r.uid for r in export}
        for row in sorted(export, key=lambda r: r.uid):
            found.extend(compare(row, users.get(row.uid), now, grace_days))
        report.premium_not_in_export = sorted(
            uid
            for uid in checked
            if uid not in in_export and is_premium(users[uid], now, grace_days)
        )
    found.extend(export_problems)
    for kind in Kind:
        report.findings[kind] = [f for f in found if f.kind is kind]
    return report


def render_text(report: Report, source: str) -> str:
    """The report for a terminal."""
    lines = [f"Migration check of {source}, as of {ts(report.checked_at)}"]
    lines.append(
        f"  {report.users_checked} user(s) with a subscription; premium rules of contract "
        f"section 1 with {report.grace_days} grace day(s)"
    )
    if report.export_rows is None:
        lines.append("  no billing export given: only the records themselves were checked")
    else:
        lines.append(f"  billing export: {report.export_rows} readable row(s)")
    lines.append("")
    if report.clean:
        lines.append("CLEAN: no paying customer would be refused because of their record.")
    else:
        total = sum(len(v) for v in report.findings.values())
        lines.append(
            f"FOUND {total} problem(s) affecting {report.affected_users()} user(s) or export line(s)."
        )
        lines.append("")
        kinds = [(k, fs) for k, fs in report.findings.items() if fs]
        width = max(len(k.value) for k, _ in kinds)
        lines.append(f"  {'kind'.ljust(width)}  count  meaning")
        for k, fs in kinds:
            lines.append(f"  {k.value.ljust(width)}  {len(fs):>5}  {DESCRIPTIONS[k]}")
        for k, fs in kinds:
            more = f" (first {EXAMPLES} of {len(fs)})" if len(fs) > EXAMPLES else ""
            lines.append("")
            lines.append(f"  {k.value}{more}:")
            lines.extend(f"    {f.uid}: {f.detail}" for f in fs[:EXAMPLES])
    if report.export_rows is not None and report.premium_not_in_export:
        n = len(report.premium_not_in_export)
        lines.append("")
        lines.append(
            f"  note: {n} premium record(s) have no row in the export (complimentary or missed "
            f"by the export; not counted as problems): "
            + ", ".join(report.premium_not_in_export[:EXAMPLES])
            + (" ..." if n > EXAMPLES else "")
        )
    return "\n".join(lines)


# -- I/O ------------------------------------------------------------------------------------


def grace_days_from_env(env: Mapping[str, str] | None = None) -> int:
    """``EXTERNAL_DATA_GRACE_DAYS`` (default 3), validated like the functions validate it."""
    raw = (os.environ if env is None else env).get("EXTERNAL_DATA_GRACE_DAYS", "").strip()
    if not raw:
        return 3
    try:
        value = int(raw)
    except ValueError:
        raise Usage(f"EXTERNAL_DATA_GRACE_DAYS must be an integer, not {raw!r}") from None
    if not 0 <= value <= 365:
        raise Usage(f"EXTERNAL_DATA_GRACE_DAYS must be between 0 and 365, not {value}")
    return value


def users_with_subscription(store: Any) -> dict[str, dict[str, Any]]:
    """Every ``users/{uid}`` whose ``subscription`` field exists (whatever its type).

    Ordering by a field keeps exactly the documents that have it (null included), which is the
    "exists" test Firestore offers.
    """
    return {
        path.rsplit("/", 1)[1]: doc
        for path, doc in store.query(USERS, order_by="subscription")
        if "subscription" in doc
    }


def load_users(store: Any, export: Sequence[BillingRow] | None) -> dict[str, dict[str, Any] | None]:
    """Users with a subscription, plus the export's uids (None where there is no document)."""
    users: dict[str, dict[str, Any] | None] = dict(users_with_subscription(store))
    if export:
        extra = sorted({r.uid for r in export} - set(users))
        for i in range(0, len(extra), 100):
            got = store.get_many([f"{USERS}/{uid}" for uid in extra[i : i + 100]])
            for path, doc in got.items():
                users[path.rsplit("/", 1)[1]] = doc
    return users


def _iso(text: str) -> datetime:
    value = parse_time(text)
    if value is None:
        raise argparse.ArgumentTypeError(f"not an ISO time: {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The command line."""
    ap = argparse.ArgumentParser(
        prog="migration.py",
        description="Find paying customers who would be refused the day premium gating starts.",
        epilog="Exit codes: 0 clean, 1 findings or error, 2 usage error, 3 export file not found.",
    )
    sub = ap.add_subparsers(dest="command", required=True, metavar="SUBCOMMAND")
    p = sub.add_parser("check", help="check every subscription record (and the billing export)")
    p.add_argument(
        "--billing-export", type=Path, metavar="FILE.csv", help=", ".join(EXPORT_COLUMNS)
    )
    p.add_argument("--json", action="store_true", help="the report as JSON on stdout")
    p.add_argument("--project", help="a real project (Application Default Credentials)")
    p.add_argument("--at", type=_iso, help="judge as of this UTC time (tests and replays)")
    return ap


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code."""
    ap = build_parser()
    args = ap.parse_args(argv)
    now = args.at or datetime.now(UTC)
    try:
        grace = grace_days_from_env()
        export: list[BillingRow] | None = None
        problems: list[Finding] = []
        if args.billing_export is not None:
            try:
                text = args.billing_export.read_text(encoding="utf-8-sig")
            except FileNotFoundError:
                print(f"error: billing export {args.billing_export} not found", file=sys.stderr)
                return NOT_FOUND
            except (OSError, UnicodeDecodeError) as exc:
                print(f"error: cannot read {args.billing_export}: {exc}", file=sys.stderr)
                return USAGE
            export, problems = parse_export(text)
    except Usage as exc:
        ap.error(str(exc))
    try:
        users = load_users(make_store(args.project), export)
    except Exception as exc:
        if not report_store_failure(exc, args.project):
            raise
        return FINDINGS
    report = classify(users, export, now, grace, problems)
    if args.json:
        print(json.dumps(report.to_json(), indent=2, sort_keys=True))
    else:
        print(render_text(report, target(args.project)))
    return OK if report.clean else FINDINGS


if __name__ == "__main__":
    sys.exit(main())
