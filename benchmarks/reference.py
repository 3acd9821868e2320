"""The reference: the same transformer built from Keras's own layers, as keras.io builds it.

It follows "Text classification with Transformer" (keras.io/examples/nlp/text_classification_
with_transformer): a token embedding plus a position embedding, then TransformerBlocks of
`keras.layers.MultiHeadAttention` + feed-forward, each sub-layer with dropout, a residual and
LayerNormalization (epsilon 1e-6), then GlobalAveragePooling1D and a Dense head.

Two changes make it the same *size* of model as keras_attn's classifier for a `ModelConfig`,
so that tokens/s compare like for like: there are `num_layers` blocks (keras.io has one), and
each head is d_model // num_heads wide (keras.io passes key_dim=embed_dim, which makes every
head as wide as the whole model). The head is one Dense to logits, as in keras_attn. Like the
keras.io model it does not mask padding: GlobalAveragePooling1D averages every position.
"""

from __future__ import annotations

import keras
from keras import layers, ops

from keras_attn import ModelConfig


class TokenAndPositionEmbedding(layers.Layer):
    """keras.io's embedding: Embedding(token) + Embedding(position)."""

    def __init__(self, max_len, vocab_size, d_model, **kwargs):
        super().__init__(**kwargs)
        self.token_emb = layers.Embedding(input_dim=vocab_size, output_dim=d_model)
        self.pos_emb = layers.Embedding(input_dim=max_len, output_dim=d_model)

    def call(self, x):
        positions = self.pos_emb(ops.arange(0, ops.shape(x)[-1], 1))
        return self.token_emb(x) + positions


class TransformerBlock(layers.Layer):
    """keras.io's block: MHA -> dropout -> add & norm, FFN -> dropout -> add & norm."""

    def __init__(self, d_model, num_heads, ff_dim, rate=0.1, **kwargs):
        super().__init__(**kwargs)
        self.att = layers.MultiHeadAttention(num_heads=num_heads,
                                             key_dim=d_model // num_heads)
        self.ffn = keras.Sequential([layers.Dense(ff_dim, activation="relu"),
                                     layers.Dense(d_model)])
        self.layernorm1 = layers.LayerNormalization(epsilon=1e-6)
        self.layernorm2 = layers.LayerNormalization(epsilon=1e-6)
        self.dropout1 = layers.Dropout(rate)
        self.dropout2 = layers.Dropout(rate)

    def call(self, inputs, training=None):
        attn_output = self.att(inputs, inputs)
        attn_output = self.dropout1(attn_output, training=training)
        out1 = self.layernorm1(inputs + attn_output)
        ffn_output = self.ffn(out1)
        ffn_output = self.dropout2(ffn_output, training=training)
        return self.layernorm2(out1 + ffn_output)


def build_reference(config: ModelConfig) -> keras.Model:
    """The keras.io design at `config`'s sizes; input int32 `[batch, max_len]` -> logits."""
    inputs = layers.Input(shape=(config.max_len,), dtype="int32", name="token_ids")
    x = TokenAndPositionEmbedding(config.max_len, config.vocab_size, config.d_model)(inputs)
    for _ in range(config.num_layers):
        x = TransformerBlock(config.d_model, config.num_heads, config.ff_dim,
                             rate=config.dropout)(x)
    x = layers.GlobalAveragePooling1D()(x)
    logits = layers.Dense(config.num_classes, name="logits")(x)
    return keras.Model(inputs, logits, name="keras_io_reference")
