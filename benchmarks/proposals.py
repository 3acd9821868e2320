"""A change to keras_attn measured before it is made: split Q, K, V before the heads transpose.

`keras_attn.MultiHeadSelfAttention` reshapes its fused QKV projection to
`[b, n, 3, heads, head_dim]` and transposes all of it at once to `[3, b, heads, n, head_dim]`.
That 5-D transpose (and, in training, its gradient) is one large copy that TensorFlow runs
without XLA as a generic strided transpose. This prototype splits the projection into Q, K
and V first and moves each to `[b, heads, n, head_dim]` with the common 4-D transpose. The
weights, the math and the outputs are the same; only the layout of the intermediate changes.

The benchmark trains it beside the real classifier, so the proposal's gain is a ratio from
the same run. It is not part of keras_attn: the owner of `keras_attn/attention.py` decides.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

import keras_attn as ka
from keras_attn.attention import MultiHeadSelfAttention, scaled_dot_product_attention
from keras_attn.masking import attention_mask


class SplitHeadsSelfAttention(MultiHeadSelfAttention):
    """MultiHeadSelfAttention with Q, K, V split before the transpose to heads."""

    def call(self, x, padding_mask=None, return_attention_scores=False, training=None):
        batch, length = ops.shape(x)[0], ops.shape(x)[1]
        qkv = ops.matmul(x, self.qkv_kernel) + self.qkv_bias  # [b, n, 3 * d_model]
        query, key, value = (
            # [b, n, d_model] -> [b, n, heads, head_dim] -> [b, heads, n, head_dim]
            ops.transpose(ops.reshape(part, (batch, length, self.num_heads, self.head_dim)),
                          (0, 2, 1, 3))
            for part in ops.split(qkv, 3, axis=-1)
        )
        mask = attention_mask(padding_mask, self.use_causal_mask, length)
        if mask is not None:
            mask = ops.expand_dims(mask, axis=-3)  # one mask for every head
        y, weights = scaled_dot_product_attention(
            query, key, value, mask, self.weights_dropout, training
        )  # y: [b, heads, n, head_dim]
        y = ops.reshape(ops.transpose(y, (0, 2, 1, 3)), (batch, length, self.d_model))
        y = ops.matmul(y, self.output_kernel) + self.output_bias
        return (y, weights) if return_attention_scores else y


def build_split_heads_classifier(config: ka.ModelConfig) -> keras.Model:
    """keras_attn's classifier with every attention layer switched to the prototype.

    The switch happens before the model is first traced, so `fit` compiles the new `call`.
    """
    model = ka.build_classifier(config)
    for layer in model._flatten_layers():
        if type(layer) is MultiHeadSelfAttention:
            layer.__class__ = SplitHeadsSelfAttention
    return model


def max_output_difference(config: ka.ModelConfig, seed: int = 0) -> float:
    """Largest |logit difference| between the classifier and the prototype, same weights,
    on a padded batch: the proposal changes speed, not results."""
    original, proposal = ka.build_classifier(config), build_split_heads_classifier(config)
    proposal.set_weights(original.get_weights())
    rng = np.random.default_rng(seed)
    token_ids = rng.integers(1, config.vocab_size, (4, config.max_len), dtype=np.int32)
    token_ids[1, config.max_len // 2:] = 0
    return float(np.abs(ops.convert_to_numpy(original(token_ids, training=False))
                        - ops.convert_to_numpy(proposal(token_ids, training=False))).max())
