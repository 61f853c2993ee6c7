"""Who may do what, collection by collection (contract sections 1 and 5).

One class per collection. Each class has a ``MATRIX``: roles down, operations across, and the
expected answer in each cell; every cell is its own test case (``test_cell[owner-update-allow]``).

Roles (see conftest): ``anonymous`` has no token; ``other`` is bob, signed in, owning nothing
here; ``owner`` is alice; ``admin`` is root with the ``admin: true`` claim (and no data of
its own).

What "owner" means where a collection has no owner: the signed-in user whose uid appears in
the document path if it does (``external_data_usage/alice/...``), or in the document id
(``rate_limits/alice_enrich_...``); otherwise (metrics, audit, cache, config) just a signed-in
user, i.e. the same as "other". Those rows exist to prove that being signed in, or being the
user a record is about, grants nothing there.

Operations, all against the seeded data (conftest ``SEED``):
  get     read the class's ``doc``;
  list    read the whole ``collection`` with no filter, except where ``LIST_WHERE`` is set:
          then a ``runQuery`` with ``where field == value``, the query a client must send
          (rules check queries, they do not filter results);
  create  create ``CREATE_PATH`` (deleted first if seeded, so it is a real create);
  update  change the fields of ``UPDATE`` in ``doc`` (``updateMask``, doc must exist);
  delete  delete ``doc``.
"""

from __future__ import annotations

from typing import Any, ClassVar


class CollectionCase:
    """Shared cell runner; subclasses describe one collection and its expectations."""

    MATRIX: ClassVar[str]
    doc: ClassVar[str]
    collection: ClassVar[str]
    LIST_WHERE: ClassVar[tuple[str, Any] | None] = None
    CREATE_PATH: ClassVar[str]
    CREATE: ClassVar[dict[str, Any]] = {"note": "client write"}
    UPDATE: ClassVar[dict[str, Any]] = {"note": "client write"}

    def test_cell(self, db: Any, role: str, op: str, expected: str) -> None:
        """The answer for (role, op) on this collection is the one in MATRIX."""
        client = db.client(role)
        if op == "get":
            result = client.get(self.doc)
        elif op == "list":
            if self.LIST_WHERE is None:
                result = client.list(self.collection)
            else:
                result = client.query_equal(self.collection, *self.LIST_WHERE)
        elif op == "create":
            db.remove(self.CREATE_PATH)
            result = client.create(self.CREATE_PATH, self.CREATE)
            # Beyond the status code: a denied create left nothing behind.
            assert db.exists(self.CREATE_PATH) == (expected == "allow")
        elif op == "update":
            result = client.update(self.doc, self.UPDATE)
        elif op == "delete":
            result = client.delete(self.doc)
            assert db.exists(self.doc) == (expected == "deny")
        else:  # pragma: no cover - parse_matrix only yields known operations
            raise AssertionError(op)
        assert result.outcome == expected, f"{type(self).__name__}: {role} {op} {self.doc}"


class TestUsers(CollectionCase):
    """``users/{uid}``: the owner's profile; admins read any. Owners never delete (see rules)."""

    MATRIX = """
                get    list   create  update  delete
    anonymous   deny   deny   deny    deny    deny
    other       deny   deny   deny    deny    deny
    owner       allow  deny   allow   allow   deny
    admin       allow  allow  deny    deny    deny
    """
    doc = "users/alice"
    collection = "users"  # an unfiltered list would return other users' profiles
    CREATE_PATH = "users/alice"
    CREATE: ClassVar[dict[str, Any]] = {"displayName": "Alice"}
    UPDATE: ClassVar[dict[str, Any]] = {"displayName": "Alice Liddell"}


class TestCvs(CollectionCase):
    """``cvs/{cvId}``: the owner (``userId``) does everything with it; admins read."""

    MATRIX = """
                get    list   create  update  delete
    anonymous   deny   deny   deny    deny    deny
    other       deny   deny   deny    deny    deny
    owner       allow  allow  allow   allow   allow
    admin       allow  allow  deny    deny    deny
    """
    doc = "cvs/cv-alice"
    collection = "cvs"
    LIST_WHERE = ("userId", "alice")  # "alice's CVs", asked by each role
    CREATE_PATH = "cvs/cv-new"
    CREATE: ClassVar[dict[str, Any]] = {
        "userId": "alice",
        "title": "Second CV",
    }  # created for alice, by each role
    UPDATE: ClassVar[dict[str, Any]] = {"title": "Renamed CV"}


