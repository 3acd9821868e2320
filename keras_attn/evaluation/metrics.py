"""How well a classifier does, per class: precision, recall, F1 and the confusion matrix.

NumPy only. The definitions are the usual ones (as in scikit-learn's `classification_report`):
for class c, precision = true c / predicted c, recall = true c / actual c, F1 their harmonic
mean; a ratio with nothing to divide by (a class never predicted) is 0.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def confusion_matrix(labels: np.ndarray, predicted: np.ndarray, num_classes: int) -> np.ndarray:
    """Counts `[num_classes, num_classes]` int64: row = actual class, column = predicted class.

    Raises:
        ValueError: when `labels` and `predicted` differ in length, or hold a class outside
            `[0, num_classes)`.
    """
    labels, predicted = np.asarray(labels).reshape(-1), np.asarray(predicted).reshape(-1)
    if labels.shape != predicted.shape:
        raise ValueError(f"Expected one prediction per label. Received: {labels.size} labels "
                         f"and {predicted.size} predictions")
    for name, values in (("labels", labels), ("predicted", predicted)):
        if values.size and (values.min() < 0 or values.max() >= num_classes):
            raise ValueError(f"{name} must lie in [0, num_classes={num_classes}). Received: "
                             f"values from {values.min()} to {values.max()}")
    matrix = np.zeros((num_classes, num_classes), np.int64)
    np.add.at(matrix, (labels, predicted), 1)
    return matrix


def classification_report(labels: np.ndarray, predicted: np.ndarray,
                          class_names: Sequence[str]) -> dict[str, Any]:
    """Accuracy, macro F1 and per-class precision / recall / F1 / support, JSON-ready.

    Args:
        labels: actual class indices `[n]`.
        predicted: predicted class indices `[n]`.
        class_names: one name per class index.

    Returns:
        {"accuracy", "macro_f1", "classes": {name: {"precision", "recall", "f1", "support"}},
        "confusion_matrix": [[...]]}.
    """
    matrix = confusion_matrix(labels, predicted, len(class_names))
    true_positive = np.diag(matrix).astype(np.float64)
    precision = _ratio(true_positive, matrix.sum(axis=0))
    recall = _ratio(true_positive, matrix.sum(axis=1))
    f1 = _ratio(2 * precision * recall, precision + recall)
    classes = {name: {"precision": float(precision[i]), "recall": float(recall[i]),
                      "f1": float(f1[i]), "support": int(matrix[i].sum())}
               for i, name in enumerate(class_names)}
    return {"accuracy": float(true_positive.sum() / max(matrix.sum(), 1)),
            "macro_f1": float(f1.mean()), "classes": classes,
            "confusion_matrix": matrix.tolist()}


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    return np.divide(numerator, denominator, out=np.zeros_like(numerator, np.float64),
                     where=denominator > 0)


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
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
                     .rstrip() for row in rows)


def predict_classes(model: Any, token_ids: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """The argmax class of each row of a Keras classifier's logits: int64 `[n]`."""
    return np.argmax(model.predict(token_ids, batch_size=batch_size, verbose=0), axis=-1)


def verdict(model_accuracy: float, baseline_accuracy: float) -> str:
    """One plain sentence: does the model beat its baseline on validation accuracy?"""
    gap = model_accuracy - baseline_accuracy
    if gap > 0:
        return f"the model beats its baseline by {gap * 100:.2f} points"
    if gap == 0:
        return "the model only ties its baseline"
    return (f"the model does NOT beat its baseline: {-gap * 100:.2f} points below it; a bag of "
            "words does better on this data")
