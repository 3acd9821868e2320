"""`decoder.onnx`: a language model's cached decoding step, traced and converted by tf2onnx.

Beside `model.onnx` (full-sequence logits), a language-model export holds `decoder.onnx`, one
decoding step with a key/value cache, with the inputs and outputs `export.artifact.decoder_io`
names. The graph is traced from `keras_attn.models.cached_decoder.CachedDecoder` (the same
layers as the Keras model), through the function the SavedModel's `decoder_step` signature
also serves (`export.formats.savedmodel_decoder.step_function`). `decoder.optimized.onnx` is
that graph rewritten into fused onnxruntime kernels (`export.formats.optimize.rewrite`).

This module writes the files; `export.verification.decoder_parity` checks them at every step
and settles whether decoder.optimized.onnx ships; onnxruntime runs them
(`export.runtime.decoder_step`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import onnx
import tensorflow as tf
import tf2onnx

from export.artifact.decoder_io import LOGITS, POSITION_IDS, TOKEN_IDS, past_names, present_names
from export.artifact.manifest import DECODER_FILENAME, OPTIMIZED_DECODER_FILENAME
from export.formats.onnx import name_axes, save_onnx
from export.formats.optimize import rewrite
from export.formats.savedmodel_decoder import step_function

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
    step, specs = step_function(model)
    layers = len(specs) // 2 - 1  # token_ids, position_ids, then a key and a value per block
    function = tf.function(step, input_signature=specs)
    proto, _ = tf2onnx.convert.from_function(function, input_signature=specs, opset=opset)
    names = {TOKEN_IDS: {0: BATCH, 1: NEW}, POSITION_IDS: {0: BATCH, 1: NEW},
             LOGITS: {0: BATCH, 1: NEW}}
    for layer in range(layers):
        names.update({name: {0: BATCH, 2: PAST} for name in past_names(layer)})
        names.update({name: {0: BATCH, 2: TOTAL} for name in present_names(layer)})
    name_axes(proto, names)
    proto.graph.name = "keras_attn_decoder_step"
    onnx.helper.set_model_props(proto, dict(metadata))
    onnx.checker.check_model(proto, full_check=True)
    return proto


def write_decoder_files(model, folder: Path, metadata: dict, opset: int) -> dict[str, Any]:
    """Writes `decoder.onnx` and `decoder.optimized.onnx` into an export's staging folder.

    Args:
        model: a float32 keras_attn language model.
        folder: the staging folder.
        metadata: model.onnx's metadata_props (see `convert_decoder`).
        opset: the ONNX opset.

    Returns:
        How decoder.optimized.onnx was built: {"shipped": True, "built_from", "rewrites"}, or
        {"shipped": False, "reason": ...} when the rewrite failed (then it is not written).
        Shipped means written, not yet checked: `export.verification.decoder_parity` settles
        that.
    """
    folder = Path(folder)
    proto = convert_decoder(model, metadata, opset)
    save_onnx(proto, folder / DECODER_FILENAME)
    try:
        optimized, rewrites = rewrite(proto)
        save_onnx(optimized, folder / OPTIMIZED_DECODER_FILENAME)
    except Exception as error:  # onnxscript and the checker raise many types
        return {"shipped": False,
                "reason": f"the graph rewrite failed: {type(error).__name__}: {error}"}
    return {"shipped": True, "built_from": DECODER_FILENAME, "rewrites": rewrites}
