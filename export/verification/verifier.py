"""`verify(version_dir)`: is this exported folder intact, and does it still compute what Keras
computes?

Three checks, in order: every file matches `manifest.json` (sha256 and size, none missing, none
added); the exported `model.keras`, the SavedModel and the ONNX files all load; and the parity
battery gives the same logits from Keras, the SavedModel's `serving_default`, and onnxruntime
on `model.onnx` and on `model.optimized.onnx` (when shipped) at the basic and the full
optimization level. `model.int8.onnx` (when shipped) is held to its accuracy bound instead
(argmax agreement), reported apart. For a language model, the cached decoding steps
(decoder.onnx, decoder.optimized.onnx when shipped, and the SavedModel's `decoder_step`) are
checked against a full recompute at every step (`export.verification.decoder_parity`). TensorFlow
and
keras_attn are imported inside the functions that need them, so `import export` stays light.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from export.artifact.manifest import (
    INT8_FILENAME,
    KERAS_FILENAME,
    ONNX_FILENAME,
    OPTIMIZED_FILENAME,
    check_manifest,
    read_manifest,
)
from export.verification.cases import SEED, parity_cases, representative_cases, row_contexts
from export.verification.decoder_parity import decoder_summary, verify_decoder
from export.verification.parity import (
    TOLERANCE,
    ParityReport,
    Runtime,
    compare_runtimes,
    effective_tolerance,
)

ORT_LEVELS = ("basic", "all")
# The representative token ids model.int8.onnx was calibrated and checked on, kept beside it
# (when export_model was given some) so that `verify` checks it on the same data.
REPRESENTATIVE_FILENAME = "representative_ids.npy"
# How the battery names the onnxruntime sessions of each ONNX file, e.g.
# "onnxruntime optimized (all)"; `runtime_file` reads the file back from a pair's name.
RUNTIME_LABELS = {ONNX_FILENAME: "onnxruntime", OPTIMIZED_FILENAME: "onnxruntime optimized",
                  INT8_FILENAME: "onnxruntime int8"}


def runtime_file(pair: str) -> str | None:
    """The ONNX file a pair's candidate ran, e.g. "keras vs onnxruntime optimized (all)" ->
    "model.optimized.onnx"; None for a runtime that is not onnxruntime."""
    candidate = pair.split(" vs ", 1)[-1]
    for filename, label in RUNTIME_LABELS.items():
        if candidate.startswith(f"{label} ("):
            return filename
    return None


class LoadError(RuntimeError):
    """An exported file that a runtime cannot load; `filename` names it."""

    def __init__(self, filename: str, error: Exception) -> None:
        super().__init__(f"{filename}: cannot be loaded: {type(error).__name__}: {error}")
        self.filename = filename


def load_runtimes(version_dir: str | os.PathLike) -> dict[str, Runtime]:
    """The exported fp32 runtimes of a version folder as parity-battery functions: the
    SavedModel's `serving_default` and `serving_int64`, and onnxruntime at the basic and the
    full optimization level on `model.onnx` and, when present, `model.optimized.onnx`.

    Raises:
        LoadError: naming the file that does not load.
    """
    from export.formats.savedmodel import INT64_SIGNATURE_NAME, SIGNATURE_NAME, savedmodel_runtimes

    version_dir = Path(version_dir)
    try:
        signatures = savedmodel_runtimes(version_dir)
        runtimes = {"savedmodel": signatures[SIGNATURE_NAME],
                    "savedmodel int64": signatures[INT64_SIGNATURE_NAME]}
    except Exception as error:  # TensorFlow raises many types for a corrupt SavedModel
        raise LoadError("saved_model.pb", error) from error
    for filename in (ONNX_FILENAME, OPTIMIZED_FILENAME):
        if filename == ONNX_FILENAME or (version_dir / filename).is_file():
            runtimes.update(_onnxruntime(version_dir / filename, ORT_LEVELS))
    return runtimes


def load_quantized(version_dir: str | os.PathLike) -> dict[str, Runtime]:
    """`model.int8.onnx` in onnxruntime at the full optimization level (the runtime's
    default), when the folder has one; it is held to an accuracy bound, not a tolerance.

    Raises:
        LoadError: naming the file when it does not load.
    """
    path = Path(version_dir) / INT8_FILENAME
    return _onnxruntime(path, ("all",)) if path.is_file() else {}


# How many held-out rows a training run keeps as representative ids.
REPRESENTATIVE_ROWS = 512


def save_representative_ids(folder: str | os.PathLike, token_ids: np.ndarray,
                            rows: int = REPRESENTATIVE_ROWS) -> Path:
    """Writes the first `rows` rows of `token_ids` (int `[n, width]`, right-padded with 0)
    that hold a real id to `folder/representative_ids.npy` as int32, for `export_model`'s
    `representative_ids`; returns the path."""
    ids = np.asarray(token_ids)
    path = Path(folder) / REPRESENTATIVE_FILENAME
    np.save(path, ids[ids[:, 0] != 0][:rows].astype(np.int32), allow_pickle=False)
    return path


def load_representative_ids(folder: str | os.PathLike) -> np.ndarray | None:
    """`folder/representative_ids.npy` (int32 `[n, width]`; a version folder's or a run
    folder's), or None when there is none."""
    path = Path(folder) / REPRESENTATIVE_FILENAME
    return np.load(path, allow_pickle=False) if path.is_file() else None


def _onnxruntime(path: Path, levels: tuple[str, ...]) -> dict[str, Runtime]:
    from export import runtime

    try:
        return {f"{RUNTIME_LABELS[path.name]} ({level})": runtime.load(path, level).predict
                for level in levels}
    except Exception as error:
        raise LoadError(path.name, error) from error


def check_parity(model: Any, runtimes: Mapping[str, Runtime], max_len: int, vocab_size: int,
                 tolerance: float = TOLERANCE, seed: int = SEED,
                 quantized: Mapping[str, Runtime] | None = None,
                 representative_ids: np.ndarray | None = None) -> ParityReport:
    """Runs the parity battery: the Keras `model` against each of `runtimes`, and each of
    `quantized` against the accuracy bound and for row independence.

    The element-wise tolerance is `tolerance`, or `FLOOR_FACTOR` times the model's own fp32
    error floor where that is larger (see `fp32_error_floor`): two fp32 runtimes cannot agree
    more closely than fp32 lets either of them compute the model. The row-independence check
    uses the same tolerance: a quantized row's logits may move with its batch no more than
    fp32 lets two runtimes differ.

    `representative_ids` (checked int32 `[n, width]`,
    `export.verification.cases.check_representative_ids`) are what the quantized candidates are
    checked on, agreement and rows; without them, the battery's random ids (its largest ragged
    batch gives the rows).
    """
    from export.formats.tf_function import keras_runtime

    cases = parity_cases(max_len, vocab_size, seed)
    floor = fp32_error_floor(model, cases)
    if representative_ids is None:
        quantized_cases, data = None, "parity battery"
        rows = next(case.token_ids for case in reversed(cases)  # the largest ragged batch
                    if case.name.endswith("ragged"))
    else:
        quantized_cases = representative_cases(representative_ids)
        data, rows = f"{len(representative_ids)} representative rows", representative_ids
    return compare_runtimes(keras_runtime(model), runtimes, cases,
                            effective_tolerance(tolerance, floor), seed=seed,
                            quantized=quantized, fp32_floor=floor,
                            quantized_cases=quantized_cases, quantized_data=data,
                            contexts=row_contexts(rows, max_len, vocab_size, seed))


def fp32_error_floor(model: Any, cases: list) -> float:
    """How far the Keras model in fp32 is from the same model computed in float64, over the
    battery: the rounding error fp32 itself makes on this model's logits.

    A well-trained model with saturated attention and sharp LayerNorms amplifies rounding:
    measured 1.5e-5 on a trained 2-block classifier (with onnxruntime 1.4e-5 from float64
    too), where untrained test models sit near 1e-7.
    """
    import keras_attn as ka
    from export.formats.tf_function import keras_runtime

    twin = ka.rebuild(model, "float64")
    fp32, fp64 = keras_runtime(model), keras_runtime(twin)
    return max(float(np.max(np.abs(np.asarray(fp32(case.token_ids), "float64")
                                   - np.asarray(fp64(case.token_ids)))))
               for case in cases)


@dataclasses.dataclass(frozen=True)
class VerifyReport:
    """What `verify` found. `ok` only when no file problem and every parity pair passes.

    Attributes:
        version_dir: the folder checked.
        problems: one line per problem, each naming the file (missing, changed, unlisted,
            unloadable, or a config that disagrees with the manifest).
        parity: the battery's report, or None when file problems stopped it from running.
        files_checked: how many files matched their manifest entry (0 when any did not).
    """

    version_dir: Path
    problems: tuple[str, ...]
    parity: ParityReport | None
    files_checked: int = 0
    decoder: dict | None = None

    @property
    def ok(self) -> bool:
        return not self.problems and self.parity is not None and self.parity.ok

    def table(self) -> str:
        """The parity table, preceded by any file problems, and a one-line verdict."""
        lines = [f"verify {self.version_dir}"]
        if self.files_checked:
            lines.append(f"files: {self.files_checked} match manifest.json (sha256 and size)")
        lines += [f"  problem: {problem}" for problem in self.problems]
        if self.parity is not None:
            cases = self.parity.pairs[0].cases if self.parity.pairs else 0
            lines += [f"parity: {cases} batches (seed {self.parity.seed}), Keras (model.keras) "
                      "vs each runtime, fp32 logits", "", self.parity.table(), ""]
        if self.decoder is not None:
            lines += [decoder_summary(self.decoder), ""]
        elif self.problems:
            lines.append("  parity battery not run: the files above failed their checks")
        lines.append("OK" if self.ok else "FAILED")
        return "\n".join(lines)


def verify(version_dir: str | os.PathLike, tolerance: float = TOLERANCE,
           seed: int = SEED) -> VerifyReport:
    """Checks an exported version folder: integrity, loadability, parity.

    Args:
        version_dir: e.g. "saved_models/sentiment/1".
        tolerance: the largest absolute logit difference that passes.
        seed: the seed the battery's batches are drawn with.

    Returns:
        A `VerifyReport`; `report.ok` is the verdict, `report.table()` the text for people.
    """
    version_dir = Path(version_dir)
    if not version_dir.is_dir():
        return VerifyReport(version_dir, (f"{version_dir}: no such folder",), None)
    problems = check_manifest(version_dir)
    if problems:
        return VerifyReport(version_dir, tuple(problems), None)
    files = len(read_manifest(version_dir)["files"])

    import keras_attn as ka

    try:
        try:
            model = ka.load_model(version_dir / KERAS_FILENAME)
        except Exception as error:
            raise LoadError(KERAS_FILENAME, error) from error
        runtimes, quantized = load_runtimes(version_dir), load_quantized(version_dir)
    except LoadError as error:
        return VerifyReport(version_dir, (str(error),), None, files)
    config = ka.config_from_model(model)
    expected = read_manifest(version_dir).get("config")
    if config.to_dict() != expected:
        return VerifyReport(version_dir, (
            f"{KERAS_FILENAME}: its config {config.to_dict()} differs from the manifest's "
            f"{expected}",), None, files)
    parity = check_parity(model, runtimes, config.max_len, config.vocab_size, tolerance, seed,
                          quantized, load_representative_ids(version_dir))
    # Language models: decoder.onnx and the SavedModel's decoder_step, at every step.
    decoder = verify_decoder(model, version_dir, tolerance)
    problems = () if decoder is None or decoder["ok"] else (decoder_summary(decoder),)
    return VerifyReport(version_dir, problems, parity, files, decoder)
