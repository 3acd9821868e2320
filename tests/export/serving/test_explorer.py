"""The attention viewer served (export/serving/explorer.py): POST /v2/models/NAME/attention
answers what attention.onnx computes in onnxruntime, every bad body gets 400 with the server's
message, and GET /explore/NAME serves the page. The page in a browser is
tests/browser/test_viewer.py."""

from __future__ import annotations

import json
import shutil
import urllib.error
import urllib.request

import numpy as np
import pytest

from export.artifact.manifest import ATTENTION_FILENAME, MANIFEST_FILENAME, TOKENIZER_FILENAME
from export.artifact.tokenizer import load_tokenizer
from export.runtime.attention import load_attention
from tests.serving_cases import NAME, call, served

TEXT = "the dog loved the toy it was very excited"


@pytest.fixture(scope="module")
def model_root(tiny_model_root, tmp_path_factory):
    """Version 1 as exported; version 2 the same model with attention.onnx left out, as an
    export whose attention check failed leaves it (the manifest says why); version 3 without
    its tokenizer.json (an export of ids only)."""
    root = tmp_path_factory.mktemp("explorer") / NAME
    shutil.copytree(tiny_model_root, root)
    for version, left_out in (("2", ATTENTION_FILENAME), ("3", TOKENIZER_FILENAME)):
        shutil.copytree(root / "1", root / version)
        (root / version / left_out).unlink()
        manifest = json.loads((root / version / MANIFEST_FILENAME).read_text(encoding="utf-8"))
        del manifest["files"][left_out]
        if left_out == ATTENTION_FILENAME:
            manifest["attention"] = {"shipped": False, "reason": "left out on purpose by the test"}
        (root / version / MANIFEST_FILENAME).write_text(json.dumps(manifest), encoding="utf-8")
    return root


@pytest.fixture(scope="module")
def server(model_root):
    yield from served(model_root)


def post(server, path: str, body: bytes) -> tuple[int, dict]:
    return call(server, "POST", path, body)


def test_attention_is_what_onnxruntime_computes(server, model_root):
    status, answer = post(server, f"/v2/models/{NAME}/versions/1/attention",
                          json.dumps({"text": TEXT}).encode())
    assert status == 200, answer
    tokenizer = load_tokenizer(model_root / "1" / "tokenizer.json")
    ids = tokenizer.encode_batch([TEXT], 16)
    assert answer["tokens"] == tokenizer.tokens(ids[0])
    assert answer["model_name"] == NAME and answer["model_version"] == "1"
    expected = load_attention(model_root / "1").maps(ids)
    n = len(answer["tokens"])
    assert len(answer["attentions"]) == len(expected)
    for block, weights in enumerate(expected):
        np.testing.assert_allclose(answer["attentions"][block], weights[0][:, :n, :n], atol=1e-4)
        np.testing.assert_allclose(np.sum(answer["attentions"][block], axis=-1), 1, atol=1e-3)


@pytest.mark.parametrize("body, message", [
    (b"{not json", "must be JSON"),
    (b"\xff\xfe", "must be JSON"),
    (b'["the dog"]', 'one key, "text". Received: list'),
    (b'{"text": "a", "extra": 1}', "Received: keys ['extra', 'text']"),
    (b'{"inputs": []}', "Received: keys ['inputs']"),
    (b'{"text": ["the dog"]}', 'Expected "text" to be a non-empty string. Received: list'),
    (b'{"text": ""}', "non-empty string"),
    (b'{"text": 7}', "Received: int 7"),
    (b'{"text": "   "}', "Every text needs at least one token"),
    (b'{"text": "a \\ud800 b"}', "surrogate"),
])
def test_a_bad_body_gets_400_saying_what_was_wrong(server, body, message):
    status, answer = post(server, f"/v2/models/{NAME}/versions/1/attention", body)
    assert status == 400 and message in answer["error"], answer


def test_unknown_models_versions_and_a_version_without_attention_get_404(server):
    body = json.dumps({"text": TEXT}).encode()
    status, answer = post(server, "/v2/models/other/attention", body)
    assert status == 404 and "is not served here" in answer["error"]
    status, answer = post(server, f"/v2/models/{NAME}/versions/9/attention", body)
    assert status == 404 and "versions present: [1, 2, 3]" in answer["error"]
    status, answer = post(server, f"/v2/models/{NAME}/versions/2/attention", body)
    assert status == 404 and "left out on purpose by the test" in answer["error"], answer


def test_a_version_without_a_tokenizer_says_so(server):
    body = json.dumps({"text": TEXT}).encode()
    for path in (f"/v2/models/{NAME}/versions/3/attention", f"/v2/models/{NAME}/attention"):
        status, answer = post(server, path, body)  # the default is version 3
        assert status == 400 and "Version 3 has no tokenizer.json" in answer["error"], answer


def test_explore_serves_the_page_for_the_version(server):
    with urllib.request.urlopen(f"{server.url}/explore/{NAME}/versions/1", timeout=30) as reply:
        assert reply.status == 200 and reply.headers["content-type"].startswith("text/html")
        page = reply.read().decode()
    assert f'"attention_url":"/v2/models/{NAME}/versions/1/attention"' in page
    with pytest.raises(urllib.error.HTTPError) as error:
        urllib.request.urlopen(f"{server.url}/explore/other", timeout=30)
    assert error.value.code == 404
