"""Attention weights of every block, for heatmaps: which words each word looks at."""

from __future__ import annotations

import numpy as np
from keras import ops

from keras_attn.layers.block import TransformerBlock
from keras_attn.layers.masking import PaddingMask
from keras_attn.layers.positional_embedding import PositionalEmbedding


def attention_maps(model, token_ids) -> list[np.ndarray]:
    """Runs a keras_attn model's layers in inference mode and collects attention weights.

    Args:
        model: a model from `build_classifier` or `build_language_model` (or loaded).
        token_ids: int array `[batch, n]`.

    Returns:
        One array per block, in order, of shape `[batch, num_heads, n, n]`: row i holds how
        much position i attends to each position (each row sums to 1).
    """
    weights = attention_weights(model, np.asarray(token_ids, dtype="int32"))
    return [ops.convert_to_numpy(block) for block in weights]  # torch: detached from autograd


def attention_weights(model, token_ids) -> list:
    """`attention_maps` as backend tensors, for a traced function (`token_ids`: an int
    tensor `[batch, n]`): what the export converts to attention.onnx
    (`export.formats.attention_onnx`)."""
    padding_mask = None
    x = None
    maps = []
    for layer in model.layers:
        if isinstance(layer, PaddingMask):
            padding_mask = layer(token_ids)
        elif isinstance(layer, PositionalEmbedding):
            x = layer(token_ids)
        elif isinstance(layer, TransformerBlock):
            if padding_mask is None:
                padding_mask = token_ids != 0
            x, weights = layer(x, padding_mask=padding_mask, return_attention_scores=True,
                               training=False)
            maps.append(weights)
    if not maps:
        raise ValueError(
            "Expected a keras_attn model with at least one TransformerBlock. "
            f"Received: model {model.name!r}"
        )
    return maps
