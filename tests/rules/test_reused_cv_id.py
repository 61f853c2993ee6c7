"""``cvs/{cvId}/externalData``: a CV id reused by someone else does not hand over the earlier
owner's results (contract 5; issue 8, "Why" 8).

Before: the rule checked only ``get(cvs/{cvId}).data.userId == request.auth.uid``, so alice
deleting her CV (its ``externalData`` stays until the deletion trigger runs) and bob creating a
CV under the same id let bob read alice's enrichment. Now the stored result's own ``userId`` must
be the caller as well.
"""

from __future__ import annotations

from typing import Any

RESULT = "cvs/cv-alice/externalData/latest"


class TestReusedCvId:
    """Owner A enriches, deletes the CV, user B re-creates the same ``cvId``."""

    def test_the_new_owner_cannot_read_the_earlier_owners_result(
        self, db: Any, owner: Any, other: Any
    ) -> None:
        """alice's result, under a CV id bob now owns, stays closed to bob."""
        db.seed({RESULT: {"userId": "alice", "status": "success", "skills": ["python"]}})
        assert owner.get(RESULT).allowed  # alice reads her own result while she owns the CV
        assert owner.delete("cvs/cv-alice").allowed
        assert other.create("cvs/cv-alice", {"userId": "bob", "title": "Bob's CV"}).allowed
        assert db.exists(RESULT)  # the trigger has not run in this emulator: the worst case
        assert other.get(RESULT).denied
        assert other.query_equal("cvs/cv-alice/externalData", "userId", "bob").allowed
        assert other.query_equal("cvs/cv-alice/externalData", "userId", "alice").denied
        assert owner.get(RESULT).denied  # and alice no longer owns the CV either

    def test_the_new_owner_reads_a_result_made_for_them(self, db: Any, other: Any) -> None:
        """Once bob's own enrichment replaced the result (its ``userId`` is bob's), bob reads it."""
        db.remove("cvs/cv-alice")
        db.seed(
            {
                "cvs/cv-alice": {"userId": "bob", "title": "Bob's CV"},
                RESULT: {"userId": "bob", "status": "success"},
            }
        )
        assert other.get(RESULT).allowed

    def test_a_result_without_a_user_id_is_readable_by_nobody(self, db: Any, owner: Any) -> None:
        """A result that does not say whose it is is not anyone's."""
        db.seed({RESULT: {"status": "success"}})
        assert owner.get(RESULT).denied

    def test_an_unfiltered_list_is_denied_a_filtered_one_allowed(self, db: Any, owner: Any) -> None:
        """Rules check queries: listing results needs ``where userId == uid``."""
        assert owner.list("cvs/cv-alice/externalData").denied
        assert owner.query_equal("cvs/cv-alice/externalData", "userId", "alice").allowed
