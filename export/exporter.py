"""`export_model`: one trained keras_attn model -> one verified, numbered version folder.

The folder (`<out_dir>/<version>/`) is a TF Serving version directory with everything a server
or an auditor needs beside the SavedModel:

    saved_model.pb, variables/, assets/, fingerprint.pb   the SavedModel (TF Serving)
    model.onnx        the same endpoint for onnxruntime, standard ONNX ops only
    model.optimized.onnx, model.int8.onnx   onnxruntime-only rewrites of it
                      (`export.formats.optimize`), each shipped only when it passed its
                      check (`export.verification.shipping`), else the manifest says why
    model.keras       the model itself, so `verify` can rerun the parity battery later
    attention.onnx    every block's attention weights, for viewers (standard ONNX ops;
                      `export.formats.attention_onnx`), checked against Keras
                      (`export.verification.attention_parity`); left out, with the reason in
                      the manifest's "attention", when it fails
    decoder.onnx, decoder.optimized.onnx   language models: one cached decoding step
                      (`export.formats.decoder_onnx`), checked at every step
                      (`export.verification.decoder_parity`); the SavedModel then also has a
                      `decoder_step` signature
    tokenizer.json    when a tokenizer was given
    parity.json       the battery's measured differences
    manifest.json     sha256 and size of every file, library versions, config, creation time

It is built in a temporary folder beside the target and renamed into place only once the parity
battery passed there (see `export.artifact.versions`).
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from export.artifact.manifest import (
    ATTENTION_FILENAME,
    INT8_FILENAME,
    KERAS_FILENAME,
    MANIFEST_FILENAME,
    ONNX_FILENAME,
    OPTIMIZED_FILENAME,
    PARITY_FILENAME,
    TOKENIZER_FILENAME,
    write_manifest,
)
from export.artifact.versions import next_version, staged_version
from export.verification.cases import calibration_data, check_representative_ids
from export.verification.parity import TOLERANCE, ParityReport
from export.verification.runtimes import load_quantized, load_runtimes
from export.verification.verifier import check_parity


class ParityError(RuntimeError):
    """The exported runtimes disagree with Keras beyond the tolerance; `report` says where."""

    def __init__(self, report: ParityReport) -> None:
        super().__init__("Exported runtimes disagree with Keras; nothing was written.\n"
                         + report.table())
        self.report = report


@dataclasses.dataclass(frozen=True)
class ExportResult:
    """Where an export went and how well it agrees with Keras.

    Attributes:
        version: the version number written.
        path: the version folder; it is also the SavedModel folder.
        onnx_path, keras_path, manifest_path: the files inside it.
        parity: the parity battery's report (also in `parity.json`).
        optimized_path, int8_path: the onnxruntime-only files, or None when not shipped.
        attention_path: attention.onnx, or None when not shipped (the manifest's "attention"
            says why).
        onnxruntime_files: how each of them was built and checked, or why it was not
            shipped (also in the manifest).
    """

    version: int
    path: Path
    onnx_path: Path
    keras_path: Path
    manifest_path: Path
    parity: ParityReport
    optimized_path: Path | None = None
    int8_path: Path | None = None
    onnxruntime_files: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)
    attention_path: Path | None = None


def export_model(
    model: Any,
    out_dir: str | os.PathLike,
    version: int | None = None,
    *,
    tokenizer: Any = None,
    class_names: Sequence[str] | None = None,
    opset: int | None = None,
    tolerance: float = TOLERANCE,
    evaluation: Mapping[str, Any] | None = None,
    representative_ids: Any = None,
) -> ExportResult:
    """Exports a keras_attn classifier or language model as a verified version folder.

    Args:
        model: a model from `keras_attn.build_classifier` / `build_language_model`.
        out_dir: the model's folder, e.g. "saved_models/sentiment"; created if missing.
        version: the version number to write; default: one more than the highest present.
            An existing version is an error, never overwritten.
        tokenizer: optional object with `.vocab_size` (which must equal the model's) and
            `.save(path)`; saved as `tokenizer.json`.
        class_names: optional names of the classifier's classes, one per logit.
        opset: ONNX opset, 17 (default) or 18.
        tolerance: the largest absolute logit difference the parity battery accepts.
        evaluation: optional JSON-ready measurements of the model (e.g. the run's validation
            report and its baseline's), recorded in the manifest as "evaluation".
        representative_ids: optional token ids like those the model will serve (e.g. the
            run's held-out texts, tokenized): integers `[n, width <= max_len]`, right-padded
            with 0. model.int8.onnx is calibrated and checked on them (kept beside it as
            representative_ids.npy); without them, on the battery's random ids. The fp32
            battery is the same either way.

    Returns:
        An `ExportResult`.

    Raises:
        FileExistsError: `version` exists already.
        ValueError: `model` is not a keras_attn model, or `class_names`, the tokenizer's
            vocab_size or `representative_ids` does not fit it; raised before anything is
            written.
        ParityError: the SavedModel or model.onnx disagrees with Keras; nothing is left
            behind. (An onnxruntime-only file that fails its check is left out instead, with
            a RuntimeWarning and the reason in the manifest; see `export.formats.optimize`.)

    Example:
        >>> result = export_model(model, "saved_models/sentiment")       # doctest: +SKIP
        >>> print(result.path, result.parity.table())                     # doctest: +SKIP
    """
    import keras_attn as ka
    from export.artifact.metadata import encode_metadata
    from export.formats.attention_onnx import write_attention
    from export.formats.decoder_onnx import write_decoder_files
    from export.formats.onnx import OPSET, convert_to_onnx, save_onnx
    from export.formats.savedmodel import write_savedmodel
    from export.formats.tf_function import keras_runtime
    from export.verification.attention_parity import check_attention
    from export.verification.decoder_parity import check_decoder
    from export.verification.shipping import drop_failed, warn_not_shipped

    config = ka.config_from_model(model)
    task = ka.model_task(model)
    trained_dtype_policy = model.dtype_policy.name
    # What ships is float32 and uncompiled, whatever the model was trained under: a
    # mixed-precision model would give float16 logits, and a model compiled with
    # jit_compile=True would predict under XLA, which clamps out-of-range ids.
    model = ka.rebuild(model, "float32")
    opset = OPSET if opset is None else opset
    class_names = _check_class_names(class_names, task, config.num_classes)
    _check_tokenizer(tokenizer, config.vocab_size, task)
    if representative_ids is not None:
        representative_ids = check_representative_ids(representative_ids, config.max_len,
                                                       config.vocab_size)
    version = next_version(out_dir) if version is None else version
    keras_attn_version = ka.__version__

    with staged_version(out_dir, version) as folder:
        write_savedmodel(model, folder, max_len=config.max_len, vocab_size=config.vocab_size,
                         decoder_step=task == "language_model")
        metadata = encode_metadata(config.to_dict(), task, opset, keras_attn_version,
                                   class_names)
        save_onnx(convert_to_onnx(model, task, metadata, opset), folder / ONNX_FILENAME)
        onnxruntime_files = write_onnxruntime_files(folder, config.max_len, config.vocab_size,
                                                    representative_ids)
        # A language model also ships its decoder step with a key/value cache, checked at
        # every decoding step against a full recompute (export.verification.decoder_parity).
        decoder = None
        if task == "language_model":
            optimized_decoder = write_decoder_files(model, folder, metadata, opset)
            decoder = check_decoder(model, folder, tolerance, optimized_decoder)
        attention = check_attention(model, folder, tolerance,
                                    write_attention(model, folder, metadata, opset))
        model.save(folder / KERAS_FILENAME)
        if tokenizer is not None:
            tokenizer.save(folder / TOKENIZER_FILENAME)
        # model.keras is the reference `verify` will use later: check it reloads faithfully.
        runtimes = {"model.keras": keras_runtime(ka.load_model(folder / KERAS_FILENAME)),
                    **load_runtimes(folder)}
        report = check_parity(model, runtimes, config.max_len, config.vocab_size, tolerance,
                              quantized=load_quantized(folder),
                              representative_ids=representative_ids)
        shipped_report = drop_failed(report, folder, onnxruntime_files)
        if not shipped_report.ok:
            raise ParityError(report)  # the portable files failed: say all that was measured
        report = shipped_report
        (folder / PARITY_FILENAME).write_text(json.dumps(report.to_dict(), indent=2) + "\n")
        write_manifest(folder, {
            "task": task,
            "config": config.to_dict(),
            "class_names": class_names,
            "opset": opset,
            "keras_attn_version": keras_attn_version,
            "trained_dtype_policy": trained_dtype_policy,
            "signatures": _signatures(model, task),
            "onnx_io": _onnx_io(folder / ONNX_FILENAME),
            "onnxruntime_files": onnxruntime_files,
            "evaluation": evaluation,
            "decoder": decoder,
            "attention": attention,
        })
    warn_not_shipped({**onnxruntime_files, ATTENTION_FILENAME: attention})
    path = Path(out_dir) / str(version)
    shipped = {name: path / name if entry["shipped"] else None
               for name, entry in onnxruntime_files.items()}
    return ExportResult(version, path, path / ONNX_FILENAME, path / KERAS_FILENAME,
                        path / MANIFEST_FILENAME, report, shipped.get(OPTIMIZED_FILENAME),
                        shipped.get(INT8_FILENAME), onnxruntime_files,
                        path / ATTENTION_FILENAME if attention["shipped"] else None)


def write_onnxruntime_files(folder: Path, max_len: int, vocab_size: int,
                            representative_ids: Any = None) -> dict[str, dict[str, Any]]:
    """Writes `model.optimized.onnx` from `folder/model.onnx`, then `model.int8.onnx` from it,
    calibrated on `representative_ids` (checked int32 `[n, width]`), or on the parity
    battery's ids for `max_len` and `vocab_size` without them
    (`export.verification.cases.calibration_data`); each is left out at once when
    onnxruntime cannot load it, and int8 goes with a left-out optimized file.

    Returns:
        The manifest's `onnxruntime_files` entry: {filename: {"shipped": True, ...how it was
        built} or {"shipped": False, "reason": ...}}. Shipped means written and loadable, not
        yet checked: `export.verification.shipping.drop_failed` settles that once the battery
        has run.
    """
    from export.formats import optimize
    from export.verification.shipping import INT8_BOUND, check_loads

    entries = {OPTIMIZED_FILENAME: optimize.write_optimized(folder)}
    check_loads(entries, folder, OPTIMIZED_FILENAME)
    if not entries[OPTIMIZED_FILENAME]["shipped"]:
        entries[INT8_FILENAME] = optimize.left_out(
            folder, INT8_FILENAME, f"it is built from {OPTIMIZED_FILENAME}, which was not shipped")
        return entries
    try:
        calibration, data = calibration_data(max_len, vocab_size, representative_ids)
    except Exception as error:
        entries[INT8_FILENAME] = optimize.left_out(
            folder, INT8_FILENAME, f"quantization failed: {type(error).__name__}: {error}")
        return entries
    entries[INT8_FILENAME] = optimize.write_int8(folder, calibration, data, representative_ids)
    if entries[INT8_FILENAME]["shipped"]:
        entries[INT8_FILENAME]["bound"] = INT8_BOUND
        check_loads(entries, folder, INT8_FILENAME)
    return entries


def _check_class_names(class_names: Sequence[str] | None, task: str,
                       num_classes: int) -> list[str] | None:
    """One string per class, for classifiers only."""
    if class_names is None:
        return None
    if task != "classifier":
        raise ValueError(f"class_names applies to classifiers only. Received: a {task} and "
                         f"class_names={class_names!r}")
    names = list(class_names)
    if len(names) != num_classes or not all(isinstance(name, str) for name in names):
        raise ValueError(f"class_names must be {num_classes} strings, one per class. "
                         f"Received: class_names={class_names!r}")
    return names


def _check_tokenizer(tokenizer: Any, vocab_size: int, task: str) -> None:
    """The tokenizer must make exactly the ids the model embeds: with fewer, some embeddings
    are never reached; with more, served text produces ids the model refuses. A language model
    from train-lm has one id more than its tokenizer: the end-of-text id
    (export.runtime.sampling)."""
    if tokenizer is None:
        return
    tokenizer_size = getattr(tokenizer, "vocab_size", None)
    allowed = (vocab_size, vocab_size - 1) if task == "language_model" else (vocab_size,)
    if tokenizer_size not in allowed:
        raise ValueError(
            f"The tokenizer does not fit the model: its vocab_size must equal the model's "
            f"vocab_size={vocab_size}"
            + (" (or one less: the end-of-text id)" if task == "language_model" else "")
            + f". Received: a tokenizer with vocab_size={tokenizer_size}"
        )


def _logits_dims(task: str) -> str:
    return "[batch, sequence, vocab_size]" if task == "language_model" else "[batch, num_classes]"


def _signatures(model: Any, task: str) -> dict[str, Any]:
    """Each SavedModel signature's input and output, dtypes read from the specs and the model."""
    from export.formats.savedmodel import SIGNATURES
    from export.formats.savedmodel_decoder import DECODER_SIGNATURE_NAME, decoder_step_io

    logits = f"{model.outputs[0].dtype} {_logits_dims(task)}"
    signatures = {name: {"inputs": {spec.name: f"{spec.dtype.name} [batch, sequence]"},
                         "outputs": {"logits": logits}}
                  for name, spec in SIGNATURES.items()}
    if task == "language_model":
        signatures[DECODER_SIGNATURE_NAME] = decoder_step_io(model)
    return signatures


def _onnx_io(path: Path) -> dict[str, dict[str, str]]:
    """model.onnx's inputs and outputs as "dtype [dims]", read from the file itself."""
    import onnx

    graph = onnx.load(path, load_external_data=False).graph

    def describe(value) -> str:
        tensor = value.type.tensor_type
        dtype = onnx.helper.tensor_dtype_to_np_dtype(tensor.elem_type).name
        dims = ", ".join(dim.dim_param or str(dim.dim_value) for dim in tensor.shape.dim)
        return f"{dtype} [{dims}]"

    return {"inputs": {value.name: describe(value) for value in graph.input},
            "outputs": {value.name: describe(value) for value in graph.output}}
