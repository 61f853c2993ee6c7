"""Field-level rules on the two collections clients write (contract sections 1 and 5).

Only the server writes ``subscription``, ``rolloutGroups`` and ``role``; a CV always keeps the
``userId`` it was created with, which is its creator's uid; and both documents have bounded
shapes (key counts, string sizes, types), so a client cannot park arbitrary data in them.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

SERVER_OWNED = {
    "subscription": {"tier": "premium", "status": "active", "lifetime": True},
    "rolloutGroups": ["beta-testers", "internal"],
    "role": "admin",
}
"""Values a client would like to give itself; each differs from what SEED gives alice."""


class TestUsersFields:
    """``users/{uid}``: what the owner may put in their own profile."""

    @pytest.mark.parametrize("key", sorted(SERVER_OWNED))
    def test_owner_cannot_create_profile_with_server_owned_key(
        self, db: Any, owner: Any, key: str
    ) -> None:
        """A new profile may not carry subscription / rolloutGroups / role at all."""
        db.remove("users/alice")
        result = owner.create("users/alice", {"displayName": "Alice", key: SERVER_OWNED[key]})
        assert result.denied
        assert not db.exists("users/alice")

    def test_owner_can_create_plain_profile(self, db: Any, owner: Any) -> None:
        """Control for the test above: the same create without the key goes through."""
        db.remove("users/alice")
        assert owner.create("users/alice", {"displayName": "Alice", "locale": "en-GB"}).allowed

    @pytest.mark.parametrize("key", sorted(SERVER_OWNED))
    def test_owner_cannot_change_server_owned_key(self, owner: Any, key: str) -> None:
        """Seeded alice has all three keys: changing any of them is refused."""
        assert owner.update("users/alice", {key: SERVER_OWNED[key]}).denied

    @pytest.mark.parametrize("key", sorted(SERVER_OWNED))
    def test_owner_cannot_add_server_owned_key(self, db: Any, owner: Any, key: str) -> None:
        """Bob's doc has none of them: adding one is refused too."""
        bob = db.client_for("bob")
        assert bob.update("users/bob", {key: SERVER_OWNED[key]}).denied

    @pytest.mark.parametrize("key", sorted(SERVER_OWNED))
    def test_owner_cannot_remove_server_owned_key(self, owner: Any, key: str) -> None:
        """Deleting the field (named in the mask, absent from the data) is a change as well."""
        assert owner.update("users/alice", {}, mask=[key]).denied

    def test_owner_cannot_smuggle_server_key_in_full_overwrite(self, owner: Any) -> None:
        """A whole-document write keeping groups and role but upgrading the plan is refused."""
        result = owner.update(
            "users/alice",
            {
                "displayName": "Alice",
                "rolloutGroups": ["beta-testers"],
                "role": "user",
                "subscription": SERVER_OWNED["subscription"],
            },
        )
        assert result.denied

    def test_owner_may_resend_server_fields_unchanged(self, owner: Any) -> None:
        """Writing back the same values (e.g. a client saving the whole doc) is no change."""
        result = owner.update(
            "users/alice",
            {
                "displayName": "Alice",
                "rolloutGroups": ["beta-testers"],
                "role": "user",
                "subscription": {"tier": "free", "status": "active"},
            },
        )
        assert result.allowed

    def test_owner_edits_profile_and_server_fields_survive(self, db: Any, owner: Any) -> None:
        """Editing a profile field next to server-owned ones is fine and leaves them intact."""
        assert owner.update("users/alice", {"displayName": "Alice L."}).allowed
        fields = db.read("users/alice")
        assert fields["displayName"] == {"stringValue": "Alice L."}
        assert fields["role"] == {"stringValue": "user"}
        assert fields["subscription"]["mapValue"]["fields"]["tier"] == {"stringValue": "free"}

    def test_admin_claim_cannot_write_subscription_either(self, admin: Any) -> None:
        """Admins read profiles; granting premium is the server's job, not a client's."""
        assert admin.update("users/alice", {"subscription": SERVER_OWNED["subscription"]}).denied

    def test_role_field_does_not_make_an_admin(self, db: Any) -> None:
        """root's profile says role "admin", but without the custom claim root is a plain user."""
        root_without_claim = db.client_for("root", admin=False)
        assert root_without_claim.get("users/alice").denied
        assert root_without_claim.get("config/externalDataRollout").denied

    @pytest.mark.parametrize(
        ("size", "expected"),
        [(200, "allow"), (201, "deny")],
        ids=["200-chars", "201-chars"],
    )
    def test_display_name_is_at_most_200_chars(
        self, db: Any, owner: Any, size: int, expected: str
    ) -> None:
        """displayName over 200 characters is refused, on create and on update."""
        assert owner.update("users/alice", {"displayName": "x" * size}).outcome == expected
        db.remove("users/alice")
        assert owner.create("users/alice", {"displayName": "y" * size}).outcome == expected

    @pytest.mark.parametrize(
        ("field", "value"),
        [
            ("displayName", 42),
            ("displayName", ["Alice"]),
            ("email", "a" * 321),
            ("photoURL", "https://x.test/" + "p" * 2048),
            ("createdAt", "yesterday"),
        ],
        ids=[
            "displayName-int",
            "displayName-list",
            "email-too-long",
            "photoURL-too-long",
            "createdAt-not-timestamp",
        ],
    )
    def test_profile_fields_have_types_and_sizes(self, owner: Any, field: str, value: Any) -> None:
        """Known profile fields must have the right type and size."""
        assert owner.update("users/alice", {field: value}).denied

    def test_known_profile_fields_may_be_null(self, db: Any, owner: Any) -> None:
        """A profile saved from the Auth user (``photoURL: user.photoURL`` is null for an
        account without a photo) is accepted: null is an unknown value, not a wrong type."""
        nulls = ["displayName", "email", "photoURL", "locale", "headline", "createdAt", "updatedAt"]
        db.remove("users/alice")
        assert owner.create("users/alice", dict.fromkeys(nulls)).allowed
        assert owner.update("users/alice", {"displayName": "Alice", "photoURL": None}).allowed

    def test_profile_has_at_most_40_keys(self, db: Any, owner: Any) -> None:
        """A profile is not a general-purpose store: 40 keys at most (server keys included)."""
        db.remove("users/alice")
        assert owner.create("users/alice", {f"k{i}": i for i in range(40)}).allowed
        db.remove("users/alice")
        assert owner.create("users/alice", {f"k{i}": i for i in range(41)}).denied

    def test_owner_cannot_delete_own_profile(self, db: Any, owner: Any) -> None:
        """Account deletion is a server job (it would erase server-owned fields)."""
        assert owner.delete("users/alice").denied
        assert db.exists("users/alice")


