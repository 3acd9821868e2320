"""TransformerBlock against a NumPy composition of the reference pieces."""

import numpy as np
import numpy_reference as ref
import pytest

import keras_attn as ka


def reference_block(x, weights, num_heads, norm_first, padding, causal, activation):
    w_qkv, b_qkv, w_out, b_out, g1, b1, w1, c1, w2, c2, g2, b2 = weights

    def attend(h):
        return ref.multi_head_attention(h, w_qkv, b_qkv, w_out, b_out, num_heads, padding,
                                        causal)[0]

    def feed(h):
        return ref.feed_forward(h, w1, c1, w2, c2, activation)

    if norm_first:
        x = x + attend(ref.layer_norm(x, g1, b1))
        return x + feed(ref.layer_norm(x, g2, b2))
    x = ref.layer_norm(x + attend(x), g1, b1)
    return ref.layer_norm(x + feed(x), g2, b2)


@pytest.mark.parametrize("norm_first", [False, True])
@pytest.mark.parametrize("causal", [False, True])
def test_block_matches_reference(norm_first, causal):
    rng = np.random.default_rng(7)
    x = rng.normal(size=(2, 6, 8)).astype("float32")
    padding = np.arange(6)[None] < np.array([[6], [3]])
    block = ka.TransformerBlock(num_heads=2, ff_dim=16, norm_first=norm_first,
                                use_causal_mask=causal, activation="gelu")
    y = block(x, padding_mask=padding)
    names = [w.path.split("/", 1)[1] for w in block.weights]
    assert names[:4] == ["attention/qkv_kernel", "attention/qkv_bias",
                         "attention/output_kernel", "attention/output_bias"], names
    expected = reference_block(x, block.get_weights(), 2, norm_first, padding, causal, "gelu")
    np.testing.assert_allclose(y[padding], expected[padding], atol=1e-4)


def test_block_returns_attention_weights_per_head():
    y, weights = ka.TransformerBlock(num_heads=4, ff_dim=8)(
        np.ones((2, 3, 8), "float32"), return_attention_scores=True
    )
    assert y.shape == (2, 3, 8) and weights.shape == (2, 4, 3, 3)