class TestCvExternalData(CollectionCase):
    """``cvs/{cvId}/externalData/*``: enrichment results, read by the CV owner only.

    Admins are not readers here: contract section 5 names the CV owner alone.
    """

    MATRIX = """
                get    list   create  update  delete
    anonymous   deny   deny   deny    deny    deny
    other       deny   deny   deny    deny    deny
    owner       allow  allow  deny    deny    deny
    admin       deny   deny   deny    deny    deny
    """
    doc = "cvs/cv-alice/externalData/latest"
    collection = "cvs/cv-alice/externalData"
    LIST_WHERE = ("userId", "alice")  # the result's own userId is checked too (reused CV ids)
    CREATE_PATH = "cvs/cv-alice/externalData/forged"


class TestExternalDataUsage(CollectionCase):
    """``external_data_usage/{uid}``: per-user totals; the user and admins read, nobody writes.

    The owner's unfiltered list is denied: the collection holds every user's totals.
    """

    MATRIX = """
                get    list   create  update  delete
    anonymous   deny   deny   deny    deny    deny
    other       deny   deny   deny    deny    deny
    owner       allow  deny   deny    deny    deny
    admin       allow  allow  deny    deny    deny
    """
    doc = "external_data_usage/alice"
    collection = "external_data_usage"
    CREATE_PATH = "external_data_usage/alice"
    UPDATE: ClassVar[dict[str, Any]] = {"totals": {"requests": 0}}


class TestExternalDataUsageEvents(CollectionCase):
    """``external_data_usage/{uid}/events/{id}``: the user and admins read; nobody writes."""

    MATRIX = """
                get    list   create  update  delete
    anonymous   deny   deny   deny    deny    deny
    other       deny   deny   deny    deny    deny
    owner       allow  allow  deny    deny    deny
    admin       allow  allow  deny    deny    deny
    """
    doc = "external_data_usage/alice/events/ev1"
    collection = "external_data_usage/alice/events"
    CREATE_PATH = "external_data_usage/alice/events/forged"
    CREATE: ClassVar[dict[str, Any]] = {"uid": "alice", "type": "upgrade_clicked"}
    UPDATE: ClassVar[dict[str, Any]] = {"type": "upgrade_clicked"}


class TestExternalDataUsageConversions(CollectionCase):
    """``external_data_usage/{uid}/conversions/{id}``: never taken from clients (section 2.2)."""

    MATRIX = """
                get    list   create  update  delete
    anonymous   deny   deny   deny    deny    deny
    other       deny   deny   deny    deny    deny
    owner       allow  allow  deny    deny    deny
    admin       allow  allow  deny    deny    deny
    """
    doc = "external_data_usage/alice/conversions/cv1"
    collection = "external_data_usage/alice/conversions"
    CREATE_PATH = "external_data_usage/alice/conversions/forged"
    CREATE: ClassVar[dict[str, Any]] = {"uid": "alice", "precededByFunnel": True}
    UPDATE: ClassVar[dict[str, Any]] = {"precededByFunnel": False}


class TestRateLimits(CollectionCase):
    """``rate_limits/*``: nobody, not even the user the counter is about ("owner" = alice)."""

    MATRIX = """
                get    list   create  update  delete
    anonymous   deny   deny   deny    deny    deny
    other       deny   deny   deny    deny    deny
    owner       deny   deny   deny    deny    deny
    admin       deny   deny   deny    deny    deny
    """
    doc = "rate_limits/alice_enrich_2026-11-26T04:00"
    collection = "rate_limits"
    CREATE_PATH = "rate_limits/alice_enrich_2026-11-26T05:00"
    CREATE: ClassVar[dict[str, Any]] = {"count": 0}
    UPDATE: ClassVar[dict[str, Any]] = {"count": 0}


class TestExternalDataCache(CollectionCase):
    """``external_data_cache/*``: nobody ("owner" = any signed-in user; entries have no owner)."""

    MATRIX = """
                get    list   create  update  delete
    anonymous   deny   deny   deny    deny    deny
    other       deny   deny   deny    deny    deny
    owner       deny   deny   deny    deny    deny
    admin       deny   deny   deny    deny    deny
    """
    doc = "external_data_cache/github_0123abcd"
    collection = "external_data_cache"
    CREATE_PATH = "external_data_cache/github_poisoned"
    CREATE: ClassVar[dict[str, Any]] = {
        "source": "github",
        "payload": {"login": "evil"},
    }
    UPDATE: ClassVar[dict[str, Any]] = {"payload": {"login": "evil"}}


