"""PositionalEmbedding against `token_table[ids] + pos_table[:n]`, and its input checks."""

import keras
import numpy as np
import numpy_reference as ref
import pytest
from hypothesis import given
from hypothesis import strategies as st

import keras_attn as ka


@given(batch=st.integers(1, 4), n=st.integers(1, 12), d=st.integers(1, 8),
       seed=st.integers(0, 2**16))
def test_matches_token_plus_position_tables(batch, n, d, seed):
    rng = np.random.default_rng(seed)
    layer = ka.PositionalEmbedding(vocab_size=20, max_len=12, d_model=d)
    ids = rng.integers(0, 20, size=(batch, n)).astype("int32")
    ids[:, 0] = rng.integers(1, 20, size=batch)  # padding anywhere else; never a row of it only
    out = layer(ids)
    token_table, position_table = layer.get_weights()
    assert token_table.shape == (20, d) and position_table.shape == (12, d)
    np.testing.assert_allclose(out, ref.positional_embedding(ids, token_table, position_table),
                               atol=1e-6)


def test_same_position_gets_the_same_vector_in_every_sequence():
    layer = ka.PositionalEmbedding(vocab_size=10, max_len=4, d_model=3)
    out = np.asarray(layer(np.array([[5, 5, 5], [5, 5, 5]], "int32")))
    np.testing.assert_array_equal(out[0], out[1])
    assert not np.allclose(out[0, 0], out[0, 1])  # position changes the vector


def test_mask_marks_padding():
    layer = ka.PositionalEmbedding(vocab_size=10, max_len=4, d_model=3)
    np.testing.assert_array_equal(layer.compute_mask(np.array([[1, 0]])), [[True, False]])
    no_mask = ka.PositionalEmbedding(vocab_size=10, max_len=4, d_model=3, mask_zero=False)
    assert no_mask.compute_mask(np.array([[1, 0]])) is None


@pytest.fixture(scope="module")
def classifier():
    return ka.build_classifier(ka.ModelConfig(30, 8, 8, 2, 16, 1, 2))


TOO_LONG = np.ones((2, 9), "int32")
NEGATIVE = np.array([[1, -1, 2]], "int32")
TOO_BIG = np.array([[1, 30, 2]], "int32")


@pytest.mark.parametrize("ids, message", [
    (TOO_LONG, "max_len=8.*Received: sequence length 9"),
    (np.zeros((2, 0), "int32"), "max_len=8.*Received: sequence length 0"),
    (NEGATIVE, r"vocab_size=30\).*Received: ids from -1 to 2"),
    (TOO_BIG, r"vocab_size=30\).*Received: ids from 1 to 30"),
    (np.array([[1.5, 2.0]], "float32"), "must be integers.*float32"),
    (np.ones((2, 3, 1), "int32"), "rank 2.*Received: shape=\\(2, 3, 1\\)"),
])
def test_layer_rejects_bad_ids_in_eager_calls(ids, message):
    layer = ka.PositionalEmbedding(vocab_size=30, max_len=8, d_model=4)
    with pytest.raises(ValueError, match=message):
        layer(ids)


@pytest.mark.parametrize("ids, message", [
    (TOO_LONG, "max_len=8"),
    (NEGATIVE, r"vocab_size=30"),
    (TOO_BIG, r"vocab_size=30"),
])
def test_model_rejects_bad_ids_in_call_predict_and_fit(classifier, ids, message):
    """Without XLA (explicitly: "auto" means XLA on a GPU). XLA ignores the graph asserts."""
    with pytest.raises(ValueError, match=message):
        classifier(ids)
    classifier.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                       jit_compile=False)
    with pytest.raises(Exception, match=message):
        classifier.predict(ids, verbose=0)
    with pytest.raises(Exception, match=message):
        classifier.fit(ids, np.zeros(len(ids)), verbose=0)


@pytest.mark.parametrize("kwargs, message", [
    ({"vocab_size": 0, "max_len": 4, "d_model": 2}, "vocab_size=0"),
    ({"vocab_size": 5, "max_len": -1, "d_model": 2}, "max_len=-1"),
    ({"vocab_size": 5, "max_len": 4, "d_model": 2.0}, "d_model=2.0"),
])
def test_bad_arguments_name_the_argument(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ka.PositionalEmbedding(**kwargs)
