"""The main job, end to end on built-in data: train, evaluate, export, verify, draw.

The task (keras_attn.data.reference_task): in "the dog was near the ball, it was very excited.",
which
noun does "it" refer to, the first or the second? A bag of words is at chance; attention
from "it" and its adjective to the matching noun solves it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import numpy as np

from export.artifact.versions import next_version
from export.viewer.attention_page import attention_document, render_html
from keras_attn.cli.lm_demo import run_language_model_demo
from keras_attn.config import TrainSettings
from keras_attn.data.records import encode_texts, split_train_validation
from keras_attn.data.reference_task import ANIMALS, OBJECTS, make_reference_task
from keras_attn.evaluation.referent import ReferentAttention, referent_attention
from keras_attn.training.classifier import train_classifier
from keras_attn.training.run_folder import CURVES_FILE
from keras_attn.training.timing import phase

# Sized for the reference task: 2 blocks of d_model 32 solve it in ~20 epochs. Its loss sits
# at chance for several epochs before attention finds the nouns, hence the patience.
DEMO_SETTINGS = TrainSettings(max_len=32, d_model=32, num_heads=2, ff_dim=64, num_layers=2,
                              dropout=0.0, tokenizer="word", vocab_size=200, epochs=40,
                              batch_size=64, learning_rate=3e-3, patience=8)


@dataclasses.dataclass
class DemoReport:
    """What the demo measured and where it wrote."""

    test_accuracy: float
    run_dir: Path
    export_dir: Path
    parity_max_abs_diff: float
    parity_tolerance: float
    verified: bool
    figures: list[Path]
    phase_seconds: dict[str, float]
    referent: ReferentAttention  # "it" -> its referent, over the held-out sentences


VIEWER_FILE = "attention.html"  # the attention viewer of the seed sentence (export.viewer)


def run_demo(out: str | Path = ".", examples: int = 5000, epochs: int | None = None,
             seed: int = 0, log: Callable[[str], None] = lambda line: None,
             verbose: int = 1) -> DemoReport:
    """Trains the default classifier on the reference task, then exports and verifies it.

    Writes `<out>/runs/demo/<n>/` (model, tokenizer, history, figures, TensorBoard logs) and
    `<out>/saved_models/demo/<version>/` (SavedModel, model.onnx, manifest, parity report).
    """
    import export
    from export.artifact.representative_ids import load_representative_ids
    from keras_attn.evaluation import plots
    from keras_attn.evaluation.attention import text_attention

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
    run_dir = out / "runs" / "demo" / str(next_version(out / "runs" / "demo"))
    with phase("train", seconds, log):
        run = train_classifier(train, validation, settings, run_dir,
                               data_description=f"reference task, {examples} examples, "
                               f"seed {seed}", log=log, verbose=verbose)
    with phase("evaluate", seconds, log):
        test_ids = encode_texts(run.tokenizer, test.texts, settings.max_len)
        predicted = np.argmax(run.model.predict(test_ids, verbose=0), axis=-1)
        accuracy = float(np.mean(predicted == test.labels))
        log(f"held-out test accuracy: {accuracy:.4f}")
        referent = referent_attention(run.model, run.tokenizer, test.texts)
        log(f"attention from \"it\" onto its referent: {referent.summary()}")
    with phase("export", seconds, log):
        result = export.export_model(run.model, out / "saved_models" / "demo",
                                     tokenizer=run.tokenizer, class_names=run.class_names,
                                     representative_ids=load_representative_ids(run_dir))
    with phase("verify", seconds, log):
        verification = export.verify(result.path)
        log(verification.table())
    figures = []
    with phase("plots", seconds, log):
        sentence = test.texts[0]
        tokens, maps = text_attention(run.model, run.tokenizer, sentence)
        viewer = run_dir / VIEWER_FILE  # needs no matplotlib: one HTML file, opens offline
        viewer.write_text(render_html(attention_document(tokens, maps, "demo", text=sentence)),
                          encoding="utf-8")
        figures.append(viewer)
        if plots.available():
            figures.append(plots.plot_training_curves(run.history,
                                                      run_dir / CURVES_FILE))
            layer, head = _head_watching_the_nouns(maps, tokens)
            figures.append(plots.plot_attention(
                tokens, maps[layer][head], run_dir / "attention.png",
                title=f"block {layer}, head {head}: {sentence}"))
        else:
            log(f"skipped: drawing needs matplotlib ({plots.INSTALL_HINT})")
    with phase("language model", seconds, log):  # keras_attn.cli.lm_demo: Keras == onnxruntime
        language_model = run_language_model_demo(
            train.texts, out / "runs" / "demo_lm" / str(next_version(out / "runs" / "demo_lm")),
            seed=seed, log=log)
    max_diff = max(pair.max_abs_diff for pair in result.parity.pairs)
    tolerance = min(pair.tolerance for pair in result.parity.pairs)
    return DemoReport(accuracy, run_dir, result.path, max_diff, tolerance,
                      verification.ok and language_model.identical, figures, seconds,
                      referent)


def _head_watching_the_nouns(maps: list[np.ndarray], tokens: list[str]) -> tuple[int, int]:
    """(block, head) where "it" puts the most weight on the two nouns it may refer to."""
    row = tokens.index("it")
    nouns = [i for i, token in enumerate(tokens) if token in ANIMALS + OBJECTS]
    on_nouns = np.array([[weights[head, row, nouns].sum() for head in range(len(weights))]
                         for weights in maps])  # [blocks, heads]
    block, head = np.unravel_index(np.argmax(on_nouns), on_nouns.shape)
    return int(block), int(head)
