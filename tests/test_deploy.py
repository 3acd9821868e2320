"""deploy/: the KServe InferenceService manifests and the container recipe agree with the code.

Neither docker nor a Kubernetes cluster runs here, so these check what can be checked without
them: the manifests are InferenceServices whose container arguments `keras-attn serve` accepts,
whose probes are routes the server has, on the port it listens on; the Dockerfile runs
`keras-attn serve` with arguments it accepts and installs the versions pyproject.toml declares.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from export.serving.app import create_app
from export.serving.repository import ModelRoot
from keras_attn.cli.main import build_parser

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

REPO_ROOT = Path(__file__).resolve().parents[1]
DEPLOY = REPO_ROOT / "deploy"


def load(name: str) -> dict:
    (document,) = yaml.safe_load_all((DEPLOY / "kserve" / name).read_text())
    assert document["apiVersion"] == "serving.kserve.io/v1beta1"
    assert document["kind"] == "InferenceService"
    return document


@pytest.fixture(scope="module")
def routes(tmp_path_factory) -> set[str]:
    root = tmp_path_factory.mktemp("routes") / "demo"
    (root / "1").mkdir(parents=True)  # nothing is loaded until the server starts
    return {route.path for route in create_app(ModelRoot(root)).routes}


def test_serve_manifest(routes):
    manifest = load("inferenceservice.yaml")
    predictor = manifest["spec"]["predictor"]
    assert 1 <= predictor["minReplicas"] <= predictor["maxReplicas"]
    assert predictor["scaleMetric"] == "concurrency"
    (container,) = predictor["containers"]
    args = build_parser().parse_args(["serve", *container["args"]])
    assert args.model_root == "/mnt/models"  # where KServe's storage initializer puts it
    assert args.name == "demo" and args.host == "0.0.0.0"
    assert [port["containerPort"] for port in container["ports"]] == [args.port]
    for probe in ("readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"]["port"] == args.port
        assert container[probe]["httpGet"]["path"] in routes
    assert container["env"][0]["name"] == "STORAGE_URI"
    annotations = manifest["metadata"]["annotations"]  # KServe's Prometheus scraping
    assert annotations["serving.kserve.io/enable-prometheus-scraping"] == "true"
    assert int(annotations["prometheus.kserve.io/port"]) == args.port
    assert annotations["prometheus.kserve.io/path"] in routes


def test_triton_manifest():
    model = load("triton-inferenceservice.yaml")["spec"]["predictor"]["model"]
    assert model["runtime"] == "kserve-tritonserver"
    assert model["protocolVersion"] == "v2"
    assert model["modelFormat"]["name"] == "onnx"


def test_dockerfile_runs_serve_with_the_declared_versions():
    text = (DEPLOY / "Dockerfile").read_text()
    entrypoint = json.loads(re.search(r"^ENTRYPOINT (.+)$", text, re.M).group(1))
    command = json.loads(re.search(r"^CMD (.+)$", text, re.M).group(1))
    assert entrypoint == ["keras-attn", "serve"]
    args = build_parser().parse_args([entrypoint[1], *command])
    assert re.search(rf"^EXPOSE {args.port} {args.grpc_port}$", text, re.M)  # HTTP, gRPC
    assert f"127.0.0.1:{args.port}/v2/health/ready" in text
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    declared = {re.split(r"[<>=!~;\[ ]", spec)[0]: spec.split(";")[0].replace(" ", "")
                for spec in project["dependencies"] + project["optional-dependencies"]["serve"]}
    installed = re.findall(r'"([A-Za-z0-9_.-]+(?:\[[^\]]*\])?[<>=!~][^"]*)"', text)
    assert installed, "the Dockerfile installs no pinned package"
    for spec in installed:
        name = re.split(r"[<>=!~\[]", spec)[0]
        assert declared.get(name) == spec, f"{spec}: pyproject.toml declares {declared.get(name)}"
    # Every package of the serve extra is installed: the server imports each of them.
    serve = project["optional-dependencies"]["serve"]
    assert {re.split(r"[<>=!~;\[ ]", spec)[0] for spec in serve} <= {
        re.split(r"[<>=!~\[]", spec)[0] for spec in installed}
