"""Contract rows the access matrix leaves to one side (a rules audit listed them):

- section 1, admin is the custom claim ``admin == true``: ``"true"`` or ``1`` is no admin;
- sections 1 and 5, only the server writes ``subscription``, ``rolloutGroups`` and ``role``:
  not by a nested field path either (``updateMask.fieldPaths=subscription.tier``);
- section 5, who reads what: a collection-group query (every ``events``, ``conversions`` or
  ``externalData`` collection at once) is refused, even filtered to the caller's own uid;
- section 5, "no client writes to any of these": the server's other collections (stored
  idempotent answers, cohort seats, breaker probes) are closed to every client, admins included.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.rules.conftest import encode_fields, encode_value

ADMIN_ONLY = ("external_data_metrics/h_2026-11-26T04_0", "config/externalDataRollout")


@pytest.mark.parametrize("claim", ["true", 1, "yes", [True], {"value": True}])
def test_an_admin_claim_that_is_not_true_is_no_admin(db: Any, claim: Any) -> None:
    db.seed({"config/externalDataRollout": {"phase": "beta", "version": 1}})
    almost = db.client_for("root", claims={"admin": claim})
    for path in ADMIN_ONLY:
        assert almost.get(path).denied, (claim, path)
    assert almost.get("external_data_usage/bob").denied
    real = db.client_for("root", admin=True)
    assert all(real.get(path).allowed for path in ADMIN_ONLY)  # control


@pytest.mark.parametrize(
    ("mask", "data"),
    [
        (["subscription.tier"], {"subscription": {"tier": "premium"}}),
        (["subscription.status"], {"subscription": {"status": "trialing"}}),
        (["subscription.lifetime"], {"subscription": {"lifetime": True}}),
        (["subscription.tier", "displayName"], {"subscription": {"tier": "premium"}}),
    ],
)
def test_a_nested_field_path_cannot_change_the_subscription(
    db: Any, owner: Any, mask: list[str], data: dict[str, Any]
) -> None:
    assert owner.update("users/alice", {**data, "displayName": "A"}, mask=mask).denied
    kept = encode_value({"tier": "free", "status": "active"})
    assert db.read("users/alice")["subscription"] == kept


def test_the_same_subscription_sent_back_is_no_change(owner: Any) -> None:
    # Control for the test above: the owner edits their profile, subscription untouched.
    assert owner.update("users/alice", {"displayName": "Alice L."}).allowed


@pytest.mark.parametrize(
    ("group", "field", "value"),
    [
        ("events", "uid", "alice"),
        ("conversions", "uid", "alice"),
        ("externalData", "userId", "alice"),
    ],
)
def test_a_collection_group_query_is_refused_even_for_ones_own_documents(
    db: Any, owner: Any, other: Any, group: str, field: str, value: str
) -> None:
    assert owner.query_group(group, field, value).denied
    assert other.query_group(group, field, value).denied
    parent = "cvs/cv-alice" if group == "externalData" else "external_data_usage/alice"
    assert owner.query_equal(f"{parent}/{group}", field, value).allowed  # control


SERVER_ONLY: dict[str, dict[str, Any]] = {
    "external_data_idempotency/alice_retry-key-0001": {
        "state": "done",
        "answer": '{"requestId":"r1"}',
        "requestHash": "h",
        "version": 2,
    },
    "external_data_cohort/beta_start": {"taken": 1},
    "external_data_cohort/beta_start/members/alice": {"calls": 1, "seat": True},
    "external_data_breaker_probes/github_20261126T040000": {"calls": 1},
    "users/alice/private/x": {"note": "a subcollection no rule names"},
    "cvs/cv-alice/notes/x": {"note": "a subcollection other than externalData"},
}


@pytest.mark.parametrize("path", sorted(SERVER_ONLY))
@pytest.mark.parametrize("role", ["anonymous", "other", "owner", "admin"])
def test_the_servers_other_collections_are_closed_to_every_client(
    db: Any, role: str, path: str, request: pytest.FixtureRequest
) -> None:
    db.seed({path: SERVER_ONLY[path]})
    client = request.getfixturevalue(role)
    assert client.get(path).denied
    collection = path.rsplit("/", 1)[0]
    assert client.list(collection).denied
    assert client.update(path, {"state": "released"}).denied
    assert client.delete(path).denied
    assert db.read(path) == encode_fields(SERVER_ONLY[path])
