"""`keras-attn serve` (export/serving/app.py and the protocol modules), tested through clients we
did
not write: `tritonclient.http` for the Open Inference Protocol (v2) and plain JSON over urllib
for TF Serving's REST API (v1). Every answer must equal `export.runtime.predictor`'s for the same
ids.

One tiny classifier is exported once for this module (with a tokenizer and class names), and
one server serves it for the whole module, in a process where TensorFlow and Keras cannot be
imported."""

from __future__ import annotations

import asyncio
import json
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

import numpy as np
import pytest
import tritonclient.http as triton_http
from tritonclient.utils import InferenceServerException

from export import runtime
from export.verification.parity import TOLERANCE
from tests.export_cases import REPO_ROOT
from tests.serving_cases import (
    CLASSES,
    NAME,
    ServerProcess,
    call,
    export_tiny_classifier,
    served,
)

TEXTS = ["the dog was very happy", "a cat sat on the old box", "it ran fast near the river"]


@pytest.fixture(scope="module")
def model_root(tmp_path_factory):
    """saved_models/tiny/ with version 1: the CLASSIFIER case, a 50-id word tokenizer."""
    return export_tiny_classifier(tmp_path_factory.mktemp("serve"))


@pytest.fixture(scope="module")
def server(model_root):
    yield from served(model_root, "--max-queue-delay-ms", "2")


@pytest.fixture(scope="module")
def predictor(model_root):
    return runtime.load(model_root / "1")


@pytest.fixture(scope="module")
def tokenizer(model_root):
    from export.artifact.tokenizer import load_tokenizer

    return load_tokenizer(model_root / "1" / "tokenizer.json")


@pytest.fixture
def client(server):
    client = triton_http.InferenceServerClient(server.address)
    yield client
    client.close()


def ids_batch(seed: int = 0, batch: int = 3, length: int = 7) -> np.ndarray:
    ids = np.random.default_rng(seed).integers(1, 50, (batch, length)).astype(np.int32)
    ids[1, 4:] = 0  # a padded row
    return ids


def assert_close(answer, expected) -> None:
    """Equal to `export.runtime.predictor` up to float rounding: the server may split a request's
    rows
    between two batches, and a row's logits may differ in the last bits with its batch-mates,
    within the parity tolerance that the export's row-independence check holds them to."""
    np.testing.assert_allclose(answer, expected, rtol=0, atol=TOLERANCE)


def post(server, path: str, document) -> tuple[int, dict]:
    return call(server, "POST", path, json.dumps(document).encode())


# --- Open Inference Protocol (v2) through tritonclient -------------------------------------


@pytest.mark.parametrize("datatype", ["INT32", "INT64"])
@pytest.mark.parametrize("binary", [True, False])
def test_v2_token_ids_equal_the_runtime(client, predictor, datatype, binary):
    ids = ids_batch(seed=len(datatype) + binary)
    tensor = triton_http.InferInput("token_ids", list(ids.shape), datatype)
    tensor.set_data_from_numpy(ids.astype(np.int32 if datatype == "INT32" else np.int64),
                               binary_data=binary)
    outputs = [triton_http.InferRequestedOutput(name, binary_data=binary)
               for name in ("logits", "label", "probabilities")]
    result = client.infer(NAME, [tensor], outputs=outputs)
    expected = predictor.predict(ids)
    assert_close(result.as_numpy("logits"), expected)
    assert result.as_numpy("logits").dtype == np.float32
    labels = [CLASSES[i] for i in expected.argmax(-1)]
    assert [label.decode() if isinstance(label, bytes) else label
            for label in result.as_numpy("label")] == labels
    probabilities = result.as_numpy("probabilities")
    np.testing.assert_allclose(probabilities.sum(-1), 1, rtol=1e-6)
    np.testing.assert_array_equal(probabilities.argmax(-1), expected.argmax(-1))
    assert result.get_response()["model_version"] == "1"


