"""keras_attn/evaluation/metrics.py: per-class precision, recall, F1 and the confusion matrix,
checked against hand counts, and against scikit-learn called directly (the class order, the
zero-division rule and the shapes the module gives its results)."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from sklearn import metrics as sklearn_metrics

from keras_attn.evaluation.metrics import (
    classification_report,
    confusion_matrix,
    format_report,
    verdict,
)


def test_a_worked_example():
    labels = np.array([0, 0, 0, 1, 1, 2])
    predicted = np.array([0, 0, 1, 1, 2, 2])
    report = classification_report(labels, predicted, ["a", "b", "c"])
    assert report["confusion_matrix"] == [[2, 1, 0], [0, 1, 1], [0, 0, 1]]
    assert report["accuracy"] == pytest.approx(4 / 6)
    assert report["classes"]["a"] == {"precision": 1.0, "recall": pytest.approx(2 / 3),
                                      "f1": pytest.approx(0.8), "support": 3}
    assert report["classes"]["c"]["precision"] == pytest.approx(0.5)


def test_a_class_never_predicted_scores_zero_not_nan():
    report = classification_report(np.array([0, 1]), np.array([0, 0]), ["a", "b"])
    assert report["classes"]["b"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}


@given(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 3)), min_size=1, max_size=60))
def test_matches_scikit_learn(pairs):
    labels, predicted = (np.array(column) for column in zip(*pairs, strict=True))
    report = classification_report(labels, predicted, ["a", "b", "c", "d"])
    precision, recall, f1, support = sklearn_metrics.precision_recall_fscore_support(
        labels, predicted, labels=[0, 1, 2, 3], zero_division=0)
    for i, name in enumerate("abcd"):
        scores = report["classes"][name]
        assert scores["precision"] == pytest.approx(precision[i])
        assert scores["recall"] == pytest.approx(recall[i])
        assert scores["f1"] == pytest.approx(f1[i])
        assert scores["support"] == support[i]
    np.testing.assert_array_equal(
        report["confusion_matrix"],
        sklearn_metrics.confusion_matrix(labels, predicted, labels=[0, 1, 2, 3]))
    assert report["accuracy"] == pytest.approx(sklearn_metrics.accuracy_score(labels, predicted))


@pytest.mark.parametrize("labels, predicted, message", [
    ([0, 1], [0], "one prediction per label"),
    ([0, 3], [0, 1], r"labels must lie in \[0, num_classes=2\). Received: values from 0 to 3"),
    ([0, 1], [-1, 1], r"predicted must lie in \[0, num_classes=2\)"),
])
def test_bad_input_is_a_clear_error(labels, predicted, message):
    with pytest.raises(ValueError, match=message):
        confusion_matrix(np.array(labels), np.array(predicted), 2)


def test_the_table_shows_the_baseline_f1_beside_the_model():
    model = classification_report(np.array([0, 1, 1]), np.array([0, 1, 0]), ["neg", "pos"])
    baseline = classification_report(np.array([0, 1, 1]), np.array([0, 1, 1]), ["neg", "pos"])
    lines = format_report(model, baseline).split("\n")
    assert lines[0].split() == ["class", "precision", "recall", "f1", "support", "baseline",
                                "f1"]
    assert lines[2].split() == ["pos", "1.000", "0.500", "0.667", "2", "1.000"]


def test_the_verdict_is_plain():
    assert verdict(0.9, 0.8).startswith("the model beats its baseline by 10.00 points of "
                                        "accuracy")
    assert verdict(0.5, 0.5) == "the model only ties its baseline on accuracy"
    assert "does NOT beat its baseline: 5.00 points of accuracy below" in verdict(0.9, 0.95)


def test_macro_f1_is_named_when_it_ranks_them_the_other_way():
    from keras_attn.evaluation.metrics import macro_f1_note

    majority = {"accuracy": 0.5, "macro_f1": 0.33}
    assert "on macro-F1 the baseline is ahead (0.3300 against 0.4400" in macro_f1_note(
        majority, {"accuracy": 0.44, "macro_f1": 0.44})
    assert macro_f1_note(majority, {"accuracy": 0.4, "macro_f1": 0.3}) is None
