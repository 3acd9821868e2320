"""What an exported model says about itself, as ONNX `metadata_props` (string -> string).

The exporter writes these keys into `model.onnx`; the runtime reads them back from
onnxruntime's `custom_metadata_map`, so a server needs nothing but the `.onnx` file to know
max_len, vocab_size and the model config. Standard library only.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

INPUT_NAME = "token_ids"
OUTPUT_NAME = "logits"
TASKS = ("classifier", "language_model")

_JSON_KEYS = ("config", "class_names")
_INT_KEYS = ("max_len", "vocab_size", "opset")


def encode_metadata(
    config: Mapping[str, Any],
    task: str,
    opset: int,
    keras_attn_version: str,
    class_names: Sequence[str] | None = None,
) -> dict[str, str]:
    """The metadata_props of an exported model, every value a string."""
    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}. Received: task={task!r}")
    return {
        "task": task,
        "config": json.dumps(dict(config), sort_keys=True),
        "max_len": str(config["max_len"]),
        "vocab_size": str(config["vocab_size"]),
        "opset": str(opset),
        "keras_attn_version": keras_attn_version,
        "class_names": json.dumps(list(class_names) if class_names is not None else None),
        "input_name": INPUT_NAME,
        "output_name": OUTPUT_NAME,
    }


def decode_metadata(props: Mapping[str, str]) -> dict[str, Any]:
    """Inverse of `encode_metadata`: JSON values parsed, integers as ints.

    Raises:
        ValueError: when a key the runtime needs is missing, i.e. the file was not written
            by this exporter.
    """
    missing = [key for key in ("task", "config", "max_len", "vocab_size") if key not in props]
    if missing:
        raise ValueError(
            f"This ONNX model lacks the keras-attn metadata {missing}; export it with "
            f"export.export_model. Received metadata keys: {sorted(props)}"
        )
    values: dict[str, Any] = dict(props)
    for key in _JSON_KEYS:
        if key in values:
            values[key] = json.loads(values[key])
    for key in _INT_KEYS:
        if key in values:
            values[key] = int(values[key])
    return values