def test_v2_default_outputs_are_binary_and_complete(client, predictor):
    ids = ids_batch(seed=7)
    tensor = triton_http.InferInput("token_ids", list(ids.shape), "INT32")
    tensor.set_data_from_numpy(ids)
    result = client.infer(NAME, [tensor])  # no outputs named: all of them, binary
    names = [output["name"] for output in result.get_response()["outputs"]]
    assert sorted(names) == ["label", "logits", "probabilities"]
    assert all("binary_data_size" in output["parameters"]
               for output in result.get_response()["outputs"])
    assert_close(result.as_numpy("logits"), predictor.predict(ids))


def test_v2_text_is_tokenized_with_the_exports_tokenizer(client, predictor, tokenizer):
    texts = np.array([text.encode() for text in TEXTS], dtype=object)
    tensor = triton_http.InferInput("text", [len(TEXTS)], "BYTES")
    tensor.set_data_from_numpy(texts)
    result = client.infer(NAME, [tensor])
    expected = predictor.predict(tokenizer.encode_batch(TEXTS, predictor.max_len))
    assert_close(result.as_numpy("logits"), expected)
    assert [label.decode() for label in result.as_numpy("label")] == [
        CLASSES[i] for i in expected.argmax(-1)]


def test_v2_health_and_metadata(client, server):
    assert client.is_server_live() and client.is_server_ready()
    assert client.is_model_ready(NAME) and client.is_model_ready(NAME, "1")
    assert not client.is_model_ready("other")
    metadata = client.get_model_metadata(NAME)
    assert metadata["name"] == NAME and metadata["versions"] == ["1"]
    assert {tensor["name"]: tensor["datatype"] for tensor in metadata["inputs"]} == {
        "token_ids": "INT32", "text": "BYTES"}
    assert [tensor["name"] for tensor in metadata["outputs"]] == [
        "logits", "label", "probabilities"]
    assert metadata["outputs"][0]["shape"] == [-1, 3]
    assert metadata["parameters"]["class_names"] == CLASSES


# --- TF Serving REST API (v1) over plain HTTP -----------------------------------------------


@pytest.mark.parametrize("path", [f"/v1/models/{NAME}:predict",
                                  f"/v1/models/{NAME}/versions/1:predict"])
def test_v1_row_and_columnar_formats(server, predictor, path):
    ids = ids_batch(seed=3)
    expected = predictor.predict(ids)
    rows = [row[row != 0].tolist() for row in ids]  # ragged rows: the server pads them
    for document, key in (({"instances": rows}, "predictions"),
                          ({"instances": [{"token_ids": row} for row in rows]}, "predictions"),
                          ({"inputs": {"token_ids": ids.tolist()}}, "outputs"),
                          ({"inputs": ids.tolist(), "signature_name": "serving_int64"},
                           "outputs")):
        status, answer = post(server, path, document)
        assert status == 200, answer
        assert list(answer) == [key]
        assert_close(np.asarray(answer[key], np.float32), expected)


def test_v1_text_instances(server, predictor, tokenizer):
    status, answer = post(server, f"/v1/models/{NAME}:predict", {"instances": TEXTS})
    assert status == 200, answer
    expected = predictor.predict(tokenizer.encode_batch(TEXTS, predictor.max_len))
    assert_close(np.asarray(answer["predictions"], np.float32), expected)


def test_v1_status_and_metadata(server):
    status, answer = call(server, "GET", f"/v1/models/{NAME}")
    assert status == 200
    assert answer == {"model_version_status": [
        {"version": "1", "state": "AVAILABLE", "status": {"error_code": "OK",
                                                          "error_message": ""}}]}
    status, answer = call(server, "GET", f"/v1/models/{NAME}/metadata")
    assert status == 200
    assert answer["model_spec"] == {"name": NAME, "signature_name": "", "version": "1"}
    signatures = answer["metadata"]["signature_def"]["signature_def"]
    assert signatures["serving_default"]["inputs"]["token_ids"]["dtype"] == "DT_INT32"
    assert signatures["serving_int64"]["inputs"]["token_ids"]["dtype"] == "DT_INT64"
    assert signatures["serving_default"]["outputs"]["logits"]["tensor_shape"]["dim"][1] == {
        "size": "3", "name": ""}