class TestExternalDataMetrics(CollectionCase):
    """``external_data_metrics/*``: admins read ("owner" = any signed-in user)."""

    MATRIX = """
                get    list   create  update  delete
    anonymous   deny   deny   deny    deny    deny
    other       deny   deny   deny    deny    deny
    owner       deny   deny   deny    deny    deny
    admin       allow  allow  deny    deny    deny
    """
    doc = "external_data_metrics/h_2026-11-26T04_0"
    collection = "external_data_metrics"
    CREATE_PATH = "external_data_metrics/h_2026-11-26T04_1"
    CREATE: ClassVar[dict[str, Any]] = {"granularity": "h", "c": {"conversions": 1000}}
    UPDATE: ClassVar[dict[str, Any]] = {"c": {"conversions": 1000}}


class TestExternalDataSecurityAudit(CollectionCase):
    """``external_data_security_audit/*``: admins read ("owner" = alice, the audited user)."""

    MATRIX = """
                get    list   create  update  delete
    anonymous   deny   deny   deny    deny    deny
    other       deny   deny   deny    deny    deny
    owner       deny   deny   deny    deny    deny
    admin       allow  allow  deny    deny    deny
    """
    doc = "external_data_security_audit/audit1"
    collection = "external_data_security_audit"
    CREATE_PATH = "external_data_security_audit/forged"
    CREATE: ClassVar[dict[str, Any]] = {"type": "access_granted", "uid": "alice"}
    UPDATE: ClassVar[dict[str, Any]] = {"reason": "erased"}


class TestConfig(CollectionCase):
    """``config/*`` (the rollout config): admins read; changes go through the CLI / functions."""

    MATRIX = """
                get    list   create  update  delete
    anonymous   deny   deny   deny    deny    deny
    other       deny   deny   deny    deny    deny
    owner       deny   deny   deny    deny    deny
    admin       allow  allow  deny    deny    deny
    """
    doc = "config/externalDataRollout"
    collection = "config"
    CREATE_PATH = "config/otherFeature"
    CREATE: ClassVar[dict[str, Any]] = {"phase": "full"}
    UPDATE: ClassVar[dict[str, Any]] = {"phase": "off"}


class TestConfigHistory(CollectionCase):
    """``config/externalDataRollout/history/*``: admins read; nobody rewrites history."""

    MATRIX = """
                get    list   create  update  delete
    anonymous   deny   deny   deny    deny    deny
    other       deny   deny   deny    deny    deny
    owner       deny   deny   deny    deny    deny
    admin       allow  allow  deny    deny    deny
    """
    doc = "config/externalDataRollout/history/h1"
    collection = "config/externalDataRollout/history"
    CREATE_PATH = "config/externalDataRollout/history/forged"
    CREATE: ClassVar[dict[str, Any]] = {"action": "set", "by": "someone"}
    UPDATE: ClassVar[dict[str, Any]] = {"by": "someone else"}


class TestAnythingElse(CollectionCase):
    """Any collection the rules do not name is closed to every client."""

    MATRIX = """
                get    list   create  update  delete
    anonymous   deny   deny   deny    deny    deny
    other       deny   deny   deny    deny    deny
    owner       deny   deny   deny    deny    deny
    admin       deny   deny   deny    deny    deny
    """
    doc = "unknown_collection/doc1"
    collection = "unknown_collection"
    CREATE_PATH = "unknown_collection/doc2"


def test_every_collection_of_the_contract_has_a_matrix() -> None:
    """Contract section 5 (plus users and cvs) is fully covered by the classes above."""
    covered = {cls.collection for cls in CollectionCase.__subclasses__()}
    assert covered >= {
        "users",
        "cvs",
        "cvs/cv-alice/externalData",
        "external_data_usage",
        "external_data_usage/alice/events",
        "rate_limits",
        "external_data_cache",
        "external_data_metrics",
        "external_data_security_audit",
        "config",
        "config/externalDataRollout/history",
    }
