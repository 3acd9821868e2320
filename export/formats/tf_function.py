"""The serving endpoint: token ids in, named logits out, as a TensorFlow function.

Both exports start here. The SavedModel's `serving_default` is `checked_logits_function`: it
validates ids and lengths with `tf.debugging` asserts, because TF Serving clients send
whatever they like; `serving_int64` is the same for int64 ids (what gRPC clients send when
they build the tensor from a NumPy array). The ONNX model is converted from `logits_function`,
the same computation without the asserts: tf2onnx drops Assert ops anyway, and the
onnxruntime wrapper (`export.runtime.predictor`) validates in NumPy instead.
"""

from __future__ import annotations

from collections.abc import Callable

import keras
import numpy as np
import tensorflow as tf

from export.artifact.metadata import INPUT_NAME, OUTPUT_NAME
from keras_attn.layers.token_checks import token_id_asserts

TOKEN_IDS_SPEC = tf.TensorSpec([None, None], tf.int32, name=INPUT_NAME)
# gRPC clients that build their tensor with `tf.make_tensor_proto(np.array(...))` send int64.
TOKEN_IDS_INT64_SPEC = tf.TensorSpec([None, None], tf.int64, name=INPUT_NAME)


def logits_function(model: keras.Model) -> Callable[[tf.Tensor], dict[str, tf.Tensor]]:
    """`token_ids [batch, sequence] -> {"logits": ...}` in inference mode; no checks."""

    def logits(token_ids: tf.Tensor) -> dict[str, tf.Tensor]:
        return {OUTPUT_NAME: model(token_ids, training=False)}

    return logits


def checked_logits_function(
    model: keras.Model, max_len: int, vocab_size: int
) -> Callable[[tf.Tensor], dict[str, tf.Tensor]]:
    """`logits_function` behind asserts on the sequence length (1 to max_len), the ids
    ([0, vocab_size), checked in the dtype received, before any cast) and every sequence
    holding a non-padding id: `keras_attn.layers.token_checks.token_id_asserts`, the asserts a
    traced Keras call runs, with the messages of `export.artifact.token_ids`. Works for int32
    and int64 ids."""
    compute = logits_function(model)

    def serving_default(token_ids: tf.Tensor) -> dict[str, tf.Tensor]:
        checks = token_id_asserts(token_ids, vocab_size, max_len)
        # The model's own Gather would fail first on a bad id, with a message about indices.
        with tf.control_dependencies(checks):
            token_ids = tf.identity(token_ids)
        return compute(token_ids)

    return serving_default


def keras_runtime(model: keras.Model) -> Callable[[np.ndarray], np.ndarray]:
    """The Keras model as a parity-battery runtime: int32 ids -> float32 logits."""

    def run(token_ids: np.ndarray) -> np.ndarray:
        return keras.ops.convert_to_numpy(model(token_ids, training=False))

    return run
