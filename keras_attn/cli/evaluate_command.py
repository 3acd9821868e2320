"""`keras-attn evaluate MODEL --data TEST`: a classifier scored on a labelled test set.

MODEL is a `train` run folder (scored by its Keras model) or an export version folder (scored
in onnxruntime: no TensorFlow is imported). The report: accuracy, macro-F1, precision / recall
/ F1 per class and the confusion matrix (scikit-learn's metrics, `keras_attn.evaluation.
metrics`), printed and drawn as a PNG, beside the TF-IDF + logistic regression baseline refitted
on the run's own training split and scored on the same test set
(`keras_attn.evaluation.held_out`). `--json` prints one JSON object instead.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from export.artifact.manifest import MANIFEST_FILENAME, TOKENIZER_FILENAME
from keras_attn.cli.common import EXIT_OK, UsageError, _print
from keras_attn.cli.training_commands import data_errors_name_flags

DEFAULT_PLOT = "confusion_matrix.png"


def cmd_evaluate(args: argparse.Namespace) -> int:
    from keras_attn.data.records import encode_texts, load_texts_for_classes
    from keras_attn.evaluation import plots
    from keras_attn.evaluation.held_out import TRAINING_DATA_KEY, evaluate_predictions

    path = Path(args.model)
    plot = _plot_target(args)
    scorer = _scorer(path)
    with data_errors_name_flags():
        test = load_texts_for_classes(args.data, scorer.class_names, args.text_column,
                                      args.label_column)
    predicted = scorer.predict(encode_texts(scorer.tokenizer, test.texts, scorer.max_len))
    training_data = (scorer.results or {}).get(TRAINING_DATA_KEY)
    result = evaluate_predictions(test, predicted, training_data)
    drawn = plot if plot is not None and plots.available() else None
    if drawn is not None:
        plots.plot_confusion_matrix(result["report"]["confusion_matrix"], test.class_names,
                                    drawn, title=f"{Path(args.data).name}: actual vs predicted")
    summary = {"model": str(path), "runtime": scorer.runtime, "data": str(args.data),
               "texts": len(test), "class_names": test.class_names, **result,
               "confusion_png": None if drawn is None else str(drawn)}
    if args.json:
        _print(json.dumps(summary, ensure_ascii=False, indent=2))
    else:
        _print_summary(summary, plot, plots)
    return EXIT_OK


def _plot_target(args: argparse.Namespace) -> Path | None:
    """Where the confusion matrix goes: checked before any work, never over a file unasked."""
    if args.no_plot:
        return None
    plot = Path(args.plot or DEFAULT_PLOT)
    if plot.is_dir():
        raise UsageError(f"--plot must name a file to draw the matrix in (.png, .pdf, .svg). "
                         f"Received: --plot {plot}, a folder")
    if plot.exists() and not args.overwrite:
        raise UsageError(f"{plot} exists; pass --overwrite to replace it, --plot FILE to write "
                         f"elsewhere, or --no-plot. Received: --plot {plot}")
    return plot


@dataclasses.dataclass(frozen=True)
class _Scorer:
    """What evaluate needs of a model, from a run folder (Keras) or a version folder
    (onnxruntime): its tokenizer, classes, max_len, the results recorded with it, and the
    predicted class of each row of token ids."""

    runtime: str  # "keras" or "onnxruntime"
    tokenizer: Any
    class_names: list[str]
    max_len: int
    results: dict | None
    predict: Callable[[Any], Any]


def _scorer(path: Path) -> _Scorer:
    from keras_attn.training.run_folder import RUN_FILE

    if (path / MANIFEST_FILENAME).is_file():
        return _version_scorer(path)
    if (path / RUN_FILE).is_file():
        return _run_scorer(path)
    from keras_attn.cli.common import check_version_folder

    check_version_folder(path, "evaluate", "a run folder or an export version folder")
    raise UsageError(f"evaluate takes a run folder (with {RUN_FILE}) or an export version "
                     f"folder (with {MANIFEST_FILENAME}). Received: {path}"
                     + ("" if path.exists() else ", which does not exist"))


def _version_scorer(path: Path) -> _Scorer:
    import numpy as np

    from export import runtime
    from export.artifact.manifest import read_manifest
    from export.artifact.tokenizer import load_tokenizer

    predictor = runtime.load(path)
    if predictor.task != "classifier" or not predictor.class_names:
        raise UsageError(f"evaluate scores a classifier, and {path} holds a {predictor.task}"
                         f"{'' if predictor.class_names else ' without class names'}. "
                         f"Received: {path}")
    if not (path / TOKENIZER_FILENAME).is_file():
        raise UsageError(f"evaluate reads text with the export's tokenizer; {path} has no "
                         f"{TOKENIZER_FILENAME}. Received: {path}")
    return _Scorer("onnxruntime", load_tokenizer(path / TOKENIZER_FILENAME),
                   list(predictor.class_names), predictor.max_len,
                   read_manifest(path).get("evaluation"),
                   lambda ids: np.argmax(predictor.predict_by_length(ids), axis=-1))


def _run_scorer(path: Path) -> _Scorer:
    from keras_attn.evaluation.metrics import predict_classes
    from keras_attn.models.builders import config_from_model, model_task
    from keras_attn.training.classifier import load_run
    from keras_attn.training.run_folder import read_results

    try:
        model, tokenizer, class_names = load_run(path)
    except FileNotFoundError as error:
        raise UsageError(str(error)) from None
    if model_task(model) != "classifier":
        raise UsageError(f"evaluate scores a classifier, and {path} holds a language model "
                         f"(keras-attn train-lm reports its perplexity). Received: {path}")
    return _Scorer("keras", tokenizer, list(class_names), config_from_model(model).max_len,
                   read_results(path), lambda ids: predict_classes(model, ids))


def _print_summary(summary: dict, plot: Path | None, plots) -> None:
    from keras_attn.evaluation.metrics import (
        format_confusion,
        format_report,
        macro_f1_note,
        verdict,
    )

    report, fitted = summary["report"], summary["baseline"]
    _print(f"{summary['texts']} test texts from {summary['data']}, classes "
           f"{summary['class_names']}; {summary['model']} scored in {summary['runtime']}")
    if fitted is None:
        _print(f"test accuracy: keras-attn {report['accuracy']:.4f}, macro-F1 "
               f"{report['macro_f1']:.4f}")
        _print(f"baseline skipped: {summary['baseline_skipped']}")
    else:
        _print(f"test accuracy: keras-attn {report['accuracy']:.4f} | baseline "
               f"{fitted['accuracy']:.4f} ({fitted['name']}, refitted on the run's training "
               f"split)")
        _print(f"test macro-F1: keras-attn {report['macro_f1']:.4f} | baseline "
               f"{fitted['macro_f1']:.4f}")
        _print(verdict(report["accuracy"], fitted["accuracy"]))
        if note := macro_f1_note(report, fitted):
            _print(note)
    if summary["in_training_split"]:
        _print(f"warning: {summary['in_training_split']} of the {summary['texts']} test texts "
               f"are in the run's training split; a test set the model never saw shares none")
    _print(format_report(report, fitted))
    _print(format_confusion(report["confusion_matrix"], summary["class_names"]))
    if summary["confusion_png"]:
        _print(f"confusion matrix: {summary['confusion_png']}")
    elif plot is not None:
        _print(f"confusion matrix not drawn: drawing needs matplotlib ({plots.INSTALL_HINT})")
