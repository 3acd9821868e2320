"""`keras-attn serve`: one model folder over HTTP, in TF Serving's REST API (v1) and the Open
Inference Protocol (KServe v2 / Triton), on onnxruntime. FastAPI routes, uvicorn serves.

    /v1/models/NAME[/versions/N]:predict      POST   TF Serving predict
    (`export.serving.protocol_v1`)
    /v1/models/NAME[/versions/N][/metadata]   GET    version status, signature metadata
    /v2/health/live, /v2/health/ready         GET    liveness, readiness
    /v2/models/NAME[/versions/N][/ready]      GET    model metadata, model readiness
    /v2/models/NAME[/versions/N]/infer        POST   Open Inference Protocol (v2)
    /v2/models/NAME[/versions/N]/attention    POST   attention weights of {"text": str}
    /explore/NAME[/versions/N]                GET    the attention viewer page
    (`export.serving.explorer`)
    /metrics                                  GET    Prometheus metrics
    (`export.serving.metrics`)

Errors are `{"error": message}`: 400 for a request the server cannot use (malformed JSON, a
missing field, ids that `export.artifact.token_ids` refuses, with its message), 404 for an unknown
model or version, 413 for a body over `--max-request-bytes`, 503 for a version that cannot be
loaded. A client that hangs up before its whole body is sent is logged (INFO) and dropped; one
that hangs up while its request runs is answered into the void (uvicorn drops the answer). A bad
request never stops the server. A request is parsed, tokenized and answered in a
worker thread, never on the event loop, so one large request does not hold up a liveness probe
or a small request behind it (fastapi #1806). Requests run through each version's
`DynamicBatcher`; on SIGTERM or Ctrl-C uvicorn stops accepting connections and the requests in
flight finish before the process exits.

NumPy, onnxruntime, `tokenizers`, FastAPI/uvicorn and the standard library only: no TensorFlow.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import functools
import importlib.metadata
import json
import os
import socket
import tempfile
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse, StreamingResponse
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect

from export.artifact.versions import ascii_digits
from export.serving import protocol_v1 as tf_serving_rest
from export.serving import protocol_v2 as open_inference
from export.serving.explorer import (
    ATTENTION_REQUEST_SCHEMA,
    attention_answer,
    explorer_page,
    parse_attention_request,
)
from export.serving.generate import (
    GENERATE_REQUEST_SCHEMA,
    generate_answer,
    parse_generate_request,
    start_decoding,
    stream_events,
)
from export.serving.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from export.serving.metrics import (
    MULTIPROCESS_VARIABLE,
    VERSION_STATE,
    MetricsMiddleware,
    ServerMetrics,
)
from export.serving.repository import (
    LOG,
    BadRequestError,
    BatchSettings,
    ModelRoot,
    NotFoundError,
    UnavailableError,
)

# Where `--workers N` hands the settings to each uvicorn worker process.
SETTINGS_VARIABLE = "KERAS_ATTN_SERVE"
GRACEFUL_SHUTDOWN_S = 30
MAX_REQUEST_BYTES = 32 * 2**20
DEFAULT_GRPC_PORT = 8500  # TF Serving's gRPC port (Triton's is 8001)
CLIENT_CLOSED_REQUEST = 499  # nginx's status for a client that hung up mid-request


class PayloadTooLargeError(ValueError):
    """A request body over the server's limit: 413."""


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refused (PayloadTooLargeError) as soon as it is known to pass `limit`
    bytes: from its Content-Length before reading, or while it streams in (chunked)."""
    declared = request.headers.get("content-length", "")
    if ascii_digits(declared) and int(declared) > limit:
        raise PayloadTooLargeError(_too_large(limit, f"Content-Length {declared}"))
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLargeError(_too_large(limit, f"more than {limit} bytes"))
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large(limit: int, received: str) -> str:
    return (f"The request body is larger than this server takes (--max-request-bytes {limit}). "
            f"Send fewer or shorter texts per request. Received: {received}")


def create_app(root: ModelRoot, max_request_bytes: int = MAX_REQUEST_BYTES,
               grpc_address: tuple[str, int] | None = None) -> FastAPI:
    """The FastAPI application serving `root`'s versions in both protocols.

    Args:
        root: the model folder.
        max_request_bytes: the largest request body answered; larger ones get 413 (over
            gRPC: RESOURCE_EXHAUSTED).
        grpc_address: (host, port) where the Open Inference Protocol's gRPC service
            (`export.serving.grpc_service`) listens while the app runs, on its event loop;
            None for none.
    """

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        try:
            root.get(root.name)  # the latest version is loaded before the server says ready
        except UnavailableError as error:  # up, not ready, until a version can be loaded
            LOG.warning("%s", error)
        grpc_server = None
        if grpc_address is not None:
            from export.serving.grpc_service import start_grpc_server

            grpc_server = await start_grpc_server(root, *grpc_address, _server_metadata(),
                                                  max_request_bytes)
        yield
        if grpc_server is not None:  # calls in flight finish (up to the same grace)
            await grpc_server.stop(GRACEFUL_SHUTDOWN_S)
        await root.close()  # uvicorn has drained the connections: finish what is queued

    app = FastAPI(title=f"keras-attn serve {root.name}", lifespan=lifespan)
    metrics = ServerMetrics(root.name)
    root.metrics = metrics
    app.add_middleware(MetricsMiddleware, metrics=metrics)

    for error_type, status in ERROR_STATUS.items():
        app.add_exception_handler(error_type, _error_response(status))

    @app.exception_handler(ClientDisconnect)
    async def client_gone(request: Request, error: ClientDisconnect) -> Response:
        # The client hung up before its body was read: nothing to answer, nothing wrong here.
        # 499 is nginx's "client closed request", for the access log; no one receives it.
        LOG.info("The client hung up before sending its whole request: %s %s", request.method,
                 request.url.path)
        return Response(status_code=CLIENT_CLOSED_REQUEST)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, error: HTTPException) -> JSONResponse:
        return JSONResponse({"error": f"{error.detail}: {request.method} {request.url.path}"},
                            status_code=error.status_code)

    # TF Serving REST API (v1)
    @app.get("/v1/models/{name}")
    @app.get("/v1/models/{name}/versions/{version}")
    async def v1_status(name: str, version: str | None = None) -> dict[str, Any]:
        if version is None:  # every version present, with why it is not served if it is not
            root.check_name(name)
            versions = root.versions()
        else:
            try:
                versions = [root.get(name, version).version]
            except UnavailableError:
                versions = [int(version)]
        return tf_serving_rest.version_status(name, {number: root.state(number)
                                                     for number in versions})

    @app.get("/v1/models/{name}/metadata")
    @app.get("/v1/models/{name}/versions/{version}/metadata")
    async def v1_metadata(name: str, version: str | None = None) -> dict[str, Any]:
        return tf_serving_rest.model_metadata(name, root.get(name, version))

    @app.post("/v1/models/{name}:predict", openapi_extra=_body(tf_serving_rest.REQUEST_SCHEMA))
    @app.post("/v1/models/{name}/versions/{version}:predict",
              openapi_extra=_body(tf_serving_rest.REQUEST_SCHEMA))
    async def v1_predict(request: Request, name: str, version: str | None = None) -> Response:
        served = root.get(name, version)
        setattr(request.state, VERSION_STATE, served.version)
        body = await read_body(request, max_request_bytes)
        inputs, format_ = await run_in_threadpool(tf_serving_rest.parse_predict, body,
                                                  served.input_names)
        outputs = await served.infer(inputs)
        return await run_in_threadpool(
            lambda: _json(tf_serving_rest.predict_response(outputs["logits"], format_)))

    # Open Inference Protocol (v2)
    @app.get("/v2")
    async def v2_server() -> dict[str, Any]:
        return _server_metadata()

    @app.get("/v2/health/live")
    async def v2_live() -> dict[str, bool]:
        return {"live": True}

    @app.get("/v2/health/ready")
    async def v2_ready() -> Response:
        try:
            root.get(root.name)  # loaded once; a failed version is retried only on a change
        except (UnavailableError, NotFoundError):
            return JSONResponse({"ready": False}, status_code=503)
        return JSONResponse({"ready": True})

    @app.get("/v2/models/{name}/ready")
    @app.get("/v2/models/{name}/versions/{version}/ready")
    async def v2_model_ready(name: str, version: str | None = None) -> Response:
        try:
            served = root.get(name, version)
        except UnavailableError as error:  # the protocol: a 4xx status means "not ready"
            return JSONResponse({"name": name, "version": version or "", "ready": False,
                                 "error": str(error)}, status_code=400)
        return JSONResponse({"name": name, "version": str(served.version), "ready": True})

    @app.get("/v2/models/{name}")
    @app.get("/v2/models/{name}/versions/{version}")
    async def v2_metadata(name: str, version: str | None = None) -> dict[str, Any]:
        return open_inference.model_metadata(name, root.versions(), root.get(name, version))

    @app.post("/v2/models/{name}/infer", openapi_extra=_body(open_inference.REQUEST_SCHEMA))
    @app.post("/v2/models/{name}/versions/{version}/infer",
              openapi_extra=_body(open_inference.REQUEST_SCHEMA))
    async def v2_infer(request: Request, name: str, version: str | None = None) -> Response:
        served = root.get(name, version)
        setattr(request.state, VERSION_STATE, served.version)
        body = await read_body(request, max_request_bytes)
        parsed = await run_in_threadpool(open_inference.parse_infer_request, body,
                                         request.headers.get(open_inference.HEADER_LENGTH))
        outputs = await served.infer(parsed.inputs)
        answer, headers = await run_in_threadpool(
            functools.partial(open_inference.infer_response, name, served.version, parsed,
                              outputs))
        return Response(answer, headers=headers)

    # The attention viewer (export.serving.explorer)
    @app.post("/v2/models/{name}/attention", openapi_extra=_body(ATTENTION_REQUEST_SCHEMA))
    @app.post("/v2/models/{name}/versions/{version}/attention",
              openapi_extra=_body(ATTENTION_REQUEST_SCHEMA))
    async def v2_attention(request: Request, name: str, version: str | None = None) -> Response:
        served = root.get(name, version)
        setattr(request.state, VERSION_STATE, served.version)
        body = await read_body(request, max_request_bytes)
        text = await run_in_threadpool(parse_attention_request, body)
        return await run_in_threadpool(lambda: _json(attention_answer(name, served, text)))

    # Generation (Triton's generate extension; export.serving.generate)
    @app.post("/v2/models/{name}/generate", openapi_extra=_body(GENERATE_REQUEST_SCHEMA))
    @app.post("/v2/models/{name}/versions/{version}/generate",
              openapi_extra=_body(GENERATE_REQUEST_SCHEMA))
    async def v2_generate(request: Request, name: str, version: str | None = None) -> Response:
        served, parsed = await _generate_request(request, name, version)
        counter = metrics.generated.labels(name, str(served.version))
        return _json(await run_in_threadpool(generate_answer, name, served, parsed,
                                             counter.inc))

    @app.post("/v2/models/{name}/generate_stream", openapi_extra=_body(GENERATE_REQUEST_SCHEMA))
    @app.post("/v2/models/{name}/versions/{version}/generate_stream",
              openapi_extra=_body(GENERATE_REQUEST_SCHEMA))
    async def v2_generate_stream(request: Request, name: str,
                                 version: str | None = None) -> Response:
        served, parsed = await _generate_request(request, name, version)
        decoding = await run_in_threadpool(start_decoding, served, parsed)  # 400s before 200
        counter = metrics.generated.labels(name, str(served.version))
        return StreamingResponse(stream_events(name, served, decoding, counter.inc),
                                 media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache"})

    async def _generate_request(request: Request, name: str, version: str | None):
        served = root.get(name, version)
        setattr(request.state, VERSION_STATE, served.version)
        body = await read_body(request, max_request_bytes)
        return served, await run_in_threadpool(parse_generate_request, body)

    @app.get("/metrics")
    async def prometheus_metrics() -> Response:
        return Response(await run_in_threadpool(metrics.exposition),
                        media_type=METRICS_CONTENT_TYPE)

    @app.get("/explore/{name}", response_class=HTMLResponse)
    @app.get("/explore/{name}/versions/{version}", response_class=HTMLResponse)
    async def explore(name: str, version: str | None = None) -> HTMLResponse:
        root.get(name, version)  # 404 for an unknown model or version, as the API answers
        return HTMLResponse(explorer_page(name, version))

    return app


# The server's own errors, each answered {"error": its message} with its HTTP status.
ERROR_STATUS = {NotFoundError: 404, BadRequestError: 400, PayloadTooLargeError: 413,
                UnavailableError: 503}


def _error_response(status: int):
    async def respond(request: Request, error: Exception) -> JSONResponse:
        return JSONResponse({"error": str(error)}, status_code=status)

    return respond


def _body(schema: dict[str, Any]) -> dict[str, Any]:
    """An OpenAPI requestBody of JSON `schema` (the routes read the raw body themselves)."""
    return {"requestBody": {"required": True,
                            "content": {"application/json": {"schema": schema}}}}


def _server_metadata() -> dict[str, Any]:
    """`GET /v2` and gRPC's ServerMetadata."""
    return {"name": "keras-attn", "version": _package_version(),
            "extensions": ["binary_tensor_data"]}


