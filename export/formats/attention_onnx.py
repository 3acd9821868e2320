"""`attention.onnx`: every block's attention weights, for viewers, in onnxruntime alone.

Every export holds it beside `model.onnx`: input `token_ids` int32 `[batch, sequence]` (as
model.onnx's), and one output per block, `attentions.{block}` float32 `[batch, heads,
sequence, sequence]`, as Hugging Face names a model's `attentions`: row i holds how much
position i attends to each position, the softmax of the scaled dot products (walkthrough
step 4), 0 on padded keys, each row summing to 1. The graph is traced from
`keras_attn.models.attention_maps.attention_weights` (the model's own layers, inference mode,
the padding mask passed explicitly) and converted by tf2onnx; it stops at the last block, so it
costs the blocks and not the head. Standard ONNX ops only.

This module writes the file; `export.verification.attention_parity` checks it against Keras's
`return_attention_scores` at the fp32 tolerance; `export.runtime.attention` runs it.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import onnx
import tensorflow as tf
import tf2onnx

from export.artifact.manifest import ATTENTION_FILENAME
from export.artifact.metadata import INPUT_NAME
from export.formats.onnx import BATCH_DIM, SEQUENCE_DIM, name_axes, save_onnx
from export.formats.tf_function import TOKEN_IDS_SPEC

KEY_DIM = "key_sequence"


def attentions_name(block: int) -> str:
    """The output name of block `block`'s attention weights."""
    return f"attentions.{block}"


def convert_attention(model: Any, metadata: Mapping[str, str], opset: int) -> onnx.ModelProto:
    """Traces the model's attention weights and converts them to ONNX.

    Args:
        model: a float32 keras_attn classifier or language model.
        metadata: model.onnx's metadata_props (max_len, vocab_size and the config, which
            `export.runtime.attention` reads).
        opset: the ONNX opset.

    Returns:
        The checked `onnx.ModelProto` of the module docstring.
    """
    from keras_attn.models.attention_maps import attention_weights

    def attentions(token_ids: tf.Tensor) -> dict[str, tf.Tensor]:
        return {attentions_name(block): weights
                for block, weights in enumerate(attention_weights(model, token_ids))}

    function = tf.function(attentions, input_signature=[TOKEN_IDS_SPEC])
    proto, _ = tf2onnx.convert.from_function(function, input_signature=[TOKEN_IDS_SPEC],
                                             opset=opset)
    names = {INPUT_NAME: {0: BATCH_DIM, 1: SEQUENCE_DIM}}
    names.update({value.name: {0: BATCH_DIM, 2: SEQUENCE_DIM, 3: KEY_DIM}
                  for value in proto.graph.output})
    name_axes(proto, names)
    proto.graph.name = "keras_attn_attentions"
    onnx.helper.set_model_props(proto, dict(metadata))
    onnx.checker.check_model(proto, full_check=True)
    return proto


def write_attention(model: Any, folder: Path, metadata: Mapping[str, str],
                    opset: int) -> dict[str, Any]:
    """Writes `attention.onnx` into an export's staging folder.

    Returns:
        Its manifest entry before the check: {"shipped": True, "outputs": [names]}, or
        {"shipped": False, "reason"} when the conversion failed (then nothing is written).
        `export.verification.attention_parity.check_attention` settles whether it ships.
    """
    try:
        proto = convert_attention(model, metadata, opset)
        save_onnx(proto, Path(folder) / ATTENTION_FILENAME)
    except Exception as error:  # tf2onnx and the checker raise many types
        (Path(folder) / ATTENTION_FILENAME).unlink(missing_ok=True)
        return {"shipped": False,
                "reason": f"the conversion failed: {type(error).__name__}: {error}"}
    return {"shipped": True, "outputs": [value.name for value in proto.graph.output]}
