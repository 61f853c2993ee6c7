"""The one storage protocol the core needs, with write values that both stores understand."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol


@dataclass(frozen=True)
class Inc:
    """An atomic increment of a numeric field (``firestore.Increment`` in Firestore)."""

    by: int | float = 1


@dataclass(frozen=True)
class Write:
    """One document write in a batch.

    ``merge=True`` deep-merges maps and applies ``Inc`` values; ``merge=False`` replaces the doc.
    """

    path: str
    data: Mapping[str, Any] = field(default_factory=dict)
    merge: bool = True


def document_size(path: str, data: Mapping[str, Any]) -> int:
    """Bytes of a document as Firestore counts them against its 1 MiB limit: its name (each
    collection and document id's UTF-8 bytes plus 1, and 16), its fields (each name's bytes plus
    1, and its value's size) and 32."""
    name = sum(_text_size(part) for part in path.split("/") if part) + 16
    return name + _fields_size(data) + 32


def _text_size(text: str) -> int:
    return len(text.encode("utf-8", "surrogatepass")) + 1


def _fields_size(data: Mapping[Any, Any]) -> int:
    return sum(_text_size(str(k)) + _value_size(v) for k, v in data.items())


def _value_size(value: Any) -> int:
    """A field value's size: strings their UTF-8 bytes plus 1, numbers, timestamps and
    increments 8, booleans and null 1, maps and arrays the sum of what they hold."""
    if isinstance(value, str):
        return _text_size(value)
    if value is None or isinstance(value, bool):
        return 1
    if isinstance(value, int | float | datetime | Inc):
        return 8
    if isinstance(value, bytes):
        return len(value)
    if isinstance(value, Mapping):
        return _fields_size(value)
    if isinstance(value, list | tuple):
        return sum(_value_size(v) for v in value)
    return _text_size(str(value))


Fields = Mapping[str, Sequence[str]]
"""Documents read for some of their fields only: path → the top-level field names wanted. The
gate reads a client-written document (a user's profile, a CV) for the few fields it decides on:
the rest, up to a megabyte a client may put there, is neither sent nor decoded."""


Filter = tuple[str, str, Any]
"""(field path, operator, value); operators ``==``, ``<``, ``<=``, ``>``, ``>=``, ``in``,
``array_contains`` (a list field holding the value)."""


def doc_version(doc: Mapping[str, Any] | None) -> int:
    """A compare-and-set document's ``version`` as every reader takes it: an integer, else 0
    (missing, or corrupted to text or a float). The stores compare against this, the config
    parser reads it, so a corrupted version can be written over instead of refusing every
    change, the kill switch included, as "someone else changed it"."""
    version = (doc or {}).get("version", 0)
    return version if isinstance(version, int) and not isinstance(version, bool) else 0


class DocumentStore(Protocol):
    """Document reads and writes; every backend failure raises ``gating.errors.StoreError``."""

    def get_many(
        self, paths: Sequence[str], fields: Fields | None = None
    ) -> dict[str, dict[str, Any] | None]:
        """Read several documents in one round trip; missing ones map to ``None``. A path
        ``fields`` names is read for those top-level fields only (a document that has none of
        them reads as ``{}``, a missing one as ``None``); any other is read whole."""
        ...

    def start_get_many(
        self, paths: Sequence[str], deadline_s: float | None = None, fields: Fields | None = None
    ) -> Callable[[], dict[str, dict[str, Any] | None]]:
        """``get_many`` in two halves, so the read is in flight while the caller makes another
        round trip: the request is sent now (with no thread of its own: the calling thread
        collects it, ``stores.inflight``), and the returned function waits for the answer and
        returns what ``get_many`` would, or raises ``StoreError`` (no retry; ``deadline_s``, if
        shorter than the store's, bounds the wait from now). A store that cannot send without
        waiting reads when the function is called."""
        ...

    def increment(self, path: str, field_name: str, by: int, extra: Mapping[str, Any]) -> int:
        """Atomically add ``by`` to a counter and return its new value, in one round trip.

        ``extra`` plain fields are merged into the same document in the same write.
        """
        ...

    def start_increment(
        self, path: str, field_name: str, by: int, extra: Mapping[str, Any]
    ) -> Callable[[], int]:
        """``increment`` in two halves, as ``start_get_many`` is ``get_many``'s: sent now (the
        calling thread may work meanwhile), and the returned function waits for the new value
        or raises ``StoreError``, retried as ``increment`` is. It must be called: an increment
        never collected may or may not have applied. A store that cannot send without waiting
        increments when the function is called."""
        ...

    def commit(self, writes: Sequence[Write]) -> None:
        """Apply the writes atomically, in one round trip."""
        ...

    def query(
        self,
        collection: str,
        filters: Sequence[Filter] = (),
        *,
        group: bool = False,
        order_by: str | None = None,
        descending: bool = False,
        limit: int | None = None,
    ) -> list[tuple[str, dict[str, Any]]]:
        """Documents of a collection (or collection group) matching all filters, as (path, data)."""
        ...

    def compare_and_set(
        self, path: str, expected_version: int, data: Mapping[str, Any], extra: Sequence[Write]
    ) -> None:
        """Replace ``path`` with ``data`` only if its ``version`` is still ``expected_version``
        (0 for a missing doc), together with ``extra`` writes, atomically.

        Raises ``gating.errors.ConfigConflict`` when someone else changed it first.
        """
        ...

    def replace_if_unchanged(
        self,
        path: str,
        expected: Mapping[str, Any] | None,
        data: Mapping[str, Any],
        extra: Sequence[Write],
    ) -> None:
        """Replace ``path`` with ``data`` only if the document still holds exactly ``expected``
        (as ``get_many`` read it; None: it must be missing), together with ``extra`` writes,
        atomically: a read-modify-write of a document that writers without a ``version`` (a
        billing integration) change too.

        Raises ``gating.errors.ConfigConflict`` when the document changed since it was read
        (``Contended`` when a transaction was aborted though it had not).
        """
        ...

    def delete_all(self) -> None:
        """Remove everything (tests and the demo only)."""
        ...

    def delete_many(self, paths: Sequence[str]) -> None:
        """Delete the documents at ``paths``; a missing one is no error. Sub-collections are
        not deleted with their parent (name their documents too). Firestore commits in batches
        of at most 500, so a long list is not one atomic write."""
        ...

    def hurried(self, deadline_s: float) -> DocumentStore:
        """The same store answering within ``deadline_s`` without retries (for records written
        just after the store failed: a request thread must not wait a full deadline twice)."""
        ...

    def list_paths(self, collection: str, id_prefix: str = "") -> list[str]:
        """Paths of the documents directly in ``collection`` whose id starts with
        ``id_prefix`` (ids only: no document data is read)."""
        ...


def read_one(store: DocumentStore, path: str, names: Sequence[str]) -> dict[str, Any] | None:
    """One document read for the top-level fields ``names`` only (``get_many``'s ``fields``);
    ``None`` when it does not exist."""
    return store.get_many([path], {path: names})[path]
