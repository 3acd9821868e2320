"""Masked mean pooling: one vector per sequence, averaged over real tokens only."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="keras_attn")
class MaskedMeanPooling(keras.layers.Layer):
    """Averages token vectors over the positions where `padding_mask` is True.

    Padded positions contribute nothing, so appending padding never changes the result.
    A sequence of padding only has nothing to average: it pools to NaN (0 / 0), so that no
    runtime can turn it into a confident answer about nothing (the checked paths reject such
    rows before they get here; see README "Input checks").

    Call arguments:
        x: float `[batch, n, d]`.
        padding_mask: `[batch, n]`, True at real tokens.
        mask: the implicit Keras mask, passed by Keras; used when `padding_mask` is not given.
            With neither, every position counts.

    Returns:
        float `[batch, d]`.
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True  # an implicit mask is honoured

    def call(self, x, padding_mask=None, mask=None):
        padding_mask = mask if padding_mask is None else padding_mask
        if padding_mask is None:
            return ops.mean(x, axis=1)
        weights = ops.cast(padding_mask, x.dtype)[:, :, None]  # [b, n, 1]
        total = ops.sum(x * weights, axis=1)  # [b, d]
        return total / ops.sum(weights, axis=1)  # count [b, 1]; 0 real tokens -> NaN

    def compute_mask(self, x, mask=None):
        return None  # the sequence axis is gone

    def compute_output_shape(self, x_shape, padding_mask_shape=None):
        return (x_shape[0], x_shape[-1])
