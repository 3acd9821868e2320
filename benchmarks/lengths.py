"""Training and prediction on text of real lengths: batches by length against pad-to-longest.

Texts come from Debian's fortune packages (`keras_attn.data.corpora.fortune_languages`: short
quotations in 12 languages), or under --quick from the sample of them in tests/fixtures/.
The model is the CLI's (`TrainSettings()`: d_model 64, 2 heads, ff 128, 2 layers, dropout 0.1,
jit on; the report names it from the settings).

- Real tokens/s of steady `fit` epochs at max_len 256 (and 64): the pipeline before this
  change (every text padded to the dataset's longest, NumPy arrays to `fit`) against
  `keras_attn.data.buckets.LengthBatches`. Only real tokens are counted.
- The wall time of `train_classifier` (what `keras-attn train` runs) at max_len 256 over 64.
- Time to validation accuracy >= 0.99 on the reference task (`time_to_accuracy.py`, which
  uses this module's `layout_before`, `compiled_classifier` and `fit_timed`).
- Prediction over many texts: `Predictor.predict` of the whole file (what `keras-attn predict
  --file` did) against `Predictor.predict_by_length`, real tokens/s.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import keras
import numpy as np

from export.artifact.tokenizer import train_tokenizer
from keras_attn.config import TrainSettings
from keras_attn.data.buckets import LengthBatches, token_lengths
from keras_attn.data.records import TextDataset, encode_texts, load_texts, split_train_validation
from keras_attn.layers.block import TransformerBlock
from keras_attn.models.builders import build_classifier

FIXTURE = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "fortune_languages.jsonl"


def real_corpus(quick: bool) -> TextDataset:
    """The fixture's 480 texts under --quick, else 100 texts per language from the packages."""
    if quick:
        return load_texts(FIXTURE)
    from keras_attn.data.corpora import fortune_languages

    return fortune_languages(max_per_class=100)


def layout_before(model: keras.Model, dropout: float) -> keras.Model:
    """`model` with the dropout layout before issue 10: each block also drops the attention
    weights and the feed-forward hidden units, at `dropout`. Built with Keras's own
    `clone_model` from each block's public config (`attention_dropout`,
    `feed_forward_dropout`); the weights are fresh, as `build_classifier` would draw them."""
    def clone(layer):
        if isinstance(layer, TransformerBlock):
            return TransformerBlock.from_config({**layer.get_config(),
                                                 "attention_dropout": dropout,
                                                 "feed_forward_dropout": dropout})
        return layer.__class__.from_config(layer.get_config())

    return keras.models.clone_model(model, clone_function=clone)


class EpochClock(keras.callbacks.Callback):
    """Epoch durations; the seconds since `start` and the epoch (1-based) at whose end val
    accuracy first reached `target`; the best val accuracy."""

    def __init__(self, start: float, target: float = 1.0):
        super().__init__()
        self.start, self.target, self.epochs = start, target, []
        self.reached, self.reached_epoch, self.best = None, None, 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self.began = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        now = time.perf_counter()
        self.epochs.append(now - self.began)
        self.best = max(self.best, (logs or {}).get("val_accuracy", 0.0))
        if self.reached is None and (logs or {}).get("val_accuracy", 0.0) >= self.target:
            self.reached, self.reached_epoch = now - self.start, epoch + 1


def compiled_classifier(config, before: bool = False, learning_rate: float = 1e-3,
                        jit_compile: bool = True, run_eagerly: bool = False) -> keras.Model:
    """The classifier of `config` compiled as training compiles it (AdamW at a constant
    rate); `before`: with the dropout layout before issue 10 (`layout_before`);
    `run_eagerly`: no tracing at all (smoke runs)."""
    model = build_classifier(config)
    if before:
        model = layout_before(model, config.dropout)
    model.compile(optimizer=keras.optimizers.AdamW(learning_rate),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"], jit_compile=jit_compile and not run_eagerly,
                  run_eagerly=run_eagerly)
    return model


def fit_timed(model, ids, labels, bucketed: bool, epochs: int, seed: int = 0,
              validation=None, batch_size: int = 32, target: float = 1.0) -> EpochClock:
    """`fit` on NumPy arrays padded as given (pad to longest) or, `bucketed`, on
    `LengthBatches`; returns its `EpochClock` (val accuracy `target`)."""
    clock = EpochClock(time.perf_counter(), target)
    if bucketed:
        data = LengthBatches(ids, labels, batch_size, seed=seed).dataset()
        val = None if validation is None else LengthBatches(*validation, batch_size,
                                                            shuffle=False).dataset()
        model.fit(data, validation_data=val, epochs=epochs, verbose=0, shuffle=False,
                  callbacks=[clock])
    else:
        model.fit(ids, labels, batch_size=batch_size, validation_data=validation, epochs=epochs,
                  verbose=0, callbacks=[clock])
    return clock


