"""export/serving/generate.py: `POST /v2/models/NAME/generate` and `generate_stream` (Triton's
generate extension) on a language model's export: greedy text equals `keras-attn generate`'s,
a stream's pieces add up to the answer, bad requests are 400s, a stream does not block the other
routes, and a client that hangs up stops its decoding."""

from __future__ import annotations

import http.client
import json
import shutil
import threading
import time

import pytest
import uvicorn

from export.runtime.generation import generate_from_export
from export.serving.app import create_app
from export.serving.repository import ModelRoot
from tests.repo_paths import FIXTURES
from tests.serving_cases import HOST, NAME, free_port, served

LM = FIXTURES / "version_folders" / "lm"  # a tiny word-level language model with decoder.onnx
PROMPTS = ["the cat", "a dog was near the", "it"]


@pytest.fixture(scope="module")
def lm_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("generate") / "lm"
    shutil.copytree(LM, root)
    return root


@pytest.fixture(scope="module")
def server(lm_root):
    yield from served(lm_root)


def post(port: int, path: str, body) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection(HOST, port, timeout=60)
    connection.request("POST", path, body=body if isinstance(body, bytes) else json.dumps(body))
    reply = connection.getresponse()
    return reply.status, reply.read()


def events(data: bytes) -> list[dict]:
    return [json.loads(chunk[len(b"data: "):]) for chunk in data.split(b"\n\n") if chunk]


@pytest.mark.parametrize("penalties", [{}, {"no_repeat_ngram_size": 2},
                                       {"repetition_penalty": 1.5}])
@pytest.mark.parametrize("prompt", PROMPTS)
def test_greedy_text_is_keras_attn_generates(server, lm_root, prompt, penalties):
    status, body = post(server.port, "/v2/models/lm/generate",
                        {"text_input": prompt, "max_tokens": 8, **penalties})
    assert status == 200, body
    answer = json.loads(body)
    expected = generate_from_export(lm_root / "1", prompt, 8, **penalties)
    assert answer["text_output"] == expected.continuation
    assert (answer["model_name"], answer["model_version"]) == ("lm", "1")
    assert answer["stop_reason"] == expected.stop_reason.replace("max_new_tokens", "max_tokens")


@pytest.mark.parametrize("settings", [{"max_tokens": 6},
                                      {"max_tokens": 6, "temperature": 0.9, "top_k": 5,
                                       "seed": 3}])
def test_a_streams_pieces_add_up_to_the_answer(server, settings):
    request = {"text_input": "the cat", "parameters": settings}
    status, body = post(server.port, "/v2/models/lm/generate", request)
    answer = json.loads(body)
    status, stream = post(server.port, "/v2/models/lm/generate_stream", request)
    assert status == 200
    received = events(stream)
    assert "".join(event["text_output"] for event in received) == answer["text_output"]
    assert received[-1]["stop_reason"] == answer["stop_reason"]
    assert all("stop_reason" not in event for event in received[:-1])
    assert len(received) - 1 <= settings["max_tokens"]


def test_the_same_seed_gives_the_same_sample(server):
    request = {"text_input": "the", "max_tokens": 8, "temperature": 1.0, "seed": 11}
    first, second = (json.loads(post(server.port, "/v2/models/lm/generate", request)[1])
                     for _ in range(2))
    assert first == second


@pytest.mark.parametrize("body, status, message", [
    ({"text_input": "the", "max_tokens": -1}, 400, "max_tokens must be an integer >= 0"),
    ({"text_input": "the", "top_k": 3}, 400, "with temperature=0 (greedy) they would be"),
    ({"text_input": "the", "repetition_penalty": 0}, 400, "repetition_penalty must be"),
    ({"text_input": "the", "stream": True}, 400, "Unknown key(s) ['stream']"),
    ({"text_input": "the", "seed": 1, "parameters": {"seed": 2}}, 400, "Give each setting once"),
    ({"max_tokens": 3}, 400, '"text_input" to be a string'),
    ({"text_input": "the " * 40}, 400, "The prompt does not fit"),
    (b'{"text_input": "\\ud800"}', 400, "lone UTF-16 surrogate"),
    (b"\xff", 400, "The request body must be JSON"),
])
@pytest.mark.parametrize("route", ["generate", "generate_stream"])
def test_bad_requests_are_400_with_the_reason(server, route, body, status, message):
    got, answer = post(server.port, f"/v2/models/lm/{route}", body)
    assert got == status and message in json.loads(answer)["error"], answer


def test_a_classifier_is_not_generated_from(tiny_model_root):
    process = next(served(tiny_model_root))
    try:
        status, answer = post(process.port, f"/v2/models/{NAME}/generate", {"text_input": "a"})
    finally:
        process.stop()
    assert status == 400 and "Generation serves language models" in json.loads(answer)["error"]


class GatedStep:
    """The real decoder step, counting its calls; the second call waits for `gate`."""

    def __init__(self, step):
        self.step, self.calls, self.gate = step, 0, threading.Event()
        self.max_len, self.vocab_size = step.max_len, step.vocab_size

    def empty_cache(self):
        return self.step.empty_cache()

    def __call__(self, *args):
        self.calls += 1
        if self.calls == 2:
            assert self.gate.wait(timeout=60)
        return self.step(*args)


@pytest.fixture
def in_process(lm_root):
    """The app in this process (so that its decoder step can be gated), on a free port."""
    root = ModelRoot(lm_root)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(root), host=HOST, port=port,
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    served_version = root.get("lm")
    gated = GatedStep(served_version.decoder_step())
    served_version._sessions["decoder"] = gated  # what decoder_step() hands out
    yield port, gated
    gated.gate.set()
    server.should_exit = True
    thread.join(timeout=30)


def open_stream(port: int, body: dict):
    """(connection, response) of a generate_stream request whose events are still to read."""
    connection = http.client.HTTPConnection(HOST, port, timeout=60)
    connection.request("POST", "/v2/models/lm/generate_stream", json.dumps(body))
    stream = connection.getresponse()
    assert stream.status == 200
    return connection, stream


def test_a_stream_waiting_on_its_model_blocks_no_other_route(in_process):
    port, gated = in_process
    _, stream = open_stream(port, {"text_input": "the cat", "max_tokens": 4})
    first = stream.readline()  # the first token's event; the second step now waits
    assert first.startswith(b"data: ")
    status, answer = post(port, "/v2/models/lm/infer", {"inputs": [
        {"name": "token_ids", "shape": [1, 2], "datatype": "INT64", "data": [5, 6]}]})
    assert status == 200 and not gated.gate.is_set(), answer  # answered while it waits
    status, _ = post(port, "/v2/models/lm/generate", {"text_input": "a", "max_tokens": 0})
    assert status == 200
    gated.gate.set()
    assert events(first + stream.read())[-1]["stop_reason"] == "max_tokens"


def test_a_client_that_hangs_up_stops_its_decoding(in_process):
    port, gated = in_process
    connection, stream = open_stream(port, {"text_input": "the", "max_tokens": 12})
    assert stream.readline().startswith(b"data: ")
    connection.sock.close()  # hang up while the second step waits
    connection.close()
    time.sleep(0.5)  # the server notices the hang-up and cancels the response
    gated.gate.set()  # the step in flight finishes; no further one may start
    time.sleep(1.0)
    # The first step made the event read; a second may have been in flight at the hang-up
    # (on a busy machine it may not have started); none after it.
    assert gated.calls <= 2, f"{gated.calls} decoding steps ran after the client hung up"
