"""The main job, end to end on built-in data: train, evaluate, export, verify, draw.

The task (keras_attn.tasks): in "the dog was near the ball, it was very excited.", which
noun does "it" refer to, the first or the second? A bag of words is at chance; attention
from "it" and its adjective to the matching noun solves it.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from keras_attn.data import split_train_validation
from keras_attn.tasks import make_reference_task
from keras_attn.training import TrainSettings, encode_texts, train_classifier

DEMO_SETTINGS = TrainSettings(max_len=32, d_model=32, num_heads=2, ff_dim=64, num_layers=2,
                              max_vocab=200, epochs=40, batch_size=64, patience=8)


@dataclasses.dataclass
class DemoReport:
    """What the demo measured and where it wrote."""

    test_accuracy: float
    run_dir: Path
    export_dir: Path
    parity_max_abs_diff: float
    verified: bool
    figures: list[Path]
    phase_seconds: dict[str, float]


@contextmanager
def phase(name: str, seconds: dict[str, float], log: Callable[[str], None]) -> Iterator[None]:
    """Logs a phase's start and its duration, and records the duration in `seconds`."""
    log(f"[{name}] ...")
    start = time.perf_counter()
    yield
    seconds[name] = time.perf_counter() - start
    log(f"[{name}] done in {seconds[name]:.1f} s")


def next_free(folder: Path) -> Path:
    """`folder/<n>` for the smallest n >= 1 not taken, so no earlier run is overwritten."""
    taken = {int(p.name) for p in folder.glob("*") if p.name.isdigit()}
    return folder / str(max(taken, default=0) + 1)


def run_demo(out: str | Path = ".", examples: int = 5000, epochs: int | None = None,
             seed: int = 0, log: Callable[[str], None] = print, verbose: int = 1) -> DemoReport:
    """Trains the default classifier on the reference task, then exports and verifies it.

    Writes `<out>/runs/demo/<n>/` (model, tokenizer, history, figures, TensorBoard logs) and
    `<out>/saved_models/demo/<version>/` (SavedModel, model.onnx, manifest, parity report).
    """
    import export
    from keras_attn.attention_maps import attention_maps
    from keras_attn.plots import plot_attention, plot_training_curves

    out = Path(out)
    seconds: dict[str, float] = {}
    settings = DEMO_SETTINGS if epochs is None else dataclasses.replace(DEMO_SETTINGS,
                                                                        epochs=epochs)
    with phase("data", seconds, log):
        train, validation = split_train_validation(make_reference_task(examples, seed=seed),
                                                   validation_fraction=0.2, seed=seed)
        test = make_reference_task(max(200, examples // 5), seed=seed + 1)
        log(f"reference task: {len(train)} train, {len(validation)} validation, "
            f"{len(test)} test sentences, e.g. {test.texts[0]!r}")
    run_dir = next_free(out / "runs" / "demo")
    with phase("train", seconds, log):
        run = train_classifier(train, validation, settings, run_dir,
                               data_description=f"reference task, {examples} examples, "
                               f"seed {seed}", log=log, verbose=verbose)
    with phase("evaluate", seconds, log):
        test_ids = encode_texts(run.tokenizer, test, settings.max_len)
        predicted = np.argmax(run.model.predict(test_ids, verbose=0), axis=-1)
        accuracy = float(np.mean(predicted == test.labels))
        log(f"held-out test accuracy: {accuracy:.4f}")
    with phase("export", seconds, log):
        result = export.export_model(run.model, out / "saved_models" / "demo",
                                     tokenizer=run.tokenizer, class_names=run.class_names)
    with phase("verify", seconds, log):
        verification = export.verify(result.path)
        log(verification.table())
    with phase("plots", seconds, log):
        curves = plot_training_curves(run.history, run_dir / "training_curves.png")
        sentence = test.texts[0]
        ids = run.tokenizer.encode_batch([sentence], settings.max_len)
        maps = attention_maps(run.model, ids)
        tokens = [run.tokenizer.vocabulary[i] for i in ids[0]]
        layer, head = len(maps) - 1, _sharpest_head(maps[-1][0], tokens)
        heatmap = plot_attention(tokens, maps[layer][0, head], run_dir / "attention.png",
                                 title=f"block {layer}, head {head}: {sentence}")
    max_diff = max(pair.max_abs_diff for pair in result.parity.pairs)
    return DemoReport(accuracy, run_dir, result.path, max_diff, verification.ok,
                      [curves, heatmap], seconds)


def _sharpest_head(weights: np.ndarray, tokens: list[str]) -> int:
    """The head whose row for "it" is most concentrated: where the reference is resolved."""
    row = tokens.index("it") if "it" in tokens else len(tokens) - 1
    return int(np.argmax(weights[:, row, :].max(axis=-1)))
