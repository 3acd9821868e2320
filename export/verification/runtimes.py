"""The exported runtimes of a version folder, loaded back as parity-battery functions.

The SavedModel's `serving_default` and `serving_int64`, and onnxruntime at the basic and the
full optimization level on `model.onnx` and, when shipped, `model.optimized.onnx`; and
`model.int8.onnx`, held to an accuracy bound instead (`load_quantized`). The battery names each
onnxruntime session by its file (`RUNTIME_LABELS`), so that `runtime_file` can tell from a
result which file it judged. TensorFlow is imported inside `load_runtimes`.
"""

from __future__ import annotations

import os
from pathlib import Path

from export import runtime
from export.artifact.manifest import INT8_FILENAME, ONNX_FILENAME, OPTIMIZED_FILENAME
from export.verification.parity import Runtime

ORT_LEVELS = ("basic", "all")
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


def _onnxruntime(path: Path, levels: tuple[str, ...]) -> dict[str, Runtime]:
    try:
        return {f"{RUNTIME_LABELS[path.name]} ({level})": runtime.load(path, level).predict
                for level in levels}
    except Exception as error:
        raise LoadError(path.name, error) from error
