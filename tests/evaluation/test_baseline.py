"""keras_attn/evaluation/baseline.py: the TF-IDF + logistic regression baseline, on real text."""


import pytest
from repo_paths import FIXTURES

from keras_attn.data.records import load_texts, split_train_validation
from keras_attn.data.reference_task import make_reference_task
from keras_attn.evaluation import baseline


@pytest.fixture(scope="module")
def languages():
    data = load_texts(f"{FIXTURES}/fortune_languages.jsonl")
    return split_train_validation(data, 0.25, seed=0)


def test_the_baseline_identifies_languages_on_real_text(languages):
    train, validation = languages
    report = baseline.fit_baseline(train, validation)
    assert report["name"] == baseline.NAME
    assert set(report["classes"]) == set(train.class_names)
    # character n-grams tell 12 languages apart well on real sentences
    assert report["accuracy"] > 0.85, report["accuracy"]


def test_the_baseline_is_at_chance_on_the_reference_task():
    """Swapping the two nouns keeps the bag of words and flips the label
    (keras_attn.data.reference_task)."""
    train, validation = split_train_validation(make_reference_task(1200, seed=1), 0.25, seed=0)
    assert 0.4 < baseline.fit_baseline(train, validation)["accuracy"] < 0.6
