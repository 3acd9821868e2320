"""keras_attn/evaluation/language_model_scores.py: every validation token scored once, by the
model in windows as it was trained and by the Kneser-Ney baseline, and bits per byte."""

from __future__ import annotations

import math

import numpy as np
import pytest

import keras_attn as ka
from export.artifact.tokenizer import train_tokenizer
from keras_attn.evaluation.language_model_scores import (
    compare_with_kneser_ney,
    keras_log_probabilities,
    text_bytes,
)

TEXTS = ["the dog loved the toy", "a cat saw the dog", "the toy was red", "a red cat ran",
         "über café, naïve"]


@pytest.fixture(scope="module")
def model():
    return ka.build_language_model(ka.ModelConfig(vocab_size=30, max_len=8, d_model=16,
                                                  num_heads=2, ff_dim=32, num_layers=1,
                                                  num_classes=30, dropout=0.0))


@pytest.mark.parametrize("length", [9, 17, 20, 3])
def test_every_token_is_scored_in_windows_as_the_model_reads_them(model, length):
    stream = np.random.default_rng(length).integers(1, 30, length)
    scores = keras_log_probabilities(model, stream, max_len=8, batch_size=2)
    assert scores.shape == (length - 1,)
    expected = []
    for start in range(0, length - 1, 8):  # each window alone, unpadded
        window = stream[start:min(start + 8, length - 1)]
        logits = np.asarray(model.predict(window[None, :], verbose=0), np.float64)[0]
        log_softmax = logits - np.log(np.exp(logits - logits.max(-1, keepdims=True)).sum(
            -1, keepdims=True)) - logits.max(-1, keepdims=True)
        expected += log_softmax[np.arange(len(window)), stream[start + 1:start + 1 +
                                                               len(window)]].tolist()
    np.testing.assert_allclose(scores, expected, rtol=0, atol=1e-5)


class Uniform:
    """A model whose every next-token distribution is uniform over `width` ids."""

    def __init__(self, width):
        self.width = width

    def predict(self, ids, verbose=0):
        return np.zeros((*ids.shape, self.width))


def test_bits_per_byte_and_perplexity_of_a_uniform_model():
    tokenizer = train_tokenizer(TEXTS, model="word", vocab_size=40)
    width = tokenizer.vocab_size + 1
    scores = compare_with_kneser_ney(Uniform(width), tokenizer, TEXTS, TEXTS[:2], max_len=8)
    tokens = sum(len(t.split()) + 1 for t in TEXTS[:2])  # each word a token, + end of text
    assert scores["tokens"] == tokens
    assert scores["bytes"] == text_bytes(TEXTS[:2]) == len("the dog loved the toy") + len(
        "a cat saw the dog") + 2
    assert scores["model"]["perplexity"] == pytest.approx(width)
    assert scores["model"]["bits_per_byte"] == pytest.approx(
        tokens * math.log2(width) / scores["bytes"])
    # The n-gram model saw these very texts: far below uniform.
    assert scores["kneser_ney"]["perplexity"] < scores["model"]["perplexity"] / 2


def test_text_bytes_count_utf8_bytes():
    assert text_bytes(["é"]) == 3 and text_bytes([]) == 0
