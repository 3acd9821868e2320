"""keras_attn/evaluation/ngram.py: interpolated Kneser-Ney equals nltk.lm's on real text (every
seen word, every context, orders 2 to 4), and is a distribution over the whole vocabulary."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from nltk.lm import KneserNeyInterpolated
from nltk.util import everygrams
from repo_paths import FIXTURES

from keras_attn.evaluation.ngram import KneserNey


def fortune_ids(count: int = 300) -> list[int]:
    """Words of real English fortunes, as ids (every text ends with id 0, an end of text)."""
    lines = (FIXTURES / "fortune_topics.jsonl").read_text(encoding="utf-8").splitlines()
    words = []
    for line in lines[:12]:
        words += json.loads(line)["text"].lower().split()[:40] + ["<eot>"]
    index = {word: i for i, word in enumerate(dict.fromkeys(["<eot>", *words]))}
    return [index[word] for word in ["<eot>", *words]][:count]


@pytest.mark.parametrize("order", [2, 3, 4])
def test_equals_nltks_kneser_ney_on_real_text(order):
    # Twice over: every n-gram of the start is seen again after something, where nltk's
    # raw follower counts and the continuation ones agree (see the module's docstring).
    stream = fortune_ids() * 2
    ours = KneserNey(order, vocabulary_size=len(set(stream)), discount=0.75,
                     unigram_discount=0.0).fit(stream)
    theirs = KneserNeyInterpolated(order, discount=0.75)
    words = [str(i) for i in stream]  # nltk's vocabulary takes strings
    theirs.fit([everygrams(words, max_len=order)], vocabulary_text=words)
    for i in range(1, len(stream), 3):
        context = stream[max(0, i - order + 1):i]
        for word in (stream[i], stream[(i * 7) % len(stream)]):  # the next id, and another
            expected = theirs.score(str(word), [str(c) for c in context])
            assert ours.probability(word, context) == pytest.approx(expected, rel=1e-9), \
                (word, context)


@given(st.lists(st.integers(0, 400), min_size=2, max_size=4))
def test_each_context_gives_a_distribution_over_the_vocabulary(context):
    stream = fortune_ids()
    vocabulary = max(stream) + 20  # some ids never seen in training
    model = KneserNey(3, vocabulary_size=vocabulary).fit(stream)
    probabilities = np.array([model.probability(w, context[-2:]) for w in range(vocabulary)])
    assert probabilities.min() > 0  # an unseen id too
    assert probabilities.sum() == pytest.approx(1.0, abs=1e-9)


def test_log_probabilities_score_every_id_after_the_first():
    stream = fortune_ids()
    model = KneserNey(3, vocabulary_size=len(set(stream))).fit(stream)
    scores = model.log_probabilities(stream)
    assert scores.shape == (len(stream) - 1,) and np.all(scores < 0)
    assert scores[4] == pytest.approx(np.log(model.probability(stream[5], stream[3:5])))


@pytest.mark.parametrize("arguments, message", [({"order": 0}, "order"),
                                                ({"discount": 1.0}, "discount"),
                                                ({"vocabulary_size": 0}, "vocabulary_size")])
def test_bad_settings_are_clear_errors(arguments, message):
    with pytest.raises(ValueError, match=message):
        KneserNey(**{"vocabulary_size": 5, **arguments})
