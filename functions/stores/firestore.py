"""The Firestore implementation of ``DocumentStore`` (emulator-aware).

Every call has a short deadline: a store that does not answer becomes ``StoreError`` (and so
``unavailable`` for the caller) within seconds, instead of hanging the function.
"""

from __future__ import annotations

import copy
import functools
import os
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, cast

import grpc  # type: ignore[import-untyped]
from google.api_core import exceptions as gexc
from google.api_core import gapic_v1
from google.api_core import retry as retries
from google.cloud import firestore
from google.cloud.firestore_v1 import _helpers
from google.cloud.firestore_v1.base_query import FieldFilter
from google.cloud.firestore_v1.field_path import FieldPath
from google.cloud.firestore_v1.types import document as document_types
from google.cloud.firestore_v1.types import firestore as firestore_types

from stores import inflight
from stores.base import Fields, Filter, Inc, Write, doc_version
from stores.errors import ConfigConflict, Contended, StoreError, StoreUnanswered
from stores.firestore_writes import Unsupported, write_pb
from stores.group_commit import GroupCommit

_BATCH_LIMIT = 500
"""Firestore's most writes in one Commit."""
_TRANSIENT = retries.if_exception_type(
    gexc.ServiceUnavailable, gexc.DeadlineExceeded, gexc.InternalServerError, gexc.Aborted
)
_REFUSED = (
    gexc.InvalidArgument,
    gexc.FailedPrecondition,
    gexc.PermissionDenied,
    gexc.NotFound,
    gexc.AlreadyExists,
    gexc.ResourceExhausted,
    gexc.Aborted,
    gexc.Unauthenticated,
    ValueError,
)
"""Failures after which nothing was applied: the backend refused the request, or the client
could not encode it. After any other (a deadline, an unavailable or failing backend, a broken
connection) a write may or may not have landed."""


def _error(what: str, exc: Exception) -> StoreError:
    """The ``StoreError`` for a failed call: ``StoreUnanswered`` unless nothing was applied."""
    message = f"{what} failed: {type(exc).__name__}"
    return StoreError(message) if isinstance(exc, _REFUSED) else StoreUnanswered(message)


def _no_database(exc: grpc.RpcError) -> bool:
    """A NOT_FOUND that is about the database (a wrong database id, a project without one),
    not the document: an error, never an absent document."""
    details = (exc.details() or "").lower()
    return "database" in details and "does not exist" in details


def make_client(project: str | None = None) -> firestore.Client:
    """A Firestore client: anonymous credentials on the emulator, ADC otherwise."""
    project = project or os.environ.get("GCLOUD_PROJECT") or os.environ.get("GOOGLE_CLOUD_PROJECT")
    if os.environ.get("FIRESTORE_EMULATOR_HOST"):
        from google.auth.credentials import AnonymousCredentials

        return firestore.Client(
            project=project or "demo-cv-enrichment", credentials=AnonymousCredentials()
        )
    return firestore.Client(project=project)


_API = "/google.firestore.v1.Firestore/"
COMMITS_IN_FLIGHT = 1
"""A store's batching slots (``stores.group_commit``): Commits asked for while this many are on
the wire wait and go together. 1 measured best for bursts: 2 sent 1.10 Commits per call against
0.74-0.77, with more emulator CPU (docs/benchmarks/load-overview.md)."""
_COMMIT_REQUEST = firestore_types.CommitRequest.pb()
_COMMIT_RESPONSE = firestore_types.CommitResponse.pb()
_GET_REQUEST = firestore_types.GetDocumentRequest.pb()
_DOCUMENT = document_types.Document.pb()


def _field_paths(names: Sequence[str]) -> list[str]:
    """Top-level field names as a mask's field paths (quoted where a name needs it). A mask
    naming no field would read the whole document: refused."""
    if not names:
        raise ValueError("a read for some fields names none")
    return [FieldPath(name).to_api_repr() for name in names]


