"""SelfAttention and MultiHeadSelfAttention against the NumPy reference, plus properties."""

import numpy as np
import numpy_reference as ref
import pytest
from hypothesis import given
from hypothesis import strategies as st

import keras_attn as ka


def right_padding(rng, batch, n):
    lengths = rng.integers(1, n + 1, size=batch)
    return np.arange(n)[None, :] < lengths[:, None]


@pytest.mark.parametrize("batch, n, d", [(1, 1, 4), (2, 5, 8), (3, 9, 16)])
@pytest.mark.parametrize("padded", [False, True])
@pytest.mark.parametrize("causal", [False, True])
def test_self_attention_is_the_walkthrough_formula(batch, n, d, padded, causal):
    rng = np.random.default_rng(batch * 100 + n)
    x = rng.normal(size=(batch, n, d)).astype("float32")
    padding = right_padding(rng, batch, n) if padded else None
    layer = ka.SelfAttention(use_causal_mask=causal)
    y, weights = layer(x, padding_mask=padding, return_attention_scores=True)
    Wq, Wk, Wv = layer.get_weights()
    assert Wq.shape == Wk.shape == Wv.shape == (d, d)  # step 1: Q, K, V are d x d
    expected_y, expected_weights = ref.attention(x, Wq, Wk, Wv, padding, causal)
    np.testing.assert_allclose(weights, expected_weights, atol=1e-5)
    np.testing.assert_allclose(y, expected_y, atol=1e-5)


@pytest.mark.parametrize("num_heads", [1, 2, 4])
@pytest.mark.parametrize("causal", [False, True])
def test_multi_head_attention_matches_reference(num_heads, causal):
    rng = np.random.default_rng(num_heads)
    x = rng.normal(size=(3, 6, 8)).astype("float32")
    padding = right_padding(rng, 3, 6)
    layer = ka.MultiHeadSelfAttention(num_heads, use_causal_mask=causal)
    layer.build(x.shape)
    layer.set_weights([rng.normal(size=w.shape).astype("float32") * 0.3
                       for w in layer.get_weights()])
    y, weights = layer(x, padding_mask=padding, return_attention_scores=True)
    expected_y, expected_weights = ref.multi_head_attention(
        x, *layer.get_weights(), num_heads=num_heads, padding_mask=padding, causal=causal
    )
    assert weights.shape == (3, num_heads, 6, 6)
    np.testing.assert_allclose(weights, expected_weights, atol=1e-5)
    np.testing.assert_allclose(y, expected_y, atol=1e-4)


def test_rows_sum_to_one_and_masked_keys_get_zero_weight():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(4, 7, 8)).astype("float32") * 5
    padding = right_padding(rng, 4, 7)
    _, weights = ka.SelfAttention(use_causal_mask=True)(
        x, padding_mask=padding, return_attention_scores=True
    )
    weights = np.asarray(weights)
    np.testing.assert_allclose(weights.sum(axis=-1), 1.0, atol=1e-6)  # step 4.5
    assert np.all(weights[np.broadcast_to(~padding[:, None, :], weights.shape)] == 0.0)
    assert np.all(np.triu(weights, k=1) == 0.0)  # causal: nothing from the future


def test_causal_output_does_not_see_later_tokens():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(2, 8, 16)).astype("float32")
    changed = x.copy()
    changed[:, 5:] = rng.normal(size=(2, 3, 16))
    layer = ka.MultiHeadSelfAttention(num_heads=4, use_causal_mask=True)
    before, after = np.asarray(layer(x)), np.asarray(layer(changed))
    np.testing.assert_allclose(before[:, :5], after[:, :5], atol=1e-6)
    assert not np.allclose(before[:, 5:], after[:, 5:])


def test_without_positions_attention_is_permutation_equivariant():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(2, 6, 8)).astype("float32")
    permutation = rng.permutation(6)
    layer = ka.SelfAttention()
    np.testing.assert_allclose(
        np.asarray(layer(x))[:, permutation], layer(x[:, permutation]), atol=1e-5
    )


