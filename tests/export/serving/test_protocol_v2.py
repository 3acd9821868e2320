"""export/serving/protocol_v2.py: Open Inference Protocol request bodies parsed, or refused with
a BadRequestError that names the field, what is allowed and what was received; never another
exception (an HTTP 500)."""

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from export.serving.protocol_v2 import parse_infer_request
from export.serving.repository import BadRequestError


def parse(document) -> object:
    return parse_infer_request(json.dumps(document).encode(), None)


def ids_input(**fields):
    return {"name": "token_ids", "shape": [1, 2], "datatype": "INT64", "data": [5, 7], **fields}


@pytest.mark.parametrize("document, words", [
    # Booleans are not ids, nor a shape (issue 19 case 6: [true, true] was served as ids [1, 1],
    # "shape": [true, 2] gave a 500).
    ({"inputs": [ids_input(data=[True, True])]}, ["declared INT64", "booleans"]),
    ({"inputs": [ids_input(shape=[True, 2])]}, ['"shape"', "non-negative integers", "[true, 2]"]),
    ({"inputs": [ids_input(datatype="BOOL", data=[1, 0])]}, ["declared BOOL", "numbers (e.g. 1)"]),
    ({"inputs": [ids_input(parameters={"binary_data_size": True})]}, ["binary_data_size"]),
    # Typed parameters are type-checked (case 7: "false" was read as true).
    ({"inputs": [ids_input()], "parameters": {"binary_data_output": "false"}},
     ["'binary_data_output'", "JSON boolean", '"false"']),
    ({"inputs": [ids_input()], "outputs": [{"name": "logits",
                                             "parameters": {"binary_data": 0}}]},
     ["'binary_data'", "output 'logits'", "Received: 0"]),
    ({"inputs": [ids_input()], "id": 7}, ['"id" must be a string', "Received: 7"]),
    ({"inputs": [ids_input(shape=[1, 3], data=[])]}, ["3 numbers for shape [1, 3]"]),
    # found by the fuzzer (test_fuzz.py): an unhashable datatype was a TypeError, a 500
    ({"inputs": [ids_input(datatype={"a": 1})]}, ["unknown datatype", '{"a": 1}']),
    ({"inputs": [ids_input(datatype=["INT64"])]}, ["unknown datatype"]),
    # found by the long fuzz run: np.prod wrapped to 0 elements, then NumPy refused the
    # dimension (a 500) or allocated for minutes (a timeout)
    ({"inputs": [ids_input(shape=[2**32, 2**32], data=[])]}, ["at most 2147483647 elements"]),
    ({"inputs": [ids_input(shape=[0, 2**40], data=[])]}, ["at most 2147483647 elements"]),
])
def test_a_bad_request_names_what_is_wrong(document, words):
    with pytest.raises(BadRequestError) as raised:
        parse(document)
    for word in words:
        assert word in str(raised.value)


@pytest.mark.parametrize("shape", [[1, 0], [0, 3], [0]])
def test_a_zero_size_tensor_parses_to_its_shape(shape):
    """Case 11: `"data": []` for a zero-size shape raised IndexError while building a message.
    The parser gives the empty array; the token-id check then refuses it (test_app)."""
    request = parse({"inputs": [ids_input(shape=shape, data=[])]})
    assert request.inputs["token_ids"].shape == tuple(shape)
    assert request.inputs["token_ids"].dtype == np.int64


def test_a_null_id_is_no_id_and_booleans_are_flags():
    request = parse({"inputs": [ids_input()], "id": None,
                     "parameters": {"binary_data_output": True}})
    assert request.id == "" and request.binary_output is True  # not "None" (kserve #2775)
    assert parse({"inputs": [ids_input()], "id": "r-1"}).id == "r-1"


JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False)
                    | st.text(max_size=5),
                    lambda inner: st.lists(inner, max_size=4)
                    | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=12)
FIELD = st.sampled_from(["name", "shape", "datatype", "data", "parameters"])
INPUT = st.dictionaries(FIELD, JSON, max_size=5) | st.builds(
    lambda shape, datatype, data: {"name": "token_ids", "shape": shape, "datatype": datatype,
                                   "data": data},
    st.lists(st.integers(-1, 3) | st.booleans(), max_size=3),
    st.sampled_from(["INT32", "INT64", "BOOL", "FP32", "BYTES", "UINT8", "int64"]), JSON)


@settings(max_examples=1000, derandomize=True)  # a fixed seed: the same 1,000 bodies each run
@given(st.fixed_dictionaries({"inputs": st.lists(INPUT, max_size=3)},
                             optional={"id": JSON, "parameters": JSON, "outputs": JSON}))
def test_any_json_request_parses_or_is_refused_with_a_bad_request(document):
    """A property of every body: parsed, or BadRequestError (a 400); nothing else escapes."""
    try:
        parse(document)
    except BadRequestError as error:
        assert str(error)


def test_a_body_in_utf16_is_refused_as_not_utf8():
    """json.loads(bytes) would read UTF-16 too; the protocol's bodies are UTF-8."""
    from export.serving.protocol_v2 import parse_infer_request
    from export.serving.repository import BadRequestError

    body = '{"inputs": []}'.encode("utf-16")
    with pytest.raises(BadRequestError, match="must be JSON in UTF-8. Received: bytes that are "
                                              "not UTF-8"):
        parse_infer_request(body, None)
