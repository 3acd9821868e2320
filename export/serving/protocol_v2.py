"""The Open Inference Protocol (KServe v2, Triton's HTTP API): request and response bodies.

An infer request is JSON, optionally followed by binary tensor data (the binary-data extension
`tritonclient` uses by default): the header `Inference-Header-Content-Length` says where the
JSON ends, and each input with `parameters.binary_data_size` takes that many bytes, in input
order. Numbers are little-endian; a BYTES tensor is each element's length as a 4-byte
little-endian integer followed by its bytes. Outputs go back the same way when the request asks
(`parameters.binary_data_output`, or `parameters.binary_data` on a requested output).

This module turns bodies into NumPy arrays and back; `export.serving.app` routes them. Standard
library and NumPy only.

Reference: https://kserve.github.io/website/docs/concepts/architecture/data-plane/v2-protocol
and Triton's binary_data extension (docs/protocol/extension_binary_data.md).
"""

from __future__ import annotations

import dataclasses
import json
import math
import struct
from typing import Any

import numpy as np

from export.artifact.versions import ascii_digits
from export.serving.repository import BadRequestError, parsed_json

HEADER_LENGTH = "Inference-Header-Content-Length"
MAX_DIMENSION = 2**31 - 1  # elements of one tensor, and of any one dimension
DATATYPES = {
    "BOOL": np.dtype(np.bool_), "UINT8": np.dtype(np.uint8), "UINT16": np.dtype(np.uint16),
    "UINT32": np.dtype(np.uint32), "UINT64": np.dtype(np.uint64), "INT8": np.dtype(np.int8),
    "INT16": np.dtype(np.int16), "INT32": np.dtype(np.int32), "INT64": np.dtype(np.int64),
    "FP16": np.dtype(np.float16), "FP32": np.dtype(np.float32), "FP64": np.dtype(np.float64),
    "BYTES": np.dtype(object),
}
NAME_OF_DTYPE = {dtype: name for name, dtype in DATATYPES.items()}


_PARAMETERS = {"type": "object", "additionalProperties": True}
# The request body as JSON Schema, for the app's OpenAPI document (KServe's Open Inference
# Protocol REST specification, "$inference_request"): what clients and fuzzers read. The parser
# checks every field itself; a body outside this schema still gets a 400, never a 500.
REQUEST_SCHEMA = {
    "type": "object",
    "required": ["inputs"],
    "properties": {
        "id": {"type": "string"},
        "parameters": _PARAMETERS,
        "inputs": {"type": "array", "minItems": 1, "items": {
            "type": "object",
            "required": ["name", "shape", "datatype"],
            "properties": {
                "name": {"type": "string", "enum": ["token_ids", "text"]},
                "shape": {"type": "array", "items": {"type": "integer", "minimum": 0}},
                "datatype": {"type": "string", "enum": sorted(DATATYPES)},
                "parameters": _PARAMETERS,
                "data": {"type": "array"},
            },
        }},
        "outputs": {"type": "array", "items": {
            "type": "object", "required": ["name"],
            "properties": {"name": {"type": "string"}, "parameters": _PARAMETERS}}},
    },
}


@dataclasses.dataclass
class InferRequest:
    """A parsed infer request.

    Attributes:
        id: the request's "id", echoed in the response ("" when absent).
        inputs: name -> value: a NumPy array for numbers, a list of str for BYTES.
        outputs: the requested outputs as name -> binary?, or None for all.
        binary_output: whether unrequested-format outputs go back as binary data.
    """

    id: str
    inputs: dict[str, Any]
    outputs: dict[str, bool] | None
    binary_output: bool


