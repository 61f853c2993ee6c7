"""An answer's enrichment data is encoded once (``usecases.encoded``): the served app's JSON
provider writes the text the result document was given in its place. The answer a client
parses must be exactly the one plain encoding gives."""

from __future__ import annotations

import json
from typing import Any

import flask
from hypothesis import given, settings
from hypothesis import strategies as st

from enrichment.bounds import bound_result_json
from usecases import encoded
from usecases.encoded import AnswerJSON, Encoded, dumps_with_encoded

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=5), children, max_size=4)
    ),
    max_leaves=25,
)


def _answer(data: dict[str, Any], **rest: Any) -> dict[str, Any]:
    bounded, _, text = bound_result_json(data)
    return {"requestId": "r1", "status": "success", "enrichedData": Encoded(bounded, text), **rest}


@settings(max_examples=200, deadline=None)
@given(data=st.dictionaries(st.text(max_size=6), json_values, max_size=5), other=json_values)
def test_the_spliced_answer_parses_as_the_plain_one(data: dict[str, Any], other: Any) -> None:
    answer = _answer(data, sources=other, messages={"é": "ünï"})
    app = flask.Flask(__name__)
    plain = app.json.dumps({"result": answer})
    with app.app_context():
        app.json = AnswerJSON(app)
        response = flask.jsonify(result=answer)
    spliced = response.get_data(as_text=True)
    assert json.loads(spliced) == json.loads(plain)
    assert answer["enrichedData"].text in spliced  # the text, as stored, is what was sent


def test_the_data_is_not_encoded_again() -> None:
    answer = _answer({"github": {"repos": [{"name": "a"}]}})
    calls: list[Any] = []

    def counting(obj: Any, **kwargs: Any) -> str:
        calls.append(obj)
        return json.dumps(obj, **kwargs)

    out = dumps_with_encoded({"result": answer}, counting, separators=(",", ":"))
    assert len(calls) == 1 and calls[0]["result"]["enrichedData"] == encoded._MARK
    assert json.loads(out)["result"]["enrichedData"] == {"github": {"repos": [{"name": "a"}]}}


def test_anything_else_is_encoded_plainly() -> None:
    # Not the callable's envelope, no Encoded part, or the marker found elsewhere too: plain.
    answer = _answer({"a": 1}, note=encoded._MARK)
    for obj in ({"result": answer}, {"data": answer}, {"result": {"a": 1}}, [answer], "x"):
        assert json.loads(dumps_with_encoded(obj, json.dumps)) == json.loads(json.dumps(obj))
    # An Encoded value is still a dict to anything that does not know it.
    assert json.loads(json.dumps(answer))["enrichedData"] == {"a": 1}
