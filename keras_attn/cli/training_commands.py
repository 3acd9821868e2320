"""The subcommands that make a model: `keras-attn demo`, `train`, `export` and `verify`.

`train` trains a classifier and can export it; `export` turns a run folder (a classifier's or a
language model's) into a verified SavedModel + ONNX version, which `verify` checks again.
Bad input raises `UsageError` (or another ValueError): exit code 2, nothing written.
"""

from __future__ import annotations

import argparse
import contextlib
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

from export.artifact.manifest import ATTENTION_FILENAME, read_manifest
from export.artifact.versions import ascii_digits, check_folder_path
from keras_attn.cli.common import (
    EXIT_FAILURE,
    EXIT_OK,
    UsageError,
    _print,
    check_version_folder,
    flags_named,
)

DEFAULT_VALIDATION_SPLIT = 0.2  # train's share of --data held out, without --validation-data


def check_output_folders(args: argparse.Namespace) -> None:
    """`--out` and `--export`, where given, must name folders (existing or not): checked before
    any work, so that a file in the way is not found after training.

    Raises:
        NotADirectoryError: one of them, or a path above it, is a file.
    """
    for flag in ("out", "export"):
        if getattr(args, flag, None):
            check_folder_path(getattr(args, flag), f"--{flag}")


def cmd_demo(args: argparse.Namespace) -> int:
    from keras_attn.cli.demo import run_demo

    check_output_folders(args)
    start = time.perf_counter()
    with _left_out_files_as_notes():
        report = run_demo(args.out, examples=args.examples, epochs=args.epochs, seed=args.seed,
                          log=_print)
    manifest = read_manifest(report.export_dir)
    _print_left_out(manifest["onnxruntime_files"], manifest.get("attention"))
    _print("\n== keras-attn demo report ==")
    _print(f"held-out test accuracy : {report.test_accuracy:.4f}")
    _print(f"\"it\" -> its referent    : {report.referent.summary()}")
    _print(f"run folder             : {report.run_dir}")
    _print(f"export (TF Serving)    : {report.export_dir}")
    _print(f"parity max |diff|      : {report.parity_max_abs_diff:.2e} "
           f"(tolerance {report.parity_tolerance:.3g})")
    _print(f"verify                 : {'passed' if report.verified else 'FAILED'}")
    for figure in report.figures:
        kind = "attention viewer" if figure.suffix == ".html" else "figure"
        _print(f"{kind:<23}: {figure}")
    for name, seconds in report.phase_seconds.items():
        _print(f"time {name:<17} : {seconds:.1f} s")
    _print(f"time total             : {time.perf_counter() - start:.1f} s")
    return EXIT_OK if report.verified else EXIT_FAILURE


FLAG_OF_FIELD = {"max_len": "--max-len", "d_model": "--d-model", "num_heads": "--heads",
                 "ff_dim": "--ff-dim", "num_layers": "--layers",
                 "attention_dropout": "--attention-dropout", "dropout": "--dropout",
                 "vocab_size": "--vocab-size", "tokenizer": "--tokenizer", "epochs": "--epochs",
                 "batch_size": "--batch-size",
                 "learning_rate": "--learning-rate", "patience": "--patience",
                 "warmup_fraction": "--warmup-fraction", "class_weight": "--class-weight",
                 "readout_token": "--readout-token", "pooling": "--pooling",
                 "monitor": "--monitor"}


# The data checks (the one record reader, keras_attn.data.records, and its views: load_texts,
# keras_attn.data.streaming, keras_attn.data.lm_windows) name the reader's parameters; on the
# command line they are flags. The labelled pair first: "text_column=" is inside it.
FLAG_OF_DATA_PARAMETER = {"text_column= / label_column=": "--text-column / --label-column",
                          "text_column=": "--text-column",
                          "given in class_names": "given in --classes",
                          "class_names=": "--classes "}


@contextlib.contextmanager
def data_errors_name_flags() -> Iterator[None]:
    """A DataError inside becomes a UsageError whose message names the flags."""
    from keras_attn.data.records import DataError

    try:
        yield
    except DataError as error:
        message = str(error)
        for parameter, flag in FLAG_OF_DATA_PARAMETER.items():
            message = message.replace(parameter, flag)
        raise UsageError(message) from None


def _print_kept(run, monitor: str) -> None:
    """Which epoch the run kept and what the others scored, then where the kept model is."""
    from keras_attn.training.run_folder import kept_epoch_summary

    _print(kept_epoch_summary(run.history, monitor))
    _print(f"the kept model's validation accuracy {run.validation_accuracy:.4f}; model, "
           f"tokenizer and config in {run.run_dir}")


