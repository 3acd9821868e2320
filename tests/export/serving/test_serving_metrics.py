"""GET /metrics (export/serving/metrics.py), read with prometheus-client's own parser: every
request is counted by model, version, protocol and status, timed, and every row's queue time
and batch recorded, in one process and summed over `--workers 2`."""

from __future__ import annotations

import json
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.serving_cases import NAME, ServerProcess, call, served


@pytest.fixture(scope="module")
def model_root(tiny_model_root):
    return tiny_model_root


@pytest.fixture(scope="module")
def server(model_root):
    # One batcher thread: a request's rows run as one batch (with two, each row its own).
    yield from served(model_root, "--threads", "1")


def scrape(server) -> dict:
    """{(sample name, sorted labels): value} of one GET /metrics."""
    with urllib.request.urlopen(f"{server.url}/metrics", timeout=30) as reply:
        assert reply.status == 200
        assert reply.headers["content-type"].startswith("text/plain; version=")  # the client's
        text = reply.read().decode()
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


def value(samples: dict, name: str, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def send_the_mix(server) -> None:
    """Three good v2 requests (5 rows), one good v1 request (2 rows), one 400, one unknown
    version (404), one unknown model (404) and one attention request."""
    for texts in (["the dog"], ["a cat sat", "the sun"], ["it ran", "the box"]):
        body = {"inputs": [{"name": "text", "shape": [len(texts)], "datatype": "BYTES",
                            "data": texts}]}
        assert call(server, "POST", f"/v2/models/{NAME}/infer",
                    json.dumps(body).encode())[0] == 200
    assert call(server, "POST", f"/v1/models/{NAME}:predict",
                json.dumps({"instances": [[5, 6, 7], [8, 9]]}).encode())[0] == 200
    assert call(server, "POST", f"/v1/models/{NAME}:predict", b'{"instances": [[5, 99999]]}')[
        0] == 400
    assert call(server, "POST", f"/v2/models/{NAME}/versions/7/infer", b"{}")[0] == 404
    assert call(server, "POST", "/v2/models/someone-else/infer", b"{}")[0] == 404
    assert call(server, "POST", f"/v2/models/{NAME}/attention",
                json.dumps({"text": "the dog was happy"}).encode())[0] == 200


def test_every_request_row_and_batch_is_counted(server):
    before = scrape(server)
    send_the_mix(server)
    after = scrape(server)

    def added(name, **labels):
        return value(after, name, **labels) - value(before, name, **labels)

    requests = "keras_attn_requests_total"
    assert added(requests, model=NAME, version="1", protocol="open_inference", code="200") == 3
    assert added(requests, model=NAME, version="1", protocol="tf_serving_rest", code="200") == 1
    assert added(requests, model=NAME, version="1", protocol="tf_serving_rest", code="400") == 1
    assert added(requests, model=NAME, version="", protocol="open_inference", code="404") == 1
    assert added(requests, model="", version="", protocol="open_inference", code="404") == 1
    assert added(requests, model=NAME, version="1", protocol="attention", code="200") == 1
    assert sum(v for (name, _), v in after.items() if name == requests) - sum(
        v for (name, _), v in before.items() if name == requests) == 8  # nothing else counted
    duration = "keras_attn_request_duration_seconds_count"
    assert added(duration, model=NAME, version="1", protocol="open_inference") == 3
    assert added("keras_attn_request_duration_seconds_sum", model=NAME, version="1",
                 protocol="open_inference") > 0
    # 5 + 2 rows went through the batcher (the 400 was refused before it, attention skips it)
    assert added("keras_attn_queue_duration_seconds_count", model=NAME, version="1") == 7
    assert added("keras_attn_batch_size_sum", model=NAME, version="1") == 7
    # one batch per request, sent one after another: 1, 2, 2 and 2 rows
    assert added("keras_attn_batch_size_count", model=NAME, version="1") == 4
    assert added("keras_attn_batch_size_bucket", model=NAME, version="1", le="1.0") == 1
    assert value(after, "keras_attn_model_version_loaded", model=NAME, version="1") == 1


def test_health_and_metadata_are_not_counted(server):
    before = scrape(server)
    for path in ("/v2/health/ready", "/v2/health/live", f"/v2/models/{NAME}",
                 f"/v1/models/{NAME}"):
        urllib.request.urlopen(server.url + path, timeout=30).close()
    after = scrape(server)
    assert {key: v for key, v in after.items() if key[0] == "keras_attn_requests_total"} == {
        key: v for key, v in before.items() if key[0] == "keras_attn_requests_total"}


def test_workers_report_the_sum_over_every_worker(model_root):
    process = ServerProcess(model_root, "--workers", "2", "--threads", "1")
    try:
        for _ in range(12):  # the kernel spreads connections over both workers
            assert call(process, "POST", f"/v1/models/{NAME}:predict",
                        json.dumps({"instances": [[5, 6, 7]]}).encode())[0] == 200
        for _ in range(3):  # whichever worker answers, it reports every worker's requests
            samples = scrape(process)
            assert value(samples, "keras_attn_requests_total", model=NAME, version="1",
                         protocol="tf_serving_rest", code="200") == 12
            assert value(samples, "keras_attn_batch_size_sum", model=NAME, version="1") == 12
            assert value(samples, "keras_attn_model_version_loaded", model=NAME,
                         version="1") == 1
    finally:
        code, output = process.stop()
    assert "Traceback" not in output, output