# --- errors: 400 with export.runtime.predictor's words, 404, and the server keeps serving
# ----------


def runtime_message(predictor, ids) -> str:
    with pytest.raises(ValueError) as raised:
        predictor.predict(ids)
    return str(raised.value)


@pytest.mark.parametrize("ids, words", [
    ([[3, 50, 2]], "vocab_size=50"),
    ([[3, -1, 2]], "vocab_size=50"),
    ([list(range(1, 18))], "max_len=16"),
    ([[0, 0, 0]], "non-padding"),
])
def test_bad_ids_get_400_with_the_runtimes_message(server, client, predictor, ids, words):
    message = runtime_message(predictor, ids)
    assert words in message
    status, answer = post(server, f"/v1/models/{NAME}:predict", {"instances": ids})
    assert (status, answer) == (400, {"error": message})
    tensor = triton_http.InferInput("token_ids", [len(ids), len(ids[0])], "INT64")
    tensor.set_data_from_numpy(np.array(ids, np.int64))
    with pytest.raises(InferenceServerException) as raised:
        client.infer(NAME, [tensor])
    assert raised.value.status() == "400"
    assert raised.value.message() == runtime_message(predictor, np.array(ids, np.int64))


def test_wrong_dtype_gets_400(server, predictor):
    message = runtime_message(predictor, np.array([[1.0, 2.0]], np.float32))
    status, answer = post(server, f"/v2/models/{NAME}/infer", {"inputs": [
        {"name": "token_ids", "shape": [1, 2], "datatype": "FP32", "data": [1.0, 2.0]}]})
    assert (status, answer) == (400, {"error": message})
    assert "integer token ids" in message
    status, answer = post(server, f"/v1/models/{NAME}:predict", {"instances": [[1.5, 2]]})
    assert status == 400 and "integer token ids" in answer["error"]


