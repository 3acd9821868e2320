"""Training a text classifier on labelled texts with `model.fit`: tokenizer, callbacks, resume.

Everything a run makes goes to its run folder (`keras_attn.training.run_folder`): `model.keras`
(best weights), `tokenizer.json`, `config.json`, `history.csv`, TensorBoard `logs/`, and while
training, `backup/` from which an interrupted run resumes when the same command runs again.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path

import keras
import numpy as np

from export.artifact.representative_ids import save_representative_ids
from export.artifact.tokenizer import Tokenizer, load_tokenizer
from keras_attn.config import TrainSettings
from keras_attn.data.buckets import LengthBatches
from keras_attn.data.records import TextDataset, encode_texts, fingerprint
from keras_attn.models.builders import build_classifier, load_model
from keras_attn.training.distribution import data_parallel, jit_compile_for
from keras_attn.training.distribution import reset as reset_distribution
from keras_attn.training.pretrained import LanguageModelRun, copy_pretrained_weights
from keras_attn.training.run_folder import (
    CONFIG_FILE,
    MODEL_FILE,
    TOKENIZER_FILE,
    prepare_run_folder,
    read_history,
    resumed_epoch,
    run_callbacks,
    trained_tokenizer,
)


@dataclasses.dataclass
class TrainedRun:
    """What a finished run produced."""

    model: keras.Model
    tokenizer: Tokenizer
    class_names: list[str]
    run_dir: Path
    history: dict[str, list[float]]
    resumed_from_epoch: int
    validation_accuracy: float


def train_classifier(
    train: TextDataset,
    validation: TextDataset,
    settings: TrainSettings,
    run_dir: str | Path,
    overwrite: bool = False,
    data_description: str = "",
    callbacks: list[keras.callbacks.Callback] | None = None,
    log: Callable[[str], None] = lambda line: None,
    verbose: int = 1,
    devices: int = 1,
    init_from: LanguageModelRun | None = None,
) -> TrainedRun:
    """Fits a tokenizer and a classifier; keeps the best model by validation loss.

    Args:
        train, validation: labelled texts (validation measures, early-stops, picks the best).
        settings: hyperparameters.
        run_dir: the run folder (see the module docstring).
        overwrite: replace a different run already in `run_dir`.
        data_description: identifies the data in `run.json`, so a rerun resumes only itself.
        callbacks: extra Keras callbacks.
        log: where progress lines go.
        verbose: Keras's `fit` verbosity (1: the progress bar).
        devices: data-parallel over this many local devices (`keras_attn.training.distribution`);
            the batch size stays the global batch. Recorded in `run.json` with the backend.
        init_from: a language model to start from (`keras_attn.training.pretrained`): its tokenizer
            replaces a new one, its embeddings and blocks the random ones; `settings` must
            have its widths. Recorded in `run.json` as "init_from".

    Returns:
        A `TrainedRun`.

    Raises:
        ValueError: `settings.readout_token` is not one token of the tokenizer (before
            anything is written).
    """
    run_dir = Path(run_dir)
    tokenizer = init_from.tokenizer() if init_from else trained_tokenizer(train.texts,
                                                                          settings, log)
    config = settings.classifier_config(tokenizer, len(train.class_names))
    x_train = encode_texts(tokenizer, train.texts, settings.max_len)
    x_val = encode_texts(tokenizer, validation.texts, settings.max_len)
    record = {"settings": dataclasses.asdict(settings), "data": data_description,
              "class_names": train.class_names, "num_train": len(train),
              "data_sha256": fingerprint(train, validation),
              "backend": keras.backend.backend(), "devices": devices,
              **({"init_from": init_from.record} if init_from else {})}
    resuming = prepare_run_folder(run_dir, record, overwrite)
    resumed_from = resumed_epoch(run_dir) if resuming else 0
    if resuming and (run_dir / TOKENIZER_FILE).is_file():
        # Training a Unigram tokenizer twice can give other ids (WordPiece's numbering is made
        # deterministic in export/artifact/tokenizer.py; huggingface/tokenizers#1794), and the
        # library
        # may change between runs: a resumed run keeps the tokenizer its first epochs used.
        tokenizer = load_tokenizer(run_dir / TOKENIZER_FILE)
        x_train = encode_texts(tokenizer, train.texts, settings.max_len)
        x_val = encode_texts(tokenizer, validation.texts, settings.max_len)
        config = settings.classifier_config(tokenizer, len(train.class_names))
    else:
        tokenizer.save(run_dir / TOKENIZER_FILE)
    if resumed_from:
        log(f"Resuming the interrupted run in {run_dir} after epoch {resumed_from}.")

    keras.utils.set_random_seed(settings.seed)
    # The model is built and compiled under the distribution (a MirroredStrategy's scope on
    # TensorFlow); JAX's stays set for `fit` until reset.
    with data_parallel(devices):
        model = build_classifier(config)
        jit_compile, note = jit_compile_for(devices, settings.jit_compile)
        if note:
            log(note)
        if init_from:  # a resumed run's backup then replaces these weights with its own
            copied = copy_pretrained_weights(model, init_from)
            log(f"Started from the language model in {init_from.path}: {', '.join(copied)}.")
        model.compile(
            optimizer=keras.optimizers.AdamW(learning_rate_schedule(
                settings, steps_per_epoch=-(-len(train) // settings.batch_size))),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            metrics=["accuracy"],
            jit_compile=jit_compile,
        )
    fit_callbacks = run_callbacks(run_dir, settings.patience, resumed_from, callbacks,
                                  settings.monitor)
    # Batches of similar length, each padded only to its bucket (keras_attn.data.buckets): a
    # resumed run goes on with the plans of the epochs it had not run.
    train_batches = LengthBatches(x_train, train.labels, settings.batch_size, seed=settings.seed)
    train_batches.epoch = resumed_from
    val_batches = LengthBatches(x_val, validation.labels, settings.batch_size, shuffle=False)
    try:
        model.fit(train_batches.dataset(), validation_data=val_batches.dataset(),
                  shuffle=False, epochs=settings.epochs, callbacks=fit_callbacks,
                  class_weight=class_weights(train, settings.class_weight), verbose=verbose)
    finally:
        reset_distribution()

    best, accuracy = finish_run(run_dir, config, train.class_names, settings, x_val,
                                val_batches.dataset())
    return TrainedRun(best, tokenizer, list(train.class_names), run_dir, read_history(run_dir),
                      resumed_from, accuracy)


def finish_run(run_dir: Path, config, class_names: list[str], settings: TrainSettings,
               representative_ids: np.ndarray, validation_data) -> tuple[keras.Model, float]:
    """After `fit`: the best checkpoint re-saved for use, `config.json` (whose presence marks
    the run finished), `representative_ids.npy`. Returns (the best model, its validation
    accuracy on `validation_data`). `validation_data`: a dataset of (ids int [batch, width],
    labels int [batch]) batches."""
    best = load_model(run_dir / MODEL_FILE)
    # The checkpoint was written by a model compiled for training, perhaps with
    # jit_compile=True: saved as it is, every later `keras.models.load_model` would predict
    # under XLA, which clamps out-of-range ids instead of rejecting them. The file the run
    # leaves for use is compiled without XLA.
    best.compile(optimizer=best.optimizer, loss=best.loss, metrics=["accuracy"],
                 jit_compile=False)
    best.save(run_dir / MODEL_FILE)
    (run_dir / CONFIG_FILE).write_text(json.dumps(
        {"model": config.to_dict(), "class_names": list(class_names),
         "settings": dataclasses.asdict(settings)}, indent=2) + "\n", encoding="utf-8")
    # Held-out ids for the export's int8 file: its calibration, and what its gate checks on.
    save_representative_ids(run_dir, representative_ids)
    accuracy = best.evaluate(validation_data, verbose=0, return_dict=True)["accuracy"]
    return best, float(accuracy)


def learning_rate_schedule(settings: TrainSettings, steps_per_epoch: int):
    """The learning rate: `settings.learning_rate` throughout when `warmup_fraction` is 0;
    else a linear warm-up from 0 over that share of the run's steps (`epochs` x
    `steps_per_epoch`), then a cosine decay to 0 by the last epoch
    (`keras.optimizers.schedules.CosineDecay` with its warm-up)."""
    if not settings.warmup_fraction:
        return settings.learning_rate
    total = max(2, settings.epochs * steps_per_epoch)
    warmup = min(total - 1, max(1, round(settings.warmup_fraction * total)))
    return keras.optimizers.schedules.CosineDecay(
        0.0, decay_steps=total - warmup, warmup_target=settings.learning_rate,
        warmup_steps=warmup)


def class_weights(train: TextDataset, mode: str) -> dict[int, float] | None:
    """None for "none"; for "balanced", class c weighs n / (classes * count_c), so that every
    class counts as much in the loss whatever its share of the data."""
    if mode == "none":
        return None
    return balanced_weights(np.bincount(train.labels, minlength=len(train.class_names)))


def balanced_weights(counts: np.ndarray) -> dict[int, float]:
    """Class c weighs n / (classes * count_c), from the examples per class `counts` `[classes]`
    (scikit-learn's class_weight="balanced"); a class without examples gets no weight."""
    total = int(np.sum(counts))
    return {c: float(total / (len(counts) * count)) for c, count in enumerate(counts) if count}


def load_run(run_dir: str | Path) -> tuple[keras.Model, Tokenizer, list[str]]:
    """Loads (model, tokenizer, class_names) from a finished run folder."""
    run_dir = Path(run_dir)
    missing = [name for name in (MODEL_FILE, TOKENIZER_FILE, CONFIG_FILE)
               if not (run_dir / name).exists()]
    if missing:
        raise FileNotFoundError(
            f"{run_dir} is not a finished keras-attn run: it lacks {', '.join(missing)}. "
            f"Expected a folder written by `keras-attn train`. Received: {run_dir}"
        )
    config = json.loads((run_dir / CONFIG_FILE).read_text(encoding="utf-8"))
    model = load_model(run_dir / MODEL_FILE)
    return model, load_tokenizer(run_dir / TOKENIZER_FILE), config["class_names"]
