"""The Open Inference Protocol over gRPC: `keras-attn serve --grpc-port` (default 8500).

The service is KServe's and Triton's `inference.GRPCInferenceService` (KServe's
grpc_predict_v2.proto; Triton's grpc_service.proto extends it), built on `grpcio`'s asyncio
server with the message classes and servicer base that `tritonclient[grpc]` ships
(`tritonclient.grpc.service_pb2`, `service_pb2_grpc`). It serves what HTTP's `/v2` serves, from
the same `ModelRoot`, on the same event loop:

    ServerLive, ServerReady, ServerMetadata, ModelReady, ModelMetadata    as GET /v2/...
    ModelInfer                                                         as POST /v2/.../infer

Every other RPC of the service (streaming, shared memory, repository control, statistics,
tracing) answers UNIMPLEMENTED, the servicer base's default.

Inputs come as typed `contents` or as `raw_input_contents` (the binary-data layout: what
`tritonclient.grpc` sends), are checked by the same code as HTTP's (`export.serving.protocol_v2`)
and run through the same `ServedVersion.infer`; outputs go back as `raw_output_contents`, as
Triton answers. Errors carry the protocol's status codes: INVALID_ARGUMENT for the client's
mistake (HTTP's 400: the same message), NOT_FOUND for an unknown model or version (404),
UNAVAILABLE for a version that cannot be loaded (503), RESOURCE_EXHAUSTED for a message over
`--max-request-bytes` (413; grpcio refuses it before it is read).

Reference: https://kserve.github.io/website/docs/concepts/architecture/data-plane/v2-protocol
(the gRPC section) and kserve/open-inference-protocol's grpc_predict_v2.proto.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import grpc
import numpy as np
from tritonclient.grpc import service_pb2, service_pb2_grpc

from export.serving import protocol_v2 as open_inference
from export.serving.repository import (
    BadRequestError,
    ModelRoot,
    NotFoundError,
    UnavailableError,
)

PROTOCOL = "open_inference_grpc"  # the `protocol` label of keras_attn_requests_total
STATUS_OF_ERROR = {BadRequestError: grpc.StatusCode.INVALID_ARGUMENT,
                   NotFoundError: grpc.StatusCode.NOT_FOUND,
                   UnavailableError: grpc.StatusCode.UNAVAILABLE}
# InferTensorContents' field for each datatype (grpc_predict_v2.proto)
CONTENTS_FIELD = {"BOOL": "bool_contents", "INT8": "int_contents", "INT16": "int_contents",
                  "INT32": "int_contents", "INT64": "int64_contents", "UINT8": "uint_contents",
                  "UINT16": "uint_contents", "UINT32": "uint_contents",
                  "UINT64": "uint64_contents", "FP32": "fp32_contents", "FP64": "fp64_contents",
                  "BYTES": "bytes_contents"}


def parse_model_infer(request: service_pb2.ModelInferRequest) -> open_inference.InferRequest:
    """A `ModelInferRequest` as the HTTP parser's `InferRequest`: every output in raw form.

    Raises:
        BadRequestError: as for HTTP (a bad shape or datatype, data of the wrong size, BYTES
            that are not UTF-8), or raw contents for some inputs and not others.
    """
    if request.raw_input_contents and len(request.raw_input_contents) != len(request.inputs):
        raise BadRequestError(f"raw_input_contents must hold one entry per input, or none. "
                              f"Received: {len(request.raw_input_contents)} for "
                              f"{len(request.inputs)} inputs")
    if not request.inputs:
        raise BadRequestError("An infer request needs inputs: a non-empty list of tensors. "
                              "Received: none")
    both = [t.name for t in request.inputs if t.HasField("contents")]
    if request.raw_input_contents and both:
        raise BadRequestError(f"Give each input's data once: as raw_input_contents (for every "
                              f"input) or as typed contents, not both. Received: both, with "
                              f"contents for {both}")
    inputs = {}
    for index, tensor in enumerate(request.inputs):
        shape = list(tensor.shape)
        size = open_inference.checked_size(tensor.name, shape, tensor.datatype)
        if request.raw_input_contents:
            inputs[tensor.name] = open_inference.from_binary(
                tensor.name, request.raw_input_contents[index], tensor.datatype, shape, size)
        else:
            inputs[tensor.name] = _from_contents(tensor, shape, size)
    outputs = {output.name: True for output in request.outputs} if request.outputs else None
    return open_inference.InferRequest(request.id, inputs, outputs, True)


def _from_contents(tensor, shape: list[int], size: int) -> Any:
    field = CONTENTS_FIELD[tensor.datatype]
    return open_inference.from_values(tensor.name, list(getattr(tensor.contents, field)),
                                      tensor.datatype, shape, size, where=f"contents.{field}")


def model_infer_response(name: str, version: int, request: open_inference.InferRequest,
                         outputs: dict[str, np.ndarray]) -> service_pb2.ModelInferResponse:
    """The `ModelInferResponse` of `outputs`, each in `raw_output_contents`.

    Raises:
        BadRequestError: the request named an output the model does not have.
    """
    response = service_pb2.ModelInferResponse(model_name=name, model_version=str(version),
                                              id=request.id)
    for output in open_inference.selected_outputs(request, outputs):
        array = outputs[output]
        response.outputs.add(name=output, shape=list(array.shape),
                             datatype="BYTES" if array.dtype == object
                             else open_inference.NAME_OF_DTYPE[array.dtype])
        response.raw_output_contents.append(open_inference.to_binary(array))
    return response


def _metadata_response(document: dict[str, Any]) -> service_pb2.ModelMetadataResponse:
    def tensors(items):
        return [service_pb2.ModelMetadataResponse.TensorMetadata(
            name=item["name"], datatype=item["datatype"], shape=item["shape"]) for item in items]

    return service_pb2.ModelMetadataResponse(
        name=document["name"], versions=document["versions"], platform=document["platform"],
        inputs=tensors(document["inputs"]), outputs=tensors(document["outputs"]))


class InferenceService(service_pb2_grpc.GRPCInferenceServiceServicer):
    """The servicer: `root`'s versions, as `export.serving.app` serves them over HTTP.

    Args:
        root: the model folder (shared with the HTTP app of the same process).
        server_metadata: `{"name", "version", "extensions"}`, as `GET /v2` answers.
    """

    def __init__(self, root: ModelRoot, server_metadata: dict[str, Any]) -> None:
        self.root = root
        self.server_metadata = server_metadata

    async def ServerLive(self, request, context):
        return service_pb2.ServerLiveResponse(live=True)

    async def ServerReady(self, request, context):
        try:
            self.root.get(self.root.name)
        except (UnavailableError, NotFoundError):
            return service_pb2.ServerReadyResponse(ready=False)
        return service_pb2.ServerReadyResponse(ready=True)

    async def ServerMetadata(self, request, context):
        return service_pb2.ServerMetadataResponse(**self.server_metadata)

    async def ModelReady(self, request, context):
        try:
            self.root.get(request.name, request.version or None)
        except (UnavailableError, NotFoundError):
            return service_pb2.ModelReadyResponse(ready=False)
        return service_pb2.ModelReadyResponse(ready=True)

    async def ModelMetadata(self, request, context):
        served = await self._served(request.name, request.version, context)
        return _metadata_response(open_inference.model_metadata(
            request.name, self.root.versions(), served))

    async def ModelInfer(self, request, context):
        start, version, code = time.perf_counter(), "", grpc.StatusCode.OK
        try:
            served = await self._served(request.model_name, request.model_version, context)
            version = str(served.version)
            # parsing and encoding are CPU work: off the event loop, as HTTP's
            parsed = await _or_abort(asyncio.to_thread(parse_model_infer, request), context)
            outputs = await _or_abort(served.infer(parsed.inputs), context)
            return await _or_abort(asyncio.to_thread(
                model_infer_response, request.model_name, served.version, parsed, outputs),
                context)
        except grpc.aio.AbortError:
            code = context.code() or grpc.StatusCode.UNKNOWN
            raise
        finally:
            if self.root.metrics is not None:  # the HTTP app's, which this process shares
                self.root.metrics.request_answered(request.model_name, version, PROTOCOL,
                                                   code.name, time.perf_counter() - start)

    async def _served(self, name: str, version: str, context):
        try:
            return self.root.get(name, version or None)
        except tuple(STATUS_OF_ERROR) as error:
            await context.abort(_status(error), str(error))


def _unimplemented(rpc: str):
    async def answer(self, request, context):
        await context.abort(grpc.StatusCode.UNIMPLEMENTED,
                            f"keras-attn serve does not implement {rpc}; it serves ServerLive, "
                            f"ServerReady, ServerMetadata, ModelReady, ModelMetadata and "
                            f"ModelInfer")
    return answer


for _rpc in dir(service_pb2_grpc.GRPCInferenceServiceServicer):  # every other RPC: named
    if _rpc[0].isupper() and _rpc not in InferenceService.__dict__:
        setattr(InferenceService, _rpc, _unimplemented(_rpc))


def _status(error: Exception) -> grpc.StatusCode:
    return next(status for kind, status in STATUS_OF_ERROR.items() if isinstance(error, kind))


async def _or_abort(awaitable, context):
    """`awaitable`'s result; a keras-attn error aborts the call with its status and message."""
    try:
        return await awaitable
    except tuple(STATUS_OF_ERROR) as error:
        await context.abort(_status(error), str(error))


async def start_grpc_server(root: ModelRoot, host: str, port: int,
                            server_metadata: dict[str, Any],
                            max_message_bytes: int) -> grpc.aio.Server:
    """Starts the gRPC server on `host:port` in the running event loop.

    Args:
        root: the model folder.
        host, port: where to listen (the port is shared by `--workers` processes:
            grpcio sets SO_REUSEPORT).
        server_metadata: as `InferenceService`.
        max_message_bytes: the largest request message taken (RESOURCE_EXHAUSTED above).

    Returns:
        The started `grpc.aio.Server`; `await server.stop(grace)` stops it.
    """
    server = grpc.aio.server(options=[("grpc.max_receive_message_length", max_message_bytes),
                                      ("grpc.max_send_message_length", -1)])
    service_pb2_grpc.add_GRPCInferenceServiceServicer_to_server(
        InferenceService(root, server_metadata), server)
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    server.add_insecure_port(address)
    await server.start()
    return server
