"""keras_attn/evaluation/referent.py: the attention from "it" onto its referent, measured per
block and head on reference-task sentences."""

import numpy as np
import pytest

import keras_attn as ka
from export.artifact.tokenizer import train_tokenizer
from keras_attn.data.records import encode_texts
from keras_attn.data.reference_task import make_reference_task
from keras_attn.evaluation import referent
from keras_attn.evaluation.referent import referent_attention, referent_positions

MAX_LEN = 24


@pytest.fixture(scope="module")
def task():
    texts = make_reference_task(40, seed=5).texts
    tokenizer = train_tokenizer(texts, model="word", vocab_size=200)
    config = ka.ModelConfig(vocab_size=tokenizer.vocab_size, max_len=MAX_LEN, d_model=16,
                            num_heads=2, ff_dim=16, num_layers=2, num_classes=2)
    return texts, tokenizer, ka.build_classifier(config)


def test_referent_positions_follow_the_adjective():
    tokens = "the dog hit a box , it was very hungry .".split()
    assert referent_positions(tokens) == (6, 1, 4)  # hungry: the dog
    tokens[9] = "rusty"
    assert referent_positions(tokens) == (6, 4, 1)  # rusty: the box
    with pytest.raises(ValueError, match=r"one animal, one object.*Received: tokens \['the'"):
        referent_positions("the dog hit a cat , it was very hungry .".split())


def planted_maps(ids, positions, strength):
    """Uniform attention over each sentence's tokens, except block 1, head 0, whose "it" row
    puts `strength` on the referent (the rest spread evenly over the other tokens)."""
    batch, n = ids.shape
    real = (ids != 0).astype(np.float64)
    uniform = real / real.sum(axis=1, keepdims=True)
    maps = [np.broadcast_to(uniform[:, None, None, :], (batch, 2, n, n)).copy()
            for _ in range(2)]
    for row, (it, ref, _) in enumerate(positions):
        others = real[row].copy()
        others[ref] = 0
        maps[1][row, 0, it] = others / others.sum() * (1 - strength)
        maps[1][row, 0, it, ref] = strength
    return maps


def test_the_head_that_carries_the_referent_is_found_and_measured(task, monkeypatch):
    texts, tokenizer, model = task
    ids = encode_texts(tokenizer, texts, MAX_LEN)
    positions = [referent_positions(tokenizer.tokens(row)) for row in ids]
    monkeypatch.setattr(referent, "attention_maps",  # one batch: `batch` is `ids`
                        lambda _, batch: planted_maps(batch, positions, 0.7))
    figure = referent_attention(model, tokenizer, texts, batch_size=len(texts))
    assert (figure.block, figure.head) == (1, 0)
    assert figure.mean_weight == pytest.approx(0.7)
    assert figure.ahead_share == 1.0 and figure.sentences == 40
    lengths = np.count_nonzero(ids, axis=1)
    assert figure.uniform_weight == pytest.approx(np.mean(1 / lengths))
    assert figure.per_head_mean[0].tolist() == pytest.approx([figure.uniform_weight] * 2)
    assert "block 1, head 0: 0.70 of \"it\"'s attention" in figure.summary()


def test_batches_give_the_figure_of_one_pass_on_a_real_model(task):
    texts, tokenizer, model = task
    whole = referent_attention(model, tokenizer, texts, batch_size=len(texts))
    batched = referent_attention(model, tokenizer, texts, batch_size=7)
    np.testing.assert_allclose(batched.per_head_mean, whole.per_head_mean, atol=1e-6)
    assert 0 < whole.mean_weight < 1 and 0 <= whole.ahead_share <= 1
    with pytest.raises(ValueError, match="at least one sentence"):
        referent_attention(model, tokenizer, [])
