"""The decoder step of a language model export: one ONNX file with a key/value cache.

Beside `model.onnx` (full-sequence logits), a language-model export holds `decoder.onnx`:

    inputs   token_ids                    int64   [batch, new]
             position_ids                 int64   [batch, new]   absolute positions
             past_key_values.<i>.key      float32 [batch, heads, past, head_dim]  one per block
             past_key_values.<i>.value    float32 [batch, heads, past, head_dim]
    outputs  logits                       float32 [batch, new, vocab_size]
             present.<i>.key              float32 [batch, heads, past + new, head_dim]
             present.<i>.value            float32 [batch, heads, past + new, head_dim]

(the names Hugging Face's ONNX decoders use). `past` may be 0: the first step reads the whole
prompt. The graph is traced from `keras_attn.models.cached_decoder.CachedDecoder` (the same layers
as the
Keras model), through the function the SavedModel's `decoder_step` signature also serves
(`export.formats.savedmodel_decoder.step_function`), and converted by tf2onnx. Its parity at every
step: `export.verification.decoder_parity`.

Runtime side (`CachedStep`): NumPy + onnxruntime only. Export side (`convert_decoder`): imports
TensorFlow and tf2onnx inside the function.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import onnxruntime as ort

from export.artifact.metadata import decode_metadata

DECODER_FILENAME = "decoder.onnx"
# decoder.onnx with tf2onnx's small ops rewritten into fused onnxruntime kernels
# (`export.formats.optimize.rewrite`); onnxruntime only, shipped when it passes its parity check.
OPTIMIZED_DECODER_FILENAME = "decoder.optimized.onnx"
TOKEN_IDS, POSITION_IDS, LOGITS = "token_ids", "position_ids", "logits"


def past_names(layer: int) -> tuple[str, str]:
    """The input names of block `layer`'s past keys and values."""
    return f"past_key_values.{layer}.key", f"past_key_values.{layer}.value"


def present_names(layer: int) -> tuple[str, str]:
    """The output names of block `layer`'s present keys and values."""
    return f"present.{layer}.key", f"present.{layer}.value"


class CachedStep:
    """One decoding step on onnxruntime over `decoder.onnx`; a step of
    `export.runtime.sampling.generate_ids` (the cache: one (key, value) pair of NumPy arrays
    `[batch, heads, past, head_dim]` per block).

    Args:
        path: the decoder ONNX file.
        threads: intra-op threads.
        optimization: an `export.runtime.predictor.OPTIMIZATION_LEVELS` name.
    """

    def __init__(self, path: str | os.PathLike, threads: int = 1,
                 optimization: str = "all") -> None:
        from export.runtime.predictor import OPTIMIZATION_LEVELS

        options = ort.SessionOptions()
        options.graph_optimization_level = OPTIMIZATION_LEVELS[optimization]
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.log_severity_level = 3
        self.path = Path(path)
        self.session = ort.InferenceSession(str(self.path), sess_options=options,
                                            providers=["CPUExecutionProvider"])
        self.metadata = decode_metadata(self.session.get_modelmeta().custom_metadata_map)
        config = self.metadata["config"]
        self.max_len, self.vocab_size = self.metadata["max_len"], self.metadata["vocab_size"]
        self.num_layers, self.num_heads = config["num_layers"], config["num_heads"]
        self.head_dim = config["d_model"] // config["num_heads"]
        self.output_names = [LOGITS] + [name for layer in range(self.num_layers)
                                        for name in present_names(layer)]

    def empty_cache(self, batch: int = 1) -> list[tuple[np.ndarray, np.ndarray]]:
        """No past yet: one (key, value) pair of float32 `[batch, heads, 0, head_dim]`."""
        empty = np.zeros((batch, self.num_heads, 0, self.head_dim), dtype=np.float32)
        return [(empty, empty) for _ in range(self.num_layers)]

    def __call__(self, token_ids, position_ids, cache):
        """(logits float32 `[batch, new, vocab]`, the present keys and values per block).

        Raises:
            ValueError: a position at or beyond max_len, or an id outside [0, vocab_size).
        """
        token_ids = np.asarray(token_ids, dtype=np.int64)
        position_ids = np.asarray(position_ids, dtype=np.int64)
        if position_ids.size and (position_ids.min() < 0 or position_ids.max() >= self.max_len):
            raise ValueError(f"Positions must lie in [0, max_len={self.max_len}). Received: "
                             f"{position_ids.min()}..{position_ids.max()}")
        if token_ids.size and (token_ids.min() < 0 or token_ids.max() >= self.vocab_size):
            raise ValueError(f"Token ids must lie in [0, {self.vocab_size}). Received: "
                             f"{token_ids.min()}..{token_ids.max()}")
        feed = {TOKEN_IDS: token_ids, POSITION_IDS: position_ids}
        for layer, (key, value) in enumerate(cache):
            feed.update(zip(past_names(layer), (key, value), strict=True))
        logits, *present = self.session.run(self.output_names, feed)
        return logits, list(zip(present[0::2], present[1::2], strict=True))


# --- Export side: TensorFlow and tf2onnx are imported inside these functions. ---------------

# Named dims of the decoder's endpoints, by axis; heads and head_dim stay static.
BATCH, NEW, PAST, TOTAL = "batch", "new", "past", "past_plus_new"


def convert_decoder(model, metadata: dict, opset: int):
    """Traces `keras_attn.models.cached_decoder.CachedDecoder` over `model` and converts it to ONNX.

    Args:
        model: a float32 keras_attn language model.
        metadata: string key/values stored as the model's `metadata_props` (those of
            model.onnx: `CachedStep` reads max_len, vocab_size and the config from them).
        opset: the ONNX opset.

    Returns:
        The checked `onnx.ModelProto`, with the inputs and outputs of the module docstring.
    """
    import onnx
    import tensorflow as tf
    import tf2onnx

    from export.formats.savedmodel_decoder import step_function

    step, specs = step_function(model)
    layers = len(specs) // 2 - 1  # token_ids, position_ids, then a key and a value per block
    function = tf.function(step, input_signature=specs)
    proto, _ = tf2onnx.convert.from_function(function, input_signature=specs, opset=opset)
    names = {TOKEN_IDS: {0: BATCH, 1: NEW}, POSITION_IDS: {0: BATCH, 1: NEW},
             LOGITS: {0: BATCH, 1: NEW}}
    for layer in range(layers):
        names.update({name: {0: BATCH, 2: PAST} for name in past_names(layer)})
        names.update({name: {0: BATCH, 2: TOTAL} for name in present_names(layer)})
    _name_dims(proto, names)
    proto.graph.name = "keras_attn_decoder_step"
    onnx.helper.set_model_props(proto, dict(metadata))
    onnx.checker.check_model(proto, full_check=True)
    return proto


def _name_dims(proto, names: dict[str, dict[int, str]]) -> None:
    """Renames the symbolic dims (tf2onnx's `unk__N`) of the graph's endpoints, axis by axis,
    everywhere in the graph; static dims are left as they are.

    Raises:
        ValueError: a named endpoint is missing, or an `unk__` dim is left on an endpoint.
    """
    graph = proto.graph
    endpoints = {value.name: value for value in [*graph.input, *graph.output]}
    missing = sorted(set(names) - set(endpoints))
    if missing:
        raise ValueError(f"The converted decoder has no inputs/outputs {missing}. Received: "
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
        raise ValueError(f"Unnamed symbolic dims remain on the decoder's endpoints: {leftover}")
