"""`verify(version_dir)`: is this exported folder intact, and does it still compute what Keras
computes?

Three checks, in order: every file matches `manifest.json` (sha256 and size, none missing, none
added); the exported `model.keras`, the SavedModel and `model.onnx` all load; and the parity
battery gives the same logits from Keras, the SavedModel's `serving_default` and onnxruntime at
the basic and the full optimization level. TensorFlow and keras_attn are imported inside the
functions that need them, so `import export` stays light.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from export.manifest import KERAS_FILENAME, ONNX_FILENAME, check_manifest, read_manifest
from export.parity import (
    SEED,
    TOLERANCE,
    ParityReport,
    Runtime,
    compare_runtimes,
    parity_cases,
)

ORT_LEVELS = ("basic", "all")


class LoadError(RuntimeError):
    """An exported file that a runtime cannot load; `filename` names it."""

    def __init__(self, filename: str, error: Exception) -> None:
        super().__init__(f"{filename}: cannot be loaded: {type(error).__name__}: {error}")
        self.filename = filename


def load_runtimes(version_dir: str | os.PathLike) -> dict[str, Runtime]:
    """The exported runtimes of a version folder as parity-battery functions: the SavedModel's
    `serving_default`, and onnxruntime at the basic and the full optimization level.

    Raises:
        LoadError: naming the file that does not load.
    """
    from export import runtime
    from export.savedmodel import savedmodel_runtime

    try:
        runtimes = {"savedmodel": savedmodel_runtime(version_dir)}
    except Exception as error:  # TensorFlow raises many types for a corrupt SavedModel
        raise LoadError("saved_model.pb", error) from error
    for level in ORT_LEVELS:
        try:
            runtimes[f"onnxruntime ({level})"] = runtime.load(version_dir, level).predict
        except Exception as error:
            raise LoadError(ONNX_FILENAME, error) from error
    return runtimes


def check_parity(model: Any, runtimes: Mapping[str, Runtime], max_len: int, vocab_size: int,
                 tolerance: float = TOLERANCE, seed: int = SEED) -> ParityReport:
    """Runs the parity battery: the Keras `model` against each of `runtimes`."""
    from export.endpoint import keras_runtime

    return compare_runtimes(keras_runtime(model), runtimes,
                            parity_cases(max_len, vocab_size, seed), tolerance, seed=seed)


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
        runtimes = load_runtimes(version_dir)
    except LoadError as error:
        return VerifyReport(version_dir, (str(error),), None, files)
    config = ka.config_from_model(model)
    expected = read_manifest(version_dir).get("config")
    if config.to_dict() != expected:
        return VerifyReport(version_dir, (
            f"{KERAS_FILENAME}: its config {config.to_dict()} differs from the manifest's "
            f"{expected}",), None, files)
    parity = check_parity(model, runtimes, config.max_len, config.vocab_size, tolerance, seed)
    return VerifyReport(version_dir, (), parity, files)
