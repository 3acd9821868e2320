"""export/serving/protocol_v1.py: TF Serving REST predict bodies parsed, or refused with a
BadRequestError that says what was received; never another exception (an HTTP 500). With the
ids check every request passes next, the ids run are exactly the ids sent, in each of the four
body formats (hypothesis properties, issue 19)."""

import json

import numpy as np
import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st
from token_id_cases import JSON_IDS, MAX_LEN, VOCAB, reference_ids

from export.artifact.token_ids import check_token_ids
from export.serving.protocol_v1 import parse_predict
from export.serving.repository import BadRequestError

INPUT_NAMES = ["token_ids", "text"]
JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False)
                    | st.text(max_size=5),
                    lambda inner: st.lists(inner, max_size=4)
                    | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=12)
FIELD = st.sampled_from(["instances", "inputs", "signature_name", "token_ids", "text"])


@settings(max_examples=1000, derandomize=True)  # a fixed seed: the same 1,000 bodies each run
@given(st.dictionaries(FIELD, JSON, max_size=4) | JSON | st.binary(max_size=20))
def test_any_body_parses_or_is_refused_with_a_bad_request(document):
    body = document if isinstance(document, bytes) else json.dumps(document).encode()
    try:
        inputs, format_ = parse_predict(body, INPUT_NAMES)
    except BadRequestError as error:
        assert "Received" in str(error)
        return
    assert isinstance(inputs, dict) and format_ in ("instances", "inputs")


def formats(rows):
    """The four ways TF Serving's REST API sends the same rows (row and columnar, named and
    unnamed)."""
    return {"instances": {"instances": rows},
            "named instances": {"instances": [{"token_ids": row} for row in rows]},
            "inputs": {"inputs": rows},
            "named inputs": {"inputs": {"token_ids": rows}}}


@settings(max_examples=400, derandomize=True)
@given(JSON_IDS.filter(lambda rows: isinstance(rows, list) and rows
                       and all(isinstance(row, list) for row in rows)))
def test_the_ids_run_are_exactly_the_ids_sent_in_every_format(rows):
    """No format turns a boolean, a float, a null or a big integer into an id: [[1, true]] was
    served as the ids [[1, 1]]."""
    expected = reference_ids(rows)
    event("valid ids" if expected is not None else "not ids")
    for name, document in formats(rows).items():
        try:
            inputs, _ = parse_predict(json.dumps(document).encode(), INPUT_NAMES)
            ids = check_token_ids(inputs["token_ids"], vocab_size=VOCAB, max_len=MAX_LEN)
        except (BadRequestError, ValueError) as error:
            assert expected is None, f"{name}: refused valid ids {expected.tolist()}: {error}"
            continue
        assert expected is not None, f"{name}: ran {rows}, which holds a value that is no id"
        np.testing.assert_array_equal(ids, expected, err_msg=name)


@pytest.mark.parametrize("body, words", [
    (b"{", ["must be JSON", "malformed"]),
    (b"\xff", ["must be JSON"]),
    (b"[]", ["exactly one of", "a JSON list"]),
    (b'{"instances": [1], "inputs": [1]}', ["exactly one of", "['inputs', 'instances']"]),
    (b'{"instances": []}', ["non-empty list"]),
    (b'{"instances": [1], "signature_name": "nope"}', ["signature_name", '"nope"']),
    (b'{"instances": [1], "signature_name": []}', ["signature_name", "Received: []"]),
    (b'{"instances": [{"token_ids": [1]}, [2]]}', ["a mix of both"]),
    (b'{"instances": [{"token_ids": [1]}, {"text": "a"}]}', ["same inputs"]),
])
def test_a_bad_body_names_what_is_wrong(body, words):
    with pytest.raises(BadRequestError) as error:
        parse_predict(body, INPUT_NAMES)
    assert all(word in str(error.value) for word in words), str(error.value)