def measure(quick: bool, version_dir: Path, prediction_rounds: int) -> dict:
    """Every measurement of this module, and time to accuracy (`time_to_accuracy.measure`).
    Under --quick: a third of the fixture, too few steps for a steady figure (a smoke run), no
    `train_classifier` wall time, and a smoke run of time to accuracy."""
    from benchmarks import time_to_accuracy

    data = real_corpus(quick)
    if quick:
        data = data.subset(np.arange(0, len(data), 3))
    settings = TrainSettings()
    tokenizer = train_tokenizer(data.texts, model=settings.tokenizer,
                                vocab_size=settings.vocab_size)
    lengths = token_lengths(encode_texts(tokenizer, data.texts, 256))
    return {
        "texts": len(data), "corpus": "tests/fixtures sample" if quick else "fortunes-*",
        "model": (f"d_model {settings.d_model}, {settings.num_heads} heads, ff "
                  f"{settings.ff_dim}, {settings.num_layers} layers, dropout {settings.dropout:g}, "
                  f"jit {'on' if settings.jit_compile else 'off'}"),
        "lengths": {f"p{q}": float(np.percentile(lengths, q)) for q in (50, 90, 99, 100)},
        "training": training_tokens_per_second(data, tokenizer, epochs=3),
        "prediction": prediction_tokens_per_second(version_dir, lengths, prediction_rounds),
        "train_wall": None if quick else train_wall_time(data, epochs=3),
        "time_to_accuracy": time_to_accuracy.measure(quick),
    }


def training_tokens_per_second(data: TextDataset, tokenizer, epochs: int) -> dict:
    """Real tokens/s of the best epoch after the first (which compiles), per max_len and
    pipeline, plus the share of computed positions that hold a real token."""
    result = {}
    for max_len in (64, 256):
        ids = encode_texts(tokenizer, data.texts, max_len)
        config = TrainSettings(max_len=max_len).model_config(tokenizer.vocab_size,
                                                             len(data.class_names))
        batches = LengthBatches(ids, data.labels, 32)
        real = batches.real_tokens()
        row = {"width": int(ids.shape[1]), "shapes": len(batches.shapes()),
               "real_share_padded": real / ids.size,
               "real_share_bucketed": real / batches.padded_tokens()}
        for name, bucketed in (("pad to longest", False), ("by length", True)):
            keras.utils.set_random_seed(0)
            clock = fit_timed(compiled_classifier(config), ids, data.labels, bucketed, epochs)
            row[name] = real / min(clock.epochs[1:])
        row["speedup"] = row["by length"] / row["pad to longest"]
        result[str(max_len)] = row  # str keys: as JSON writes them
    return result


def train_wall_time(data: TextDataset, epochs: int) -> dict:
    """Seconds of `train_classifier` (what `keras-attn train` runs) at max_len 64 and 256."""
    from keras_attn.training.classifier import train_classifier

    train, validation = split_train_validation(data, 0.2, seed=0)
    seconds = {}
    with tempfile.TemporaryDirectory(prefix="keras_attn_lengths_") as folder:
        for max_len in (64, 256):
            settings = TrainSettings(max_len=max_len, epochs=epochs, patience=epochs)
            start = time.perf_counter()
            train_classifier(train, validation, settings, Path(folder) / str(max_len),
                             verbose=0)
            seconds[str(max_len)] = time.perf_counter() - start
    return {"seconds": seconds, "ratio": seconds["256"] / seconds["64"]}


def prediction_tokens_per_second(version_dir: Path, lengths: np.ndarray, rounds: int) -> dict:
    """Real tokens/s of `Predictor.predict` on every row at once (padded to the longest, as
    `keras-attn predict --file` did) and of `predict_by_length`, best of `rounds`."""
    from export import runtime

    predictor = runtime.load(version_dir)
    lengths = np.minimum(lengths, predictor.max_len)
    rng = np.random.default_rng(0)
    ids = rng.integers(1, predictor.vocab_size, size=(len(lengths), int(lengths.max())),
                       dtype=np.int32)
    ids[np.arange(ids.shape[1]) >= lengths[:, None]] = 0
    best = {"whole file": 0.0, "by length": 0.0}
    for _ in range(rounds):
        for name, run in (("whole file", predictor.predict),
                          ("by length", predictor.predict_by_length)):
            start = time.perf_counter()
            run(ids)
            best[name] = max(best[name], lengths.sum() / (time.perf_counter() - start))
    return {**best, "texts": len(lengths), "speedup": best["by length"] / best["whole file"]}