class _Rpc:
    """Commit and GetDocument on the client's own gRPC channel, raw protobuf in and out,
    with the metadata the client sends (its resource prefix and the emulator's token, and the
    routing header naming the database). Built on first use (the client opens its channel
    lazily) and shared by a store's copies; building it twice in a race is harmless."""

    def __init__(self, client: firestore.Client) -> None:
        self._client = client
        self.database: str = client._database_string  # noqa: SLF001

    @functools.cached_property
    def _channel(self) -> grpc.Channel:
        return self._client._firestore_api.transport.grpc_channel  # noqa: SLF001

    @functools.cached_property
    def commit(self) -> Any:
        """The Commit multicallable."""
        return self._channel.unary_unary(
            _API + "Commit",
            request_serializer=_COMMIT_REQUEST.SerializeToString,
            response_deserializer=_COMMIT_RESPONSE.FromString,
        )

    @functools.cached_property
    def get(self) -> Any:
        """The GetDocument multicallable. Unary, so a call is served by the thread that makes
        it (``stores.inflight``): a streaming call (BatchGetDocuments) is served by a thread
        gRPC starts whenever none of the channel's streams is open, about once per call at
        100 rps, and starting it waited for the GIL (7.6% of the request threads' wall-clock
        samples at 100 rps)."""
        return self._channel.unary_unary(
            _API + "GetDocument",
            request_serializer=_GET_REQUEST.SerializeToString,
            response_deserializer=_DOCUMENT.FromString,
        )

    @functools.cached_property
    def metadata(self) -> tuple[tuple[str, str], ...]:
        """What the client sends with each call."""
        return (
            *self._client._rpc_metadata,  # noqa: SLF001
            gapic_v1.routing_header.to_grpc_metadata((("database", self.database),)),  # type: ignore[no-untyped-call]
        )


def _to_firestore(value: Any) -> Any:
    if isinstance(value, Inc):
        return firestore.Increment(value.by)
    if isinstance(value, Mapping):
        return {k: _to_firestore(v) for k, v in value.items()}
    return value


