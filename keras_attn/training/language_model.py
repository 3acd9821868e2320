"""Training a causal language model on raw text with `model.fit`: pack, fit, resume.

The data is read, split and packed into windows by `keras_attn.data.lm_windows` (read:
`load_lm_texts`, the text-only view of the one record reader `keras_attn.data.records`; split:
`split_texts`, whole texts; pack: `token_stream` and `pack_windows`, every text's ids followed by
the end-of-text id ``tokenizer.vocab_size``, cut into windows of `max_len` + 1 ids, unpadded).

The run folder is the classifier's (`keras_attn.training.run_folder`): run.json, model.keras (the
best model by validation loss), tokenizer.json, config.json, history.csv (with perplexity and
val_perplexity = exp(loss)), logs/ (TensorBoard), training_curves.png, and backup/ while
training, from which the same command resumes after a kill.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from collections.abc import Callable, Sequence
from pathlib import Path

import keras
import numpy as np

from export.artifact.representative_ids import save_representative_ids
from export.artifact.tokenizer import Tokenizer, load_tokenizer
from keras_attn.config import TrainSettings
from keras_attn.data.lm_windows import pack_windows, token_stream
from keras_attn.models.builders import build_language_model, load_model
from keras_attn.training.run_folder import (
    CONFIG_FILE,
    MODEL_FILE,
    RUN_FILE,
    TOKENIZER_FILE,
    prepare_run_folder,
    read_history,
    records_run,
    resumed_epoch,
    run_callbacks,
    trained_tokenizer,
)

TASK = "language_model"


def unigram_perplexity(train_targets: np.ndarray, validation_targets: np.ndarray,
                       vocab_size: int) -> float:
    """The perplexity of a unigram model (token frequencies of the training targets, add-one
    smoothed over the `vocab_size` - 1 non-padding ids) on the validation targets: what a
    model that ignores context scores."""
    counts = np.bincount(train_targets.reshape(-1), minlength=vocab_size).astype(np.float64)
    counts[1:] += 1.0  # add-one; id 0 (padding) is never a target
    counts[0] = 0.0
    probabilities = counts / counts.sum()
    return float(np.exp(-np.mean(np.log(probabilities[validation_targets.reshape(-1)]))))


class Perplexity(keras.callbacks.Callback):
    """Adds perplexity = exp(loss) and val_perplexity = exp(val_loss) to each epoch's logs;
    placed before the CSV logger and TensorBoard, which then record them."""

    def on_epoch_end(self, epoch, logs=None):
        if logs is None:
            return
        for name in ("loss", "val_loss"):
            if name in logs:
                logs[name.replace("loss", "perplexity")] = math.exp(min(float(logs[name]), 700))


@dataclasses.dataclass
class TrainedLanguageModel:
    """What a finished `train_language_model` run produced."""

    model: keras.Model
    tokenizer: Tokenizer
    run_dir: Path
    history: dict[str, list[float]]
    resumed_from_epoch: int
    validation_loss: float
    validation_perplexity: float
    unigram_perplexity: float
    train_windows: int
    validation_windows: int


def _fingerprint(*splits: Sequence[str]) -> str:
    """sha256 of the texts of each split: a rerun resumes only on exactly the same data."""
    digest = hashlib.sha256()
    for texts in splits:
        for text in texts:
            digest.update(text.encode("utf-8") + b"\0")
        digest.update(b"\1")
    return digest.hexdigest()


def _interrupted(run_dir: Path, record: dict) -> bool:
    """True when `run_dir` holds this very run, interrupted after its tokenizer was saved."""
    if not (run_dir / RUN_FILE).is_file() or not (run_dir / TOKENIZER_FILE).is_file() \
            or (run_dir / CONFIG_FILE).exists():
        return False
    return records_run(run_dir, record)


def train_language_model(
    train_texts: Sequence[str],
    validation_texts: Sequence[str],
    settings: TrainSettings,
    run_dir: str | Path,
    overwrite: bool = False,
    data_description: str = "",
    callbacks: list[keras.callbacks.Callback] | None = None,
    log: Callable[[str], None] = lambda line: None,
    verbose: int = 1,
) -> TrainedLanguageModel:
    """Fits a tokenizer and a causal language model; keeps the best model by validation loss.

    Args:
        train_texts, validation_texts: raw texts (see the module docstring for the packing).
        settings: hyperparameters (`max_len` is the window; `vocab_size` the tokenizer's aim;
            the model has one id more, the end-of-text id).
        run_dir: the run folder.
        overwrite: replace a different run already in `run_dir`.
        data_description: identifies the data in `run.json`, so a rerun resumes only itself.
        callbacks: extra Keras callbacks.
        log: where progress lines go.
        verbose: Keras's `fit` verbosity.

    Returns:
        A `TrainedLanguageModel`.

    Raises:
        DataError: too little text for one window in a split (checked before anything is
            written).
        keras_attn.training.run_folder.RunFolderError: `run_dir` holds something else.
        ValueError: `settings.pooling` is not "mean" (a classifier's readout).
    """
    if settings.pooling != "mean":
        raise ValueError("pooling is a classifier's readout; a language model predicts at "
                         f"every position. Received: pooling={settings.pooling!r}")
    if settings.monitor != "val_loss":
        raise ValueError("A language model keeps the epoch of the lowest val_loss (its "
                         "perplexity's); it logs no accuracy. Received: "
                         f"monitor={settings.monitor!r}")
    run_dir = Path(run_dir)
    tokenizer = trained_tokenizer(train_texts, settings, log)
    record = {"task": TASK, "settings": dataclasses.asdict(settings), "data": data_description,
              "num_train_texts": len(train_texts),
              "data_sha256": _fingerprint(train_texts, validation_texts)}
    if _interrupted(run_dir, record):
        # A resumed run keeps the tokenizer its first epochs learned with: training a Unigram
        # tokenizer twice can give other ids (huggingface/tokenizers#1794).
        tokenizer = load_tokenizer(run_dir / TOKENIZER_FILE)
    x_train, y_train = pack_windows(token_stream(tokenizer, train_texts), settings.max_len,
                                    "training")
    # Whole batches only: a last, smaller batch would trace the training step a second time
    # (seconds on a small model, for fewer than batch_size windows at the stream's end).
    whole = max(settings.batch_size, len(x_train) - len(x_train) % settings.batch_size)
    x_train, y_train = x_train[:whole], y_train[:whole]
    x_val, y_val = pack_windows(token_stream(tokenizer, validation_texts), settings.max_len,
                                "validation")
    resuming = prepare_run_folder(run_dir, record, overwrite)
    resumed_from = resumed_epoch(run_dir) if resuming else 0
    if not resuming:
        tokenizer.save(run_dir / TOKENIZER_FILE)
    if resumed_from:
        log(f"Resuming the interrupted run in {run_dir} after epoch {resumed_from}.")
    vocab_size = tokenizer.vocab_size + 1  # + the end-of-text id
    config = settings.model_config(vocab_size, num_classes=vocab_size)

    keras.utils.set_random_seed(settings.seed)
    model = build_language_model(config)
    model.compile(optimizer=keras.optimizers.AdamW(settings.learning_rate),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  jit_compile=settings.jit_compile)
    # Perplexity first: the CSV log and TensorBoard then record it with each epoch.
    fit_callbacks = [Perplexity(), *run_callbacks(run_dir, settings.patience, resumed_from,
                                                  callbacks)]
    model.fit(x_train, y_train, validation_data=(x_val, y_val), epochs=settings.epochs,
              batch_size=settings.batch_size, shuffle=True, callbacks=fit_callbacks,
              verbose=verbose)

    best = load_model(run_dir / MODEL_FILE)
    # Re-saved compiled without XLA, so that a later load predicts without XLA (see
    # keras_attn.training.classifier).
    best.compile(optimizer=best.optimizer, loss=best.loss, jit_compile=False)
    best.save(run_dir / MODEL_FILE)
    (run_dir / CONFIG_FILE).write_text(json.dumps(
        {"task": TASK, "model": config.to_dict(), "class_names": None,
         "end_of_text_id": tokenizer.vocab_size, "settings": dataclasses.asdict(settings)},
        indent=2) + "\n", encoding="utf-8")
    save_representative_ids(run_dir, x_val)
    loss = float(best.evaluate(x_val, y_val, batch_size=settings.batch_size, verbose=0))
    return TrainedLanguageModel(
        best, tokenizer, run_dir, read_history(run_dir), resumed_from, loss,
        math.exp(loss), unigram_perplexity(y_train, y_val, vocab_size), len(x_train),
        len(x_val))
