"""FeedForward (walkthrough step 5) against NumPy, for every activation."""

import keras
import numpy as np
import numpy_reference as ref
import pytest

import keras_attn as ka
from keras_attn.layers.activations import gelu, gelu_tanh


@pytest.mark.parametrize("activation", ["relu", "gelu", "gelu_tanh"])
def test_feed_forward_matches_reference(activation):
    x = np.random.default_rng(0).normal(size=(2, 5, 8)).astype("float32")
    layer = ka.FeedForward(hidden_dim=16, activation=activation)
    y = layer(x)
    np.testing.assert_allclose(y, ref.feed_forward(x, *layer.get_weights(), activation),
                               atol=1e-5)


def test_erf_gelu_equals_keras_exact_gelu():
    x = np.linspace(-6, 6, 101).astype("float32")
    np.testing.assert_allclose(gelu(x), keras.activations.gelu(x, approximate=False), atol=1e-6)
    np.testing.assert_allclose(gelu_tanh(x), keras.activations.gelu(x, approximate=True),
                               atol=1e-6)


def test_unknown_activation_lists_the_allowed_ones():
    with pytest.raises(ValueError, match="'relu', 'gelu', 'gelu_tanh'.*activation='swish'"):
        ka.FeedForward(hidden_dim=4, activation="swish")


def test_every_configurable_activation_has_an_implementation():
    from keras_attn.config import ACTIVATIONS
    from keras_attn.layers.activations import ACTIVATION_FUNCTIONS

    assert set(ACTIVATIONS) == set(ACTIVATION_FUNCTIONS)
