"""Masked mean pooling: one vector per sequence, averaged over real tokens only."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="keras_attn")
class MaskedMeanPooling(keras.layers.Layer):
    """Averages token vectors over the positions where `padding_mask` is True.

    Padded positions contribute nothing, so appending padding never changes the result.
    An all-padding sequence pools to zeros (the count is clamped to 1, never divided by 0).

    Call arguments:
        x: float `[batch, n, d]`.
        padding_mask: `[batch, n]`, True at real tokens.

    Returns:
        float `[batch, d]`.
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True  # accepts an implicit mask; the explicit one is used

    def call(self, x, padding_mask):
        mask = ops.cast(padding_mask, x.dtype)[:, :, None]  # [b, n, 1]
        total = ops.sum(x * mask, axis=1)  # [b, d]
        count = ops.maximum(ops.sum(mask, axis=1), 1.0)  # [b, 1]
        return total / count

    def compute_mask(self, x, mask=None):
        return None  # the sequence axis is gone

    def compute_output_shape(self, x_shape, padding_mask_shape):
        return (x_shape[0], x_shape[-1])