def _settings_from_flags(args: argparse.Namespace):
    """TrainSettings from the flags; a bad value is a UsageError that names the flag."""
    from keras_attn.config import TrainSettings

    try:
        return TrainSettings(
            max_len=args.max_len, d_model=args.d_model, num_heads=args.heads,
            ff_dim=args.ff_dim, num_layers=args.layers, dropout=args.dropout,
            attention_dropout=args.attention_dropout,
            tokenizer=args.tokenizer, vocab_size=args.vocab_size, epochs=args.epochs,
            batch_size=args.batch_size,
            learning_rate=args.learning_rate, patience=args.patience, seed=args.seed,
            jit_compile=not args.no_jit, **{
                field: getattr(args, field) for field in ("warmup_fraction", "class_weight",
                                                          "pooling", "readout_token",
                                                          "monitor")
                if hasattr(args, field)})
    except ValueError as error:
        raise UsageError(f"Bad training flags: {_named_by_flags(error)}") from None


def _named_by_flags(error: ValueError) -> str:
    """A settings error's message with each `field=` named by its flag."""
    return flags_named(str(error), FLAG_OF_FIELD)


@contextlib.contextmanager
def _readout_errors_name_flags() -> Iterator[None]:
    """--readout-token is checked against the vocabulary once the tokenizer is trained (before
    anything is written): a token it cannot read at is a UsageError that names the flag."""
    from keras_attn.config import ReadoutTokenError

    try:
        yield
    except ReadoutTokenError as error:
        raise UsageError(_named_by_flags(error)) from None


def cmd_train(args: argparse.Namespace) -> int:
    from keras_attn.data.records import (
        load_texts,
        load_texts_for_classes,
        shared_texts,
        split_train_validation,
    )
    from keras_attn.evaluation.held_out import training_data_record
    from keras_attn.training.pretrained import pretrained_settings, resolve_model_flags
    from keras_attn.training.timing import phase

    # Flags and data are checked before Keras is imported: bad input is answered at once.
    check_output_folders(args)
    language_model = resolve_model_flags(args)  # None without --init-from
    settings = _settings_from_flags(args)
    if language_model:
        settings = pretrained_settings(settings, language_model, args.init_attention)
    if args.validation_data and args.validation_split is not None:
        raise UsageError(f"Give --validation-data or --validation-split, not both: the "
                         f"validation set is either given or held out of --data. Received: "
                         f"--validation-data {args.validation_data} --validation-split "
                         f"{args.validation_split}")
    if args.validation_data and args.stream:
        raise UsageError(f"--stream holds out its validation records by a hash of their "
                         f"position; it takes no --validation-data. Received: "
                         f"--validation-data {args.validation_data}")
    if args.validation_split is None:
        args.validation_split = DEFAULT_VALIDATION_SPLIT
    if not 0 < args.validation_split < 1:
        raise UsageError(f"--validation-split must lie strictly between 0 and 1. "
                         f"Received: {args.validation_split}")
    from keras_attn.training.backends import select_backend

    backend = select_backend(args.backend, args.devices)  # before anything imports Keras
    if args.stream:  # record by record from the files (keras_attn.data.streaming)
        with data_errors_name_flags():
            return _train_streaming(args, settings, backend)
    seconds: dict[str, float] = {}
    with phase("data", seconds, _print), data_errors_name_flags():
        classes = args.classes.split(",") if args.classes else None
        dataset = load_texts(args.data, text_column=args.text_column,
                             label_column=args.label_column, class_names=classes)
        if args.validation_data:  # given, as Keras's fit(validation_data=...)
            train, split = dataset, None
            validation = load_texts_for_classes(args.validation_data, dataset.class_names,
                                                args.text_column, args.label_column)
        else:
            split = args.validation_split
            train, validation = split_train_validation(dataset, split, seed=args.seed)
        training_data = training_data_record(train, args.data, args.text_column,
                                             args.label_column, split, args.seed,
                                             args.validation_data)
        _print(f"{len(train)} train / {len(validation)} validation texts"
               + (f" (from {args.validation_data})" if args.validation_data else "")
               + f", classes {dataset.class_names}")
        if args.validation_data:
            shared = shared_texts(validation.texts, train.texts)
            if shared:
                _print(f"warning: {shared} of the {len(validation)} validation texts are also "
                       f"training texts; a validation set should share none")

    from keras_attn.evaluation import plots
    from keras_attn.training.classifier import train_classifier
    from keras_attn.training.distribution import initialize_multi_host
    from keras_attn.training.run_folder import CURVES_FILE

    hosts = initialize_multi_host()  # several machines: KERAS_DISTRIBUTION_* variables
    _print(f"backend {backend}, {args.devices} device(s)"
           + (f", process {hosts['process_id']} of {hosts['num_processes']}" if hosts else ""))
    with phase("train", seconds, _print), _readout_errors_name_flags():
        run = train_classifier(train, validation, settings, args.out, overwrite=args.overwrite,
                               data_description=str(Path(args.data).resolve()), log=_print,
                               devices=args.devices, init_from=language_model)
        _print_kept(run, settings.monitor)
        if plots.available():
            _print(f"curves: {plots.plot_training_curves(run.history, run.run_dir / CURVES_FILE)}")
        else:
            _print(f"curves skipped: drawing needs matplotlib ({plots.INSTALL_HINT})")
    with phase("evaluate", seconds, _print):
        _evaluate_against_baseline(run, train, validation, settings, args.seed,
                                   training_data)
    if args.export:
        return _export(run.run_dir, Path(args.export))
    return EXIT_OK


