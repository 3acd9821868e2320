"""`keras-attn train --stream`: a classifier trained on data streamed from its files.

The run folder, resume, early stopping and the best model are `keras_attn.training.classifier`'s;
only the data differs (`keras_attn.data.streaming`): read record by record, never all at once.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable
from pathlib import Path

import keras
import numpy as np

from export.artifact.representative_ids import REPRESENTATIVE_ROWS
from export.artifact.tokenizer import load_tokenizer
from keras_attn.config import TrainSettings
from keras_attn.data.records import encode_texts
from keras_attn.data.streaming import TOKENIZER_SAMPLE, StreamedData, TextStream, sample_texts
from keras_attn.models.builders import build_classifier
from keras_attn.training.classifier import (
    TrainedRun,
    balanced_weights,
    finish_run,
    learning_rate_schedule,
)
from keras_attn.training.run_folder import (
    TOKENIZER_FILE,
    prepare_run_folder,
    read_history,
    resumed_epoch,
    run_callbacks,
    trained_tokenizer,
)


def train_streaming(data: StreamedData, settings: TrainSettings, run_dir: str | Path,
                    overwrite: bool = False, data_description: str = "",
                    callbacks: list[keras.callbacks.Callback] | None = None,
                    log: Callable[[str], None] = lambda line: None,
                    verbose: int = 1) -> tuple[TrainedRun, TextStream]:
    """`training.train_classifier` on streamed data; also returns the validation stream.

    The tokenizer learns from `streaming.sample_texts` (at most `TOKENIZER_SAMPLE` training
    texts). `run.json` records the data's sha256 and how it was streamed, so a rerun resumes
    only the same run, with the tokenizer it started with and the epoch orders it had not run.

    Raises:
        DataError: a text with no token (before anything is written).
        ValueError: `settings.readout_token` is not one token of the trained tokenizer (before
            anything is written).
        RunFolderError: as `train_classifier`.
    """
    run_dir = Path(run_dir)
    tokenizer = trained_tokenizer(sample_texts(data, TOKENIZER_SAMPLE, settings.seed),
                                  settings, log)
    record = {"settings": dataclasses.asdict(settings), "data": data_description,
              "class_names": data.class_names, "num_train": data.size("train"),
              "data_sha256": data.sha256, "backend": keras.backend.backend(), "devices": 1,
              "stream": {"validation_fraction": data.validation_fraction,
                         "split": "streaming.in_validation",
                         "tokenizer_sample": TOKENIZER_SAMPLE}}

    def streams(tokenizer):  # counting tokenizes every text: a text without one stops here
        return (TextStream(data, "train", tokenizer, settings.max_len, settings.batch_size,
                           seed=settings.seed),
                TextStream(data, "validation", tokenizer, settings.max_len,
                           settings.batch_size, shuffle=False))

    train, validation = streams(tokenizer)
    settings.classifier_config(tokenizer, len(data.class_names))  # a bad readout token: now
    resuming = prepare_run_folder(run_dir, record, overwrite)
    resumed_from = resumed_epoch(run_dir) if resuming else 0
    if resuming and (run_dir / TOKENIZER_FILE).is_file():
        tokenizer = load_tokenizer(run_dir / TOKENIZER_FILE)  # see train_classifier
        train, validation = streams(tokenizer)
    else:
        tokenizer.save(run_dir / TOKENIZER_FILE)
    if resumed_from:
        log(f"Resuming the interrupted run in {run_dir} after epoch {resumed_from}.")
    train.epoch = resumed_from

    config = settings.classifier_config(tokenizer, len(data.class_names))
    keras.utils.set_random_seed(settings.seed)
    model = build_classifier(config)
    model.compile(optimizer=keras.optimizers.AdamW(learning_rate_schedule(settings, len(train))),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"], jit_compile=settings.jit_compile)
    weights = None if settings.class_weight == "none" else balanced_weights(data.counts[0])
    model.fit(train.dataset(), validation_data=validation.dataset(), shuffle=False,
              epochs=settings.epochs, class_weight=weights, verbose=verbose,
              callbacks=run_callbacks(run_dir, settings.patience, resumed_from, callbacks,
                                      settings.monitor))
    first = [text for text, _, _ in itertools.islice(data.records("validation"),
                                                       REPRESENTATIVE_ROWS)]
    best, accuracy = finish_run(run_dir, config, data.class_names, settings,
                                encode_texts(tokenizer, first, settings.max_len),
                                validation.dataset())
    return TrainedRun(best, tokenizer, list(data.class_names), run_dir, read_history(run_dir),
                      resumed_from, accuracy), validation


def predict_stream(model: keras.Model, stream: TextStream) -> tuple[np.ndarray, np.ndarray]:
    """(labels, predicted classes), int64 `[n]` each, of one pass over `stream`, in its batch
    order (by length, not the file's)."""
    labels, predicted = [], []
    for ids, batch_labels in stream.dataset():
        predicted.append(np.argmax(model.predict_on_batch(ids), axis=-1))
        labels.append(batch_labels.numpy())
    return np.concatenate(labels).astype(np.int64), np.concatenate(predicted).astype(np.int64)
