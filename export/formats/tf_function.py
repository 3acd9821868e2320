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
from export.artifact.token_ids import length_message, padding_only_message, range_message

TOKEN_IDS_SPEC = tf.TensorSpec([None, None], tf.int32, name=INPUT_NAME)
# gRPC clients that build their tensor with `tf.make_tensor_proto(np.array(...))` send int64.
TOKEN_IDS_INT64_SPEC = tf.TensorSpec([None, None], tf.int64, name=INPUT_NAME)


def logits_function(model: keras.Model) -> Callable[[tf.Tensor], dict[str, tf.Tensor]]:
    """`token_ids [batch, sequence] -> {"logits": ...}` in inference mode; no checks."""

    def logits(token_ids: tf.Tensor) -> dict[str, tf.Tensor]:
        return {OUTPUT_NAME: model(token_ids, training=False)}

    return logits


def in_range_asserts(values: tf.Tensor, upper: int, noun: str,
                     message: Callable[[str], str]) -> list:
    """Asserts that every value lies in [0, upper), their messages `message(received)` with
    received "a negative <noun>" or "a <noun> >= upper" ("an" before a vowel)."""
    article = "an" if noun[0] in "aeiou" else "a"
    return [tf.debugging.assert_non_negative(values, message=message(f"a negative {noun}")),
            tf.debugging.assert_less(values, tf.constant(upper, values.dtype),
                                     message=message(f"{article} {noun} >= {upper}"))]


def checked_logits_function(
    model: keras.Model, max_len: int, vocab_size: int
) -> Callable[[tf.Tensor], dict[str, tf.Tensor]]:
    """`logits_function` behind asserts on the sequence length (1 to max_len), the ids
    ([0, vocab_size), checked in the dtype received, before any cast) and every sequence
    holding a non-padding id; each failure message names the limit, in the words
    `export.artifact.token_ids` and keras_attn's own checks use. Works for int32 and int64 ids."""
    compute = logits_function(model)

    def serving_default(token_ids: tf.Tensor) -> dict[str, tf.Tensor]:
        length = tf.shape(token_ids)[1]
        checks = [
            tf.debugging.assert_greater_equal(
                length, 1, message=length_message(max_len, "sequence length 0")),
            tf.debugging.assert_less_equal(
                length, max_len,
                message=length_message(max_len, f"a sequence longer than {max_len}")),
            *in_range_asserts(token_ids, vocab_size, "id",
                              lambda received: range_message(vocab_size, received)),
            tf.debugging.assert_equal(
                tf.reduce_all(tf.reduce_any(tf.not_equal(token_ids, 0), axis=1)), True,
                message=padding_only_message("a sequence of padding only")),
        ]
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
