"""TF Serving's REST API (v1): predict bodies, model status and metadata, as TF Serving writes them.

    POST /v1/models/NAME[/versions/N]:predict
        {"instances": [[12, 7, 3], [5, 9]]}              row format -> {"predictions": [...]}
        {"instances": [{"token_ids": [12, 7, 3]}]}       row format, named input
        {"inputs": {"token_ids": [[12, 7, 3]]}}          columnar   -> {"outputs": [...]}
        {"inputs": [[12, 7, 3]]}                         columnar, the only input
    GET  /v1/models/NAME[/versions/N]                    {"model_version_status": [...]}
    GET  /v1/models/NAME[/versions/N]/metadata           {"model_spec": ..., "metadata": ...}

The SavedModel's signatures (`serving_default`, int32 ids; `serving_int64`, int64 ids) have one
output, `logits`, so, as TF Serving does for a single output, "predictions" is the list of
logits rows and "outputs" the logits themselves. Beyond TF Serving, an input named `text`
(strings, tokenized with the export's tokenizer.json) may replace `token_ids`.

Reference: https://www.tensorflow.org/tfx/serving/api_rest. Standard library only.
"""

from __future__ import annotations

import json
from typing import Any

from export.artifact.metadata import INPUT_NAME, OUTPUT_NAME
from export.serving.repository import BadRequestError, ServedVersion, parsed_json

SIGNATURES = {"serving_default": "DT_INT32", "serving_int64": "DT_INT64"}
PREDICT_METHOD = "tensorflow/serving/predict"


# The predict request body as JSON Schema, for the app's OpenAPI document (TF Serving's REST API:
# "instances", the row format, or "inputs", the columnar format). The parser checks every field
# itself; a body outside this schema still gets a 400, never a 500.
REQUEST_SCHEMA = {
    "type": "object",
    "properties": {
        "signature_name": {"type": "string", "enum": sorted(SIGNATURES)},
        "instances": {"type": "array", "minItems": 1, "items": {}},
        "inputs": {},
    },
}


def parse_predict(body: bytes, input_names: list[str]) -> tuple[dict[str, Any], str]:
    """The inputs of a predict request and its format ("instances" or "inputs").

    Args:
        body: the raw JSON body.
        input_names: the inputs the model accepts (`token_ids`, and `text` with a tokenizer).

    Returns:
        ({input name: list of rows}, "instances" or "inputs").

    Raises:
        BadRequestError: malformed JSON, neither or both of "instances" and "inputs", an
            signature_name that is not one of `SIGNATURES` (or not a string), or instances
            that mix named and unnamed values.
    """
    document = parsed_json(body)
    if not isinstance(document, dict) or ("instances" in document) == ("inputs" in document):
        raise BadRequestError('A predict request is a JSON object with exactly one of '
                              '"instances" (row format) or "inputs" (columnar format). '
                              f"Received: {_keys(document)}")
    signature = document.get("signature_name", "serving_default")
    if not isinstance(signature, str) or signature not in SIGNATURES:  # [] is unhashable
        raise BadRequestError(f"signature_name must be one of {sorted(SIGNATURES)}. "
                              f"Received: {json.dumps(signature)[:80]}")
    if "instances" in document:
        return _rows(document["instances"], input_names), "instances"
    columns = document["inputs"]
    if isinstance(columns, dict):
        return columns, "inputs"
    return {_unnamed_input(columns)[0]: columns}, "inputs"


def _rows(instances: Any, input_names: list[str]) -> dict[str, list]:
    if not isinstance(instances, list) or not instances:
        raise BadRequestError(f'"instances" must be a non-empty list, one entry per example. '
                              f"Received: {json.dumps(instances)[:80]}")
    if all(isinstance(instance, dict) for instance in instances):
        names = sorted({name for instance in instances for name in instance})
        for instance in instances:
            if sorted(instance) != names:
                raise BadRequestError(f"Every instance must name the same inputs {names}. "
                                      f"Received: an instance with {sorted(instance)}")
        return {name: [instance[name] for instance in instances] for name in names}
    if any(isinstance(instance, dict) for instance in instances):
        raise BadRequestError("Instances must all be objects ({\"token_ids\": [...]}) or all "
                              "be values of the only input. Received: a mix of both")
    return {_unnamed_input(instances)[0]: instances}


def _unnamed_input(values: Any) -> tuple[str]:
    """Unnamed values are texts when they are strings, token ids otherwise."""
    if isinstance(values, list) and values and all(isinstance(v, str) for v in values):
        return ("text",)
    return (INPUT_NAME,)


def _keys(document: Any) -> str:
    if isinstance(document, dict):
        return f"an object with keys {sorted(document)}"
    return f"a JSON {type(document).__name__}"


def predict_response(logits: Any, format_: str) -> dict[str, Any]:
    """{"predictions": rows} or {"outputs": logits} for the one output `logits`."""
    return {"predictions" if format_ == "instances" else "outputs": logits.tolist()}


def version_status(name: str, versions: dict[int, str | None]) -> dict[str, Any]:
    """GET /v1/models/NAME: each version present, newest first, with its state as TF Serving
    names them: AVAILABLE (loaded, or not tried yet: each loads on first use), or END with
    error_code UNAVAILABLE and the reason when it could not be loaded.

    Args:
        name: the model's name.
        versions: version -> why it could not be loaded, or None.
    """
    return {"model_version_status": [
        {"version": str(version), "state": "AVAILABLE" if reason is None else "END",
         "status": {"error_code": "OK" if reason is None else "UNAVAILABLE",
                    "error_message": reason or ""}}
        for version, reason in sorted(versions.items(), reverse=True)]}


def model_metadata(name: str, served: ServedVersion) -> dict[str, Any]:
    """GET /v1/models/NAME/metadata: the SavedModel's signature_def, as TF Serving shows it."""
    predictor = served.predictor
    logits_dims = ([-1, predictor.metadata["config"]["num_classes"]]
                   if predictor.task == "classifier" else [-1, -1, predictor.vocab_size])

    def tensor(tensor_name: str, dtype: str, dims: list[int]) -> dict[str, Any]:
        return {"dtype": dtype, "name": tensor_name,
                "tensor_shape": {"dim": [{"size": str(d), "name": ""} for d in dims],
                                 "unknown_rank": False}}

    signatures = {
        signature: {
            "inputs": {INPUT_NAME: tensor(INPUT_NAME, dtype, [-1, -1])},
            "outputs": {OUTPUT_NAME: tensor(OUTPUT_NAME, "DT_FLOAT", logits_dims)},
            "method_name": PREDICT_METHOD,
        }
        for signature, dtype in SIGNATURES.items()
    }
    return {"model_spec": {"name": name, "signature_name": "", "version": str(served.version)},
            "metadata": {"signature_def": {"signature_def": signatures}}}
