"""An ONNX model converted by tf2onnx from the serving endpoint, with names a server can use.

tf2onnx names symbolic dims `unk__47`, and knows nothing of the model it converts. This module
pins the opset, renames the dims of `token_ids` and `logits` to `batch` and `sequence`, and
stores the model config, max_len, vocab_size, task and versions as `metadata_props`, so that
`export.runtime.predictor` can serve the file with onnxruntime alone.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import keras
import onnx
import tensorflow as tf
import tf2onnx

from export.artifact.metadata import INPUT_NAME, OUTPUT_NAME
from export.formats.tf_function import TOKEN_IDS_SPEC, logits_function

# tf2onnx 1.17 is tested up to opset 18; 17 is the first with LayerNormalization and is read
# by every onnxruntime since 1.11.
OPSET = 17
SUPPORTED_OPSETS = (17, 18)

BATCH_DIM = "batch"
SEQUENCE_DIM = "sequence"


def convert_to_onnx(model: keras.Model, task: str, metadata: Mapping[str, str],
                    opset: int = OPSET) -> onnx.ModelProto:
    """Converts the model's endpoint (without the SavedModel's asserts) to ONNX.

    Args:
        model: the Keras model: `token_ids` int32 `[batch, sequence]` -> logits.
        task: "classifier" (logits `[batch, num_classes]`) or "language_model"
            (logits `[batch, sequence, vocab_size]`); decides the names of the output dims.
        metadata: string key/values stored as the model's `metadata_props`.
        opset: the ONNX opset, 17 or 18.

    Returns:
        The checked `onnx.ModelProto`: input `token_ids` `[batch, sequence]` int32, output
        `logits` with its dims named.
    """
    if opset not in SUPPORTED_OPSETS:
        raise ValueError(
            f"opset must be one of {SUPPORTED_OPSETS} (tf2onnx 1.17 is tested up to 18, "
            f"LayerNormalization needs 17). Received: opset={opset!r}"
        )
    function = tf.function(logits_function(model), input_signature=[TOKEN_IDS_SPEC])
    proto, _ = tf2onnx.convert.from_function(
        function, input_signature=[TOKEN_IDS_SPEC], opset=opset
    )
    output_dims = (BATCH_DIM, SEQUENCE_DIM) if task == "language_model" else (BATCH_DIM,)
    name_dims(proto, {INPUT_NAME: (BATCH_DIM, SEQUENCE_DIM), OUTPUT_NAME: output_dims})
    proto.graph.name = f"keras_attn_{task}"
    onnx.helper.set_model_props(proto, dict(metadata))
    onnx.checker.check_model(proto, full_check=True)
    return proto


def name_dims(proto: onnx.ModelProto, names: Mapping[str, tuple[str, ...]]) -> None:
    """Gives the leading dims of the named graph inputs/outputs the names in `names`.

    The dim_param each one had (tf2onnx's `unk__N`) is renamed everywhere in the graph, so
    intermediate shapes keep pointing at the same symbol.

    Raises:
        ValueError: when a named input/output is missing, or an `unk__` dim is left on a
            graph input or output.
    """
    graph = proto.graph
    endpoints = {value.name: value for value in [*graph.input, *graph.output]}
    renamed: dict[str, str] = {}
    for value_name, dim_names in names.items():
        if value_name not in endpoints:
            raise ValueError(
                f"The converted graph has no input or output named {value_name!r}. "
                f"Received: {sorted(endpoints)}"
            )
        dims = endpoints[value_name].type.tensor_type.shape.dim
        for dim, new_name in zip(dims, dim_names, strict=False):  # names for leading dims
            if dim.dim_param:
                renamed[dim.dim_param] = new_name
            dim.dim_param = new_name  # also clears a static dim_value: batch is never fixed
    for value in [*graph.input, *graph.output, *graph.value_info]:
        for dim in value.type.tensor_type.shape.dim:
            if dim.dim_param in renamed:
                dim.dim_param = renamed[dim.dim_param]
    leftover = [
        f"{value.name}[{index}]={dim.dim_param}"
        for value in endpoints.values()
        for index, dim in enumerate(value.type.tensor_type.shape.dim)
        if dim.dim_param.startswith("unk__")
    ]
    if leftover:
        raise ValueError(f"Unnamed symbolic dims remain on the graph's endpoints: {leftover}")


def name_axes(proto: onnx.ModelProto, names: Mapping[str, Mapping[int, str]]) -> None:
    """Renames the symbolic dims (tf2onnx's `unk__N`) of the graph's endpoints, axis by axis,
    everywhere in the graph; static dims are left as they are.

    Raises:
        ValueError: a named endpoint is missing, or an `unk__` dim is left on an endpoint.
    """
    graph = proto.graph
    endpoints = {value.name: value for value in [*graph.input, *graph.output]}
    missing = sorted(set(names) - set(endpoints))
    if missing:
        raise ValueError(f"The converted graph has no inputs/outputs {missing}. Received: "
                         f"{sorted(endpoints)}")
    renamed: dict[str, str] = {}  # tf2onnx's symbol -> the first name given to it
    for value_name, axes in names.items():
        dims = endpoints[value_name].type.tensor_type.shape.dim
        for axis, new_name in axes.items():
            if dims[axis].dim_param.startswith("unk__"):
                renamed.setdefault(dims[axis].dim_param, new_name)
    for value in [*graph.input, *graph.output, *graph.value_info]:
        for dim in value.type.tensor_type.shape.dim:
            if dim.dim_param in renamed:
                dim.dim_param = renamed[dim.dim_param]
    for value_name, axes in names.items():  # an endpoint's own names win over a shared symbol
        dims = endpoints[value_name].type.tensor_type.shape.dim
        for axis, new_name in axes.items():
            if not dims[axis].dim_value:
                dims[axis].dim_param = new_name
    leftover = [f"{value.name}[{index}]={dim.dim_param}" for value in endpoints.values()
                for index, dim in enumerate(value.type.tensor_type.shape.dim)
                if dim.dim_param.startswith("unk__")]
    if leftover:
        raise ValueError(f"Unnamed symbolic dims remain on the graph's endpoints: {leftover}")


def save_onnx(proto: onnx.ModelProto, path: str | os.PathLike) -> None:
    """Writes `proto` as one self-contained file (our models are far below the 2 GB limit)."""
    onnx.save_model(proto, os.fspath(path))