@pytest.mark.parametrize("method, path, body, status, words", [
    ("POST", f"/v1/models/{NAME}:predict", b"{not json", 400, "malformed JSON"),
    ("POST", f"/v2/models/{NAME}/infer", b"[1, 2", 400, "malformed JSON"),
    ("POST", f"/v1/models/{NAME}:predict", b'{"rows": [[1]]}', 400, '"instances"'),
    ("POST", f"/v2/models/{NAME}/infer", b'{"inputs": [{"name": "token_ids", "shape": [1, 3], '
     b'"datatype": "INT32", "data": [1, 2]}]}', 400, "3 numbers for shape [1, 3]"),
    ("POST", f"/v2/models/{NAME}/infer", b'{"inputs": [{"name": "ids", "shape": [1], '
     b'"datatype": "INT32", "data": [1]}]}', 400, "['token_ids', 'text']"),
    ("POST", f"/v2/models/{NAME}/infer", b'{"inputs": [{"name": "text", "shape": [1], '
     b'"datatype": "BYTES", "data": ["   "]}]}', 400, "at least one token"),
    # Issue 19: booleans are not ids (case 6), typed fields are typed (7), zero-size tensors
    # (11) and ids NumPy holds only as objects (12) are refused, never a 500.
    ("POST", f"/v2/models/{NAME}/infer", b'{"inputs": [{"name": "token_ids", "shape": [1, 2], '
     b'"datatype": "INT64", "data": [true, true]}]}', 400, "booleans"),
    ("POST", f"/v2/models/{NAME}/infer", b'{"inputs": [{"name": "token_ids", "shape": [true, 2], '
     b'"datatype": "INT64", "data": [1, 2]}]}', 400, "non-negative integers"),
    ("POST", f"/v2/models/{NAME}/infer", b'{"inputs": [{"name": "token_ids", "shape": [1, 2], '
     b'"datatype": "INT64", "data": [1, 2]}], "parameters": {"binary_data_output": "false"}}',
     400, "JSON boolean"),
    ("POST", f"/v2/models/{NAME}/infer", b'{"inputs": [{"name": "token_ids", "shape": [1, 0], '
     b'"datatype": "INT64", "data": []}]}', 400, "Received: sequence length 0"),
    ("POST", f"/v2/models/{NAME}/infer", b'{"inputs": [{"name": "token_ids", "shape": [0, 3], '
     b'"datatype": "INT64", "data": []}]}', 400, "at least one sequence"),
    ("POST", f"/v2/models/{NAME}/infer", b'{"inputs": [{"name": "token_ids", "shape": [0], '
     b'"datatype": "INT32", "data": []}]}', 400, "Received: sequence length 0"),
    ("POST", f"/v1/models/{NAME}:predict", b'{"instances": [[3, null]]}', 400, "fit in 64 bits"),
    ("POST", f"/v1/models/{NAME}:predict", b'{"instances": [[3, 18446744073709551616]]}', 400,
     "(e.g. 18446744073709551616)"),
    ("POST", f"/v1/models/{NAME}:predict", b'{"inputs": {"token_ids": [[null]]}}', 400,
     "fit in 64 bits"),
    ("POST", f"/v1/models/{NAME}:predict", b'{"instances": [[true, true]]}', 400,
     "integer token ids"),
    # found by the v1 parser's property test (test_protocol_v1.py): NumPy reads [3, true] as
    # the ids [3, 1] (a 200), and a signature_name that is a list was a 500
    ("POST", f"/v1/models/{NAME}:predict", b'{"instances": [[3, true]]}', 400,
     "a boolean is not one. Received: True among the integers"),
    ("POST", f"/v1/models/{NAME}:predict", b'{"inputs": {"token_ids": [[3, 4], [false, 5]]}}',
     400, "sequence 1 must hold integers, and a boolean is not one"),
    ("POST", f"/v1/models/{NAME}:predict", b'{"instances": [[3]], "signature_name": []}', 400,
     "signature_name must be one of"),
    # case 8: half a surrogate pair, which JSON can escape and Unicode cannot hold
    ("POST", f"/v1/models/{NAME}:predict", b'{"instances": ["the dog \\ud83d"]}', 400,
     "lone UTF-16 surrogate U+D83D"),
    ("POST", f"/v2/models/{NAME}/infer", b'{"inputs": [{"name": "text", "shape": [1], '
     b'"datatype": "BYTES", "data": ["\\udc00 x"]}]}', 400, "lone UTF-16 surrogate U+DC00"),
    # found by the fuzzer (test_fuzz.py): "text" declared as numbers was a 500
    ("POST", f"/v2/models/{NAME}/infer", b'{"inputs": [{"name": "text", "shape": [0], '
     b'"datatype": "INT32", "data": []}]}', 400, "text must be a non-empty list of strings"),
    ("POST", f"/v2/models/{NAME}/infer", b'{"inputs": [{"name": "text", "shape": [2], '
     b'"datatype": "INT32", "data": [1, 2]}]}', 400, "text must be a non-empty list of strings"),
    # found by the long fuzz run: "¹" is a digit to str.isdigit, not to int (a 500)
    ("POST", f"/v2/models/{NAME}/infer?version=%C2%B9", b"{}", 404, "no version '\u00b9'"),
    ("POST", f"/v2/models/{NAME}/versions/%C2%B9/infer", b"{}", 404, "no version '\u00b9'"),
    ("GET", f"/v1/models/{NAME}/versions/%C2%B9", None, 404, "no version '\u00b9'"),
    ("POST", "/v2/models/other/infer", b"{}", 404, "'other' is not served here"),
    ("POST", f"/v1/models/{NAME}/versions/7:predict", b'{"instances": [[1]]}', 404,
     "no version '7'"),
    ("GET", f"/v2/models/{NAME}/versions/x", None, 404, "no version 'x'"),
    ("GET", "/v3/anything", None, 404, "Not Found"),
])
def test_client_mistakes_are_4xx_never_500(server, method, path, body, status, words):
    answer_status, answer = call(server, method, path, body)
    assert answer_status == status and words in answer["error"], answer
    assert call(server, "GET", "/v2/health/live")[0] == 200  # still serving


