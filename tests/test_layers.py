"""Every layer through the shared harness: config, calls, .keras round trip, fit under XLA."""

import numpy as np
import pytest
from layer_harness import run_layer_test

import keras_attn as ka

rng = np.random.default_rng(0)
FLOATS = rng.normal(size=(3, 5, 8)).astype("float32")
PADDING = np.array([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0], [1, 0, 0, 0, 0]], dtype=bool)
IDS = np.array([[3, 4, 5, 6, 7], [8, 9, 2, 0, 0], [1, 0, 0, 0, 0]], dtype="int32")

CASES = [
    (ka.PositionalEmbedding, {"vocab_size": 10, "max_len": 6, "d_model": 4}, IDS, {},
     (3, 5, 4), 2),
    (ka.SelfAttention, {"use_causal_mask": False}, FLOATS, {}, None, 3),
    (ka.SelfAttention, {"use_causal_mask": True}, FLOATS, {"padding_mask": PADDING}, None, 3),
    (ka.MultiHeadSelfAttention, {"num_heads": 2, "dropout": 0.1}, FLOATS,
     {"padding_mask": PADDING}, None, 4),
    (ka.MultiHeadSelfAttention, {"num_heads": 4, "use_causal_mask": True}, FLOATS, {}, None, 4),
    (ka.FeedForward, {"hidden_dim": 16, "activation": "gelu", "dropout": 0.1}, FLOATS, {},
     None, 4),
    (ka.FeedForward, {"hidden_dim": 16, "activation": "gelu_tanh"}, FLOATS, {}, None, 4),
    (ka.TransformerBlock, {"num_heads": 2, "ff_dim": 16}, FLOATS, {"padding_mask": PADDING},
     None, 12),
    (ka.TransformerBlock, {"num_heads": 2, "ff_dim": 16, "norm_first": True,
                           "use_causal_mask": True, "dropout": 0.1, "activation": "gelu"},
     FLOATS, {"padding_mask": PADDING}, None, 12),
]


@pytest.mark.parametrize(
    "layer_cls, init_kwargs, example, call_kwargs, shape, num_weights",
    CASES,
    ids=[f"{case[0].__name__}-{i}" for i, case in enumerate(CASES)],
)
def test_layer_harness(layer_cls, init_kwargs, example, call_kwargs, shape, num_weights,
                       tmp_path):
    run_layer_test(layer_cls, init_kwargs, example, call_kwargs, shape, num_weights, tmp_path)


def test_masked_mean_pooling_averages_real_tokens_only():
    pooled = ka.MaskedMeanPooling()(FLOATS, padding_mask=PADDING)
    expected = np.stack([FLOATS[b][PADDING[b]].mean(axis=0) for b in range(3)])
    np.testing.assert_allclose(pooled, expected, atol=1e-6)


@pytest.mark.parametrize("layer_cls", [ka.PaddingMask, ka.MaskedMeanPooling])
def test_weightless_layers_round_trip_their_config(layer_cls):
    layer = layer_cls(name="x")
    assert layer_cls.from_config(layer.get_config()).get_config() == layer.get_config()


def test_padding_mask_marks_nonzero_ids():
    np.testing.assert_array_equal(ka.PaddingMask()(IDS), IDS != 0)
