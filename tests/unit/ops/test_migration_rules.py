"""The migration check's rules (issue 12, contract section 1), one test per kind of problem,
without Firestore: ``classify`` is pure."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from scripts.migration import (
    Kind,
    Usage,
    classify,
    grace_days_from_env,
    parse_export,
    plan_tier,
    render_text,
)

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
NEXT_MONTH = NOW + timedelta(days=30)
HEADER = "uid,customer_id,plan,status,current_period_end\n"


def sub(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"tier": "premium", "status": "active", "currentPeriodEnd": NEXT_MONTH}
    base.update(fields)
    return {"subscription": {k: v for k, v in base.items() if v is not ...}}


def kinds(users: dict[str, Any], export_csv: str | None = None) -> dict[Kind, list[str]]:
    export, problems = parse_export(HEADER + export_csv) if export_csv is not None else (None, [])
    report = classify(users, export, NOW, 3, problems)
    return {k: [f.uid for f in fs] for k, fs in report.findings.items() if fs}


def row(uid: str, plan: str = "premium_monthly", status: str = "active", end: str = "") -> str:
    return f"{uid},cus_{uid},{plan},{status},{end or NEXT_MONTH.isoformat()}\n"


def test_a_consistent_premium_customer_is_clean() -> None:
    users = {
        "u1": sub(customerId="cus_u1"),
        "u2": {"subscription": {"tier": "free", "status": "canceled"}},
    }
    export = row("u1") + "u2,cus_u2,free,canceled,\n"
    report = classify(users, parse_export(HEADER + export)[0], NOW, 3)
    assert report.clean
    assert report.users_checked == 2
    assert "CLEAN" in render_text(report, "test")


def test_subscription_that_is_not_a_map() -> None:
    assert kinds({"u": {"subscription": "premium"}, "n": {"subscription": None}}) == {
        Kind.SUBSCRIPTION_NOT_A_MAP: ["n", "u"]
    }


def test_missing_tier_or_status() -> None:
    assert kinds({"a": sub(tier=...), "b": sub(status=...)}) == {Kind.MISSING_FIELD: ["a", "b"]}


def test_bad_tier_types_and_spellings() -> None:
    assert kinds({"a": sub(tier="Premium"), "b": sub(tier=1)}) == {Kind.BAD_TIER: ["a", "b"]}


def test_bad_status() -> None:
    assert kinds({"a": sub(status="paid"), "b": sub(status=True)}) == {Kind.BAD_STATUS: ["a", "b"]}


def test_period_end_that_is_not_a_timestamp() -> None:
    # An ISO string or epoch number is not a Firestore timestamp, whatever the service tolerates.
    found = kinds({"a": sub(currentPeriodEnd="2027-01-01"), "b": sub(currentPeriodEnd=1798761600)})
    assert found == {Kind.BAD_PERIOD_END: ["a", "b"]}


def test_lifetime_that_is_not_a_boolean() -> None:
    assert kinds({"a": sub(lifetime="yes")}) == {Kind.BAD_LIFETIME: ["a"]}


def test_active_record_whose_period_ended_would_be_refused() -> None:
    users = {
        "a": sub(currentPeriodEnd=NOW - timedelta(days=2)),
        # past_due inside the grace days and lifetime customers are premium: not findings
        "g": sub(status="past_due", currentPeriodEnd=NOW - timedelta(days=2)),
        "l": sub(currentPeriodEnd=NOW - timedelta(days=2), lifetime=True),
    }
    assert kinds(users) == {Kind.ACTIVE_BUT_EXPIRED: ["a"]}


def test_customer_in_the_export_without_a_user_document() -> None:
    assert kinds({"ghost": None}, row("ghost")) == {Kind.NO_USER_DOC: ["ghost"]}


def test_billing_active_but_record_free_or_canceled_or_missing() -> None:
    users = {
        "free": sub(tier="free"),
        "canceled": sub(status="canceled"),
        "nosub": {"displayName": "x"},
    }
    export = row("free") + row("canceled") + row("nosub")
    found = kinds(users, export)
    assert found[Kind.PAYING_BUT_NOT_PREMIUM] == ["canceled", "free", "nosub"]
    assert found[Kind.PLAN_MISMATCH] == ["free"]
    assert found[Kind.STATUS_MISMATCH] == ["canceled"]
    assert set(found) == {Kind.PAYING_BUT_NOT_PREMIUM, Kind.PLAN_MISMATCH, Kind.STATUS_MISMATCH}


def test_past_due_within_grace_in_billing_counts_as_paying() -> None:
    ended = (NOW - timedelta(days=1)).isoformat()
    found = kinds(
        {"u": sub(tier="free", status="past_due")}, row("u", status="past_due", end=ended)
    )
    assert Kind.PAYING_BUT_NOT_PREMIUM in found
    # beyond the grace days billing no longer says paying: only the plan disagreement remains
    long_ago = (NOW - timedelta(days=10)).isoformat()
    found = kinds(
        {"u": sub(tier="free", status="past_due", currentPeriodEnd=NOW - timedelta(days=10))},
        row("u", status="past_due", end=long_ago),
    )
    assert found == {Kind.PLAN_MISMATCH: ["u"]}


def test_customer_id_mismatch() -> None:
    found = kinds({"u": sub(customerId="cus_other")}, row("u"))
    assert found == {Kind.CUSTOMER_ID_MISMATCH: ["u"]}
    # no customerId on the record: nothing to compare (the contract does not require one)
    assert kinds({"u": sub()}, row("u")) == {}


def test_plan_mismatch_including_lifetime() -> None:
    assert kinds({"u": sub(tier="free")}, row("u", plan="free", status="active")) == {}
    found = kinds({"u": sub()}, row("u", plan="lifetime"))
    assert found == {Kind.PLAN_MISMATCH: ["u"]}


def test_status_mismatch() -> None:
    assert kinds({"u": sub(status="trialing")}, row("u")) == {Kind.STATUS_MISMATCH: ["u"]}


def test_period_end_mismatch_beyond_an_hour_or_one_side_missing() -> None:
    near = (NEXT_MONTH + timedelta(minutes=30)).isoformat()
    far = (NEXT_MONTH + timedelta(days=30)).isoformat()
    assert kinds({"u": sub()}, row("u", end=near)) == {}
    assert kinds({"u": sub()}, row("u", end=far)) == {Kind.PERIOD_END_MISMATCH: ["u"]}
    assert kinds({"u": sub(currentPeriodEnd=...)}, row("u")) == {Kind.PERIOD_END_MISMATCH: ["u"]}


def test_unreadable_export_rows_are_findings_by_line() -> None:
    export = (
        ",cus_x,premium,active,\n"
        + row("a", plan="gold")
        + row("b", end="next tuesday")
        + "c,cus_c,premium,,\n"
        + row("d")
        + row("d")
    )
    found = kinds({"d": sub()}, export)
    assert found == {Kind.EXPORT_ROW_INVALID: ["line 2", "a", "b", "c", "d"]}


def test_an_export_without_the_columns_is_a_usage_error() -> None:
    with pytest.raises(Usage, match="current_period_end"):
        parse_export("uid,customer_id,plan,status\nu,c,premium,active\n")


def test_epoch_seconds_are_accepted_in_the_export() -> None:
    rows, bad = parse_export(HEADER + f"u,cus_u,premium,active,{int(NEXT_MONTH.timestamp())}\n")
    assert bad == []
    assert rows[0].period_end == NEXT_MONTH


def test_plans_map_to_tiers() -> None:
    assert plan_tier("premium_yearly") == ("premium", False)
    assert plan_tier("Premium-Monthly") == ("premium", False)
    assert plan_tier("lifetime") == ("premium", True)
    assert plan_tier("free") == ("free", False)
    assert plan_tier("gold") is None


def test_premium_records_missing_from_the_export_are_a_note_not_a_finding() -> None:
    report = classify({"comp": sub(), "u": sub()}, parse_export(HEADER + row("u"))[0], NOW, 3)
    assert report.clean
    assert report.premium_not_in_export == ["comp"]
    assert report.to_json()["notes"]["premiumNotInExport"] == {"count": 1, "examples": ["comp"]}


def test_report_shows_counts_and_at_most_five_examples() -> None:
    users = {f"u{i}": sub(tier="gold") for i in range(7)}
    report = classify(users, None, NOW, 3)
    data = report.to_json()
    assert data["clean"] is False
    assert data["findings"]["bad_tier"]["count"] == 7
    assert [e["uid"] for e in data["findings"]["bad_tier"]["examples"]] == [
        "u0",
        "u1",
        "u2",
        "u3",
        "u4",
    ]
    text = render_text(report, "test")
    assert "bad_tier" in text and "(first 5 of 7)" in text and "u5:" not in text


def test_grace_days_come_from_the_environment() -> None:
    assert grace_days_from_env({}) == 3
    assert grace_days_from_env({"EXTERNAL_DATA_GRACE_DAYS": "7"}) == 7
    with pytest.raises(Usage, match="EXTERNAL_DATA_GRACE_DAYS"):
        grace_days_from_env({"EXTERNAL_DATA_GRACE_DAYS": "soon"})
