"""Checks on token ids at the model's boundary, with messages a user can act on.

`keras.ops` has no assert, so a layer cannot raise about the *values* of a symbolic tensor.
Shape and dtype are checked statically; values are checked from NumPy (`check_token_values`)
wherever they are concrete, which is the same on every backend:

- at the model's boundary, before Keras casts or traces anything (`keras_attn.models.checked_model`:
  `model(x)`, `predict`, `fit`, `evaluate` and the `*_on_batch` methods on array inputs);
- in `PositionalEmbedding.call` when it runs eagerly (an eager call; every step of `fit` and
  `predict` on the torch backend, which does not trace).

In a traced call on the TensorFlow backend (a `tf.data` pipeline, a SavedModel signature) the
same checks become `tf.debugging` asserts carrying the same messages; this module is the one
place keras_attn reaches past `keras.ops` to a backend. tf2onnx drops asserts, which is why
`export/runtime/predictor.py` validates ids itself before onnxruntime sees them.
"""

import keras
import numpy as np
from keras import ops

# The messages are the token-id contract's (export.artifact.token_ids, NumPy only), so that a
# user reads the same words from Keras, the SavedModel and onnxruntime.
from export.artifact.token_ids import (
    EMPTY_BATCH_MESSAGE,
    length_message,
    object_ids_message,
    padding_only_message,
    range_message,
)


def concrete_values(tensor):
    """Returns `tensor` as NumPy when it holds values (an eager call), else None (symbolic)."""
    try:
        return ops.convert_to_numpy(tensor)
    except (ValueError, TypeError, NotImplementedError, AttributeError):
        return None


def check_token_values(values: np.ndarray, vocab_size: int, max_len: int) -> None:
    """Raises ValueError unless `values` is an int array `[batch, n]` with batch >= 1,
    1 <= n <= max_len, every id in [0, vocab_size) and at least one non-padding id in every
    sequence (dtype object, e.g. from a JSON null or an integer beyond 64 bits, is refused by
    name).

    Pure NumPy, so that it says the same on every backend, and sees an int64 id before any
    cast could narrow it (2**32 + 5 would become 5 as int32).
    """
    if values.dtype == object:  # Keras would say only "Invalid dtype: object"
        raise ValueError(object_ids_message(values))
    _check_static(keras.backend.standardize_dtype(values.dtype), tuple(values.shape), max_len)
    if values.shape[0] == 0:  # Keras's predict fails on it deep inside, with UnboundLocalError
        raise ValueError(EMPTY_BATCH_MESSAGE)
    if values.size and (values.min() < 0 or values.max() >= vocab_size):
        raise ValueError(range_message(vocab_size, f"ids from {values.min()} to {values.max()}"))
    empty = np.flatnonzero((values == 0).all(axis=1)) if values.size else []
    if len(empty):
        raise ValueError(padding_only_message(f"sequence {int(empty[0])} is all padding"))


def check_token_ids(token_ids, vocab_size, max_len):
    """Raises ValueError unless `token_ids` is an int `[batch, n]` tensor, 1 <= n <= max_len,
    with every id in [0, vocab_size) and at least one non-padding id in every sequence.

    Values are checked when the tensor holds them; in a traced TensorFlow call, by asserts.
    Returns `token_ids` (with asserts attached in TensorFlow graphs)."""
    _check_static(keras.backend.standardize_dtype(token_ids.dtype), tuple(token_ids.shape),
                  max_len)
    values = concrete_values(token_ids)
    if values is not None:
        check_token_values(values, vocab_size, max_len)
        return token_ids
    if keras.backend.backend() == "tensorflow":
        return _assert_in_graph(token_ids, vocab_size, max_len)
    return token_ids


def _check_static(dtype: str, shape, max_len: int) -> None:
    """dtype, rank and (when known) length: what a symbolic tensor already tells."""
    if "int" not in dtype:
        raise ValueError(f"token_ids must be integers (int32 or int64). Received: dtype={dtype}")
    if len(shape) != 2:
        raise ValueError(f"token_ids must have rank 2, [batch, sequence]. Received: shape={shape}")
    length = shape[1]
    if length is not None and not 1 <= length <= max_len:
        raise ValueError(length_message(max_len, f"sequence length {length}"))


def in_range_asserts(values, upper: int, noun: str, message):
    """TensorFlow asserts that every value lies in [0, upper), their messages
    `message(received)` with received "a negative <noun>" or "a <noun> >= upper" ("an" before
    a vowel). Also what the SavedModel's `decoder_step` checks its positions with."""
    import tensorflow as tf

    article = "an" if noun[0] in "aeiou" else "a"
    return [tf.debugging.assert_non_negative(values, message=message(f"a negative {noun}")),
            tf.debugging.assert_less(values, tf.constant(upper, values.dtype),
                                     message=message(f"{article} {noun} >= {upper}"))]


def token_id_asserts(token_ids, vocab_size: int, max_len: int) -> list:
    """The checks of `check_token_values` as TensorFlow asserts, for a traced call: the
    sequence length (1 to max_len), the ids ([0, vocab_size), in the dtype received, before
    any cast) and a non-padding id in every sequence. The SavedModel's signatures
    (`export.formats.tf_function`) run the same asserts."""
    import tensorflow as tf

    length = tf.shape(token_ids)[1]
    return [
        tf.debugging.assert_greater_equal(
            length, 1, message=length_message(max_len, "sequence length 0")),
        tf.debugging.assert_less_equal(
            length, max_len, message=length_message(max_len, f"a sequence longer than {max_len}")),
        *in_range_asserts(token_ids, vocab_size, "id",
                          lambda received: range_message(vocab_size, received)),
        tf.debugging.assert_equal(
            tf.reduce_all(tf.reduce_any(tf.not_equal(token_ids, 0), axis=1)), True,
            message=padding_only_message("a sequence of padding only")),
    ]


def _assert_in_graph(token_ids, vocab_size, max_len):
    import tensorflow as tf

    with tf.control_dependencies(token_id_asserts(token_ids, vocab_size, max_len)):
        return tf.identity(token_ids)
