"""attention_maps replays the model's forward pass: its hidden states equal the model's own."""

import keras
import numpy as np
import pytest

import keras_attn as ka
from keras_attn.models.attention_maps import attention_maps


@pytest.mark.parametrize("norm_first", [False, True])
def test_maps_come_from_the_same_forward_pass_as_the_model(norm_first):
    config = ka.ModelConfig(40, 10, 16, 2, 32, 2, 3, norm_first=norm_first)
    keras.utils.set_random_seed(0)
    model = ka.build_classifier(config)
    ids = np.array([[5, 6, 7, 0], [8, 9, 10, 11]], "int32")
    maps = attention_maps(model, ids)
    assert [m.shape for m in maps] == [(2, 2, 4, 4)] * 2
    # The model's own weights, read from each block's attention via a sub-model.
    for index, weights in enumerate(maps):
        block = model.get_layer(f"block_{index}")
        inputs = model.get_layer("embedding").output if index == 0 else \
            model.get_layer(f"block_{index - 1}").output
        probe = keras.Model(model.inputs[0], inputs)
        _, expected = block(probe(ids), padding_mask=ids != 0, return_attention_scores=True)
        # Attention weights lie in [0, 1]: one ulp at 1 (1.2e-7) per softmax, a few ops deep.
        np.testing.assert_allclose(weights, expected, rtol=0, atol=1e-6)
    np.testing.assert_allclose(maps[0].sum(-1), 1.0, atol=1e-5)
    assert np.all(maps[0][0, :, :, 3] == 0.0)  # the padded key gets no weight


def test_a_model_without_blocks_is_a_clear_error():
    inputs = keras.Input((None,), dtype="int32")
    with pytest.raises(ValueError, match="at least one TransformerBlock"):
        attention_maps(keras.Model(inputs, ka.PositionalEmbedding(5, 4, 2)(inputs)),
                       np.ones((1, 2), "int32"))