def parse_infer_request(body: bytes, header_length: str | None) -> InferRequest:
    """Parses an infer request body (JSON, or JSON + binary data).

    Args:
        body: the raw request body.
        header_length: the `Inference-Header-Content-Length` header, or None (JSON only).

    Raises:
        BadRequestError: malformed JSON, a missing field, a shape that does not match the
            data, an unknown datatype, or binary data of the wrong size; each names the input.
    """
    if header_length is None:
        header, binary = body, b""
    else:
        if not ascii_digits(header_length) or int(header_length) > len(body):
            raise BadRequestError(f"{HEADER_LENGTH} must be the length of the JSON part, at "
                                  f"most the body's {len(body)} bytes. Received: {header_length!r}")
        header, binary = body[: int(header_length)], body[int(header_length):]
    document = _json_object(header)
    specs = document.get("inputs")
    if not isinstance(specs, list) or not specs:
        raise BadRequestError("An infer request needs \"inputs\": a non-empty list of tensors. "
                              f"Received: {_short(specs)}")
    inputs, offset = {}, 0
    for spec in specs:
        name, value, offset = _read_input(spec, binary, offset)
        inputs[name] = value
    if offset != len(binary):
        raise BadRequestError(f"The inputs' binary_data_size add up to {offset} bytes, but "
                              f"{len(binary)} bytes of binary data follow the JSON")
    binary_output = bool(_flag(document, "binary_data_output", "the request"))
    outputs = None
    if document.get("outputs") is not None:
        if not isinstance(document["outputs"], list):
            raise BadRequestError(f"\"outputs\" must be a list of {{\"name\": ...}} objects. "
                                  f"Received: {_short(document['outputs'])}")
        outputs = {}
        for spec in document["outputs"]:
            if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
                raise BadRequestError(f"Each requested output needs a \"name\". Received: "
                                      f"{_short(spec)}")
            binary_flag = _flag(spec, "binary_data", f"output {spec['name']!r}")
            outputs[spec["name"]] = binary_output if binary_flag is None else binary_flag
    request_id = document.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise BadRequestError(f"\"id\" must be a string (it is echoed in the response). "
                              f"Received: {_short(request_id)}")
    return InferRequest(request_id or "", inputs, outputs, binary_output)


def _json_object(data: bytes) -> dict[str, Any]:
    document = parsed_json(data)
    if not isinstance(document, dict):
        raise BadRequestError(f"The request body must be a JSON object. Received: "
                              f"{_short(document)}")
    return document


def _parameters(document: dict[str, Any], where: str) -> dict[str, Any]:
    parameters = document.get("parameters") or {}
    if not isinstance(parameters, dict):
        raise BadRequestError(f"\"parameters\" of {where} must be an object. Received: "
                              f"{_short(parameters)}")
    return parameters


def _flag(document: dict[str, Any], name: str, where: str) -> bool | None:
    """A boolean parameter (`binary_data_output`, `binary_data`): true, false or absent.
    A string such as "false" is refused: read as a truth value it would mean true."""
    value = _parameters(document, where).get(name)
    if value is not None and not isinstance(value, bool):
        raise BadRequestError(f"The parameter {name!r} of {where} must be true or false (a "
                              f"JSON boolean). Received: {_short(value)}")
    return value