def _train_streaming(args: argparse.Namespace, settings, backend: str) -> int:
    """`train --stream`: TensorFlow's tf.data on one device, from random weights."""
    init_from = getattr(args, "init_from", None)
    if backend != "tensorflow" or args.devices != 1 or init_from:
        raise UsageError(f"--stream trains on the tensorflow backend, on one device, from random "
                         f"weights. Received: backend {backend}, --devices {args.devices}"
                         + (f", --init-from {init_from}" if init_from else ""))
    from keras_attn.data.streaming import scan_stream
    from keras_attn.evaluation import plots
    from keras_attn.evaluation.metrics import classification_report, format_report
    from keras_attn.training.run_folder import CONFUSION_FILE, CURVES_FILE, record_results
    from keras_attn.training.streamed import predict_stream, train_streaming
    from keras_attn.training.timing import phase

    # Up to the evaluation as `train` does; the TF-IDF baseline is left out: it fits in memory.
    seconds: dict[str, float] = {}
    with phase("data", seconds, _print):
        data = scan_stream(args.data, args.text_column, args.label_column,
                           args.classes.split(",") if args.classes else None,
                           args.validation_split, args.seed)
        _print(f"{data.size('train')} train / {data.size('validation')} validation texts "
               f"(streamed from {args.data}), classes {data.class_names}")
    with phase("train", seconds, _print), _readout_errors_name_flags():
        run, validation = train_streaming(data, settings, args.out, overwrite=args.overwrite,
                                          data_description=str(Path(args.data).resolve()),
                                          log=_print)
        _print_kept(run, settings.monitor)
        if plots.available():
            curves = plots.plot_training_curves(run.history, run.run_dir / CURVES_FILE)
            _print(f"curves: {curves}")
    with phase("evaluate", seconds, _print):
        report = classification_report(*predict_stream(run.model, validation), run.class_names)
        record_results(run.run_dir, {"validation": report, "baseline": None})
        _print(f"validation accuracy: keras-attn {report['accuracy']:.4f}")
        _print("baseline skipped: the TF-IDF baseline fits in memory, and --stream is for "
               "data that does not")
        _print(format_report(report, None))
        if plots.available():
            plots.plot_confusion_matrix(report["confusion_matrix"], run.class_names,
                                        run.run_dir / CONFUSION_FILE,
                                        title="validation: actual vs predicted")
    return _export(run.run_dir, Path(args.export)) if args.export else EXIT_OK


def _evaluate_against_baseline(run, train, validation, settings, seed: int,
                               training_data: dict) -> None:
    """Per-class report of the model on the validation split, beside a TF-IDF + logistic
    regression baseline fitted on the same split; both recorded in run.json with how to read
    the training split again (for `keras-attn evaluate`), the confusion matrix drawn next to
    the curves."""
    from keras_attn.data.records import encode_texts
    from keras_attn.evaluation import baseline, plots
    from keras_attn.evaluation.held_out import TRAINING_DATA_KEY
    from keras_attn.evaluation.metrics import (
        classification_report,
        format_report,
        macro_f1_note,
        predict_classes,
        verdict,
    )
    from keras_attn.training.run_folder import CONFUSION_FILE, record_results

    ids = encode_texts(run.tokenizer, validation.texts, settings.max_len)
    report = classification_report(validation.labels, predict_classes(run.model, ids),
                                   run.class_names)
    fitted = baseline.fit_baseline(train, validation, seed)
    record_results(run.run_dir, {"validation": report, "baseline": fitted,
                                 TRAINING_DATA_KEY: training_data})
    _print(f"validation accuracy: keras-attn {report['accuracy']:.4f} | baseline "
           f"{fitted['accuracy']:.4f} ({fitted['name']})")
    _print(verdict(report["accuracy"], fitted["accuracy"]))
    if note := macro_f1_note(report, fitted):
        _print(note)
    _print(format_report(report, fitted))
    if plots.available():
        path = plots.plot_confusion_matrix(report["confusion_matrix"], run.class_names,
                                           run.run_dir / CONFUSION_FILE,
                                           title="validation: actual vs predicted")
        _print(f"confusion matrix: {path}")