def _package_version() -> str:
    try:
        return importlib.metadata.version("keras-attn")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def _json(document: Any) -> Response:
    return Response(json.dumps(document), media_type="application/json")


@dataclasses.dataclass(frozen=True)
class ServeOptions:
    """What `keras-attn serve` was asked for."""

    root: str
    host: str = "127.0.0.1"
    port: int = 8501
    workers: int = 1
    max_batch_size: int = 32
    max_queue_delay_ms: float = 0.0
    threads: int | None = None  # batches run at once per worker; default: cores / workers
    name: str | None = None  # the model's name in URLs; default: the folder's name
    max_request_bytes: int = MAX_REQUEST_BYTES
    grpc_port: int | None = DEFAULT_GRPC_PORT  # None: no gRPC service

    @property
    def grpc_address(self) -> tuple[str, int] | None:
        return None if self.grpc_port is None else (self.host, self.grpc_port)

    def settings(self) -> BatchSettings:
        threads = self.threads or max(1, (os.cpu_count() or 1) // self.workers)
        return BatchSettings(self.max_batch_size, self.max_queue_delay_ms, threads)


def app_from_environment() -> FastAPI:
    """The app of one `--workers` process, built from `SETTINGS_VARIABLE` (uvicorn factory)."""
    options = ServeOptions(**json.loads(os.environ[SETTINGS_VARIABLE]))
    return create_app(ModelRoot(options.root, options.settings(), options.name),
                      options.max_request_bytes, options.grpc_address)


def check(options: ServeOptions) -> ModelRoot:
    """The model root `options` names, checked before anything starts.

    Raises:
        FileNotFoundError: the folder holds no numbered version.
        ValueError: a non-positive port, worker count, batch size or request size, or a
            negative delay.
    """
    for name in ("port", "grpc_port", "workers", "max_batch_size", "max_request_bytes"):
        value = getattr(options, name)
        port = name.endswith("port")
        if value is not None and not 0 < value < (65536 if port else 1 << 62):
            raise ValueError(f"--{name.replace('_', '-')} must be a positive integer"
                             f"{' below 65536' if port else ''}. Received: {value}")
    if options.grpc_port == options.port:
        raise ValueError(f"--grpc-port must differ from --port: HTTP and gRPC listen on ports "
                         f"of their own. Received: --port {options.port} --grpc-port "
                         f"{options.grpc_port}")
    if options.max_queue_delay_ms < 0:
        raise ValueError(f"--max-queue-delay-ms must be >= 0. Received: "
                         f"{options.max_queue_delay_ms}")
    return ModelRoot(options.root, options.settings(), options.name)


def listen(options: ServeOptions) -> socket.socket:
    """The socket `serve` accepts connections on, bound to `options.host` and `options.port`
    before anything is printed or started, so that a taken port is one clear error. The gRPC
    port (`options.grpc_port`) is checked the same way, then let go: grpcio binds it itself,
    in each worker, when the app starts.

    Bound as uvicorn binds (SO_REUSEADDR, IPv6 for a host with a colon) and handed to it, to
    its one process or to each of its `--workers` processes.

    Raises:
        ValueError: a port is in use, needs privileges, or the host is not this machine's.
    """
    sock = _bound(options.host, options.port, "--port")
    if options.grpc_port is not None:
        try:
            _bound(options.host, options.grpc_port, "--grpc-port").close()
        except ValueError:
            sock.close()
            raise
    sock.set_inheritable(True)  # as uvicorn's own: `--workers` processes share it
    return sock


def _bound(host: str, port: int, flag: str) -> socket.socket:
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    received = f"Received: --host {host} {flag} {port}"
    try:
        sock.bind((host, port))
    except OSError as error:
        sock.close()
        if error.errno == errno.EADDRINUSE:
            raise ValueError(f"Port {port} on {host} is already in use (another server?). "
                             f"Choose another {flag}. {received}") from None
        if error.errno == errno.EACCES:
            raise ValueError(f"Listening on port {port} needs privileges this process "
                             f"lacks. Choose a {flag} from 1024 up. {received}") from None
        raise ValueError(f"Cannot listen on {host}:{port} ({error.strerror or error}). "
                         f"Expected --host to be an address of this machine, e.g. 127.0.0.1 "
                         f"or 0.0.0.0. {received}") from None
    return sock


def serve(options: ServeOptions, root: ModelRoot | None = None,
          sock: socket.socket | None = None) -> None:
    """Serves until SIGINT/SIGTERM; requests in flight finish first (up to 30 s).

    Args:
        options: what to serve and how.
        root: `check(options)`, when the caller has it already.
        sock: `listen(options)`, when the caller has it already; closed on return.

    Raises:
        ValueError: as `check` and `listen`.
        RuntimeError: the server stopped while starting (e.g. the latest version failed to
            load); uvicorn has logged why.
    """
    import uvicorn
    from uvicorn.supervisors import Multiprocess

    root = root or check(options)
    sock = sock or listen(options)
    common = {"host": options.host, "port": options.port, "log_level": "warning",
              "access_log": False, "timeout_graceful_shutdown": GRACEFUL_SHUTDOWN_S}
    # What uvicorn.run does, on our socket: it would bind its own and exit with code 3 when
    # the port is taken.
    with sock:
        try:
            if options.workers == 1:
                server = uvicorn.Server(uvicorn.Config(
                    create_app(root, options.max_request_bytes, options.grpc_address),
                    **common))
                server.run(sockets=[sock])
                started = server.started
            else:
                os.environ[SETTINGS_VARIABLE] = json.dumps(dataclasses.asdict(options))
                config = uvicorn.Config("export.serving.app:app_from_environment", factory=True,
                                        workers=options.workers, **common)
                # Each worker keeps its metrics in files here; any one's /metrics sums them.
                with tempfile.TemporaryDirectory(prefix="keras-attn-metrics-") as folder:
                    os.environ[MULTIPROCESS_VARIABLE] = folder
                    try:
                        Multiprocess(config, sockets=[sock]).run()
                    finally:
                        os.environ.pop(MULTIPROCESS_VARIABLE, None)
                started = True
        except KeyboardInterrupt:  # Ctrl-C, after the requests in flight finished
            return
        except SystemExit as error:  # uvicorn's way to give up at startup
            started = not error.code
    if not started:
        raise RuntimeError(f"The server for {str(root.root)!r} stopped while starting; "
                           f"see the error above")
