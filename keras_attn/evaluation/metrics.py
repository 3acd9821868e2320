"""How well a classifier does, per class: precision, recall, F1 and the confusion matrix.

scikit-learn's metrics (`sklearn.metrics`): accuracy, macro-averaged F1 and per-class
precision / recall / F1 / support (`precision_recall_fscore_support`, with ``zero_division=0``:
a class never predicted, or absent from the labels, scores 0), and `confusion_matrix` over
every class, in the model's class order. This module checks the inputs and shapes the result
for JSON, tables and plots.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def confusion_matrix(labels: np.ndarray, predicted: np.ndarray, num_classes: int) -> np.ndarray:
    """Counts `[num_classes, num_classes]` int64: row = actual class, column = predicted class
    (`sklearn.metrics.confusion_matrix` over ``labels=range(num_classes)``).

    Raises:
        ValueError: when `labels` and `predicted` differ in length, or hold a class outside
            `[0, num_classes)` (scikit-learn would leave such a row out of the counts).
    """
    from sklearn import metrics

    labels, predicted = _checked(labels, predicted, num_classes)
    return metrics.confusion_matrix(labels, predicted,
                                    labels=np.arange(num_classes)).astype(np.int64)


def classification_report(labels: np.ndarray, predicted: np.ndarray,
                          class_names: Sequence[str]) -> dict[str, Any]:
    """Accuracy, macro F1 and per-class precision / recall / F1 / support, JSON-ready.

    Args:
        labels: actual class indices `[n]`, n >= 1.
        predicted: predicted class indices `[n]`.
        class_names: one name per class index.

    Returns:
        {"accuracy", "macro_f1", "classes": {name: {"precision", "recall", "f1", "support"}},
        "confusion_matrix": [[...]]}. The macro F1 averages over every class of
        `class_names`, those absent from `labels` included (as 0), as scikit-learn does when
        given ``labels=``.

    Raises:
        ValueError: as `confusion_matrix`, or no label at all.
    """
    from sklearn import metrics

    everyone = np.arange(len(class_names))
    labels, predicted = _checked(labels, predicted, len(class_names))
    if not labels.size:
        raise ValueError("Expected at least one label to score. Received: none")
    precision, recall, f1, support = metrics.precision_recall_fscore_support(
        labels, predicted, labels=everyone, zero_division=0)
    classes = {name: {"precision": float(precision[i]), "recall": float(recall[i]),
                      "f1": float(f1[i]), "support": int(support[i])}
               for i, name in enumerate(class_names)}
    return {"accuracy": float(metrics.accuracy_score(labels, predicted)),
            "macro_f1": float(metrics.f1_score(labels, predicted, labels=everyone,
                                               average="macro", zero_division=0)),
            "classes": classes,
            "confusion_matrix": confusion_matrix(labels, predicted, len(class_names)).tolist()}


def _checked(labels, predicted, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    labels, predicted = np.asarray(labels).reshape(-1), np.asarray(predicted).reshape(-1)
    if labels.shape != predicted.shape:
        raise ValueError(f"Expected one prediction per label. Received: {labels.size} labels "
                         f"and {predicted.size} predictions")
    for name, values in (("labels", labels), ("predicted", predicted)):
        if values.size and (values.min() < 0 or values.max() >= num_classes):
            raise ValueError(f"{name} must lie in [0, num_classes={num_classes}). Received: "
                             f"values from {values.min()} to {values.max()}")
    return labels, predicted


def format_report(report: dict[str, Any], baseline: dict[str, Any] | None = None) -> str:
    """The per-class table for people; with a baseline report, its F1 beside the model's."""
    header = ["class", "precision", "recall", "f1", "support"]
    if baseline is not None:
        header.append("baseline f1")
    rows = [header]
    for name, scores in report["classes"].items():
        row = [name, f"{scores['precision']:.3f}", f"{scores['recall']:.3f}",
               f"{scores['f1']:.3f}", str(scores["support"])]
        if baseline is not None:
            row.append(f"{baseline['classes'][name]['f1']:.3f}")
        rows.append(row)
    return _table(rows)


def format_confusion(matrix: Any, class_names: Sequence[str]) -> str:
    """The confusion matrix for people: a row per actual class, a column per predicted one."""
    rows = [["actual \\ predicted", *class_names]]
    rows += [[name, *(str(count) for count in counts)]
             for name, counts in zip(class_names, matrix, strict=True)]
    return _table(rows)


def _table(rows: list[list[str]]) -> str:
    """Left-aligned columns two spaces apart, no trailing spaces."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
                     .rstrip() for row in rows)


def predict_classes(model: Any, token_ids: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """The argmax class of each row of a Keras classifier's logits: int64 `[n]`."""
    return np.argmax(model.predict(token_ids, batch_size=batch_size, verbose=0), axis=-1)


def verdict(model_accuracy: float, baseline_accuracy: float) -> str:
    """One plain sentence: does the model beat its baseline on accuracy?"""
    gap = model_accuracy - baseline_accuracy
    if gap > 0:
        return f"the model beats its baseline by {gap * 100:.2f} points of accuracy"
    if gap == 0:
        return "the model only ties its baseline on accuracy"
    return (f"the model does NOT beat its baseline: {-gap * 100:.2f} points of accuracy below "
            "it; a bag of words does better on this data")


def macro_f1_note(report: dict[str, Any], baseline: dict[str, Any]) -> str | None:
    """A line when macro-F1 ranks the two the other way from accuracy (a model that predicts
    the majority class can win on accuracy alone), else None."""
    accuracy = report["accuracy"] - baseline["accuracy"]
    f1 = report["macro_f1"] - baseline["macro_f1"]
    if accuracy * f1 >= 0:
        return None
    leader, other = ("the baseline", "the model") if f1 < 0 else ("the model", "the baseline")
    return (f"but on macro-F1 {leader} is ahead ({report['macro_f1']:.4f} against "
            f"{baseline['macro_f1']:.4f} for the baseline): {other} does worse on some class")