def test_a_null_request_id_is_not_echoed_as_none(server):
    """Issue 19 case 7 (kserve #2775): "id": null is no id, not the string "None"."""
    status, answer = post(server, f"/v2/models/{NAME}/infer", {"id": None, "inputs": [
        {"name": "token_ids", "shape": [1, 2], "datatype": "INT64", "data": [3, 4]}]})
    assert status == 200 and "id" not in answer, answer
    status, answer = post(server, f"/v2/models/{NAME}/infer", {"id": "r-7", "inputs": [
        {"name": "token_ids", "shape": [1, 2], "datatype": "INT64", "data": [3, 4]}]})
    assert status == 200 and answer["id"] == "r-7", answer


def test_binary_data_of_the_wrong_size_is_400(server):
    header = json.dumps({"inputs": [{"name": "token_ids", "shape": [1, 2], "datatype": "INT32",
                                     "parameters": {"binary_data_size": 8}}]}).encode()
    request = urllib.request.Request(
        f"{server.url}/v2/models/{NAME}/infer", data=header + b"\x01\x00\x00\x00", method="POST",
        headers={"Inference-Header-Content-Length": str(len(header))})
    with pytest.raises(urllib.error.HTTPError) as raised:
        urllib.request.urlopen(request, timeout=30)
    assert raised.value.code == 400
    assert "binary_data_size must fit" in json.loads(raised.value.read())["error"]


# --- versions, batching under concurrency, shutdown ---------------------------------------


def test_a_new_version_is_served_without_restart(server, client, model_root, predictor):
    staging = model_root / ".staging-2"
    shutil.copytree(model_root / "1", staging)
    staging.rename(model_root / "2")  # as export.artifact.versions does: complete, then renamed
    try:
        ids = ids_batch(seed=11)
        tensor = triton_http.InferInput("token_ids", list(ids.shape), "INT32")
        tensor.set_data_from_numpy(ids)
        result = client.infer(NAME, [tensor])
        assert result.get_response()["model_version"] == "2"
        assert client.infer(NAME, [tensor], model_version="1").get_response()[
            "model_version"] == "1"
        status, answer = call(server, "GET", f"/v1/models/{NAME}")
        assert [entry["version"] for entry in answer["model_version_status"]] == ["2", "1"]
        assert_close(result.as_numpy("logits"), predictor.predict(ids))
    finally:
        shutil.rmtree(model_root / "2")
    status, answer = call(server, "GET", f"/v2/models/{NAME}/versions/2")
    assert status == 404


def infer_ids(server, version: int | None = None) -> tuple[int, dict]:
    path = f"/v2/models/{NAME}" + (f"/versions/{version}" if version else "") + "/infer"
    return post(server, path, {"inputs": [{"name": "token_ids", "shape": [1, 3],
                                           "datatype": "INT64", "data": [3, 4, 5]}]})


