"""Masks: which keys a query may attend to.

The padding mask is computed once from `token_ids != 0` and passed to every layer explicitly:
Keras 3 drops implicit masks through `x + y` on KerasTensors (keras #18416), so implicit
mask propagation cannot be trusted through residual connections.
"""

import warnings

import keras
import numpy as np
from keras import ops


@keras.saving.register_keras_serializable(package="keras_attn")
class PaddingMask(keras.layers.Layer):
    """Marks real tokens: `token_ids != 0` (id 0 is padding).

    Call arguments:
        token_ids: int tensor `[batch, n]`.

    Returns:
        bool tensor `[batch, n]`, True at real tokens.
    """

    def call(self, token_ids):
        return ops.not_equal(token_ids, 0)

    def compute_output_spec(self, token_ids):
        return keras.KerasTensor(token_ids.shape, dtype="bool")


def attention_mask(padding_mask=None, use_causal_mask=False, length=None):
    """Combines a key padding mask and a causal mask into one boolean mask over scores.

    Args:
        padding_mask: optional `[batch, n]` (bool or 0/1), True at real tokens.
        use_causal_mask: when True, query i may only attend to keys j <= i.
        length: n, the sequence length; needed when `use_causal_mask`.

    Returns:
        None (attend everywhere), or a bool mask broadcastable to scores `[batch, n, n]`:
        `[batch, 1, n]` for padding, `[n, n]` for causal, `[batch, n, n]` for both.
    """
    mask = None
    if padding_mask is not None:
        mask = ops.expand_dims(ops.cast(padding_mask, "bool"), axis=1)  # [b, 1, n_keys]
    if use_causal_mask:
        positions = ops.arange(length)
        causal = ops.greater_equal(positions[:, None], positions[None, :])  # [n_q, n_keys]
        mask = causal if mask is None else ops.logical_and(mask, causal)
    return mask


HALF_PRECISION = ("float16", "bfloat16")


def masked_softmax(scores, mask=None):
    """Softmax over the last axis where masked keys get exactly 0 weight, under every dtype.

    Half-precision scores (float16, bfloat16: the compute dtype of Keras's mixed policies) are
    promoted to float32 first, as Keras recommends for softmax. Masked scores are replaced by
    the lowest finite value of that dtype, which no real score can undercut: a fixed "very
    negative" fill (such as -3e4) loses to real scores that lie below it (-33,800 is a float16
    score), and then all the weight goes to padding. Finite, not -inf, so that a row whose keys
    are all masked gives uniform weights instead of NaN.

    Args:
        scores: float `[..., n_queries, n_keys]`.
        mask: optional bool, broadcastable to `scores`; False = do not attend.

    Returns:
        weights, float32 for half-precision scores, else `scores.dtype`; each row sums to 1.
    """
    if keras.backend.standardize_dtype(scores.dtype) in HALF_PRECISION:
        scores = ops.cast(scores, "float32")
    if mask is not None:
        scores = ops.where(mask, scores, lowest_finite(scores.dtype))
    with warnings.catch_warnings():  # a one-token sequence is valid: its weight is 1
        warnings.filterwarnings("ignore", message="You are using a softmax over axis")
        return ops.softmax(scores, axis=-1)


def lowest_finite(dtype) -> float:
    """The most negative finite value of a float dtype (e.g. -3.4e38 for float32)."""
    return float(np.finfo(keras.backend.standardize_dtype(dtype)).min)
