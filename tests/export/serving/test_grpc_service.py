"""export/serving/grpc_service.py: `keras-attn serve`'s Open Inference Protocol over gRPC,
driven by `tritonclient.grpc` (and the raw stub for typed `contents`), answers as HTTP answers:
the same logits, labels and probabilities, the same messages, with gRPC's status codes; and a
fuzzer's requests get INVALID_ARGUMENT or an answer, never an internal error."""

from __future__ import annotations

import urllib.error
import urllib.request

import grpc
import numpy as np
import pytest
import tritonclient.grpc as triton_grpc
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families
from tritonclient.grpc import service_pb2, service_pb2_grpc
from tritonclient.utils import InferenceServerException

from export import runtime
from tests.serving_cases import CLASSES, NAME, ServerProcess, served

TOLERANCE = 1e-5


@pytest.fixture(scope="module")
def server(tiny_model_root):
    yield from served(tiny_model_root)


@pytest.fixture(scope="module")
def client(server):
    return triton_grpc.InferenceServerClient(server.grpc_address)


@pytest.fixture(scope="module")
def predictor(tiny_model_root):
    return runtime.load(tiny_model_root / "1")


@pytest.fixture(scope="module")
def stub(server):
    with grpc.insecure_channel(server.grpc_address) as channel:
        yield service_pb2_grpc.GRPCInferenceServiceStub(channel)


def ids_input(ids, datatype):
    tensor = triton_grpc.InferInput("token_ids", list(ids.shape), datatype)
    tensor.set_data_from_numpy(ids)
    return tensor


def text_input(texts):
    tensor = triton_grpc.InferInput("text", [len(texts)], "BYTES")
    tensor.set_data_from_numpy(np.array([text.encode() for text in texts], dtype=object))
    return tensor


@pytest.mark.parametrize("dtype, datatype", [(np.int32, "INT32"), (np.int64, "INT64")])
def test_token_ids_give_the_predictors_logits(client, predictor, dtype, datatype):
    ids = np.array([[5, 6, 7, 0], [8, 9, 10, 11]], dtype)  # gRPC clients send int64
    result = client.infer(NAME, [ids_input(ids, datatype)])
    np.testing.assert_allclose(result.as_numpy("logits"), predictor.predict(ids), rtol=0,
                               atol=TOLERANCE)
    assert result.get_response().model_version == "1"


def test_text_gives_labels_and_probabilities_as_http(server, client, predictor):
    from tritonclient import http as triton_http

    texts = ["the dog was happy", "a sad cat sat under the old tree"]
    ours = client.infer(NAME, [text_input(texts)])
    tensor = triton_http.InferInput("text", [len(texts)], "BYTES")
    tensor.set_data_from_numpy(np.array(texts, dtype=object))
    http = triton_http.InferenceServerClient(server.address).infer(NAME, [tensor])
    for output in ("logits", "probabilities"):
        np.testing.assert_allclose(ours.as_numpy(output), http.as_numpy(output), rtol=0,
                                   atol=0)
    assert ours.as_numpy("label").tolist() == http.as_numpy("label").tolist()
    assert {label.decode() for label in ours.as_numpy("label")} <= set(CLASSES)


def test_only_the_requested_outputs_come_back(client):
    result = client.infer(NAME, [text_input(["the dog"])],
                          outputs=[triton_grpc.InferRequestedOutput("label")])
    assert [output.name for output in result.get_response().outputs] == ["label"]


def test_typed_contents_are_read_as_raw_ones(stub, predictor):
    request = service_pb2.ModelInferRequest(model_name=NAME, id="typed")
    tensor = request.inputs.add(name="token_ids", datatype="INT32", shape=[1, 3])
    tensor.contents.int_contents.extend([5, 6, 7])
    response = stub.ModelInfer(request)
    assert response.id == "typed" and response.outputs[0].name == "logits"
    logits = np.frombuffer(response.raw_output_contents[0], "<f4").reshape(1, -1)
    np.testing.assert_allclose(logits, predictor.predict([[5, 6, 7]]), rtol=0, atol=TOLERANCE)


def test_health_and_metadata(client, predictor):
    assert client.is_server_live() and client.is_server_ready()
    assert client.is_model_ready(NAME) and client.is_model_ready(NAME, "1")
    assert not client.is_model_ready(NAME, "7") and not client.is_model_ready("other")
    metadata = client.get_model_metadata(NAME)
    assert (metadata.name, list(metadata.versions), metadata.platform) == (
        NAME, ["1"], "onnxruntime_onnx")
    assert [(t.name, t.datatype, list(t.shape)) for t in metadata.inputs] == [
        ("token_ids", "INT32", [-1, -1]), ("text", "BYTES", [-1])]
    assert [t.name for t in metadata.outputs] == ["logits", "label", "probabilities"]
    assert client.get_server_metadata().name == "keras-attn"