class TestCvsFields:
    """``cvs/{cvId}``: the owner's CVs keep their owner and a bounded shape."""

    def test_owner_cannot_create_cv_for_another_user(self, db: Any, owner: Any) -> None:
        """userId must be the creator's uid."""
        assert owner.create("cvs/cv-for-bob", {"userId": "bob", "title": "Yours"}).denied
        assert not db.exists("cvs/cv-for-bob")

    @pytest.mark.parametrize(
        "data",
        [{"title": "No owner"}, {"userId": 7}, {"userId": ""}],
        ids=["userId-missing", "userId-not-string", "userId-empty"],
    )
    def test_cv_needs_string_user_id(self, owner: Any, data: dict[str, Any]) -> None:
        """A CV without a (string) userId is refused."""
        assert owner.create("cvs/cv-bad", data).denied

    def test_known_cv_fields_may_be_null(self, db: Any, owner: Any) -> None:
        """Null for a known optional field is an unknown value, accepted like an absent one."""
        keys = ["title", "name", "summary", "skills", "experience", "education", "createdAt"]
        assert owner.create("cvs/cv-nulls", {"userId": "alice", **dict.fromkeys(keys)}).allowed
        assert db.exists("cvs/cv-nulls")

    def test_owner_cannot_change_user_id(self, owner: Any) -> None:
        """Handing a CV to someone else is refused."""
        assert owner.update("cvs/cv-alice", {"userId": "bob"}).denied

    def test_owner_cannot_remove_user_id(self, owner: Any) -> None:
        """Deleting the userId field would orphan the CV."""
        assert owner.update("cvs/cv-alice", {}, mask=["userId"]).denied

    def test_other_cannot_take_over_a_cv(self, other: Any) -> None:
        """bob setting userId to himself on alice's CV is refused."""
        assert other.update("cvs/cv-alice", {"userId": "bob"}).denied

    def test_owner_can_edit_cv_keeping_user_id(self, db: Any, owner: Any) -> None:
        """Control: a whole-document write that keeps userId goes through."""
        data = {"userId": "alice", "title": "New", "updatedAt": dt.datetime.now(dt.UTC)}
        assert owner.update("cvs/cv-alice", data, mask=["userId", "title", "updatedAt"]).allowed
        assert db.read("cvs/cv-alice")["title"] == {"stringValue": "New"}

    def test_owner_list_must_be_filtered_by_user_id(self, owner: Any, other: Any) -> None:
        """An unfiltered list of cvs is refused, even for a user who owns some CVs."""
        assert owner.list("cvs").denied
        assert owner.query_equal("cvs", "userId", "alice").allowed
        assert other.query_equal("cvs", "userId", "bob").allowed

    @pytest.mark.parametrize(
        ("size", "expected"),
        [(200, "allow"), (201, "deny")],
        ids=["200-chars", "201-chars"],
    )
    def test_title_is_at_most_200_chars(self, owner: Any, size: int, expected: str) -> None:
        """A CV title over 200 characters is refused, on create and on update."""
        assert (
            owner.create("cvs/cv-t", {"userId": "alice", "title": "t" * size}).outcome == expected
        )
        assert owner.update("cvs/cv-alice", {"title": "u" * size}).outcome == expected

    @pytest.mark.parametrize(
        ("field", "value"),
        [
            ("summary", "s" * 10001),
            ("skills", ["python"] * 201),
            ("updatedAt", "2026-11-26"),
            ("name", {"first": "Alice"}),
        ],
        ids=[
            "summary-too-long",
            "skills-too-many",
            "updatedAt-not-timestamp",
            "name-not-string",
        ],
    )
    def test_cv_fields_have_types_and_sizes(self, owner: Any, field: str, value: Any) -> None:
        """Known CV fields must have the right type and size."""
        assert owner.update("cvs/cv-alice", {field: value}).denied

    def test_cv_has_at_most_50_keys(self, owner: Any) -> None:
        """50 keys at most, userId included."""
        fields = {f"k{i}": i for i in range(49)}
        assert owner.create("cvs/cv-50", {"userId": "alice", **fields}).allowed
        assert owner.create("cvs/cv-51", {"userId": "alice", "k49": 49, **fields}).denied


class TestCvExternalDataFields:
    """``cvs/{cvId}/externalData``: readable through the parent CV's owner only."""

    def test_results_of_a_missing_cv_are_not_readable(self, db: Any, owner: Any) -> None:
        """With no parent CV there is no owner, so nobody reads (get() on the parent is null)."""
        db.seed({"cvs/cv-gone/externalData/latest": {"userId": "alice", "status": "success"}})
        assert owner.get("cvs/cv-gone/externalData/latest").denied

    def test_results_follow_the_cv_owner(self, db: Any, owner: Any, other: Any) -> None:
        """Results of bob's CV are bob's, not alice's."""
        db.seed({"cvs/cv-bob/externalData/latest": {"userId": "bob", "status": "success"}})
        assert owner.get("cvs/cv-bob/externalData/latest").denied
        assert other.get("cvs/cv-bob/externalData/latest").allowed
