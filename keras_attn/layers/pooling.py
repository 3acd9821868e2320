"""One vector per sequence for a classifier's head: the masked mean over real tokens
(`MaskedMeanPooling`), or one position's vector (`TokenReadout`)."""

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


@keras.saving.register_keras_serializable(package="keras_attn")
class TokenReadout(keras.layers.Layer):
    """Reads one position's vector per sequence: where the meaning is made to gather.

    With ``token_id`` None, the first position (BERT's readout, which reads the vector of its
    leading ``[CLS]`` token). With a ``token_id``, the first position holding that id (the
    walkthrough's "it", say: the classifier must then answer from what "it" gathered through
    attention); a sequence without that id is read at its last real token, the readout of
    Hugging Face's `GPT2ForSequenceClassification`.

    The position is chosen by comparisons only (no gather), so the layer is exact under every
    dtype policy and lowers to ONNX as Equal, ArgMax and a masked sum.

    Args:
        token_id: the id whose first position is read, or None for position 0.

    Call arguments:
        x: float `[batch, n, d]`.
        token_ids: int `[batch, n]`, right-padded with 0.
        padding_mask: `[batch, n]`, True at real tokens.

    Returns:
        float `[batch, d]`.
    """

    def __init__(self, token_id: int | None = None, **kwargs):
        super().__init__(**kwargs)
        if token_id is not None and (isinstance(token_id, bool) or not isinstance(token_id, int)
                                     or token_id < 1):
            raise ValueError("token_id must be None (read position 0) or a positive integer "
                             f"id (0 is padding). Received: token_id={token_id!r}")
        self.token_id = token_id
        self.supports_masking = True  # the padding is read from `padding_mask`

    def call(self, x, token_ids, padding_mask, mask=None):
        n = ops.shape(x)[1]
        positions = ops.arange(n, dtype="int32")[None, :]  # [1, n]
        if self.token_id is None:
            index = ops.zeros_like(positions[:, :1])  # [1, 1]
        else:
            found = ops.cast(ops.equal(token_ids, self.token_id), "int32")  # [b, n]
            last_real = ops.sum(ops.cast(padding_mask, "int32"), axis=1, keepdims=True) - 1
            first_found = ops.cast(ops.argmax(found, axis=1), "int32")[:, None]
            index = ops.where(ops.max(found, axis=1, keepdims=True) > 0, first_found,
                              last_real)  # [b, 1]
        weights = ops.cast(ops.equal(positions, index), x.dtype)[:, :, None]  # one-hot [b, n, 1]
        return ops.sum(x * weights, axis=1)

    def compute_mask(self, x, mask=None):
        return None  # the sequence axis is gone

    def compute_output_shape(self, x_shape, token_ids_shape=None, padding_mask_shape=None):
        return (x_shape[0], x_shape[-1])

    def get_config(self):
        return {**super().get_config(), "token_id": self.token_id}