@pytest.mark.parametrize("make, status, message", [
    (lambda: (NAME, [ids_input(np.array([[5, -1]], np.int64), "INT64")], {}),
     "INVALID_ARGUMENT", "token_ids must lie in [0, "),
    (lambda: (NAME, [ids_input(np.ones((1, 999), np.int32), "INT32")], {}),
     "INVALID_ARGUMENT", "Sequence length must be between 1 and max_len=16"),
    (lambda: (NAME, [text_input([" \u200b "])], {}), "INVALID_ARGUMENT",
     "Every text needs at least one token after tokenization"),
    (lambda: (NAME, [text_input(["a"])], {"outputs": [triton_grpc.InferRequestedOutput("x")]}),
     "INVALID_ARGUMENT", "Unknown output(s) ['x']"),
    (lambda: ("other", [text_input(["a"])], {}), "NOT_FOUND", "other"),
    (lambda: (NAME, [text_input(["a"])], {"model_version": "7"}), "NOT_FOUND",
     "has no version '7'"),
])
def test_errors_carry_the_protocols_status_and_https_message(client, make, status, message):
    name, inputs, options = make()
    with pytest.raises(InferenceServerException) as raised:
        client.infer(name, inputs, **options)
    assert raised.value.status() == f"StatusCode.{status}"
    assert message in raised.value.message(), raised.value.message()


def test_a_message_over_the_request_limit_is_resource_exhausted(tiny_model_root):
    process = ServerProcess(tiny_model_root, "--max-request-bytes", "1000")
    try:
        client = triton_grpc.InferenceServerClient(process.grpc_address)
        with pytest.raises(InferenceServerException) as raised:
            client.infer(NAME, [text_input(["the dog " * 200])])
        assert raised.value.status() == "StatusCode.RESOURCE_EXHAUSTED"
        assert client.infer(NAME, [text_input(["the dog"])]).as_numpy("label").shape == (1,)
    finally:
        process.stop()


def test_grpc_requests_are_counted_by_status(server, client):
    client.infer(NAME, [text_input(["the dog"])])
    with pytest.raises(InferenceServerException):
        client.infer(NAME, [text_input([" "])])
    with urllib.request.urlopen(f"{server.url}/metrics") as reply:
        families = {family.name: family for family in
                    text_string_to_metric_families(reply.read().decode())}
    counts = {(s.labels["code"], s.labels["version"]): s.value
              for s in families["keras_attn_requests"].samples
              if s.name == "keras_attn_requests_total"
              and s.labels["protocol"] == "open_inference_grpc"}
    assert counts[("OK", "1")] >= 1 and counts[("INVALID_ARGUMENT", "1")] >= 1


def test_http_only_with_no_grpc(tiny_model_root):
    process = ServerProcess(tiny_model_root, "--no-grpc")
    try:
        assert process.grpc_address is None
    finally:
        code, output = process.stop()
    assert "gRPC" not in output


DATATYPES = ["BOOL", "INT8", "INT32", "INT64", "UINT8", "FP32", "FP64", "BYTES", "BF16", ""]


@given(name=st.sampled_from(["token_ids", "text", "other"]),
       datatype=st.sampled_from(DATATYPES),
       shape=st.lists(st.integers(0, 4), max_size=3),
       raw=st.binary(max_size=64))
def test_fuzzed_requests_are_answered_or_refused_never_an_internal_error(stub, name, datatype,
                                                                        shape, raw):
    request = service_pb2.ModelInferRequest(model_name=NAME)
    request.inputs.add(name=name, datatype=datatype, shape=shape)
    request.raw_input_contents.append(raw)
    try:
        stub.ModelInfer(request)
    except grpc.RpcError as error:
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, error.details()
        assert error.details()


def test_a_refusal_says_what_http_says(server, client):
    """One message for one mistake, whichever protocol carries it."""
    import json

    body = json.dumps({"inputs": [{"name": "token_ids", "shape": [1, 2], "datatype": "INT64",
                                   "data": [5, 99999]}]}).encode()
    request = urllib.request.Request(f"{server.url}/v2/models/{NAME}/infer", data=body,
                                     method="POST")
    with pytest.raises(urllib.error.HTTPError) as http:
        urllib.request.urlopen(request, timeout=30)
    assert http.value.code == 400
    with pytest.raises(InferenceServerException) as raised:
        client.infer(NAME, [ids_input(np.array([[5, 99999]], np.int64), "INT64")])
    assert raised.value.message() == json.loads(http.value.read())["error"]


def test_raw_and_typed_contents_together_are_refused(stub):
    request = service_pb2.ModelInferRequest(model_name=NAME)
    tensor = request.inputs.add(name="token_ids", datatype="INT32", shape=[1, 1])
    tensor.contents.int_contents.append(5)
    request.raw_input_contents.append(np.array([5], "<i4").tobytes())
    with pytest.raises(grpc.RpcError) as raised:
        stub.ModelInfer(request)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "not both" in raised.value.details()


def test_an_rpc_not_served_is_unimplemented_and_named(client):
    with pytest.raises(InferenceServerException) as raised:
        client.get_model_config(NAME)
    assert raised.value.status() == "StatusCode.UNIMPLEMENTED"
    assert "keras-attn serve does not implement ModelConfig" in raised.value.message()
