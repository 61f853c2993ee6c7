"""An answer's part that carries its own JSON, so the transport encodes it once.

An enrichment's data is encoded to JSON for its result document (``answer.served``); the
callable's answer holds the same data, and the functions SDK's ``jsonify`` encoded it a second
time (4% of the served workers' Python CPU at 100 rps). ``Encoded`` is that data as a plain
dict that also keeps its text: anything that does not know it sees an ordinary dict, and
``AnswerJSON`` (the serving Flask app's JSON provider, installed by ``main``) writes the text
in its place.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from typing import Any

from flask.json.provider import DefaultJSONProvider


class Encoded(dict[str, Any]):
    """``data`` (a JSON object) and ``text``, its JSON. The caller vouches that the text
    encodes exactly this data: nothing may change the dict afterwards."""

    __slots__ = ("text",)

    def __init__(self, data: dict[str, Any], text: str) -> None:
        super().__init__(data)
        self.text = text


_MARK = f"\x00encoded:{uuid.uuid4().hex}"
"""Stands in for an ``Encoded`` value while the rest is encoded: a control character and 128
random bits, which no answer holds."""
_MARK_JSON = json.dumps(_MARK)
"""How ``_MARK`` reads in the encoded answer."""


def dumps_with_encoded(obj: Any, dumps: Callable[..., str], **kwargs: Any) -> str:
    """``dumps(obj, **kwargs)``, but an ``Encoded`` value one or two levels down (the callable
    protocol's ``{"result": answer}``, the answer's ``enrichedData``) is written as its
    text instead of being encoded again. Anything else is encoded as ``dumps`` does."""
    if isinstance(obj, dict) and len(obj) == 1 and isinstance(obj.get("result"), dict):
        answer = obj["result"]
        keys = [k for k, v in answer.items() if type(v) is Encoded]
        if len(keys) == 1:
            key = keys[0]
            encoded: Encoded = answer[key]
            text = dumps({"result": {**answer, key: _MARK}}, **kwargs)
            if text.count(_MARK_JSON) == 1:
                return text.replace(_MARK_JSON, encoded.text)
    return dumps(obj, **kwargs)


class AnswerJSON(DefaultJSONProvider):
    """Flask's JSON, except that an answer's ``Encoded`` part (the enrichment's data, already
    encoded for its result document) is written as its text, not encoded a second time."""

    def dumps(self, obj: Any, **kwargs: Any) -> str:
        return dumps_with_encoded(obj, super().dumps, **kwargs)
