"""``Write`` → Firestore ``Write`` protobuf, built on the raw protobuf classes.

The client library's ``WriteBatch.set`` builds the same message through proto-plus wrappers,
field by field: it was half of the CPU of a warm enrichment call (seven documents of records a
call). This module builds the identical message (the unit tests compare it with the client's
own ``pbs_for_set_with_merge`` / ``pbs_for_set_no_merge``, field by field) for the values the
services write: None, bool, int, float, str, datetime, maps, lists and tuples, and ``Inc``.
Anything else raises ``Unsupported`` and the caller lets the client library encode that write.

Semantics, as the client's ``set``: ``merge=True`` sets every leaf (an empty map is a leaf) and
names each in the update mask, sorted; ``merge=False`` replaces the document (no mask). ``Inc``
values become ``increment`` field transforms, sorted by path, in both modes.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, cast

from google.api_core.datetime_helpers import DatetimeWithNanoseconds
from google.cloud.firestore_v1.field_path import render_field_path
from google.cloud.firestore_v1.types import write as write_types

from stores.base import Inc, Write

_WRITE = write_types.Write.pb()

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

Path = tuple[str, ...]


class Unsupported(Exception):
    """A value this module does not encode (the client library will)."""


def _put(target: Any, value: Any) -> None:
    """Encode ``value`` into the ``Value`` message ``target``, in place (the client's
    ``encode_value`` for the supported types). Built in place, top down: a message passed to a
    parent's constructor is copied, so building bottom up copied each map once per level. The
    exact types records are made of are tried first, by identity (a call encodes about 150
    values); ``_put_other`` handles the rest (subclasses, tuples, other mappings)."""
    t = type(value)
    if t is str:
        target.string_value = value
    elif t is int:
        target.integer_value = value
    elif t is dict:
        _put_map(target, value)
    elif t is bool:
        target.boolean_value = value
    elif t is float:
        target.double_value = value
    elif t is datetime:
        _stamp(target, value)
    elif value is None:
        target.null_value = 0
    else:
        _put_other(target, value)


def _put_map(target: Any, value: Mapping[Any, Any]) -> None:
    """A map value (an empty one too: ``SetInParent`` makes it present), keys as text."""
    node = target.map_value
    node.SetInParent()
    fields = node.fields
    for k, v in value.items():
        _put(fields[_key(k)], v)


def _key(k: Any) -> str:
    return k if type(k) is str else str(k)


_SCALARS = frozenset({str, int, float, bool, datetime, type(None)})
"""Types that are never a ``Mapping``: ``_is_map`` skips the (slow) abstract check for them."""


def _is_map(value: Any) -> bool:
    t = type(value)
    return t is dict or (t not in _SCALARS and isinstance(value, Mapping))


def _stamp(target: Any, value: datetime) -> None:
    """The client's ``_datetime_to_pb_timestamp``, without its float arithmetic and copy:
    naive means UTC; seconds floor toward the past (nanos stay non-negative)."""
    delta = (value if value.tzinfo else value.replace(tzinfo=UTC)) - _EPOCH
    stamp = target.timestamp_value
    stamp.seconds = delta.days * 86_400 + delta.seconds
    stamp.nanos = delta.microseconds * 1000


def _put_other(target: Any, value: Any) -> None:
    """``_put`` for values of any other type, by the general rules."""
    if isinstance(value, bool):
        target.boolean_value = value
    elif isinstance(value, int):
        target.integer_value = value
    elif isinstance(value, float):
        target.double_value = value
    elif isinstance(value, DatetimeWithNanoseconds):
        raise Unsupported("DatetimeWithNanoseconds")
    elif isinstance(value, datetime):
        _stamp(target, value)
    elif isinstance(value, str):
        target.string_value = value
    elif isinstance(value, Mapping):
        _put_map(target, value)
    elif isinstance(value, list | tuple):
        values = target.array_value.values
        target.array_value.SetInParent()
        for v in value:
            _put(values.add(), v)
    else:
        raise Unsupported(type(value).__name__)


def _fill(
    fields: Any,
    data: Mapping[str, Any],
    prefix: Path,
    leaves: list[Path],
    incs: list[tuple[Path, Any]],
) -> None:
    """The client's ``extract_fields`` written straight into the map ``fields``: each leaf
    (an empty map below the top is one) set in place and its path kept for the mask; ``Inc``
    values kept for the transforms. A map holding only ``Inc`` values is not written (the
    client leaves it out of the document)."""
    for key, value in data.items():
        name = _key(key)
        path = (*prefix, name)
        if isinstance(value, Inc):
            incs.append((path, value.by))
        elif _is_map(value) and value:
            node = fields[name]
            before = len(leaves)
            _fill(node.map_value.fields, value, path, leaves, incs)
            if len(leaves) == before:
                del fields[name]
        else:
            _put(fields[name], value)
            leaves.append(path)


@functools.lru_cache(maxsize=4096)
def _rendered(path: Path) -> str:
    """A field path as the client renders it (the same counter paths recur call after call)."""
    return cast(str, render_field_path(path))


def write_pb(name: str, w: Write, into: Any = None) -> Any:
    """The raw ``Write`` message of ``w`` for the document named ``name`` (full resource name),
    built in ``into`` if given (an empty ``Write``, such as a request's ``writes.add()``: no
    copy is made); raises ``Unsupported`` when a value is not one this module encodes (``into``
    is then partly filled)."""
    pb = _WRITE() if into is None else into
    doc = pb.update
    doc.name = name
    leaves: list[Path] = []
    incs: list[tuple[Path, Any]] = []
    _fill(doc.fields, w.data, (), leaves, incs)
    if w.merge:
        pb.update_mask.SetInParent()
        pb.update_mask.field_paths.extend(_rendered(p) for p in sorted(leaves))
    for path, by in sorted(incs, key=lambda i: i[0]):
        transform = pb.update_transforms.add()
        transform.field_path = _rendered(path)
        _put(transform.increment, by)
    return pb
