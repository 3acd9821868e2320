"""A real Triton server serves what `keras-attn triton-repo` writes: the text model
(export/serving/triton_text_model.py on Triton's Python backend) answers real multilingual text
over HTTP and gRPC (tritonclient) as `export.runtime` answers it, at the parity tolerance, and
refuses bad input with INVALID_ARG.

The server is the `tritonserver` of the PyPI package nvidia-pytriton, in a venv of its own
(tests/triton_server.py). Skipped, saying how to make that venv, only where it is absent."""

from __future__ import annotations

import json
import shutil
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import tritonclient.grpc as triton_grpc
import tritonclient.http as triton_http
from prometheus_client.parser import text_string_to_metric_families
from repo_paths import FIXTURES
from triton_server import HOW_TO_MAKE, running_triton, triton_venv
from tritonclient.utils import InferenceServerException

from export import runtime
from export.artifact.tokenizer import load_tokenizer
from keras_attn.cli.main import main

LANGUAGES = FIXTURES / "version_folders" / "languages" / "1"  # a classifier of 12 languages
TOLERANCE = 1e-5  # the export's fp32 parity tolerance
VENV = triton_venv()
pytestmark = pytest.mark.skipif(VENV is None, reason=f"no venv with nvidia-pytriton's "
                                f"tritonserver; make it with {HOW_TO_MAKE}")


def real_texts(count: int) -> list[str]:
    """Fortune cookies in 12 languages, Cyrillic, CJK and accents among them."""
    lines = (FIXTURES / "fortune_languages.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line)["text"] for line in lines[::len(lines) // count]][:count]


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """The languages classifier as a two-version model folder, its repository, the server."""
    scratch = tmp_path_factory.mktemp("triton-server")
    root = scratch / "languages"
    for version in ("1", "2"):
        (root / version).mkdir(parents=True)
        for name in ("model.onnx", "tokenizer.json", "manifest.json"):
            shutil.copyfile(LANGUAGES / name, root / version / name)
    assert main(["triton-repo", str(root), "--out", str(scratch / "repo")]) == 0
    with running_triton(VENV, scratch / "repo", ["languages_text"], scratch) as server:
        yield server, runtime.load(root / "1"), load_tokenizer(root / "1" / "tokenizer.json")


def expected(predictor, tokenizer, texts):
    logits = predictor.predict(tokenizer.encode_batch(texts, predictor.max_len))
    probabilities, labels = predictor.classify(logits)
    return logits, probabilities, [label.encode() for label in labels]


def text_input(module, texts):
    tensor = module.InferInput("text", [len(texts), 1], "BYTES")
    tensor.set_data_from_numpy(np.array([[text.encode()] for text in texts], dtype=object))
    return tensor


@pytest.mark.parametrize("client", ["http", "grpc"])
def test_text_in_answers_as_export_runtime(served, client):
    server, predictor, tokenizer = served
    module = triton_http if client == "http" else triton_grpc
    url = server.http_url if client == "http" else server.grpc_url
    texts = real_texts(24)
    result = module.InferenceServerClient(url).infer("languages_text",
                                                     [text_input(module, texts)])
    logits, probabilities, labels = expected(predictor, tokenizer, texts)
    np.testing.assert_allclose(result.as_numpy("logits"), logits, rtol=0, atol=TOLERANCE)
    np.testing.assert_allclose(result.as_numpy("probabilities"), probabilities, rtol=0,
                               atol=TOLERANCE)
    assert result.as_numpy("label").reshape(-1).tolist() == labels
    assert result.as_numpy("logits").dtype == np.float32


def test_concurrent_requests_batched_together_keep_their_own_answers(served):
    """Triton's dynamic batcher hands model.py several requests at once; they run as one
    onnxruntime call padded to the longest row, and each still gets its own rows back."""
    server, predictor, tokenizer = served
    texts = real_texts(32)
    client = triton_grpc.InferenceServerClient(server.grpc_url)

    def ask(start):
        part = texts[start:start + 1 + start % 3]
        return part, client.infer("languages_text", [text_input(triton_grpc, part)])

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(ask, range(0, 30, 2)))
    for part, result in answers:
        np.testing.assert_allclose(result.as_numpy("logits"),
                                   expected(predictor, tokenizer, part)[0], rtol=0,
                                   atol=TOLERANCE)


@pytest.mark.parametrize("client", ["http", "grpc"])
@pytest.mark.parametrize("data, message", [
    (b" \t ", "Every text needs at least one token after tokenization"),
    (b"\xff\xfe caf\xe9", "BYTES elements must be UTF-8 text. Received: element 0, invalid"),
])
def test_bad_text_is_invalid_argument(served, client, data, message):
    server, _, _ = served
    module = triton_http if client == "http" else triton_grpc
    url = server.http_url if client == "http" else server.grpc_url
    tensor = module.InferInput("text", [1, 1], "BYTES")
    tensor.set_data_from_numpy(np.array([[data]], dtype=object))
    with pytest.raises(InferenceServerException) as raised:
        module.InferenceServerClient(url).infer("languages_text", [tensor])
    assert message in raised.value.message()
    assert str(raised.value.status()) == ("400" if client == "http"
                                          else "StatusCode.INVALID_ARGUMENT")


def test_every_version_is_served_and_counted_in_triton_metrics(served):
    server, predictor, tokenizer = served
    client = triton_http.InferenceServerClient(server.http_url)
    for version in ("1", "2"):
        assert client.is_model_ready("languages_text", version)
        result = client.infer("languages_text", [text_input(triton_http, ["Guten Morgen!"])],
                              model_version=version)
        assert result.as_numpy("label").reshape(-1).tolist() == expected(
            predictor, tokenizer, ["Guten Morgen!"])[2]
    with urllib.request.urlopen(f"http://127.0.0.1:{server.metrics_port}/metrics") as response:
        families = {family.name: family for family in
                    text_string_to_metric_families(response.read().decode())}
    success = {sample.labels["version"]: sample.value
               for sample in families["nv_inference_request_success"].samples
               if sample.labels["model"] == "languages_text"}
    assert success["1"] >= 1 and success["2"] >= 1
