"""Every layer through the shared harness: config, calls, .keras round trip, fit under XLA."""

import keras
import numpy as np
import pytest
from fp32_floor import fp32_tolerance
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
                           "use_causal_mask": True, "dropout": 0.1, "activation": "gelu",
                           "attention_dropout": 0.1},
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


@pytest.mark.parametrize("make", [ka.PaddingMask, ka.MaskedMeanPooling, ka.TokenReadout,
                                  lambda name: ka.TokenReadout(5, name=name)])
def test_weightless_layers_round_trip_their_config(make):
    layer = make(name="x")
    assert type(layer).from_config(layer.get_config()).get_config() == layer.get_config()


def test_padding_mask_marks_nonzero_ids():
    np.testing.assert_array_equal(ka.PaddingMask()(IDS), IDS != 0)


# The implicit Keras mask: `PositionalEmbedding(mask_zero=True)` marks id 0, and every layer
# after it that receives that mask (no explicit padding_mask) must honour it.
IMPLICIT_CASES = {
    "SelfAttention": lambda: ka.SelfAttention(),
    "SelfAttention causal": lambda: ka.SelfAttention(use_causal_mask=True),
    "MultiHeadSelfAttention": lambda: ka.MultiHeadSelfAttention(2),
    "TransformerBlock": lambda: ka.TransformerBlock(2, 16),
    "TransformerBlock pre-norm causal": lambda: ka.TransformerBlock(
        2, 16, norm_first=True, use_causal_mask=True),
    "FeedForward": lambda: ka.FeedForward(16),
}


def _implicit_model(make_layer, pool=False):
    keras.utils.set_random_seed(0)  # fixed weights: the draw the margins were measured on
    token_ids = keras.Input((None,), dtype="int32")
    x = ka.PositionalEmbedding(50, 8, 16)(token_ids)
    x = make_layer()(x)
    if pool:
        x = ka.MaskedMeanPooling()(x)
    return keras.Model(token_ids, x)


@pytest.mark.parametrize("name", sorted(IMPLICIT_CASES))
def test_the_implicit_mask_is_honoured_eager_and_in_predict(name):
    model = _implicit_model(IMPLICIT_CASES[name])
    short, padded = np.array([[5, 7, 9]]), np.array([[5, 7, 9, 0, 0]])
    tolerance = fp32_tolerance(model, padded, short, run=_first_3)  # equal in exact arithmetic
    np.testing.assert_allclose(_first_3(model, padded), model(short), rtol=0, atol=tolerance)
    np.testing.assert_allclose(model.predict(padded, verbose=0)[:, :3],
                               model.predict(short, verbose=0), rtol=0, atol=tolerance)


def _first_3(model, x):
    return np.asarray(model(x))[:, :3]


@pytest.mark.parametrize("name", ["TransformerBlock", "TransformerBlock pre-norm causal"])
def test_a_user_built_classifier_on_the_implicit_mask_ignores_padding(name):
    model = _implicit_model(IMPLICIT_CASES[name], pool=True)
    short, padded = np.array([[5, 7, 9], [4, 0, 0]]), np.array([[5, 7, 9, 0], [4, 0, 0, 0]])
    tolerance = fp32_tolerance(model, padded, short)  # equal in exact arithmetic
    np.testing.assert_allclose(model(padded), model(short), rtol=0, atol=tolerance)
    np.testing.assert_allclose(model.predict(padded, verbose=0), model.predict(short, verbose=0),
                               rtol=0, atol=tolerance)


def test_the_explicit_padding_mask_wins_over_the_implicit_one():
    layer = ka.SelfAttention()
    x = FLOATS[:1]
    implicit = np.array([[True, True, True, True, False]])
    explicit = np.array([[True, True, False, False, False]])
    np.testing.assert_allclose(layer(x, padding_mask=explicit, mask=implicit),
                               layer(x, padding_mask=explicit), atol=0)


def test_pooling_a_sequence_of_padding_only_gives_nan_not_an_answer():
    pooled = np.asarray(ka.MaskedMeanPooling()(FLOATS, padding_mask=np.zeros((3, 5), bool)))
    assert np.isnan(pooled).all()
