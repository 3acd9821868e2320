"""No request makes `keras-attn serve` answer 5xx, hang or stop serving: schemathesis draws
request bodies from the app's own OpenAPI document (both protocols' request schemas, in
`export.serving.protocol_v1` / `protocol_v2`) and sends them to a real server on a free loopback
port, with a fixed seed: every POST operation (predict and infer, with and without a version),
FUZZ_EXAMPLES bodies each. The suite sends 150 per operation (600 in all); for the long run,
`KERAS_ATTN_FUZZ_EXAMPLES=5000 python -m pytest -n 0 tests/export/serving/test_fuzz.py`
sends 10,000 per protocol. Its first run found two 500s, now tests of their own in
test_protocol_v2.py and test_app.py: a datatype that is a JSON object, and a "text" input
declared INT32."""

import os
import types

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from tests.serving_cases import NAME, ServerProcess, export_tiny_classifier

FUZZ_EXAMPLES = int(os.environ.get("KERAS_ATTN_FUZZ_EXAMPLES", "150"))


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    process = ServerProcess(export_tiny_classifier(tmp_path_factory.mktemp("fuzz")))
    yield process
    code, output = process.stop()
    assert "Traceback" not in output, output


def _openapi_document() -> dict:
    """The served app's OpenAPI document: it depends on the routes only, not on the model (the
    app is built on a stand-in root, and never started)."""
    from export.serving.app import create_app

    return create_app(types.SimpleNamespace(name=NAME)).openapi()


schema = schemathesis.openapi.from_dict(_openapi_document())


@schema.include(method="POST").parametrize()
@settings(max_examples=FUZZ_EXAMPLES, derandomize=True, deadline=None,
          suppress_health_check=list(HealthCheck))
def test_no_request_gets_a_server_error(case, server):
    case.path_parameters = {**(case.path_parameters or {}), "name": NAME}
    if "version" in case.path_parameters:
        case.path_parameters["version"] = "1"
    response = case.call(base_url=server.url, timeout=30)
    assert response.status_code < 500, (case.as_curl_command(), response.text[:500])
    if response.status_code >= 400:  # every refusal names what was wrong
        assert response.json().get("error"), response.text[:500]
