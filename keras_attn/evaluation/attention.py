"""A text's tokens and the attention weights every block puts on them: what `keras-attn attend`
and the demo draw as heatmaps (`keras_attn.evaluation.plots.plot_attention`)."""

from __future__ import annotations

import numpy as np

from keras_attn.data.records import encode_texts
from keras_attn.layers.positional_embedding import PositionalEmbedding
from keras_attn.models.attention_maps import attention_maps


def text_attention(model, tokenizer, text: str) -> tuple[list[str], list[np.ndarray]]:
    """The tokens of `text` and each block's attention weights `[num_heads, n, n]` over them.

    Args:
        model: a keras_attn classifier or language model.
        tokenizer: its `export.artifact.tokenizer.Tokenizer`.
        text: one text; its first `max_len` tokens are read.

    Raises:
        DataError: the text has no token.
    """
    max_len = next(layer.max_len for layer in model.layers
                   if isinstance(layer, PositionalEmbedding))
    ids = encode_texts(tokenizer, [text], max_len)
    tokens = tokenizer.tokens(ids[0])
    return tokens, [weights[0] for weights in attention_maps(model, ids)]
