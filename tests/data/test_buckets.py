"""keras_attn/data/buckets.py: batches by length, each text once, few shapes, same logits."""

import keras
import numpy as np
import pytest

import keras_attn as ka
from keras_attn.data.buckets import LengthBatches, bucket_widths, plan_batches, token_lengths


def padded(lengths, width, rng):
    """Ids `[n, width]`: row i has lengths[i] real ids, then 0."""
    ids = rng.integers(1, 50, size=(len(lengths), width)).astype("int32")
    ids[np.arange(width) >= np.asarray(lengths)[:, None]] = 0
    return ids


def test_widths_are_powers_of_two_then_the_longest():
    assert bucket_widths(100) == [16, 32, 64, 100]
    assert bucket_widths(256) == [16, 32, 64, 128, 256]
    assert bucket_widths(10) == [10]
    with pytest.raises(ValueError, match="longest=0"):
        bucket_widths(0)


@pytest.mark.parametrize("shuffle", [False, True])
def test_every_example_once_in_a_batch_wide_enough(shuffle):
    rng = np.random.default_rng(0)
    lengths = rng.integers(1, 201, size=999)
    widths = bucket_widths(int(lengths.max()))
    batches = plan_batches(lengths, 32, widths, np.random.default_rng(1) if shuffle else None)
    rows = np.concatenate([indices for indices, _ in batches])
    np.testing.assert_array_equal(np.sort(rows), np.arange(len(lengths)))
    for indices, width in batches:
        assert width in widths and lengths[indices].max() <= width
    short = [i for i, (indices, _) in enumerate(batches) if len(indices) < 32]
    assert len(short) == 1 and batches[short[0]][1] == widths[-1]
    assert len({(len(i), w) for i, w in batches}) <= len(widths) + 1


def test_plans_change_by_epoch_and_repeat_by_seed():
    ids = padded(np.random.default_rng(2).integers(1, 40, size=200), 40, np.random.default_rng(3))
    batches = LengthBatches(ids, np.zeros(200), 16, seed=7)
    first, second = [[tuple(rows) for rows, _ in batches.plan(e)] for e in (0, 1)]
    assert first != second
    assert first == [tuple(rows) for rows, _ in LengthBatches(ids, None, 16, seed=7).plan(0)]
    assert len(batches) == len(first) == 13
    assert batches.real_tokens() == int(token_lengths(ids).sum()) < batches.padded_tokens()


def test_fit_and_predict_on_batches_give_the_logits_of_full_padding():
    keras.utils.set_random_seed(0)
    config = ka.ModelConfig(vocab_size=50, max_len=40, d_model=16, num_heads=2, ff_dim=32,
                            num_layers=1, num_classes=2, dropout=0.1)
    model = ka.build_classifier(config)
    model.compile(optimizer="adam", jit_compile=True,
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    rng = np.random.default_rng(4)
    ids = padded(rng.integers(1, 41, size=70), 40, rng)
    labels = rng.integers(0, 2, size=70)
    batches = LengthBatches(ids, labels, 16)
    history = model.fit(batches.dataset(), epochs=2, verbose=0, shuffle=False)
    assert len(history.history["loss"]) == 2 and batches.epoch == 2  # a plan per epoch
    plan = LengthBatches(ids, None, 16, shuffle=False)
    order = np.concatenate([rows for rows, _ in plan.plan(0)])
    by_length = model.predict(plan.dataset(), verbose=0)
    np.testing.assert_allclose(by_length, model.predict(ids[order], verbose=0), atol=1e-5)