def _export(run_dir: Path, out: Path) -> int:
    import keras

    if keras.backend.backend() != "tensorflow":
        return _export_from_another_backend(run_dir, out)
    import export
    from export.artifact.representative_ids import load_representative_ids
    from keras_attn.training.classifier import load_run
    from keras_attn.training.run_folder import read_results

    model, tokenizer, class_names = load_run(run_dir)
    start = time.perf_counter()
    with _left_out_files_as_notes():
        result = export.export_model(model, out, tokenizer=tokenizer, class_names=class_names,
                                     evaluation=read_results(run_dir),
                                     representative_ids=load_representative_ids(run_dir))
    _print(f"[export] version {result.version} written to {result.path} in "
           f"{time.perf_counter() - start:.1f} s")
    _print_left_out(result.onnxruntime_files, read_manifest(result.path).get("attention"))
    _print(result.parity.table())
    return EXIT_OK


def _export_from_another_backend(run_dir: Path, out: Path) -> int:
    """JAX or torch: the export runs on TensorFlow in a child process; then the model as
    trained here is compared with the exported ONNX file (`keras_attn.cli.backend_export`)."""
    import keras

    from keras_attn.cli.backend_export import export_in_tensorflow, parity_with_backend
    from keras_attn.training.classifier import load_run

    before = set(out.iterdir()) if out.is_dir() else set()
    code = export_in_tensorflow(run_dir, out)
    if code != EXIT_OK:
        return code
    written = sorted(path for path in set(out.iterdir()) - before if ascii_digits(path.name))
    if len(written) != 1:
        raise RuntimeError(f"Expected one new version folder in {out} after the export. "
                           f"Received: {[path.name for path in written]}")
    parity = parity_with_backend(load_run(run_dir)[0], written[0])
    _print(f"[export] parity against {keras.backend.backend()} (the backend that trained it) "
           f"vs model.onnx: max |diff| {parity['max_abs_diff']:.2e} over {parity['cases']} "
           f"batches (tolerance {parity['tolerance']:.3g})")
    if not parity["ok"]:
        raise RuntimeError(f"The export disagrees with the {keras.backend.backend()} model "
                           f"beyond the tolerance: {parity}")
    return EXIT_OK


@contextlib.contextmanager
def _left_out_files_as_notes() -> Iterator[None]:
    """Silences the RuntimeWarning `export_model` gives for each ONNX file it leaves out (a
    warning's source line is not for people); `_print_left_out` says it in one line instead."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", r".* is not shipped: ", RuntimeWarning)
        yield


def _print_left_out(onnxruntime_files: dict, attention: dict | None) -> None:
    """One `note:` line per ONNX file an export left out, with the manifest's reason
    (`attention`: the manifest's entry for attention.onnx; None before it existed)."""
    for filename, entry in {**onnxruntime_files, ATTENTION_FILENAME: attention}.items():
        if entry is not None and not entry["shipped"]:
            _print(f"note: {filename} not shipped: {entry['reason']}")


def cmd_export(args: argparse.Namespace) -> int:
    out = Path(args.out) if args.out else Path("saved_models") / Path(args.run).resolve().name
    check_folder_path(out, "--out")
    return _export(Path(args.run), out)


def cmd_verify(args: argparse.Namespace) -> int:
    import export

    if not Path(args.version_dir).is_dir():
        raise UsageError(f"No such folder. Expected an export version folder such as "
                         f"saved_models/demo/1. Received: {args.version_dir}")
    check_version_folder(Path(args.version_dir), "verify", "an export version folder")
    report = export.verify(args.version_dir)
    _print(report.table())
    return EXIT_OK if report.ok else EXIT_FAILURE