def test_heads_must_divide_d_model():
    with pytest.raises(ValueError, match="d_model=10, num_heads=4"):
        ka.MultiHeadSelfAttention(num_heads=4)(np.ones((1, 3, 10), "float32"))


@pytest.mark.parametrize("bad", [0, -1, 2.5, True])
def test_num_heads_must_be_a_positive_int(bad):
    with pytest.raises(ValueError, match=f"num_heads={bad!r}"):
        ka.MultiHeadSelfAttention(num_heads=bad)


@given(
    batch=st.integers(1, 3),
    n=st.integers(1, 8),
    heads=st.sampled_from([1, 2, 4]),
    head_dim=st.integers(1, 4),
    causal=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_attention_properties_over_shapes(batch, n, heads, head_dim, causal, seed):
    rng = np.random.default_rng(seed)
    d_model = heads * head_dim
    x = rng.normal(size=(batch, n, d_model)).astype("float32")
    padding = right_padding(rng, batch, n)
    layer = ka.MultiHeadSelfAttention(heads, use_causal_mask=causal)
    y, weights = layer(x, padding_mask=padding, return_attention_scores=True)
    weights = np.asarray(weights)
    assert y.shape == (batch, n, d_model) and weights.shape == (batch, heads, n, n)
    np.testing.assert_allclose(weights.sum(-1), 1.0, atol=1e-5)
    assert np.all(weights * ~padding[:, None, None, :] == 0.0)
    expected_y, _ = ref.multi_head_attention(
        x, *layer.get_weights(), num_heads=heads, padding_mask=padding, causal=causal
    )
    np.testing.assert_allclose(y, expected_y, atol=1e-4)


@pytest.fixture
def dtype_policy():
    """Sets a global dtype policy for one test and restores float32 after it."""
    import keras

    yield keras.mixed_precision.set_global_policy
    keras.mixed_precision.set_global_policy("float32")


# (policy, scale of x): scores of -scale^2 * d / sqrt(d). 130 in float16 gives -33,800, below
# the old fixed fill of -3e4; 1e6 gives -2e12 in float32 and bfloat16, below the old -1e9.
POLICY_SCALES = [("float32", 1e6), ("mixed_float16", 130.0), ("mixed_bfloat16", 1e6),
                 ("float32", 1.0), ("mixed_float16", 1.0)]


@pytest.mark.parametrize("policy, scale", POLICY_SCALES)
def test_masking_is_exact_under_every_dtype_policy_at_any_scale(dtype_policy, policy, scale):
    dtype_policy(policy)
    x = np.zeros((1, 3, 4), "float32")
    x[0, 0] = x[0, 1] = scale
    layer = ka.SelfAttention()
    layer.build(x.shape)
    eye = np.eye(4, dtype="float32")
    layer.set_weights([eye, -eye, eye])  # scores of the real keys: -scale^2 * 4 / 2
    _, weights = layer(x, padding_mask=np.array([[True, True, False]]),
                       return_attention_scores=True)
    np.testing.assert_array_equal(np.asarray(weights, "float32")[0, :, 2], 0.0)
    np.testing.assert_allclose(np.asarray(weights, "float32")[0, 0], [0.5, 0.5, 0.0])


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_multi_head_masking_is_exact_under_mixed_precision(dtype_policy, policy):
    dtype_policy(policy)
    rng = np.random.default_rng(5)
    x = (rng.normal(size=(3, 6, 8)) * 300).astype("float32")  # float16 scores overflow
    padding = right_padding(rng, 3, 6)
    layer = ka.MultiHeadSelfAttention(2, use_causal_mask=True)
    _, weights = layer(x, padding_mask=padding, return_attention_scores=True)
    weights = np.asarray(weights, "float32")
    assert np.all(weights * ~padding[:, None, None, :] == 0.0)
    assert np.all(np.isfinite(weights))
    np.testing.assert_allclose(weights.sum(-1), 1.0, atol=1e-2)  # half-precision weights