class FirestoreStore:
    """``DocumentStore`` over a ``google.cloud.firestore.Client``."""

    def __init__(
        self,
        client: firestore.Client,
        *,
        deadline_s: float = 5.0,
        retry_s: float = 3.0,
        commits_in_flight: int = COMMITS_IN_FLIGHT,
    ) -> None:
        self.client = client
        # Every document's full resource name starts with this (what ``client.document(p)``
        # computes per call).
        self._rpc = _Rpc(client)
        self._documents = f"{self._rpc.database}/documents/"
        self._timeout = deadline_s
        self._retry: retries.Retry | None = retries.Retry(
            predicate=_TRANSIENT, initial=0.05, maximum=0.5, multiplier=2.0, timeout=retry_s
        )
        # An increment is not idempotent: retrying after a timeout could apply it twice (a unit
        # lost, or a refund given twice and an extra call admitted). Only ABORTED, which
        # guarantees nothing was applied, is retried.
        self._retry_once_applied: retries.Retry | None = retries.Retry(
            predicate=retries.if_exception_type(gexc.Aborted),
            initial=0.05,
            maximum=0.5,
            multiplier=2.0,
            timeout=retry_s,
        )
        # Commits of concurrent calls sent together (``stores.group_commit``); 0: each alone.
        self.group: GroupCommit | None = (
            GroupCommit(self._send_commit, self._new_commit, commits_in_flight)
            if commits_in_flight
            else None
        )

    def _send_commit(self, request: Any, timeout: float) -> inflight.Pending:
        return inflight.start(
            self._rpc.commit, request, timeout=timeout, metadata=self._rpc.metadata
        )

    def _new_commit(self) -> Any:
        return _COMMIT_REQUEST(database=self._rpc.database)

    def _start_commit(self, request: Any, deadline: float) -> inflight.Pending:
        """``request`` sent now, or with the next batch of this store's commits."""
        if self.group is None:
            return self._send_commit(request, max(0.0, deadline - time.monotonic()))
        return self.group.start(request, deadline)

    def hurried(self, deadline_s: float) -> FirestoreStore:
        """The same store (same client; a subclass stays itself) with ``deadline_s`` per call
        and no retries: for a write whose caller must not wait long for a store that has just
        failed (a refusal's record while the store is unavailable)."""
        quick = copy.copy(self)
        # A copy of this very class: its own fields, set before anyone else sees it.
        quick._timeout = deadline_s  # noqa: SLF001
        quick._retry = None  # noqa: SLF001
        quick._retry_once_applied = None  # noqa: SLF001
        quick.group = None  # its short deadline would bound a whole batch
        return quick

    def get_many(
        self, paths: Sequence[str], fields: Fields | None = None
    ) -> dict[str, dict[str, Any] | None]:
        """See ``DocumentStore.get_many``: one GetDocument per document, all sent at once
        (``stores.inflight``, no thread), each retried within the store's deadline; ``fields``
        as the request's mask (the rest of the document is neither sent nor decoded)."""
        return self._reads(paths, time.monotonic() + self._timeout, self._retry, fields)()

    def start_get_many(
        self, paths: Sequence[str], deadline_s: float | None = None, fields: Fields | None = None
    ) -> Callable[[], dict[str, dict[str, Any] | None]]:
        """See ``DocumentStore.start_get_many``: each document's GetDocument is sent now and
        collected by the calling thread when it asks (``stores.inflight``: no thread of its
        own), without retries, within the deadline; collecting decodes them."""
        timeout = self._timeout if deadline_s is None else min(self._timeout, deadline_s)
        return self._reads(paths, time.monotonic() + timeout, None, fields)

    def _reads(
        self,
        paths: Sequence[str],
        deadline: float,
        retry: retries.Retry | None,
        fields: Fields | None = None,
    ) -> Callable[[], dict[str, dict[str, Any] | None]]:
        """Every document's GetDocument sent now; the function collects them in order (a
        failed one sent again as ``retry`` says, within ``deadline``) and decodes them."""
        sent = []
        masks = fields or {}
        for path in dict.fromkeys(paths):
            request = _GET_REQUEST(name=self._documents + path)
            if path in masks:
                request.mask.field_paths.extend(_field_paths(masks[path]))
            try:
                first = inflight.start(
                    self._rpc.get,
                    request,
                    timeout=max(0.0, deadline - time.monotonic()),
                    metadata=self._rpc.metadata,
                )
            except (grpc.RpcError, ValueError) as exc:
                raise _error("read", exc) from exc
            sent.append((path, request, first))

        def collect() -> dict[str, dict[str, Any] | None]:
            out = {}
            for path, request, first in sent:
                try:
                    doc = self._unary(
                        self._rpc.get,
                        request,
                        retry,
                        absent_ok=True,
                        deadline=deadline,
                        first=first,
                    )
                except (gexc.GoogleAPIError, OSError, ValueError) as exc:
                    raise _error("read", exc) from exc
                out[path] = self._decode(doc)
            return out

        return collect

    def _decode(self, doc: Any) -> dict[str, Any] | None:
        """A raw ``Document``'s fields as the client decodes them."""
        if doc is None:
            return None
        return cast(dict[str, Any], _helpers.decode_dict(doc.fields, self.client))

    def increment(self, path: str, field_name: str, by: int, extra: Mapping[str, Any]) -> int:
        """See ``DocumentStore.increment``: one Commit whose transform result is the new value
        (``set(merge=True)`` of ``extra`` with the increment, as the client would send it):
        ``start_increment``, collected at once."""
        return self.start_increment(path, field_name, by, extra)()

    def start_increment(
        self, path: str, field_name: str, by: int, extra: Mapping[str, Any]
    ) -> Callable[[], int]:
        """See ``DocumentStore.start_increment``: the Commit is sent now (``stores.inflight``)
        and collected, retried as ``increment``'s, and decoded by the returned function."""
        try:
            request = self._request([Write(path, {**extra, field_name: Inc(by)}, merge=True)])
            sent = self._sent_commit(request, self._retry_once_applied)
        except (grpc.RpcError, ValueError) as exc:
            raise _error("increment", exc) from exc

        def collect() -> int:
            try:
                response = sent()
            except (gexc.GoogleAPIError, OSError, ValueError) as exc:
                raise _error("increment", exc) from exc
            return self._new_value(response)

        return collect

    def _new_value(self, response: Any) -> int:
        """The counter's new value in an increment's ``CommitResponse``."""
        results = list(response.write_results)
        transforms = list(results[0].transform_results) if len(results) == 1 else []
        if len(transforms) != 1:
            raise StoreError("increment returned no value")
        value = _helpers.decode_value(transforms[0], self.client)
        if not isinstance(value, int | float):
            raise StoreError(f"increment returned a {type(value).__name__}, not a number")
        return int(value)

    def commit(self, writes: Sequence[Write]) -> None:
        """See ``DocumentStore.commit``: one batched Commit. The writes are encoded by
        ``stores.firestore_writes`` (the client's encoding, without its cost), or by the client
        when a value is not one that module encodes."""
        if not writes:
            return
        try:
            request = self._request(writes)
            # A batch that increments is not idempotent: sent again after a deadline or an
            # UNAVAILABLE it may have applied, it would count its call twice. Only ABORTED (which
            # applied nothing) is retried for it; a batch of plain sets keeps the retries.
            counts = any(len(w.update_transforms) for w in request.writes)
            self._commit(request, self._retry_once_applied if counts else self._retry)
        except (gexc.GoogleAPIError, OSError, ValueError) as exc:
            raise _error("write", exc) from exc

    def _request(self, writes: Sequence[Write]) -> Any:
        """The raw ``CommitRequest`` of ``writes``, each built in place in the request (a
        message passed to a constructor is copied): by ``stores.firestore_writes`` where it
        can encode it, by the client's own encoding for ``set`` otherwise."""
        request = _COMMIT_REQUEST(database=self._rpc.database)
        built = request.writes
        for w in writes:
            name = self._documents + w.path
            try:
                write_pb(name, w, built.add())
            except Unsupported:
                del built[-1]  # partly filled
                data = _to_firestore(w.data)
                made = (
                    _helpers.pbs_for_set_with_merge(name, data, merge=True)
                    if w.merge
                    else _helpers.pbs_for_set_no_merge(name, data)
                )
                built.extend(m._pb for m in made)  # noqa: SLF001 - proto-plus's raw message
        return request

    def _commit(self, request: Any, retry: retries.Retry | None) -> Any:
        """One Commit of a raw ``CommitRequest``; the raw ``CommitResponse``.

        Sent on the client's channel as the client sends it (the same request, resource
        prefix, emulator token and routing header) but without its wrappers: the generated
        client's retry, timeout and error layers and proto-plus conversions were about 8% of
        the served workers' Python CPU at 100 rps. Errors are mapped as the client maps them,
        and ``retry`` (within the store's deadline) is the policy the client applied. The first
        attempt may ride in a batch with other calls' commits (``stores.group_commit``)."""
        try:
            sent = self._sent_commit(request, retry)
        except grpc.RpcError as exc:
            raise gexc.from_grpc_error(exc) from exc  # type: ignore[no-untyped-call]
        return sent()

    def _sent_commit(self, request: Any, retry: retries.Retry | None) -> Callable[[], Any]:
        """A raw ``CommitRequest`` sent now (``_start_commit``); the returned function collects
        its raw ``CommitResponse``, ``retry`` applied within the store's deadline from now."""
        end = time.monotonic() + self._timeout
        first = self._start_commit(request, end)
        return lambda: self._unary(self._rpc.commit, request, retry, deadline=end, first=first)

    def _unary(
        self,
        send: Any,
        request: Any,
        retry: retries.Retry | None,
        *,
        absent_ok: bool = False,
        deadline: float | None = None,
        first: inflight.Pending | None = None,
    ) -> Any:
        """One unary call of ``_Rpc`` with the client's metadata, gRPC errors mapped as the
        client maps them, ``retry`` applied, and one deadline for all attempts together, as the
        client's own timeout (each attempt gets what is left of it; the store's deadline from
        now unless given). ``absent_ok``: a NOT_FOUND about the document answers ``None``.
        ``first``: the first attempt, already sent (collected here; any retry is sent anew)."""
        end = time.monotonic() + self._timeout if deadline is None else deadline
        metadata = self._rpc.metadata
        sent = [first] if first is not None else []

        def once() -> Any:
            try:
                if sent:
                    return sent.pop().result()
                return send(request, timeout=max(0.0, end - time.monotonic()), metadata=metadata)
            except grpc.RpcError as exc:
                if absent_ok and exc.code() is grpc.StatusCode.NOT_FOUND and not _no_database(exc):
                    return None
                raise gexc.from_grpc_error(exc) from exc  # type: ignore[no-untyped-call]

        return retry(once)() if retry is not None else once()

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
        """See ``DocumentStore.query``."""
        q: Any = (
            self.client.collection_group(collection)
            if group
            else self.client.collection(collection)
        )
        for fld, op, value in filters:
            q = q.where(filter=FieldFilter(fld, op, value))
        if order_by:
            q = q.order_by(
                order_by,
                direction=firestore.Query.DESCENDING if descending else firestore.Query.ASCENDING,
            )
        if limit is not None:
            q = q.limit(limit)
        try:
            return [
                (snap.reference.path, snap.to_dict() or {})
                for snap in q.stream(retry=self._retry, timeout=max(self._timeout, 30.0))
            ]
        except (gexc.GoogleAPIError, OSError, ValueError) as exc:
            raise StoreError(f"query failed: {type(exc).__name__}") from exc

    def compare_and_set(
        self, path: str, expected_version: int, data: Mapping[str, Any], extra: Sequence[Write]
    ) -> None:
        """See ``DocumentStore.compare_and_set``: the document read, its version checked, then
        one Commit conditioned on the document being exactly the one read (its update time, or
        its absence), within the store's deadline. The condition failing is another change."""
        doc = self._read_one(path)
        version = doc_version(self._decode(doc)) if doc is not None else 0
        if version != expected_version:
            raise ConfigConflict(f"expected version {expected_version}, found {version}")
        self._conditional(path, doc, data, extra, "another change landed first")

    def replace_if_unchanged(
        self,
        path: str,
        expected: Mapping[str, Any] | None,
        data: Mapping[str, Any],
        extra: Sequence[Write],
    ) -> None:
        """See ``DocumentStore.replace_if_unchanged``: the document read and compared with
        ``expected`` as the client decodes both, then one Commit conditioned on it being
        exactly the one read, within the store's deadline."""
        doc = self._read_one(path)
        want = None if expected is None else dict(expected)
        if self._decode(doc) != want:
            raise ConfigConflict(f"{path} changed since it was read")
        self._conditional(path, doc, data, extra, f"{path} changed since it was read")

    def _read_one(self, path: str) -> Any:
        """One document's raw ``Document`` (its update time with it), or ``None``."""
        request = _GET_REQUEST(name=self._documents + path)
        try:
            return self._unary(self._rpc.get, request, self._retry, absent_ok=True)
        except (gexc.GoogleAPIError, OSError, ValueError) as exc:
            raise _error("read", exc) from exc

    def _conditional(
        self, path: str, doc: Any, data: Mapping[str, Any], extra: Sequence[Write], moved: str
    ) -> None:
        """Replace ``path`` with ``data`` (and apply ``extra``) in one Commit whose first write
        holds only if the document is still ``doc`` (``None``: still absent). Not sent again
        after a deadline (it may have landed); a failed condition is ``ConfigConflict``."""
        try:
            request = self._request([Write(path, dict(data), merge=False), *extra])
            condition = request.writes[0].current_document
            if doc is None:
                condition.exists = False
            else:
                condition.update_time.CopyFrom(doc.update_time)
            self._commit(request, self._retry_once_applied)
        except (gexc.FailedPrecondition, gexc.AlreadyExists) as exc:
            raise ConfigConflict(moved) from exc
        except gexc.Aborted as exc:  # a lock held by a transaction: nothing landed
            raise Contended("the write met a lock; no change had landed") from exc
        except gexc.RetryError as exc:
            if isinstance(exc.cause, gexc.Aborted):  # every try met the lock
                raise Contended("the write met a lock; no change had landed") from exc
            raise _error("write", exc) from exc
        except (gexc.GoogleAPIError, OSError, ValueError) as exc:
            raise _error("write", exc) from exc

    def delete_all(self) -> None:
        """Clear the emulator's database (refuses to run against a real project)."""
        host = os.environ.get("FIRESTORE_EMULATOR_HOST")
        if not host:
            raise RuntimeError("delete_all is only allowed against the emulator")
        import httpx

        url = (
            f"http://{host}/emulator/v1/projects/{self.client.project}"
            "/databases/(default)/documents"
        )
        httpx.delete(url, timeout=10).raise_for_status()

    def delete_many(self, paths: Sequence[str]) -> None:
        """See ``DocumentStore.delete_many``: batched Commits of at most 500 deletes."""
        unique = list(dict.fromkeys(paths))
        try:
            for start in range(0, len(unique), _BATCH_LIMIT):
                batch = self.client.batch()
                for path in unique[start : start + _BATCH_LIMIT]:
                    batch.delete(self.client.document(path))
                batch.commit(retry=self._retry, timeout=self._timeout)
        except (gexc.GoogleAPIError, OSError, ValueError) as exc:
            raise StoreError(f"delete failed: {type(exc).__name__}") from exc

    def list_paths(self, collection: str, id_prefix: str = "") -> list[str]:
        """See ``DocumentStore.list_paths``: a keys-only query over a document-id range."""
        col = self.client.collection(collection)
        q: Any = col
        if id_prefix:
            # Every id with the prefix sorts in [prefix, prefix + U+F8FF).
            q = q.where(filter=FieldFilter("__name__", ">=", col.document(id_prefix)))
            q = q.where(filter=FieldFilter("__name__", "<", col.document(id_prefix + "\uf8ff")))
        try:
            return [
                snap.reference.path
                for snap in q.select(["__name__"]).stream(
                    retry=self._retry, timeout=max(self._timeout, 30.0)
                )
            ]
        except (gexc.GoogleAPIError, OSError, ValueError) as exc:
            raise StoreError(f"listing failed: {type(exc).__name__}") from exc
