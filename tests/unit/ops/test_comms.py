"""The rollout's messages and audiences (issue 12), without Firestore: templates render in both
locales and formats, fail on a missing variable, escape HTML, promise only what the product does;
audience selection is pure and its CSV carries nothing but uid, locale and the qualifying fact."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import jinja2
import pytest

from scripts import comms
from scripts.comms import (
    LOCALES,
    MESSAGES,
    Member,
    NotFound,
    all_active_members,
    beta_members,
    followup_members,
    main,
    message_context,
    premium_members,
    render,
    resolve_locale,
    to_csv,
)

ROOT = Path(__file__).resolve().parents[3]
NOW = datetime(2026, 12, 11, 9, 0, tzinfo=UTC)
SINCE = datetime(2026, 12, 8, tzinfo=UTC)


def ctx(tier: str = "free", locale: str = "en", **over: Any) -> dict[str, Any]:
    base = message_context(
        tier=tier,
        locale=locale,
        sources_tried=["github"],
        launch_date=date(2026, 12, 8),
        app_url="https://app.test",
        free_limit=3,
        premium_limit=100,
        upgrade_path="/pricing",
    )
    base.update(over)
    return base


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("de", "de"),
        ("de-DE", "de"),
        ("DE_at", "de"),
        ("en-GB", "en"),
        ("fr", "en"),
        ("", "en"),
        (None, "en"),
        (42, "en"),
    ],
)
def test_the_locale_comes_from_the_profile_with_english_as_fallback(
    raw: Any, expected: str
) -> None:
    assert resolve_locale(raw) == expected


@pytest.mark.parametrize("template", MESSAGES)
@pytest.mark.parametrize("locale", LOCALES)
def test_every_message_renders_in_both_formats(template: str, locale: str) -> None:
    text = render(template, locale, "text", ctx(locale=locale))
    html = render(template, locale, "html", ctx(locale=locale))
    assert text.body.startswith(f"Subject: {text.subject}\n\n")
    assert f"<title>{html.subject}</title>" in html.body
    assert f'<html lang="{locale}">' in html.body
    assert "https://app.test/settings/notifications" in text.body
    assert all(len(line) <= 72 or "https://" in line for line in text.body.splitlines()[1:])


def test_german_profile_gets_german_copy_and_unknown_locale_english() -> None:
    de = render("followup", "de-DE", "text", ctx(locale="de"))
    assert de.locale == "de" and "Guten Tag," in de.body and "mit GitHub" in de.body
    fr = render("followup", "fr", "text", ctx())
    assert fr.locale == "en" and "Hello," in fr.body and "with GitHub" in fr.body


def test_a_missing_variable_fails_instead_of_rendering_blank() -> None:
    c = ctx()
    del c["upgrade_url"]
    with pytest.raises(jinja2.UndefinedError, match="upgrade_url"):
        render("followup", "en", "text", c)


def test_html_escapes_values_and_text_keeps_them() -> None:
    c = ctx(upgrade_url="https://app.test/pricing?a=1&b=<x>")
    html = render("followup", "en", "html", c).body
    text = render("followup", "en", "text", c).body
    assert 'href="https://app.test/pricing?a=1&amp;b=&lt;x&gt;"' in html
    assert "<x>" not in html
    assert "https://app.test/pricing?a=1&b=<x>" in text


def test_an_unknown_template_is_not_found() -> None:
    with pytest.raises(NotFound):
        render("newsletter", "en", "text", ctx())


def test_launch_day_is_worded_by_plan() -> None:
    free = render("launch_day", "en", "text", ctx("free")).body
    premium = render("launch_day", "en", "text", ctx("premium")).body
    assert "preview" in free and "https://app.test/pricing" in free
    assert "part of your Premium plan" in premium and "https://app.test/pricing" not in premium


BANNED = re.compile(
    r"salary|gehalt|industry trend|branchentrend|market insight|marktanalyse|forecast|"
    r"culture|unlimited|unbegrenzt|real-time|echtzeit|40%",
    re.IGNORECASE,
)


@pytest.mark.parametrize("locale", LOCALES)
def test_the_copy_promises_only_what_the_product_delivers(locale: str) -> None:
    for template in MESSAGES:
        for tier in ("free", "premium"):
            body = render(template, locale, "text", ctx(tier, locale)).body
            assert not BANNED.search(body), (template, tier, BANNED.search(body))
            if template != "rollback":
                assert "GitHub" in body, template
    plans = " ".join(render("t_minus_7", locale, "text", ctx(locale=locale)).body.split())
    assert " 3 " in plans and " 100 " in plans and "LinkedIn" in plans


def test_docs_comms_holds_the_current_rendering(tmp_path: Path, monkeypatch: Any) -> None:
    for var in (
        "EXTERNAL_DATA_RATE_LIMIT_FREE_HOURLY",
        "EXTERNAL_DATA_RATE_LIMIT_PREMIUM_HOURLY",
        "EXTERNAL_DATA_UPGRADE_URL",
        "COMMS_APP_URL",
    ):
        monkeypatch.delenv(var, raising=False)
    assert main(["samples", "--out", str(tmp_path), "--launch-date", "2026-12-08"]) == 0
    docs = ROOT / "docs" / "comms"
    fresh = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*.*"))
    assert len(fresh) == 36
    for rel in fresh:
        assert (docs / rel).read_text() == (tmp_path / rel).read_text(), (
            f"docs/comms/{rel} is stale: rerun the command in docs/comms/README.md"
        )


# -- audiences ------------------------------------------------------------------------------


def test_followup_is_funnel_since_date_not_converted_after_it_and_not_premium() -> None:
    t = SINCE + timedelta(days=1)
    usage = {
        "seen": {"lastFunnelAt": t},
        "before": {"lastFunnelAt": SINCE - timedelta(seconds=1)},
        "converted": {"lastFunnelAt": t, "convertedAt": t + timedelta(hours=1)},
        "old_conversion": {"lastFunnelAt": t, "convertedAt": t - timedelta(days=30)},
        "premium_now": {"lastFunnelAt": t},
        "never": {"lastUsedAt": t},
        "no_profile": {"lastFunnelAt": SINCE},
    }
    users: dict[str, Any] = {
        "seen": {"locale": "de-DE"},
        "old_conversion": {"subscription": {"tier": "premium", "status": "canceled"}},
        "premium_now": {"subscription": {"tier": "premium", "status": "active"}},
    }
    got = followup_members(usage, users, SINCE, NOW, 3)
    assert got == [
        Member("no_profile", "en", "lastFunnelAt=2026-12-08T00:00:00Z"),
        Member("old_conversion", "en", "lastFunnelAt=2026-12-09T00:00:00Z"),
        Member("seen", "de", "lastFunnelAt=2026-12-09T00:00:00Z"),
    ]


def test_all_active_takes_the_later_of_use_and_gate() -> None:
    usage = {
        "a": {"lastUsedAt": SINCE + timedelta(hours=2), "lastFunnelAt": SINCE + timedelta(hours=1)},
        "b": {"lastFunnelAt": SINCE + timedelta(hours=3)},
        "old": {"lastUsedAt": SINCE - timedelta(days=1)},
    }
    assert all_active_members(usage, {"b": {"locale": "de"}}, SINCE) == [
        Member("a", "en", "lastUsedAt=2026-12-08T02:00:00Z"),
        Member("b", "de", "lastFunnelAt=2026-12-08T03:00:00Z"),
    ]


def test_beta_is_membership_of_a_target_group() -> None:
    users: dict[str, Any] = {
        "x": {"rolloutGroups": ["internal-team", "other"], "locale": "de"},
        "y": {"rolloutGroups": ["other"]},
        "z": {"rolloutGroups": "internal-team"},
    }
    assert beta_members(users, ["internal-team", "beta-testers"]) == [
        Member("x", "de", "rolloutGroups=internal-team")
    ]


def test_premium_is_premium_now_by_the_contract() -> None:
    users: dict[str, Any] = {
        "p": {
            "subscription": {
                "tier": "premium",
                "status": "active",
                "currentPeriodEnd": NOW + timedelta(days=3),
            }
        },
        "grace": {
            "subscription": {
                "tier": "premium",
                "status": "past_due",
                "currentPeriodEnd": NOW - timedelta(days=1),
            }
        },
        "late": {
            "subscription": {
                "tier": "premium",
                "status": "past_due",
                "currentPeriodEnd": NOW - timedelta(days=4),
            }
        },
        "life": {"subscription": {"tier": "premium", "status": "canceled", "lifetime": True}},
        "free": {"subscription": {"tier": "free", "status": "active"}},
    }
    assert [m.uid for m in premium_members(users, NOW, 3)] == ["grace", "life", "p"]
    assert premium_members(users, NOW, 3)[1].qualified_by == "subscription=premium lifetime"


def test_the_csv_has_only_uid_locale_and_the_fact() -> None:
    out = to_csv([Member("u1", "de", "rolloutGroups=a|b"), Member("u2", "en", "x=1,2")])
    assert out == 'uid,locale,qualified_by\nu1,de,rolloutGroups=a|b\nu2,en,"x=1,2"\n'


def test_followup_and_all_active_need_since() -> None:
    with pytest.raises(comms.Usage, match="--since"):
        comms.audience(object(), "followup", None, NOW, 3)
