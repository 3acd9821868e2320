"""Masks: which keys a query may attend to.

The padding mask is computed once from `token_ids != 0` and passed to every layer explicitly:
Keras 3 drops implicit masks through `x + y` on KerasTensors (keras #18416), so implicit
mask propagation cannot be trusted through residual connections.
"""

import keras
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


def masked_fill_value(dtype):
    """A score so negative that softmax gives it exactly 0 weight, finite in `dtype`.

    Finite (not -inf) so that a row whose keys are all masked (an all-padding sequence)
    gives uniform weights instead of NaN.
    """
    return -3.0e4 if keras.backend.standardize_dtype(dtype) == "float16" else -1.0e9
