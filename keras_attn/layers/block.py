"""A transformer block: attention and a feed-forward network, each with residual and norm."""

import keras

from keras_attn.config import (
    check_activation,
    check_bool,
    check_dropout,
    check_positive_int,
)
from keras_attn.layers.attention import MultiHeadSelfAttention
from keras_attn.layers.feed_forward import FeedForward


@keras.saving.register_keras_serializable(package="keras_attn")
class TransformerBlock(keras.layers.Layer):
    """Multi-head self-attention + residual + LayerNorm, feed-forward + residual + LayerNorm.

    Post-norm (the original transformer): x = norm(x + sublayer(x)).
    Pre-norm (`norm_first=True`, as in GPT-2 and nanoGPT): x = x + sublayer(norm(x)).

    Args:
        num_heads: attention heads; must divide d_model.
        ff_dim: hidden width of the feed-forward network.
        dropout: dropout on each sub-layer's output (attention, feed-forward) before its
            residual add, where keras.io's transformer puts it. The feed-forward hidden units
            are not dropped: with ff_dim = 4 d_model that alone drew most of the random numbers
            of a step.
        attention_dropout: dropout on the attention weights `[batch, heads, n, n]`.
        feed_forward_dropout: dropout on the feed-forward hidden units `[batch, n, ff_dim]`
            (`FeedForward`'s `dropout`); 0 by default, for the reason above.
        activation: feed-forward non-linearity ("relu", "gelu", "gelu_tanh").
        norm_first: pre-norm when True, post-norm when False.
        use_causal_mask: when True, position i attends only to positions <= i.

    Call arguments:
        x: float `[batch, n, d_model]`.
        padding_mask: optional `[batch, n]`, True at real tokens.
        return_attention_scores: also return the attention weights.
        training: whether dropout is active.
        mask: the implicit Keras mask, passed by Keras; used as the padding mask when
            `padding_mask` is not given (the explicit one wins when both are).
        cache: optional key/value cache of this block's attention, float
            `[batch, 2, num_heads, past, head_dim]`, for causal decoding one step at a time
            (see `MultiHeadSelfAttention`).

    Returns:
        `[batch, n, d_model]`, or (that, weights `[batch, num_heads, n, n]`); with `cache`,
        the updated cache `[batch, 2, num_heads, past + n, head_dim]` is appended.

    Example:
        >>> TransformerBlock(num_heads=2, ff_dim=32)(np.ones((1, 4, 8))).shape
        TensorShape([1, 4, 8])
    """

    def __init__(
        self,
        num_heads,
        ff_dim,
        dropout=0.0,
        activation="relu",
        norm_first=False,
        use_causal_mask=False,
        attention_dropout=0.0,
        feed_forward_dropout=0.0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        check_positive_int("num_heads", num_heads)
        check_positive_int("ff_dim", ff_dim)
        check_dropout("dropout", dropout)
        check_dropout("attention_dropout", attention_dropout)
        check_dropout("feed_forward_dropout", feed_forward_dropout)
        check_activation("activation", activation)
        check_bool("norm_first", norm_first)
        check_bool("use_causal_mask", use_causal_mask)
        self.num_heads = num_heads
        self.ff_dim = ff_dim
        self.dropout = dropout
        self.attention_dropout = attention_dropout
        self.feed_forward_dropout = feed_forward_dropout
        self.activation = activation
        self.norm_first = norm_first
        self.use_causal_mask = use_causal_mask
        self.attention = MultiHeadSelfAttention(
            num_heads, dropout=attention_dropout, use_causal_mask=use_causal_mask, name="attention"
        )
        self.attention_norm = keras.layers.LayerNormalization(epsilon=1e-5, name="attention_norm")
        self.feed_forward = FeedForward(ff_dim, activation, dropout=feed_forward_dropout,
                                        name="feed_forward")
        self.feed_forward_norm = keras.layers.LayerNormalization(
            epsilon=1e-5, name="feed_forward_norm"
        )
        self.residual_dropout = keras.layers.Dropout(dropout) if dropout else None
        self.supports_masking = True  # honoured; positions are unchanged, so it carries over

    def build(self, input_shape):
        for layer in (self.attention, self.attention_norm, self.feed_forward,
                      self.feed_forward_norm):
            layer.build(input_shape)

    def call(self, x, padding_mask=None, return_attention_scores=False, training=None,
             mask=None, cache=None):
        padding_mask = mask if padding_mask is None else padding_mask
        residual = x
        if self.norm_first:
            x = self.attention_norm(x)
        x, weights, *cache = self.attention(
            x, padding_mask=padding_mask, return_attention_scores=True, training=training,
            cache=cache,
        )  # with a cache: (x, weights, updated cache)
        x = self._dropout(x, training) + residual
        if not self.norm_first:
            x = self.attention_norm(x)

        residual = x
        if self.norm_first:
            x = self.feed_forward_norm(x)
        x = self.feed_forward(x, training=training)
        x = self._dropout(x, training) + residual
        if not self.norm_first:
            x = self.feed_forward_norm(x)
        outputs = ((x, weights) if return_attention_scores else (x,)) + tuple(cache)
        return outputs if len(outputs) > 1 else x

    def _dropout(self, x, training):
        if self.residual_dropout is None:
            return x
        return self.residual_dropout(x, training=training)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_heads": self.num_heads,
                "ff_dim": self.ff_dim,
                "dropout": self.dropout,
                "attention_dropout": self.attention_dropout,
                "feed_forward_dropout": self.feed_forward_dropout,
                "activation": self.activation,
                "norm_first": self.norm_first,
                "use_causal_mask": self.use_causal_mask,
            }
        )
        return config