@pytest.mark.parametrize("damage, reason", [
    # issue 19 case 9 (tensorflow/serving #1480): a version folder still being copied in
    (lambda folder: (folder / "model.onnx").unlink(), "model.onnx: missing"),
    # a corrupted model.onnx: its sha256 is not the manifest's
    (lambda folder: (folder / "model.onnx").write_bytes(b"\x08\x07 not a model"),
     "model.onnx: changed (sha256 differs"),
])
def test_a_version_that_cannot_load_is_skipped_until_it_can(server, model_root, damage, reason):
    """The default infer, ready and status go on with version 1 and say why 8 is not served
    (they were 500s while /v2/health/ready said true); once the folder is whole, 8 serves."""
    partial = model_root / "8"
    shutil.copytree(model_root / "1", partial)
    damage(partial)
    try:
        status, answer = infer_ids(server)
        assert status == 200 and answer["model_version"] == "1", answer
        status, answer = infer_ids(server, 8)
        assert status == 503 and "Version 8 of model 'tiny' is not available" in answer["error"]
        assert reason in answer["error"], answer
        status, answer = call(server, "GET", f"/v2/models/{NAME}/versions/8/ready")
        assert (status, answer["ready"]) == (400, False) and reason in answer["error"]
        assert call(server, "GET", f"/v2/models/{NAME}/ready") == (
            200, {"name": NAME, "version": "1", "ready": True})
        assert call(server, "GET", "/v2/health/ready") == (200, {"ready": True})
        status, answer = call(server, "GET", f"/v1/models/{NAME}")
        assert status == 200 and [(entry["version"], entry["state"], entry["status"]["error_code"])
                                  for entry in answer["model_version_status"]] == [
            ("8", "END", "UNAVAILABLE"), ("1", "AVAILABLE", "OK")]
        assert reason in answer["model_version_status"][0]["status"]["error_message"]
        shutil.copy2(model_root / "1" / "model.onnx", partial / "model.onnx")  # the copy ends
        status, answer = infer_ids(server)
        assert status == 200 and answer["model_version"] == "8", answer
    finally:
        shutil.rmtree(partial)
    assert infer_ids(server)[1]["model_version"] == "1"


def test_a_body_over_the_limit_is_413_and_the_server_goes_on(model_root):
    """Issue 19 case 10: request bodies have a size limit, refused before they are read (from
    Content-Length) or as they stream in (chunked), with 413 and what to do."""
    import http.client

    limited = ServerProcess(model_root, "--max-request-bytes", "2000")
    try:
        body = json.dumps({"instances": [[3] * 8] * 120}).encode()
        assert len(body) > 2000
        status, answer = call(limited, "POST", f"/v1/models/{NAME}:predict", body)
        assert status == 413 and "--max-request-bytes 2000" in answer["error"], answer
        connection = http.client.HTTPConnection(limited.address, timeout=30)
        connection.request("POST", f"/v1/models/{NAME}:predict", body=iter([body[:1500]] * 2),
                           headers={"Content-Type": "application/json"}, encode_chunked=True)
        reply = connection.getresponse()
        assert reply.status == 413 and "more than 2000 bytes" in json.loads(reply.read())["error"]
        connection.close()
        assert post(limited, f"/v1/models/{NAME}:predict", {"instances": [[3, 4]]})[0] == 200
    finally:
        code, output = limited.stop()
    assert "Traceback" not in output, output


@pytest.mark.parametrize("path, body", [
    (f"/v2/models/{NAME}/infer", {"inputs": [{"name": "text", "shape": [1], "datatype": "BYTES",
                                               "data": ["the dog was very happy"]}]}),
    (f"/v1/models/{NAME}:predict", {"instances": ["the dog was very happy"]}),
])
def test_parsing_tokenizing_and_answering_run_off_the_event_loop(model_root, monkeypatch, path,
                                                                 body):
    """Issue 19 case 10 (fastapi #1806): a 10 MB text took 4 s to tokenize on the event loop, and
    a liveness probe sent after it waited for it. Each CPU-bound step of a request must run in a
    worker thread: checked by where it runs (the app called in-process through ASGI), not by
    how long a probe takes."""
    from export.serving import app as app_module
    from export.serving import protocol_v1, protocol_v2
    from export.serving.repository import ModelRoot, ServedVersion

    on_loop = {}

    def recording(name, function):
        def wrapper(*args, **kwargs):
            try:
                asyncio.get_running_loop()
                on_loop[name] = True  # called from a coroutine, on the loop's thread
            except RuntimeError:
                on_loop[name] = False
            return function(*args, **kwargs)
        return wrapper

    monkeypatch.setattr(protocol_v2, "parse_infer_request",
                        recording("parse", protocol_v2.parse_infer_request))
    monkeypatch.setattr(protocol_v1, "parse_predict", recording("parse", protocol_v1.parse_predict))
    monkeypatch.setattr(protocol_v2, "infer_response",
                        recording("answer", protocol_v2.infer_response))
    monkeypatch.setattr(app_module, "_json", recording("answer", app_module._json))
    monkeypatch.setattr(ServedVersion, "token_ids",
                        recording("tokenize", ServedVersion.token_ids))
    root = ModelRoot(model_root)
    status = asyncio.run(_asgi_post(app_module.create_app(root), path, json.dumps(body).encode()))
    asyncio.run(root.close())
    assert status == 200
    assert on_loop == {"parse": False, "tokenize": False, "answer": False}, on_loop


