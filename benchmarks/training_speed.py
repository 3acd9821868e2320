"""Training throughput: tokens/s of steady-state `model.fit` steps, XLA off and on.

Each (model, jit_compile) pair is its own compiled model. Every `fit` call runs a few
warm-up steps first (the first call also traces and compiles), and only the steps after
them are timed, from the end of the last warm-up batch to the end of the last batch. The
pairs take turns, round after round, and each keeps its best round (see `benchmarks.timing`).
"""

from __future__ import annotations

import time

import keras
import numpy as np

import keras_attn as ka
from benchmarks.reference import build_reference

BATCH = 32


class _BatchClock(keras.callbacks.Callback):
    """Records the time at the end of every training batch."""

    def on_train_begin(self, logs=None):
        self.ends = []

    def on_train_batch_end(self, batch, logs=None):
        self.ends.append(time.perf_counter())


def _compiled(build, config: ka.ModelConfig, jit_compile: bool) -> keras.Model:
    model = build(config)
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        jit_compile=jit_compile,
    )
    return model


def _steps_per_second(model: keras.Model, x: np.ndarray, y: np.ndarray, warmup: int,
                      steps: int) -> float:
    clock = _BatchClock()
    count = (warmup + steps) * BATCH
    model.fit(x[:count], y[:count], batch_size=BATCH, epochs=1, shuffle=False, verbose=0,
              callbacks=[clock])
    return steps / (clock.ends[-1] - clock.ends[warmup - 1])


def measure_training(config: ka.ModelConfig, rounds: int, steps: int, warmup: int = 2,
                     seed: int = 0) -> tuple[dict[str, dict[str, float]], dict[str, keras.Model]]:
    """Tokens/s of keras_attn's classifier and the keras.io reference, jit off and on.

    Args:
        config: the model configuration; batches are `[32, max_len]`, every id real.
        rounds: how many timed `fit` calls each pair gets (the best is kept).
        steps: timed steps per `fit` call.
        warmup: untimed steps at the start of every `fit` call.

    Returns:
        ({"keras_attn" | "reference": {"jit off" | "jit on": tokens/s}},
         {"keras_attn" | "reference": the jit-off model, its weights trained off their
         initial values (tf2onnx drops an Add of zeros, so an untrained export is smaller)}).
    """
    rng = np.random.default_rng(seed)
    count = (warmup + steps) * BATCH
    x = rng.integers(1, config.vocab_size, size=(count, config.max_len), dtype=np.int32)
    y = rng.integers(0, config.num_classes, size=(count,), dtype=np.int32)
    builders = {"keras_attn": ka.build_classifier, "reference": build_reference}
    models = {(name, jit): _compiled(build, config, jit)
              for name, build in builders.items() for jit in (False, True)}
    best: dict[tuple[str, bool], float] = dict.fromkeys(models, 0.0)
    for _ in range(rounds):
        for key, model in models.items():
            best[key] = max(best[key], _steps_per_second(model, x, y, warmup, steps))
    tokens = BATCH * config.max_len
    result = {name: {f"jit {'on' if jit else 'off'}": best[(name, jit)] * tokens
                     for jit in (False, True)} for name in builders}
    return result, {name: models[(name, False)] for name in ("keras_attn", "reference")}
