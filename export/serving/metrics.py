"""`GET /metrics`: what `keras-attn serve` has done, in Prometheus's text exposition format,
kept by prometheus-client (the Prometheus project's own Python client).

    keras_attn_requests_total{model, version, protocol, code}        counter
    keras_attn_request_duration_seconds{model, version, protocol}    histogram, seconds
    keras_attn_queue_duration_seconds{model, version}                histogram, seconds
    keras_attn_batch_size{model, version}                            histogram, rows
    keras_attn_model_version_loaded{model, version}                  gauge, 1 or 0
    keras_attn_generated_tokens_total{model, version}                counter, tokens

- `protocol` is the route a request took: "tf_serving_rest" (`/v1/...:predict`),
  "open_inference" (`/v2/.../infer`), "attention" (`/v2/.../attention`), "generate" and
  "generate_stream" (`/v2/.../generate[_stream]`), or "open_inference_grpc" (gRPC's
  ModelInfer, counted by `export.serving.grpc_service`). Health, metadata and `/metrics`
  itself are not counted.
- `code` is the HTTP status answered (200, 400, 404, 413, 503; 499 for a client that hung up
  before sending its whole body), or for gRPC the status code's name ("OK",
  "INVALID_ARGUMENT", "NOT_FOUND", "UNAVAILABLE"; grpcio refuses an oversized message before
  the service sees it).
- `model` is the served model's name, or "" for a request naming another model (so that
  arbitrary names in URLs cannot grow the number of series); `version` is the version that
  answered, or "" when none did (an unknown version, a body refused before a version was
  chosen).
- A request's duration runs from its first byte in the app to its last byte out. A row's queue
  time runs from its request's arrival at its version's batcher to the start of the
  onnxruntime call that runs it (`export.serving.batching`); a batch's size is the rows of
  that call.

With `--workers N`, every worker writes its values to files in one folder
(`PROMETHEUS_MULTIPROC_DIR`, made by `serve` and removed when it stops), and the `/metrics` of
any worker reports counters and histograms summed over every worker and a version as loaded
when any worker has loaded it: prometheus-client's multiprocess mode.

The metric names follow Prometheus's conventions (base units, `_total` for counters) and, in
meaning, Triton's `nv_inference_*` and KServe's request metrics.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Sequence
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

MULTIPROCESS_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"  # prometheus-client's multiprocess mode
CONTENT_TYPE = CONTENT_TYPE_LATEST
# Seconds: from 0.5 ms (a row that runs at once) to 10 s.
QUEUE_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                 10.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)

# method, path pattern -> protocol label; group 1 is the model's name
_ROUTES = (
    ("POST", re.compile(r"^/v1/models/([^/]+?)(?:/versions/[^/]+)?:predict$"), "tf_serving_rest"),
    ("POST", re.compile(r"^/v2/models/([^/]+)(?:/versions/[^/]+)?/infer$"), "open_inference"),
    ("POST", re.compile(r"^/v2/models/([^/]+)(?:/versions/[^/]+)?/attention$"), "attention"),
    ("POST", re.compile(r"^/v2/models/([^/]+)(?:/versions/[^/]+)?/generate$"), "generate"),
    ("POST", re.compile(r"^/v2/models/([^/]+)(?:/versions/[^/]+)?/generate_stream$"),
     "generate_stream"),
)
# Where a route handler leaves the number of the version that answered (request.state).
VERSION_STATE = "served_version"


class ServerMetrics:
    """The server's metrics (module docstring), in a registry of their own.

    Args:
        model: the served model's name, the `model` label of its requests.
    """

    def __init__(self, model: str) -> None:
        self.model = model
        self.multiprocess = bool(os.environ.get(MULTIPROCESS_VARIABLE))
        self.registry = CollectorRegistry()
        register = None if self.multiprocess else self.registry  # multiprocess: files only
        self.requests = Counter(
            "keras_attn_requests", "Requests answered, by the HTTP status code answered.",
            ["model", "version", "protocol", "code"], registry=register)
        self.duration = Histogram(
            "keras_attn_request_duration_seconds",
            "Time from a request's arrival to its answer, in seconds.",
            ["model", "version", "protocol"], registry=register)
        self.queue = Histogram(
            "keras_attn_queue_duration_seconds",
            "Time each row waited in its version's batcher before its batch ran, in seconds.",
            ["model", "version"], buckets=QUEUE_BUCKETS, registry=register)
        self.batch_size = Histogram(
            "keras_attn_batch_size", "Rows in each batch run by onnxruntime.",
            ["model", "version"], buckets=BATCH_BUCKETS, registry=register)
        self.loaded = Gauge(
            "keras_attn_model_version_loaded", "1 for each version loaded and served.",
            ["model", "version"], registry=register, multiprocess_mode="max")
        self.generated = Counter(
            "keras_attn_generated_tokens", "Tokens decoded by /generate and /generate_stream.",
            ["model", "version"], registry=register)

    # Hooks `export.serving.repository.ModelRoot` calls.
    def version_loaded(self, version: int) -> None:
        self.loaded.labels(self.model, str(version)).set(1)

    def version_removed(self, version: int) -> None:
        self.loaded.labels(self.model, str(version)).set(0)

    def request_answered(self, name: str, version: str, protocol: str, code: str,
                         seconds: float) -> None:
        """Counts and times one inference request: `name` as the request named the model
        (counted as "" when it is not this server's), `version` the one that answered ("" if
        none), `code` the HTTP status or gRPC status code's name, `seconds` from arrival to
        answer."""
        model = name if name == self.model else ""
        self.requests.labels(model, version, protocol, code).inc()
        self.duration.labels(model, version, protocol).observe(seconds)

    def batch_observer(self, version: int) -> Callable[[int, Sequence[float]], None]:
        """What a version's `DynamicBatcher` calls with each batch: its size and the seconds
        each of its rows waited."""
        size = self.batch_size.labels(self.model, str(version))
        queue = self.queue.labels(self.model, str(version))

        def observe(rows: int, waits: Sequence[float]) -> None:
            size.observe(rows)
            for wait in waits:
                queue.observe(wait)

        return observe

    def exposition(self) -> bytes:
        """The text `GET /metrics` answers (Content-Type `CONTENT_TYPE`)."""
        if not self.multiprocess:
            return generate_latest(self.registry)
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry)


class MetricsMiddleware:
    """An ASGI middleware (Starlette's `app.add_middleware(MetricsMiddleware, metrics=...)`)
    that counts and times every inference request into `metrics`.

    Args:
        app: the ASGI application it wraps.
        metrics: the server's `ServerMetrics`.
    """

    def __init__(self, app: Any, metrics: ServerMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        route = _route(scope) if scope["type"] == "http" else None
        if route is None:
            await self.app(scope, receive, send)
            return
        name, protocol = route
        start = time.perf_counter()
        code = {"status": 500}

        async def sending(message: dict) -> None:
            if message["type"] == "http.response.start":
                code["status"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            self.metrics.request_answered(
                name, str(scope.get("state", {}).get(VERSION_STATE, "")), protocol,
                str(code["status"]), time.perf_counter() - start)


def _route(scope: dict) -> tuple[str, str] | None:
    """(model name, protocol label) of an inference request, None for any other."""
    for method, pattern, protocol in _ROUTES:
        if scope["method"] == method and (found := pattern.match(scope["path"])):
            return found.group(1), protocol
    return None