async def _asgi_post(app, path: str, body: bytes) -> int:
    """One POST through the ASGI interface, as uvicorn makes it; the response's status."""
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
             "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"",
             "root_path": "", "headers": [(b"content-type", b"application/json"),
                                          (b"content-length", str(len(body)).encode())],
             "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 80)}
    messages = [{"type": "http.request", "body": body, "more_body": False}]
    sent = []

    async def receive():
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)

    await app(scope, receive, send)
    return next(message["status"] for message in sent if message["type"] == "http.response.start")


def test_concurrent_requests_of_mixed_lengths(server, predictor):
    rng = np.random.default_rng(5)
    requests = [rng.integers(1, 50, (int(rng.integers(1, 4)), int(rng.integers(1, 17))))
                for _ in range(48)]
    answers = [None] * len(requests)

    def send(index):
        status, answer = post(server, f"/v1/models/{NAME}:predict",
                              {"inputs": requests[index].tolist()})
        answers[index] = (status, answer)

    threads = [threading.Thread(target=send, args=(i,)) for i in range(len(requests))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for ids, (status, answer) in zip(requests, answers, strict=True):
        assert status == 200, answer
        np.testing.assert_allclose(np.asarray(answer["outputs"], np.float32),
                                   predictor.predict(ids), rtol=0, atol=TOLERANCE)


def test_sigterm_lets_requests_in_flight_finish(model_root, predictor):
    # A request waits 1.5 s in the queue for batch-mates; SIGTERM arrives meanwhile.
    process = ServerProcess(model_root, "--max-queue-delay-ms", "1500")
    answers = []
    sender = threading.Thread(target=lambda: answers.append(
        post(process, f"/v1/models/{NAME}:predict", {"instances": [[5, 6, 7]]})))
    sender.start()
    time.sleep(0.5)
    code, output = process.stop()
    sender.join()
    assert code == -signal.SIGTERM and "Traceback" not in output, output
    status, answer = answers[0]
    assert status == 200, answer
    assert_close(np.asarray(answer["predictions"], np.float32),
                                  predictor.predict([[5, 6, 7]]))


@pytest.fixture(scope="module")
def queued_server(model_root):
    """A server whose requests wait 1.5 s in the queue for batch-mates: a request stays in
    flight long enough for a fault to strike it. Its log must end clean."""
    process = ServerProcess(model_root, "--max-queue-delay-ms", "1500")
    yield process
    code, output = process.stop()
    assert code == -signal.SIGTERM, output
    for sign in ("Traceback", "Exception in ASGI application", "ERROR"):
        assert sign not in output, output


def post_in_background(server, path: str, document) -> tuple[threading.Thread, list]:
    answers: list = []
    sender = threading.Thread(target=lambda: answers.append(post(server, path, document)))
    sender.start()
    return sender, answers


def test_a_version_deleted_while_served_finishes_its_requests_and_is_gone(queued_server,
                                                                         model_root, predictor):
    """Issue 19 (a server under faults): `rm -r 2/` while version 2 serves. The request in flight
    on it finishes with version 2's answer (its session is in memory); from then on the
    default is version 1, version 2 is 404, and /v1 status lists version 1 only."""
    staging = model_root / ".staging-3"
    shutil.copytree(model_root / "1", staging)
    staging.rename(model_root / "3")
    body = {"inputs": [{"name": "token_ids", "shape": [1, 3], "datatype": "INT32",
                        "data": [5, 6, 7]}]}
    try:
        assert infer_ids(queued_server, 3)[0] == 200  # version 3 loaded
        sender, answers = post_in_background(queued_server, f"/v2/models/{NAME}/versions/3/infer",
                                             body)
        time.sleep(0.5)  # the request waits in version 3's queue
    finally:
        shutil.rmtree(model_root / "3")
    sender.join()
    status, answer = answers[0]
    assert status == 200 and answer["model_version"] == "3", answer
    assert_close(np.asarray(answer["outputs"][0]["data"], np.float32),
                 predictor.predict([[5, 6, 7]]).reshape(-1))
    status, answer = infer_ids(queued_server, 3)
    assert status == 404 and "has no version '3'; versions present: [1]" in answer["error"]
    assert infer_ids(queued_server)[1]["model_version"] == "1"
    status, answer = call(queued_server, "GET", f"/v1/models/{NAME}")
    assert [entry["version"] for entry in answer["model_version_status"]] == ["1"]


def test_a_client_that_disconnects_mid_request_harms_no_one(queued_server, predictor):
    """Issue 19 (a server under faults): one client hangs up halfway through its body, another
    right after sending a whole request (while it waits in the queue). The server logs no
    error, and the requests around them are answered."""
    sender, answers = post_in_background(queued_server, f"/v1/models/{NAME}:predict",
                                         {"instances": [[5, 6, 7]]})
    body = json.dumps({"instances": [[3, 4, 5]]}).encode()
    head = (f"POST /v1/models/{NAME}:predict HTTP/1.1\r\nHost: {queued_server.address}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n").encode()
    for sent in (head + body[:len(body) // 2], head + body):
        with socket.create_connection(("127.0.0.1", queued_server.port), timeout=10) as hung_up:
            hung_up.sendall(sent)
            time.sleep(0.2)  # the server has read what was sent
    sender.join()
    status, answer = answers[0]
    assert status == 200, answer
    assert_close(np.asarray(answer["predictions"], np.float32), predictor.predict([[5, 6, 7]]))
    time.sleep(1.5)  # the abandoned request's batch runs, and its answer has nowhere to go
    status, answer = post(queued_server, f"/v1/models/{NAME}:predict", {"instances": [[8, 9]]})
    assert status == 200, answer
    assert call(queued_server, "GET", "/v2/health/live") == (200, {"live": True})


@pytest.mark.parametrize("workers", ["1", "2"])
@pytest.mark.parametrize("flag", ["--port", "--grpc-port"])
def test_a_port_in_use_is_bad_input_before_the_banner(tmp_path, workers, flag):
    from tests.serving_cases import HOST, free_port

    (tmp_path / NAME / "1").mkdir(parents=True)  # `check` only looks for a numbered version
    with socket.socket() as taken:
        taken.bind((HOST, 0))
        taken.listen()
        port = taken.getsockname()[1]
        ports = {"--port": str(free_port()), "--grpc-port": str(free_port()), flag: str(port)}
        result = subprocess.run(
            [sys.executable, "-m", "keras_attn.cli", "serve", str(tmp_path / NAME), "--host",
             HOST, *(item for pair in ports.items() for item in pair), "--workers", workers],
            capture_output=True, text=True, timeout=120, cwd=REPO_ROOT)
    assert (result.returncode, result.stdout) == (2, ""), result.stdout + result.stderr
    assert result.stderr.strip() == (
        f"keras-attn serve: error: Port {port} on {HOST} is already in use (another server?). "
        f"Choose another {flag}. Received: --host {HOST} {flag} {port}")


def test_two_workers_serve_on_the_socket_bound_before_them(model_root, predictor):
    process = ServerProcess(model_root, "--workers", "2", "--threads", "1")
    try:
        status, answer = post(process, f"/v1/models/{NAME}:predict",
                              {"instances": [[5, 6, 7]]})
    finally:
        code, output = process.stop()
    assert status == 200, answer
    assert_close(np.asarray(answer["predictions"], np.float32), predictor.predict([[5, 6, 7]]))
    assert "Traceback" not in output, output
