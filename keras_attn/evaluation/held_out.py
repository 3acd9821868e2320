"""Scoring a classifier on a test set its training never saw, beside the TF-IDF baseline refitted
on the run's own training split: what `keras-attn evaluate` reports.

A finished `train` run records where its training split came from (`training_data_record`, in
`run.json`'s results, which an export copies into its manifest's "evaluation"): the data path,
the columns, the classes, and either the validation share and seed that split it or the
separate validation data. `reload_training_split` reads that split again and checks it is the
same texts and labels, by the sha256 of `keras_attn.data.records.fingerprint`, so that the
baseline is fitted on exactly what the model was trained on, or not at all.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from keras_attn.data.records import (
    DataError,
    TextDataset,
    fingerprint,
    load_texts,
    shared_texts,
    split_train_validation,
)
from keras_attn.evaluation import baseline
from keras_attn.evaluation.metrics import classification_report

TRAINING_DATA_KEY = "training_data"  # where the record sits in a run's results


def training_data_record(train: TextDataset, data: str | Path, text_column: str,
                         label_column: str, validation_split: float | None, seed: int,
                         validation_data: str | Path | None = None) -> dict[str, Any]:
    """How to read a run's training split again, JSON-ready.

    Args:
        train: the training split the model was fitted on.
        data: the `--data` path it came from.
        text_column, label_column: the columns read.
        validation_split: the share held out of `data` (None when `validation_data` was
            given: then all of `data` is the training split).
        seed: the seed of the split.
        validation_data: the `--validation-data` path, if one was given.
    """
    return {"data": str(Path(data).resolve()), "text_column": text_column,
            "label_column": label_column, "class_names": list(train.class_names),
            "validation_split": validation_split, "seed": seed,
            "validation_data": None if validation_data is None
            else str(Path(validation_data).resolve()),
            "train_examples": len(train), "train_sha256": fingerprint(train)}


def reload_training_split(record: dict[str, Any]) -> TextDataset:
    """Reads the training split that `record` (from `training_data_record`) describes.

    Raises:
        DataError: the data cannot be read any more, or is no longer the same (its texts or
            labels changed: the sha256 differs), saying which.
    """
    where = record["data"]
    try:
        dataset = load_texts(where, record["text_column"], record["label_column"],
                             record["class_names"])
    except DataError as error:
        raise DataError(f"The run's training data cannot be read again: {error}") from None
    if record["validation_split"] is None:
        train = dataset
    else:
        train, _ = split_train_validation(dataset, record["validation_split"],
                                          seed=record["seed"])
    if fingerprint(train) != record["train_sha256"]:
        raise DataError(f"The run's training data has changed since it trained: the "
                        f"{len(train)} training texts read from {where} are not the "
                        f"{record['train_examples']} it was fitted on (sha256 differs)")
    return train


def evaluate_predictions(test: TextDataset, predicted: np.ndarray,
                         training_data: dict[str, Any] | None, seed: int = 0) -> dict[str, Any]:
    """The model's report on `test`, and the baseline's, refitted on the run's training split.

    Args:
        test: the labelled test set, in the model's class order.
        predicted: the model's class index per text of `test`, int `[len(test)]`.
        training_data: the run's `training_data_record`, or None when it has none (a run
            trained with `--stream`, or one written before the record existed).
        seed: the baseline's logistic-regression seed.

    Returns:
        {"report": the model's `classification_report`, "baseline": the baseline's (with its
        "name") or None, "baseline_skipped": None or why it was not fitted,
        "in_training_split": how many test texts are also training texts (the same string;
        None when the split could not be read): a test set should share none}.
    """
    report = classification_report(test.labels, predicted, test.class_names)
    if training_data is None:
        return {"report": report, "baseline": None,
                "baseline_skipped": "the run records no in-memory training split to refit it "
                                    "on (a --stream run, or one from before keras-attn 0.1)",
                "in_training_split": None}
    try:
        train = reload_training_split(training_data)
    except DataError as error:
        return {"report": report, "baseline": None, "baseline_skipped": str(error),
                "in_training_split": None}
    return {"report": report, "baseline": baseline.fit_baseline(train, test, seed),
            "baseline_skipped": None, "in_training_split": shared_texts(test.texts, train.texts)}