def _is_count(value: Any) -> bool:
    """A non-negative JSON integer; true and false are not counts, though Python's bool is an
    int."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _read_input(spec: Any, binary: bytes, offset: int) -> tuple[str, Any, int]:
    """One input tensor: (name, array or list of str, offset after its binary data)."""
    if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
        raise BadRequestError(f"Each input needs a \"name\", a \"shape\", a \"datatype\" and "
                              f"\"data\" (or binary data). Received: {_short(spec)}")
    name = spec["name"]
    shape, datatype = spec.get("shape"), spec.get("datatype")
    size = checked_size(name, shape, datatype)
    binary_size = _parameters(spec, f"input {name!r}").get("binary_data_size")
    if binary_size is not None:
        if not _is_count(binary_size) or binary_size > len(binary) - offset:
            raise BadRequestError(f"Input {name!r}: binary_data_size must fit in the "
                                  f"{len(binary) - offset} bytes of binary data left. "
                                  f"Received: {binary_size!r}")
        chunk = binary[offset: offset + binary_size]
        value = from_binary(name, chunk, datatype, shape, size)
        return name, value, offset + binary_size
    if "data" not in spec:
        raise BadRequestError(f"Input {name!r} has neither \"data\" nor binary_data_size")
    return name, from_values(name, spec["data"], datatype, shape, size), offset


def checked_size(name: str, shape: Any, datatype: Any) -> int:
    """The element count of input `name`, after checking its shape and datatype (both
    protocols' inputs, HTTP's and gRPC's, go through here).

    Raises:
        BadRequestError: a shape that is not a list of non-negative integers, or has more
            than MAX_DIMENSION elements; a datatype not in DATATYPES.
    """
    if not isinstance(shape, list) or not all(_is_count(d) for d in shape):
        raise BadRequestError(f"Input {name!r} needs \"shape\": a list of non-negative "
                              f"integers. Received: {_short(shape)}")
    if not isinstance(datatype, str) or datatype not in DATATYPES:
        raise BadRequestError(f"Input {name!r} has an unknown datatype; expected one of "
                              f"{sorted(DATATYPES)}. Received: {_short(datatype)}")
    if any(dimension > MAX_DIMENSION for dimension in shape) or math.prod(shape) > MAX_DIMENSION:
        # np.prod wraps around in int64 ([2**32, 2**32] -> 0 elements), and NumPy refuses or
        # allocates for minutes what no request body can fill
        raise BadRequestError(f"Input {name!r}: a shape may have at most {MAX_DIMENSION} "
                              f"elements in all. Received: {_short(shape)}")
    return math.prod(shape)


def from_binary(name: str, chunk: bytes, datatype: str, shape: list[int], size: int) -> Any:
    """Input `name`'s value from its binary data (the binary-data extension's layout, which
    gRPC's `raw_input_contents` shares): an array of `shape`, or a list of str for BYTES.

    Raises:
        BadRequestError: data of the wrong size, a BYTES element cut short or not UTF-8.
    """
    if datatype == "BYTES":
        items, position = [], 0
        while position < len(chunk):
            if position + 4 > len(chunk):
                raise BadRequestError(f"Input {name!r}: BYTES data ends inside a length prefix")
            (length,) = struct.unpack_from("<I", chunk, position)
            items.append(chunk[position + 4: position + 4 + length])
            position += 4 + length
            if position > len(chunk):
                raise BadRequestError(f"Input {name!r}: a BYTES element runs past its data")
        return strings(name, items, shape, size)
    dtype = DATATYPES[datatype].newbyteorder("<")
    if len(chunk) != size * dtype.itemsize:
        raise BadRequestError(f"Input {name!r}: shape {shape} of {datatype} needs "
                              f"{size * dtype.itemsize} bytes. Received: {len(chunk)} bytes")
    return np.frombuffer(chunk, dtype).astype(dtype.newbyteorder("=")).reshape(shape)


def from_values(name: str, data: Any, datatype: str, shape: list[int], size: int,
                where: str = '"data"') -> Any:
    """Input `name`'s value from a list of values (HTTP's JSON "data", gRPC's typed
    `contents`, named by `where` in the messages): an array of `shape`, or a list of str for
    BYTES.

    Raises:
        BadRequestError: values that are not numbers, not `size` of them, booleans for numbers
            or numbers for BOOL, non-integers for an integer type, or integers outside it.
    """
    if datatype == "BYTES":
        flat = np.asarray(data, dtype=object).ravel().tolist() if isinstance(data, list) else [data]
        return strings(name, flat, shape, size)
    try:
        array = np.asarray(data)
    except ValueError:
        raise BadRequestError(f"Input {name!r}: {where} must be a flat or nested list of "
                              f"numbers. Received: {_short(data)}") from None
    dtype = DATATYPES[datatype]
    if array.size == 0 and array.size == size:  # [] for a zero-size shape: no value to check
        return np.zeros(shape, dtype)
    if array.dtype.kind not in "biuf" or array.size != size:
        raise BadRequestError(f"Input {name!r}: {where} must hold {size} numbers for shape "
                              f"{shape}. Received: {array.size} values of type {array.dtype}")
    if (array.dtype.kind == "b") != (dtype.kind == "b"):  # true is not 1, nor 1 true
        raise BadRequestError(f"Input {name!r} is declared {datatype}, and its data holds "
                              + ("booleans (true/false): numbers are JSON numbers"
                                 if array.dtype.kind == "b" else
                                 f"numbers (e.g. {array.ravel()[0].item()!r}): BOOL data is "
                                 "true/false"))
    if dtype.kind in "iu" and array.dtype.kind == "f":
        raise BadRequestError(f"Input {name!r} is declared {datatype}, and its data holds "
                              f"non-integer numbers (e.g. {array.ravel()[0]!r})")
    if dtype.kind in "iu" and array.size and (array.min() < np.iinfo(dtype).min
                                             or array.max() > np.iinfo(dtype).max):
        raise BadRequestError(f"Input {name!r}: values must fit {datatype} "
                              f"[{np.iinfo(dtype).min}, {np.iinfo(dtype).max}]. Received: "
                              f"{array.min()} .. {array.max()}")
    return array.astype(dtype).reshape(shape)


def strings(name: str, items: list[Any], shape: list[int], size: int) -> list[str]:
    """A BYTES input's elements as str: `size` of them, each UTF-8 text.

    Raises:
        BadRequestError: another count, bytes that are not UTF-8, or an element not a string.
    """
    if len(items) != size:
        raise BadRequestError(f"Input {name!r}: shape {shape} needs {size} elements. Received: "
                              f"{len(items)}")
    texts = []
    for item in items:
        if isinstance(item, bytes):
            try:
                item = item.decode("utf-8")
            except UnicodeDecodeError as error:
                raise BadRequestError(f"Input {name!r}: BYTES elements must be UTF-8 text. "
                                      f"Received: {item[:40]!r} ({error.reason})") from None
        if not isinstance(item, str):
            raise BadRequestError(f"Input {name!r}: BYTES data must be strings. Received: "
                                  f"{_short(item)}")
        texts.append(item)
    return texts


def model_metadata(name: str, versions: list[int], served: Any) -> dict[str, Any]:
    """The model metadata response (`GET /v2/models/NAME`, gRPC `ModelMetadata`) of the
    `ServedVersion` `served`: its inputs and outputs, the versions present, and its settings
    under "parameters"."""
    predictor = served.predictor
    if predictor.task == "classifier":
        classes = predictor.metadata["config"]["num_classes"]
        outputs = [{"name": "logits", "datatype": "FP32", "shape": [-1, classes]},
                   {"name": "label", "datatype": "BYTES", "shape": [-1]},
                   {"name": "probabilities", "datatype": "FP32", "shape": [-1, classes]}]
    else:
        outputs = [{"name": "logits", "datatype": "FP32", "shape": [-1, -1,
                                                                    predictor.vocab_size]}]
    inputs = [{"name": "token_ids", "datatype": "INT32", "shape": [-1, -1]}]
    if served.tokenizer is not None:
        inputs.append({"name": "text", "datatype": "BYTES", "shape": [-1]})
    return {"name": name, "versions": [str(v) for v in versions], "platform": "onnxruntime_onnx",
            "inputs": inputs, "outputs": outputs,
            "parameters": {"version": str(served.version), "task": predictor.task,
                           "max_len": predictor.max_len, "vocab_size": predictor.vocab_size,
                           "class_names": predictor.labels if predictor.task == "classifier"
                           else None}}


def infer_response(model_name: str, version: int, request: InferRequest,
                   outputs: dict[str, np.ndarray]) -> tuple[bytes, dict[str, str]]:
    """The response body and its headers for `outputs` (name -> array; BYTES as object arrays).

    Raises:
        BadRequestError: the request asked for an output the model does not have.
    """
    wanted = selected_outputs(request, outputs)
    tensors, blobs = [], []
    for name, binary in wanted.items():
        array = outputs[name]
        datatype = "BYTES" if array.dtype == object else NAME_OF_DTYPE[array.dtype]
        tensor = {"name": name, "datatype": datatype, "shape": list(array.shape)}
        if binary:
            blob = to_binary(array)
            tensor["parameters"] = {"binary_data_size": len(blob)}
            blobs.append(blob)
        else:
            tensor["data"] = array.ravel().tolist()
        tensors.append(tensor)
    document = {"model_name": model_name, "model_version": str(version), "outputs": tensors}
    if request.id:
        document["id"] = request.id
    header = json.dumps(document).encode()
    if not blobs:
        return header, {"Content-Type": "application/json"}
    return header + b"".join(blobs), {"Content-Type": "application/octet-stream",
                                      HEADER_LENGTH: str(len(header))}


def selected_outputs(request: InferRequest, outputs: dict[str, np.ndarray]) -> dict[str, bool]:
    """The outputs to answer, in order, each with whether it goes back as binary data: those
    the request names, or all of `outputs`.

    Raises:
        BadRequestError: the request names an output the model does not have.
    """
    wanted = request.outputs if request.outputs is not None else dict.fromkeys(
        outputs, request.binary_output)
    unknown = sorted(set(wanted) - set(outputs))
    if unknown:
        raise BadRequestError(f"Unknown output(s) {unknown}; this model's outputs are "
                              f"{list(outputs)}. Received: outputs {list(wanted)}")
    return wanted


def to_binary(array: np.ndarray) -> bytes:
    """An output's binary data: little-endian numbers, or length-prefixed UTF-8 for BYTES."""
    if array.dtype == object:
        return b"".join(struct.pack("<I", len(data)) + data
                        for data in (str(item).encode("utf-8") for item in array.ravel()))
    return np.ascontiguousarray(array, array.dtype.newbyteorder("<")).tobytes()


def _short(value: Any) -> str:
    text = json.dumps(value) if not isinstance(value, bytes) else repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
